"""MAIL refused before any rule runs (an unparsable sender, the message rate, the gateway
draining): the reply names why, a logged-in client's refusal is an event of its own, and
every refusal of the session layer is counted in /metrics by reason, a stranger's included.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.app import Gateway
from tests.faults.client import RawSMTP, dot_stuff
from tests.faults.invariant import new_message
from tests.support.gateway import StartInProcess
from tests.support.sink import RecordingSink

COLUMNS = "verdict, phase, reply, client, mail_from, rule_ids, recipient"


async def events(gw: Gateway) -> list[dict[str, Any]]:
    return await gw.store.fetch(f"SELECT {COLUMNS} FROM events ORDER BY id")


def refusals(gw: Gateway) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in gw.metrics.render().decode().splitlines():
        if line.startswith("tokuden_session_refusals_total{"):
            name, value = line.split(" ")
            found[name.split('"')[1]] = float(value)
    return found


async def logged_in(gw: Gateway) -> RawSMTP:
    client, code, _ = await RawSMTP.connect(gw.port)
    assert code == 220
    assert (await client.cmd("EHLO client.test"))[0] == 250
    assert (await client.login())[0] == 235
    return client


async def test_an_unparsable_sender_is_an_event_for_a_client_and_a_count_for_a_stranger(
    gateway: Gateway, sink: RecordingSink,
) -> None:
    client = await logged_in(gateway)
    for line in ("MAIL FROM:<bad", "MAIL FROM:<news\x00@bounce.example.jp>"):
        code, text = await client.cmd(line)
        assert code == 553 and "5.1.7 [address.sender_invalid]" in text, text
    # the session goes on, and the refused attempts left nothing behind in it
    assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
    # an unparsable MAIL inside a transaction is counted but leaves the transaction be
    assert (await client.cmd("MAIL FROM:<@bounce.example.jp>"))[0] == 553
    assert (await client.cmd("RCPT TO:<taro@example.com>"))[0] == 250
    assert (await client.cmd("RSET"))[0] == 250
    await client.close()

    stranger, _, _ = await RawSMTP.connect(gateway.port)
    await stranger.cmd("EHLO stranger.test")
    code, text = await stranger.cmd("MAIL FROM:<bad")
    assert code == 553 and "[address.sender_invalid]" in text, text
    code, _ = await stranger.cmd("MAIL FROM:<someone@elsewhere.test>")
    assert code == 250  # the opt-out mailbox may be written to without AUTH ...
    code, text = await stranger.cmd("RCPT TO:<victim@elsewhere.test>")
    assert code == 530, text  # ... and nothing else
    await stranger.close()

    reply = "553 5.1.7 [address.sender_invalid] Malformed sender address"
    assert await events(gateway) == [
        {"verdict": "rejected", "phase": "mail", "reply": reply, "client": "ma-tool",
         "mail_from": sent, "rule_ids": ",address.sender_invalid,", "recipient": ""}
        for sent in ("bad", "news\\x00@bounce.example.jp")
    ]
    assert refusals(gateway) == {"sender_invalid": 4.0, "relay_denied": 1.0}
    # upstream: only the one transaction that was taken (then reset)
    assert [c for c in sink.commands if c.startswith("MAIL")] == [
        "MAIL news@bounce.example.jp"]
    assert sink.received == []


async def test_the_message_rate_refusal_is_an_event_naming_its_rule(
    start_gateway: StartInProcess, sink: RecordingSink,
) -> None:
    gateway = await start_gateway(max_messages_per_minute_per_ip=2)
    client = await logged_in(gateway)
    for _ in range(2):
        assert (await client.cmd("MAIL FROM:<news@bounce.example.jp>"))[0] == 250
        assert (await client.cmd("RSET"))[0] == 250
    code, text = await client.cmd("MAIL FROM:<news@bounce.example.jp>")
    assert code == 451 and "4.7.1 [limit.message_rate]" in text, text
    assert (await client.cmd("RCPT TO:<taro@example.com>"))[0] == 503  # no transaction
    await client.close()

    assert await events(gateway) == [
        {"verdict": "tempfailed", "phase": "mail", "reply": text, "client": "ma-tool",
         "mail_from": "news@bounce.example.jp", "rule_ids": ",limit.message_rate,",
         "recipient": ""}
    ]
    assert refusals(gateway) == {"message_rate": 1.0}
    assert gateway.pool.in_use == 0


async def test_a_mail_that_arrives_while_draining_is_refused_and_recorded(
    gateway: Gateway, sink: RecordingSink,
) -> None:
    """A client pipelines its next MAIL behind a message's end while the gateway stops:
    the message in flight is delivered, the next MAIL gets 421 and is in the event log."""
    client = await logged_in(gateway)
    for command in ("MAIL FROM:<news@bounce.example.jp>", "RCPT TO:<taro@example.com>"):
        assert (await client.cmd(command))[0] == 250
    assert (await client.cmd("DATA"))[0] == 354
    stopping = asyncio.create_task(gateway.stop())
    await asyncio.sleep(0.2)  # the gateway is draining, this session still in a transaction
    assert gateway.draining
    await client.send(dot_stuff(new_message("last")) + b".\r\n"
                      b"MAIL FROM:<news@bounce.example.jp>\r\n")
    assert (await client.reply(wait=10))[0] == 250
    code, text = await client.reply(wait=10)
    assert code == 421 and "4.3.2" in text, text
    rows = await events(gateway)
    await stopping

    assert [(r["verdict"], r["phase"], r["rule_ids"]) for r in rows] == [
        ("accepted", "data", ""), ("tempfailed", "mail", "")]
    assert rows[1]["reply"] == text
    assert refusals(gateway) == {"draining": 1.0}
    assert len(sink.received) == 1
