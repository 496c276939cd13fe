"""Coverage-guided fuzz targets: each takes arbitrary bytes and checks what must hold for any input.

A target fails (raises) when the code under test raises anything but its documented refusal, or
when an oracle disagrees: the fast MIME tree against the stdlib's, our DKIM signature against
dkimpy's verifier, a repaired message against the footer check. `python -m tests.fuzz` drives
them with atheris; tests/fuzz/test_targets.py replays the seeds and runs each one briefly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import io
import tomllib
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway import config
from gateway.auth.dkim_sign import (
    DkimMessageError,
    DkimSigner,
    DkimVerifyStatus,
    make_key,
    public_key_record,
    verify_existing,
)
from gateway.auth.dmarc import DmarcRecordError, parse_dmarc_record
from gateway.checks.message import fake_reply, header_fields
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.consent.importer import ImportFormat, validate_file
from gateway.consent.suppression_import import parse_suppression_list
from gateway.content.footer import check_message, check_parts
from gateway.content.html import html_to_text
from gateway.content.insert import InsertError, insert_footer
from gateway.content.mimetree import parse_message, parse_well_formed
from gateway.content.parts import readable_parts
from gateway.delivery import headers
from gateway.engine.context import Facts
from gateway.engine.packs import load_packs
from gateway.errors import ConfigError
from gateway.model import Outcome, Phase
from gateway.smtp.mailto import MailtoOptOut, delivery_report, feedback_report
from gateway.smtp.message import gather_message_facts, wire_problems
from gateway.unsubscribe.tokens import InvalidToken, TokenCodec
from tests.support.footer import ROOT, SPEC, TEMPLATE, WORDS, tree_shape

TOKUSHO = dataclasses.replace(SPEC, law="tokusho")
OPTOUT_URL = "https://gw.example.jp/u/Zx81kQp2"

# Ed25519 keeps a run fast (an RSA verify in dkimpy is pure Python); the canonicalisation and
# header selection under test are the same for both algorithms.
_KEY = make_key(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))),
                selector="fuzz", domain="example.jp")
_SIGNER = DkimSigner([_KEY], clock=lambda: 1_700_000_000.0)
_RECORD = public_key_record(_KEY).encode("ascii")


def mime(data: bytes) -> None:
    """The footer check gives a verdict for any bytes; the fast tree is the stdlib's tree."""
    fast = parse_well_formed(data)
    if fast is not None:
        slow = email.message_from_bytes(data, policy=email.policy.compat32)
        assert tree_shape(fast) == tree_shape(slow), "fast MIME tree differs from the stdlib's"
        assert readable_parts(fast) == readable_parts(slow)
    for spec in (SPEC, TOKUSHO):
        report = check_message(data, spec, WORDS)
        report.to_dict()  # the report must serialise for the event log


def html(data: bytes) -> None:
    """Any markup renders; every link's span lies inside the text it points into."""
    rendered = html_to_text(data.decode("utf-8", "replace"))
    for link in rendered.links:
        text = rendered.hidden if link.hidden else rendered.visible
        assert 0 <= link.start <= link.end <= len(text), (link, len(text))


def insert(data: bytes) -> None:
    """Insert mode edits a message it can read, or refuses with InsertError; never breaks it."""
    report = check_message(data, SPEC, WORDS)
    try:
        repaired = insert_footer(data, SPEC, report, TEMPLATE, optout_url=OPTOUT_URL)
    except InsertError:
        return
    if report.ok:
        assert repaired == data, "a compliant message was rewritten"
        return
    after = check_message(repaired, SPEC, WORDS)
    assert not after.malformed, f"the repair made the message malformed: {after.problems}"


def dkim_sign(data: bytes) -> None:
    """Whatever we sign, an independent verifier (dkimpy) accepts."""
    try:
        fields = _SIGNER.signature_headers(data, "example.jp")
    except DkimMessageError:
        return
    signed = b"".join(fields) + data
    ok = dkim.verify(signed, dnsfunc=lambda _name, timeout=5: _RECORD)
    assert ok, "dkimpy does not verify our signature"


def csv_import(data: bytes) -> None:
    """The importer reports on any file (CSV or JSON Lines) and never raises; a suppression
    list is read or refused with ValueError, and every address it yields is normalised."""
    formats: tuple[ImportFormat, ...] = ("csv", "jsonl")
    for fmt in formats:
        report = validate_file(io.BytesIO(data), format=fmt)
        report.summary()
    try:
        found = parse_suppression_list("fuzz.csv", data)
    except ValueError:
        return
    assert found.rows == len(found.keys) + found.duplicates + found.invalid, found.to_dict()
    assert len(set(found.keys)) == len(found.keys)
    for key in found.keys:
        assert suppression_key(normalize_address(key)) == key, key


def address(data: bytes) -> None:
    """An address is normalised or refused with InvalidAddress; normalising is idempotent."""
    raw = data.decode("utf-8", "replace")
    try:
        addr = normalize_address(raw)
    except InvalidAddress:
        return
    assert normalize_address(addr.address) == addr, addr


