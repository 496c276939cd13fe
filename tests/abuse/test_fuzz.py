"""Property-based tests at the edges: random MIME through real SMTP, random CSV through the CLI.

Every input gets a clear verdict: SMTP answers 250, 550 with a rule id, or 451 (never a
5xx without a rule id, never a crash or a hang); the importer exits 0/1/2 with a report,
never a traceback.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.client import send_message
from tests.support.consent import grant_in_process
from tests.support.gateway import ROOT, GatewayProcess, base_config
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e

RULE_ID = re.compile(r"^5\d\d 5\.\d+\.\d+ \[[a-z_]+\.[a-z_.,]+\]")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    sink = RecordingSink().start()
    tmp = tmp_path_factory.mktemp("fuzz")
    proc = GatewayProcess(tmp, base_config(tmp, sink.port)).start()
    grant_in_process(proc.config_path, "sample", "taro@example.com")
    yield proc
    proc.stop()
    sink.stop()


CHARSETS = ["utf-8", "iso-2022-jp", "shift_jis", "euc-jp", "us-ascii", "x-unknown", ""]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-bogus", ""]
TYPES = ["text/plain", "text/html", "application/octet-stream", "image/png", "text/x-weird"]
FOOTER = ("発行者: 株式会社サンプル 住所: 東京都千代田区丸の内1-1-1 03-1234-5678 "
          "配信停止 https://example.jp/unsubscribe")
text_st = st.one_of(
    st.text(max_size=300),
    st.sampled_from([FOOTER, "<p>" + FOOTER + "</p>", "=E3=81=82=\r\n", "QUJD", "<div style="]),
)


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from(TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    cte = draw(st.sampled_from(ENCODINGS))
    body = draw(text_st)
    codec = charset if charset and charset not in ("x-unknown", "us-ascii") else "utf-8"
    data = body.encode(codec, "replace")
    if cte == "base64" and draw(st.booleans()):
        import base64

        data = base64.encodebytes(data)
        if draw(st.booleans()):
            data = data[: max(0, len(data) - draw(st.integers(0, 5)))]  # truncated
    head = f"Content-Type: {ctype}" + (f"; charset={charset}" if charset else "")
    if cte:
        head += f"\r\nContent-Transfer-Encoding: {cte}"
    return head.encode() + b"\r\n\r\n" + data


@st.composite
def mime(draw: st.DrawFn, depth: int = 0) -> bytes:
    if depth >= 2 or draw(st.booleans()):
        return draw(leaf())
    boundary = draw(st.sampled_from(["b1", "==x==", "b1", "", "a b"])) + str(depth)
    parts = draw(st.lists(mime(depth + 1), min_size=0, max_size=3))
    sub = draw(st.sampled_from(["mixed", "alternative", "related", "bogus"]))
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    if draw(st.booleans()):
        body += b"--" + boundary.encode() + b"--\r\n"
    return f'Content-Type: multipart/{sub}; boundary="{boundary}"\r\n\r\n'.encode() + body


def _wire(raw: bytes) -> bytes:
    """Whatever the generator made, as CRLF lines (bare CR/LF are covered elsewhere)."""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return b"\r\n".join(line[:900] for line in lines) + b"\r\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(body=mime(), subject=st.text(max_size=60), mime_version=st.booleans())
def test_random_mime_gets_a_clear_verdict(
    gw: GatewayProcess, body: bytes, subject: str, mime_version: bool
) -> None:
    head = (
        "From: =?utf-8?b?5qCq5byP5Lya56S+44K144Oz44OX44Or?= <news@example.jp>\r\n"
        "To: taro@example.com\r\n"
        f"Subject: {' '.join(subject.split())}\r\n"
        "Date: Mon, 04 May 2026 10:00:00 +0900\r\n"
        "Message-ID: <fuzz@example.jp>\r\n" + ("MIME-Version: 1.0\r\n" if mime_version else "")
    ).encode("utf-8")
    raw = _wire(head + body)
    outcome = asyncio.run(send_message(gw.port, raw, wait=30))
    assert outcome.code is not None, outcome  # no hang, no dropped connection
    assert outcome.code in (250, 550, 451, 552), outcome
    if outcome.code >= 500 and outcome.code != 552:
        assert RULE_ID.match(outcome.reply), outcome
    assert gw.proc is not None and gw.proc.poll() is None  # still running


csv_cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["taro@example.com", "opted_in", "opted_out", "double_opt_in", "web_form",
                     "2026-01-10T10:00:00+09:00", "not-a-date", "", '"', "\x00", "=cmd()"]),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.one_of(st.just(["email", "status", "method", "consented_at"]),
                     st.lists(st.text(max_size=12), max_size=6)),
    rows=st.lists(st.lists(csv_cells, max_size=7), max_size=20),
    junk=st.binary(max_size=64),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp932", "latin-1"]),
)
def test_random_csv_import_gets_a_clear_verdict(
    tmp_path: Path, header: list[str], rows: list[list[str]], junk: bytes, encoding: str
) -> None:
    cfg_dir = tmp_path / "csvfuzz"
    cfg_dir.mkdir(exist_ok=True)
    from tests.support import toml

    config = cfg_dir / "gateway.toml"
    if not config.exists():
        config.write_text(toml.dumps(base_config(cfg_dir, 1)), encoding="utf-8")
    text = "\r\n".join(",".join(row) for row in [header, *rows])
    data = text.encode(encoding, "replace") + junk
    path = cfg_dir / "fuzz.csv"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "consent", "import", "--sender", "sample", str(path),
         "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode in (0, 1, 2), result
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (result.stdout + result.stderr).strip(), "no verdict printed"
