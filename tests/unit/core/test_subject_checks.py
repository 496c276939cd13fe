"""What the Subject claims: message.fake_reply (a Re:/Fwd: needs a message it answers; Gmail
forbids fake ones) and footer.legacy_label (the pre-2008 「未承諾広告※」), with their packs'
parameters."""

from __future__ import annotations

import base64
from email.header import Header
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.checks.message import fake_reply, legacy_label
from gateway.config import ClientConfig, Config
from gateway.engine.context import Facts
from gateway.engine.packs import load_packs
from gateway.model import Outcome, Phase
from gateway.smtp.message import gather_message_facts

ROOT = Path(__file__).resolve().parents[3]
PARAMS = next(r.params for r in load_packs([str(ROOT / "rules" / "baseline.toml")]).rules
              if r.id == "message.fake_reply")


def run(subject: str | None, *extra: str) -> Outcome:
    fields = ["From: news@example.jp", "To: taro@example.com", *extra]
    if subject is not None:
        fields.append(f"Subject: {subject}")
    raw = ("\r\n".join(fields) + "\r\n\r\nbody\r\n").encode()
    facts = Facts(config=Config(), client=ClientConfig(username="t"), client_ip="",
                  phase=Phase.DATA)
    gather_message_facts(facts, raw)
    return fake_reply(facts, PARAMS)[0]


@pytest.mark.parametrize("subject", [
    "Re: 春のセールのご案内", "RE: x", "re : x", "Fwd: x", "FW: x", "Re[2]: x", "RE(3): x",
    "転送: x", "返信：ご注文", Header("Ｒｅ：お知らせ", "iso-2022-jp").encode(),
    Header("Fwd: セール", "utf-8").encode(), "  Re: leading space",
])
def test_a_reply_or_forward_prefix_without_a_message_it_answers_fails(subject: str) -> None:
    assert run(subject) is Outcome.FAIL


@pytest.mark.parametrize("subject", [
    "春のセールのご案内", "Regarding your order", "Report: May", "Fwdx: x", "【Re:】 x",
    "Resale: x", None, "=?x-unknown?B?abc?=",
])
def test_other_subjects_pass(subject: str | None) -> None:
    assert run(subject) is Outcome.PASS


@pytest.mark.parametrize("header", ["In-Reply-To: <a@example.com>", "References: <a@example.com>"])
def test_a_real_reply_passes(header: str) -> None:
    assert run("Re: ご質問の件", header) is Outcome.PASS


CHARSETS = st.sampled_from(["", "utf-8", "iso-2022-jp", "x-unknown"]) | st.from_regex(
    r"[a-z0-9\-\x80-\xff]{1,12}", fullmatch=True)  # names Python's Charset() refuses too


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), CHARSETS)
def test_any_subject_gets_a_verdict(text: str, charset: str) -> None:
    # (NUL, CR and LF make the message malformed: another rule's refusal, this one skips)
    subject = " ".join("".join(c for c in text if c not in "\0\r\n").split())
    if charset:
        subject = f"=?{charset}?B?{base64.b64encode(text.encode('utf-8', 'replace')).decode()}?="
    assert run(subject) in (Outcome.PASS, Outcome.FAIL)


LABELS = next(r.params for r in load_packs([str(ROOT / "rules" / "tokuden.toml")]).rules
              if r.id == "footer.legacy_label")


@pytest.mark.parametrize(("subject", "outcome"), [
    ("未承諾広告※春のセール", Outcome.FAIL),
    (Header("未承諾広告※春のセール", "iso-2022-jp").encode(), Outcome.FAIL),
    ("【未承諾広告】春のセール", Outcome.FAIL),
    ("春のセール", Outcome.PASS),
    (None, Outcome.PASS),
])
def test_the_pre_2008_subject_label_is_noticed(subject: str | None, outcome: Outcome) -> None:
    fields = ["From: news@example.jp"] + ([f"Subject: {subject}"] if subject else [])
    facts = Facts(config=Config(), client=ClientConfig(username="t"), client_ip="",
                  phase=Phase.DATA, smtputf8=True)
    gather_message_facts(facts, ("\r\n".join(fields) + "\r\n\r\nbody\r\n").encode())
    assert legacy_label(facts, LABELS)[0] is outcome
