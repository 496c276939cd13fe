"""message.header_fields: RFC 5322 header hygiene over the header section the DATA phase
parses, with the at_most_once list the baseline pack gives it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.checks.message import header_fields
from gateway.config import ClientConfig, Config
from gateway.engine.context import Facts
from gateway.engine.packs import load_packs
from gateway.model import Outcome, Phase
from gateway.smtp.message import gather_message_facts

ROOT = Path(__file__).resolve().parents[3]
PARAMS = next(r.params for r in load_packs([str(ROOT / "rules" / "baseline.toml")]).rules
              if r.id == "message.header_fields")
GOOD = {
    "From": "=?UTF-8?B?5qCq5byP5Lya56S+?= <news@example.jp>",  # encoded display name: fine
    "To": "taro@example.com",
    "Subject": "=?UTF-8?B?44K744O844Or?=",
    "Date": "Tue, 01 Apr 2025 10:00:00 +0900",
    "Message-ID": "<20250401.abc@example.jp>",
}


def run(fields: list[tuple[str, str]], *, smtputf8: bool = False,
        raw: bytes | None = None) -> tuple[Outcome, str]:
    if raw is None:
        raw = "".join(f"{name}: {value}\r\n" for name, value in fields).encode()
        raw += b"\r\nbody \xe6\x9c\xac\xe6\x96\x87\r\n"  # 8-bit in the body is none of its business
    facts = Facts(config=Config(), client=ClientConfig(username="t"), client_ip="",
                  phase=Phase.DATA, smtputf8=smtputf8)
    gather_message_facts(facts, raw)
    outcome, detail = header_fields(facts, PARAMS)[:2]
    return outcome, detail


def test_a_well_formed_header_section_passes() -> None:
    assert run(list(GOOD.items())) == (Outcome.PASS, "")


def test_missing_message_id_and_date_pass_and_say_they_are_added() -> None:
    fields = [(k, v) for k, v in GOOD.items() if k not in ("Message-ID", "Date")]
    assert run(fields) == (Outcome.PASS, "missing, added by the gateway: Message-ID, Date")


@pytest.mark.parametrize(("name", "spelt"), [
    ("Subject", "Subject"), ("To", "to"), ("Date", "DATE"), ("Message-ID", "Message-Id"),
    ("Reply-To", "Reply-To"), ("Cc", "CC"),
])
def test_a_repeated_single_instance_field_fails_naming_it(name: str, spelt: str) -> None:
    """Field names are case-insensitive: a second one in other letters still counts."""
    value = GOOD.get(name, "hanako@example.com")
    first = [] if name in GOOD else [(name, value)]
    outcome, detail = run([*GOOD.items(), *first, (spelt, value)])
    assert (outcome, detail) == (
        Outcome.FAIL, f"{name} appears 2 times (at most once, RFC 5322 §3.6)")


@pytest.mark.parametrize("value", ["", "20250401.abc@example.jp", "<a b@example.jp>",
                                   "<a@example.jp> <b@example.jp>", "<no-at-sign>"])
def test_a_message_id_that_is_not_one_msg_id_fails(value: str) -> None:
    outcome, detail = run([*((k, v) for k, v in GOOD.items() if k != "Message-ID"),
                           ("Message-ID", value)])
    assert (outcome, detail) == (
        Outcome.FAIL, f"Message-ID {value!r} is not one <id@domain>")


@pytest.mark.parametrize("value", ["", "yesterday", "Tue, 01 Apr 2025"])
def test_a_date_that_does_not_parse_fails(value: str) -> None:
    outcome, detail = run([*((k, v) for k, v in GOOD.items() if k != "Date"), ("Date", value)])
    assert (outcome, detail) == (Outcome.FAIL, f"Date {value!r} is not an RFC 5322 date")


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("Reply-To", "=?UTF-8?Q?info?=@example.jp", "Reply-To has an encoded-word inside an address"),
    ("Cc", "a@example.jp, =?UTF-8?Q?b?=@example.jp", "Cc has an encoded-word inside an address"),
    ("References", "<a@example.jp> =?UTF-8?Q?x?=", "References has an encoded-word (not allowed "
                                                    "in a message id)"),
])
def test_an_encoded_word_where_an_address_or_id_stands_fails(
    name: str, value: str, problem: str
) -> None:
    assert run([*GOOD.items(), (name, value)]) == (Outcome.FAIL, problem)


def test_every_problem_is_named_at_once() -> None:
    outcome, detail = run([*GOOD.items(), ("Subject", "again"), ("Date", "later")])
    assert outcome is Outcome.FAIL
    assert detail.split("; ") == [
        "Date appears 2 times (at most once, RFC 5322 §3.6)",
        "Subject appears 2 times (at most once, RFC 5322 §3.6)",
    ]


def test_raw_8bit_header_text_needs_smtputf8_and_then_utf8() -> None:
    fields = [*GOOD.items(), ("Subject", "冬のセール")]
    fields = [f for f in fields if f != ("Subject", GOOD["Subject"])]
    assert run(fields) == (Outcome.FAIL, "8-bit bytes in Subject without SMTPUTF8: non-ASCII "
                                         "text needs encoded-words (RFC 2047)")
    assert run(fields, smtputf8=True) == (Outcome.PASS, "")  # RFC 6532
    raw = "".join(f"{n}: {v}\r\n" for n, v in GOOD.items()).encode()
    raw += "X-Campaign: 冬\r\n".encode("shift_jis") + b" \xff folded\r\n\r\nbody\r\n"
    assert run([], smtputf8=True, raw=raw) == (Outcome.FAIL,
                                               "X-Campaign not valid UTF-8 (RFC 6532)")


@pytest.mark.parametrize("date", [
    "Tue, 01 Apr 99999999999999999999 10:00:00 +0900",  # OverflowError inside the stdlib
    "Tue, 01 Apr 2025 10:00:00 +99999999999999999999",
])
def test_a_date_the_stdlib_overflows_on_is_refused_not_an_error(date: str) -> None:
    """An exception out of a check is ERROR: 451, and the MA tool would retry for ever."""
    outcome, detail = run([*((k, v) for k, v in GOOD.items() if k != "Date"), ("Date", date)])
    assert (outcome, detail) == (Outcome.FAIL, f"Date {date!r} is not an RFC 5322 date")


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                max_size=80)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(
    ["From", "To", "Cc", "Reply-To", "Date", "Message-ID", "References", "Subject", "X-Any"]),
    _TEXT), max_size=8), st.booleans())
def test_any_header_values_get_a_verdict_never_an_exception(
    fields: list[tuple[str, str]], smtputf8: bool
) -> None:
    outcome, _ = run([*GOOD.items(), *fields], smtputf8=smtputf8)
    # SKIP: the header section did not parse, which message.malformed refuses
    assert outcome in (Outcome.PASS, Outcome.FAIL, Outcome.SKIP)
