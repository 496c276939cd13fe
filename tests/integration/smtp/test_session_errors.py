"""An error no step of DATA handles (a bug, an unforeseen input) ends that transaction cleanly.

A real gateway in this process (real SQLite store, real knotd, a real aiosmtpd upstream);
the fault is injected by making the footer check raise, since no known input does.
The client must get a 4xx with a reference that names the log line, the upstream must get
nothing, the outcome must be in the event log and counted in /metrics, and the same
session must be able to send its next message (aiosmtpd alone would answer "503 nested
MAIL" until a RSET, and keep the upstream link mid-transaction).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import NoReturn

import pytest

from gateway.app import Gateway
from tests.faults.client import RawSMTP, dot_stuff
from tests.faults.invariant import new_message
from tests.support.sink import RecordingSink


async def transaction(client: RawSMTP, raw: bytes) -> list[tuple[int, str]]:
    replies = [
        await client.cmd("MAIL FROM:<news@bounce.example.jp>"),
        await client.cmd("RCPT TO:<taro@example.com>"),
        await client.cmd("DATA"),
    ]
    await client.send(dot_stuff(raw) + b".\r\n")
    replies.append(await client.reply())
    return replies


async def test_an_unhandled_error_in_data_gets_a_4xx_and_the_session_goes_on(
    gateway: Gateway, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object) -> NoReturn:
        raise RuntimeError("injected fault in the footer check")

    client, code, _ = await RawSMTP.connect(gateway.port)
    assert code == 220
    assert (await client.cmd("EHLO client.test"))[0] == 250
    assert (await client.login())[0] == 235

    monkeypatch.setattr(gateway.footer, "report_for", broken)
    with caplog.at_level(logging.ERROR, logger="gateway"):
        mail, rcpt, data, final = await transaction(client, new_message("bug"))
    assert (mail[0], rcpt[0], data[0]) == (250, 250, 354)
    assert final[0] == 451 and "4.3.0" in final[1], final
    ref = re.search(r"ref=(\S+)", final[1])
    assert ref, final
    logged = [r for r in caplog.records if r.getMessage() == "session error"]
    assert [r.fields["ref"] for r in logged] == [ref.group(1)]  # type: ignore[attr-defined]
    assert logged[0].exc_info and "injected fault" in str(logged[0].exc_info[1])
    assert sink.received == []

    events = await gateway.store.fetch(
        "SELECT verdict, phase, reply, upstream_reply FROM events WHERE phase = 'data'")
    assert events == [{"verdict": "tempfailed", "phase": "data", "reply": final[1],
                       "upstream_reply": "RuntimeError in the gateway"}]
    metrics = gateway.metrics.render().decode()
    assert 'tokuden_session_errors_total{error="RuntimeError"} 1.0' in metrics
    assert gateway.pool.in_use == 0  # the upstream link went back (after RSET upstream)

    monkeypatch.undo()
    again = await transaction(client, new_message("after"))
    assert [c for c, _ in again] == [250, 250, 354, 250], again
    assert len(sink.received) == 1 and b"X-Test-Tag: after" in sink.received[0].data
    await client.close()


async def test_an_unhandled_error_at_mail_leaves_no_half_transaction(
    gateway: Gateway, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> NoReturn:
        raise KeyError("injected fault in the sender lookup")

    client, _, _ = await RawSMTP.connect(gateway.port)
    await client.cmd("EHLO client.test")
    assert (await client.login())[0] == 235
    monkeypatch.setattr(gateway, "sender_for_envelope", broken)
    code, text = await client.cmd("MAIL FROM:<news@bounce.example.jp>")
    assert code == 451 and "4.3.0" in text and "ref=" in text, text
    assert (await client.cmd("RCPT TO:<taro@example.com>"))[0] == 503  # no transaction
    assert gateway.pool.in_use == 0
    assert 'tokuden_session_errors_total{error="KeyError"} 1.0' in gateway.metrics.render().decode()

    monkeypatch.undo()
    again = await transaction(client, new_message("after"))
    assert [c for c, _ in again] == [250, 250, 354, 250], again
    assert len(sink.received) == 1
    await client.close()


async def test_after_an_error_at_mail_the_session_is_idle_for_shutdown(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shutdown says 421 at once to a session between transactions and waits (up to
    shutdown_grace, 10 s here) for one in a transaction: a failed MAIL began none."""
    def broken(*args: object) -> NoReturn:
        raise KeyError("injected fault in the sender lookup")

    client, _, _ = await RawSMTP.connect(gateway.port)
    await client.cmd("EHLO client.test")
    await client.login()
    monkeypatch.setattr(gateway, "sender_for_envelope", broken)
    assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 451
    stopping = asyncio.create_task(gateway.stop())
    code, text = await client.reply(wait=3)
    assert code == 421, text
    await stopping
