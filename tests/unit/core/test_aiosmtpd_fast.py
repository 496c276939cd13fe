"""aiosmtpd with gateway/smtp/aiosmtpd_fast.py installed answers as with `inspect` itself."""

from __future__ import annotations

import asyncio
import inspect
import logging
from pathlib import Path
from typing import Any

import aiosmtpd.smtp
import pytest

from gateway import app
from gateway.config import from_dict
from gateway.smtp import aiosmtpd_fast
from gateway.smtp.server import GatewaySMTP
from tests.support.gateway import base_config

MAIL_LOG = logging.getLogger("mail.log")
LINE = b"AUTH PLAIN AG1hLXRvb2wAc2VjcmV0\r\n"


def _bound_to(protocol: Any, method: Any) -> str:
    return {id(protocol): "protocol", id(protocol.event_handler): "handler"}[id(method.__self__)]


def _tables(protocol: Any) -> dict[str, Any]:
    """What aiosmtpd derived from inspecting the protocol object and its handler."""
    return {
        "auth": {name: (attr.method.__func__, _bound_to(protocol, attr.method), attr.is_builtin)
                 for name, attr in protocol._auth_methods.items()},
        "auth_order": list(protocol._auth_methods),
        "hooks": {name: hook.__func__ for name, hook in protocol._handle_hooks.items()},
        "commands": {name: m.__func__ for name, m in protocol._smtp_methods.items()},
        "ehlo": protocol._ehlo_hook_ver,
    }


def test_protocol_objects_get_the_tables_inspect_would_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def build() -> tuple[dict[str, Any], dict[str, Any]]:
        gw = app.build(from_dict(base_config(tmp_path, 2525), base_dir=tmp_path),
                       serve_http=False)
        loop = asyncio.get_running_loop()

        def new() -> GatewaySMTP:
            return GatewaySMTP(gw, gw.handler, hostname="gw.test", auth_require_tls=False,
                               loop=loop)

        fast = new()
        with monkeypatch.context() as m:
            m.setattr(aiosmtpd.smtp, "inspect", inspect)
            slow = new()
        return _tables(fast), _tables(slow)

    fast, slow = asyncio.run(build())
    assert aiosmtpd.smtp.inspect is not inspect  # installed by importing the server
    assert fast == slow
    assert {"PLAIN", "LOGIN"} <= set(fast["auth"])  # the handler's, over aiosmtpd's own
    assert fast["ehlo"] == "new"
    assert fast["commands"]["DATA"] is GatewaySMTP.smtp_DATA


def test_other_objects_are_inspected_as_before() -> None:
    class Other:
        def auth_X(self) -> None: ...
        def handle_DATA(self) -> None: ...

    thing = Other()
    assert aiosmtpd_fast.getmembers(thing) == inspect.getmembers(thing)
    assert aiosmtpd_fast.signature(thing.handle_DATA) == inspect.signature(thing.handle_DATA)


@pytest.fixture
def mail_log_level() -> Any:
    saved = MAIL_LOG.level
    yield
    MAIL_LOG.setLevel(saved)


def test_logged_command_lines_still_hide_credentials(
    caplog: pytest.LogCaptureFixture, mail_log_level: None
) -> None:
    with caplog.at_level(logging.DEBUG, logger="mail.log"):
        aiosmtpd.smtp.sanitized_log(MAIL_LOG.info, "%r >> %r", "127.0.0.1", LINE)
        aiosmtpd.smtp.sanitized_log(MAIL_LOG.debug, "_handle_client readline: %r", LINE)
    texts = [r.getMessage() for r in caplog.records]
    assert len(texts) == 2
    assert all("********" in t and "c2VjcmV0" not in t for t in texts)


def test_nothing_is_logged_or_masked_below_the_level(
    caplog: pytest.LogCaptureFixture, mail_log_level: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    MAIL_LOG.setLevel(logging.ERROR)  # as gateway/logs.py sets it
    masked: list[bytes] = []
    real = aiosmtpd.smtp.sanitize
    monkeypatch.setattr(aiosmtpd.smtp, "sanitize", lambda text: masked.append(text) or real(text))
    with caplog.at_level(logging.DEBUG):
        aiosmtpd.smtp.sanitized_log(MAIL_LOG.info, "%r >> %r", "127.0.0.1", LINE)
        aiosmtpd.smtp.sanitized_log(MAIL_LOG.debug, "_handle_client readline: %r", LINE)
    assert [r for r in caplog.records if r.name == "mail.log"] == []
    assert masked == []  # the regex did not run for a line nobody logs
