"""STARTTLS towards the upstream: a relay that insists on TLS gets the message over TLS,
and a certificate nobody vouches for is refused with a 4xx, never sent in the clear.
`tls = "starttls"` is opportunistic: TLS when offered (certificate unchecked), else clear."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.consent import grant_in_process
from tests.support.gateway import PASSWORD, GatewayProcess, base_config
from tests.support.messages import marketing
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_sink(ca: trustme.CA) -> Iterator[RecordingSink]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    sink = RecordingSink(tls_context=context).start()
    yield sink
    sink.stop()


def _gateway(tmp: Path, sink: RecordingSink, **upstream: object) -> GatewayProcess:
    cfg = base_config(tmp, sink.port)
    cfg["upstream"].update(upstream)
    gw = GatewayProcess(tmp, cfg).start()
    grant_in_process(gw.config_path, "sample", "taro@example.com")
    return gw


def _send(gw: GatewayProcess) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        code, reply = client.mail("news@bounce.example.jp")
        if code != 250:
            return code, reply
        code, reply = client.rcpt("taro@example.com")
        if code != 250:
            return code, reply
        return client.data(marketing())


def _send_once(tmp: Path, sink: RecordingSink, **upstream: object) -> tuple[int, bytes]:
    """One message through a gateway with these upstream settings."""
    gw = _gateway(tmp, sink, **upstream)
    try:
        return _send(gw)
    finally:
        gw.stop()


def test_message_goes_over_starttls_with_the_configured_ca(
    tmp_path: Path, ca: trustme.CA, tls_sink: RecordingSink
) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "upstream-ca.pem"))
    code, reply = _send_once(tmp_path, tls_sink, tls="required", ca_file="upstream-ca.pem")
    assert code == 250, reply
    # the sink refuses MAIL before STARTTLS (530), so an arrival means TLS was used
    assert len(tls_sink.received) == 1
    assert tls_sink.received[0].rcpt_tos == ["taro@example.com"]


def test_untrusted_upstream_certificate_is_a_temporary_failure(
    tmp_path: Path, tls_sink: RecordingSink
) -> None:
    code, reply = _send_once(tmp_path, tls_sink, tls="required")  # system trust: does not know the CA
    assert code == 451 and b"4.4.1" in reply, (code, reply)
    assert tls_sink.received == []
    assert not any(c.startswith("MAIL") for c in tls_sink.commands)


@pytest.fixture
def plain_sink() -> Iterator[RecordingSink]:
    sink = RecordingSink().start()
    yield sink
    sink.stop()


def test_opportunistic_starttls_encrypts_when_offered_without_checking_the_certificate(
    tmp_path: Path, tls_sink: RecordingSink
) -> None:
    code, reply = _send_once(tmp_path, tls_sink, tls="starttls")  # system trust: does not know the CA
    assert code == 250, reply
    assert len(tls_sink.received) == 1  # the sink takes mail over TLS only


@pytest.mark.parametrize(("tls", "expected"), [("starttls", 250), ("required", 451)])
def test_upstream_without_starttls(
    tmp_path: Path, plain_sink: RecordingSink, tls: str, expected: int
) -> None:
    code, reply = _send_once(tmp_path, plain_sink, tls=tls)
    assert code == expected, reply
    assert len(plain_sink.received) == (1 if expected == 250 else 0)
    if expected != 250:
        assert b"4.4.1" in reply and plain_sink.commands == []  # never in the clear