def config_file(data: bytes) -> None:
    """Any TOML document is a config or a ConfigError naming what is wrong, never a traceback."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # config.load reports these itself, before building anything
    try:
        config.from_dict(raw, base_dir=ROOT / "deploy", path="fuzz.toml")
    except ConfigError as exc:
        assert str(exc), "a ConfigError without a message"


def dmarc_record(data: bytes) -> None:
    """A TXT record is a DMARC policy or a DmarcRecordError."""
    try:
        parse_dmarc_record(data.decode("utf-8", "replace"))
    except DmarcRecordError:
        pass


# A fixed key, so that the seed holds a token this codec really sealed (tests/fuzz/seeds/token).
_CODEC = TokenCodec([(b"\x00\x01", bytes(range(32)))])
SEALED = ("sample", "hs1:4f2c9d")


def unsubscribe_token(data: bytes) -> None:
    """Only a token we sealed opens, to what we sealed; every other text is InvalidToken."""
    text = data.decode("utf-8", "replace")
    try:
        opened = _CODEC.decode(text)
    except InvalidToken:
        return
    assert opened == SEALED, (text, opened)


def header_edit(data: bytes) -> None:
    """Dropping a field leaves no field of that name, the body and every other line as sent."""
    edited = headers.remove_header(data, "List-Unsubscribe")
    head, body = headers.split(edited)
    assert body == headers.split(data)[1], "the body changed"
    lines = head.split(b"\r\n")
    assert not any(line.lower().startswith(b"list-unsubscribe:") for line in lines)
    assert set(lines) <= set(headers.split(data)[0].split(b"\r\n")), "a line was added"
    if data[:1] in (b" ", b"\t"):
        return  # a leading continuation line would join the prepended field; such a header
        # section is refused as malformed before anything is prepended (test_bad_input.py)
    with_field = headers.prepend(edited, [("List-Unsubscribe", "<https://gw.example.jp/u/x>")])
    again = headers.split(headers.remove_header(with_field, "List-Unsubscribe"))[0]
    assert again == head, "a prepended field was not removed whole"


_MAILTO = MailtoOptOut("unsubscribe@gw.example.jp", _CODEC, store=None)  # type: ignore[arg-type]


def mailto(data: bytes) -> None:
    """Any mail to the opt-out box yields candidate tokens (strings), never an exception,
    and is a feedback report or a delivery status notification, or neither."""
    recipient = "unsubscribe+" + data[:60].decode("ascii", "replace") + "@gw.example.jp"
    found = _MAILTO._candidates([recipient, "unsubscribe@gw.example.jp"], data)
    assert all(isinstance(token, str) for token in found)
    report = feedback_report(data)
    assert report is None or (isinstance(report.feedback_type, str)
                              and all(isinstance(t, str) for t in report.tokens))
    status = delivery_report(data)
    assert status is None or all(isinstance(f, str) for row in status.failed for f in row)


_BASELINE = {r.id: r.params for r in load_packs([str(ROOT / "rules" / "baseline.toml")]).rules}
_HEADER_PARAMS = _BASELINE["message.header_fields"]
_REPLY_PARAMS = _BASELINE["message.fake_reply"]


def data_phase(data: bytes) -> None:
    """A message that passes the wire checks goes through the DATA path's steps without an
    exception: the header fields check (an exception out of a check is ERROR, a 451 for
    ever), the footer report (FooterPolicy.report_for has no try/except of its own), insert
    mode, the report of the repaired message, and DKIM signing that dkimpy verifies."""
    raw = data.replace(b"\0", b"").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    raw = raw.replace(b"\n", b"\r\n")
    if wire_problems(raw):
        return  # refused as malformed before any of this runs
    facts = Facts(config=config.Config(), client=config.ClientConfig(username="fuzz"),
                  client_ip="", phase=Phase.DATA, smtputf8=data[:1] == b"U")
    gather_message_facts(facts, raw)
    assert header_fields(facts, _HEADER_PARAMS)[0] in (Outcome.PASS, Outcome.FAIL, Outcome.SKIP)
    assert fake_reply(facts, _REPLY_PARAMS)[0] in (Outcome.PASS, Outcome.FAIL, Outcome.SKIP)
    report = check_parts(readable_parts(parse_message(raw)), SPEC, WORDS)
    if not report.ok and not report.malformed:
        try:
            raw = insert_footer(raw, SPEC, report, TEMPLATE, optout_url=OPTOUT_URL)
        except InsertError:
            pass
        else:
            check_parts(readable_parts(parse_message(raw)), SPEC, WORDS)
    dkim_sign(raw)


class _PublishedKeys:
    """The one lookup verify_existing makes (`txt`), answered with the fuzz key; any other
    name does not exist. It stands in for the DNS cache so a run needs no server."""

    async def txt(self, name: str) -> list[str]:
        return [_RECORD.decode()] if name == "fuzz._domainkey.example.jp" else []


_LOOP = asyncio.new_event_loop()


def dkim_verify(data: bytes) -> None:
    """The DKIM-Signature fields a client's mail brings are judged (pass, fail, permerror,
    ...) or the header section refused; dkimpy's verifier never raises through. The seeds
    are messages we signed (test_targets.py checks that they pass)."""
    try:
        results = _LOOP.run_until_complete(verify_existing(_PublishedKeys(), data))  # type: ignore[arg-type]
    except DkimMessageError:
        return
    assert all(isinstance(r.status, DkimVerifyStatus) for r in results)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "mime": mime,
    "html": html,
    "insert": insert,
    "dkim": dkim_sign,
    "csv": csv_import,
    "address": address,
    "config": config_file,
    "dmarc": dmarc_record,
    "token": unsubscribe_token,
    "headers": header_edit,
    "mailto": mailto,
    "data": data_phase,
    "dkim_verify": dkim_verify,
}
