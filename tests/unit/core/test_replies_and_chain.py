"""Replies are vetted in one place; the chain evaluates every rule and decides by a fixed order."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import replies
from gateway.config import ClientConfig, Config
from gateway.engine import chain
from gateway.engine.context import Facts
from gateway.engine.packs import load_packs, unguarded
from gateway.errors import PackError
from gateway.model import Action, Outcome, Phase
from gateway.replies import Reply

ROOT = Path(__file__).resolve().parents[3]


def test_finalize_validates_and_folds() -> None:
    assert replies.finalize(Reply(550, "5.7.1", "no", ("optin.missing",))) == "550 5.7.1 [optin.missing] no"
    assert replies.finalize(Reply(550, "5.7.1", "a\r\n250 injected")) == "550 5.7.1 a 250 injected"
    with pytest.raises(ValueError):
        replies.finalize(Reply(550, "4.7.1", "class mismatch"))
    with pytest.raises(ValueError):
        replies.finalize(Reply(550, "5.7", "malformed"))
    long = replies.finalize(Reply(550, "5.7.1", "x" * 2000))
    assert len(long.encode()) <= replies.MAX_TEXT


def test_japanese_half_only_for_smtputf8() -> None:
    reply = Reply(550, "5.7.1", "同意がありません / No recorded opt-in", ("optin.missing",))
    assert replies.finalize(reply) == "550 5.7.1 [optin.missing] No recorded opt-in"
    assert "同意" in replies.finalize(reply, utf8=True)


def test_ascii_halves_of_a_combined_refusal() -> None:
    reply = Reply(550, "5.7.1", "名前がありません / Sender name missing | 住所がありません / Postal address missing")
    assert replies.finalize(reply) == "550 5.7.1 Sender name missing | Postal address missing"


def test_soft_reject_turns_5xx_into_4xx() -> None:
    assert str(Reply(550, "5.7.1", "x").as_temporary()) == "450 4.7.1 x"


def test_every_named_reply_is_valid() -> None:
    for name in dir(replies.replies):
        value = getattr(replies.replies, name)
        if isinstance(value, Reply):
            replies.finalize(value)


def _facts(**extra: object) -> Facts:
    client = ClientConfig(username="c", password_hash="scrypt$x", senders=("s",))
    facts = Facts(config=Config(), client=client, client_ip="127.0.0.1", phase=Phase.DATA)
    facts.extra.update(extra)
    return facts


def test_chain_lists_every_failing_rule_and_monitor_mode_never_hides_errors() -> None:
    rules = load_packs([str(ROOT / "rules" / "baseline.toml")]).for_phase(Phase.DATA, facts_class := _facts().client_class)
    assert facts_class.value == "advertising"
    facts = _facts(malformed=["NUL byte in message"])
    verdict = chain.evaluate(rules, facts)
    assert verdict.action is Action.REJECT
    assert verdict.decided_by == ("message.malformed",)
    assert {r.rule_id for r in verdict.results} == {r.id for r in rules}  # every rule recorded
    # smuggling-shaped input is refused even in monitor mode (always_enforce in the pack)
    assert chain.evaluate(rules, facts, monitor=True).action is Action.REJECT
    from email.message import Message

    facts = _facts(malformed=[])
    facts.message = Message()
    facts.errors["header_from"] = "no From header"
    assert chain.evaluate(rules, facts).decided_by == ("auth.from_invalid",)
    monitored = chain.evaluate(rules, facts, monitor=True)
    assert monitored.action is Action.ACCEPT and monitored.monitored == ("auth.from_invalid",)


def test_a_check_that_raises_is_an_error_not_a_pass() -> None:
    rules = load_packs([str(ROOT / "rules" / "baseline.toml")]).for_phase(Phase.DATA, _facts().client_class)
    facts = _facts(malformed=None)  # makes the check's "; ".join fail
    facts.extra["malformed"] = 42
    verdict = chain.evaluate(rules, facts, monitor=True)
    assert verdict.action is Action.TEMPFAIL
    assert any(r.outcome is Outcome.ERROR for r in verdict.results)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[rule]]\nid = "a.b"\ncheck = "nope"\nphase = "data"\nreply = "550 5.7.1 x"', "unknown check"),
        ('[[rule]]\nid = "a.b"\ncheck = "identity.allowed"\nphase = "rcpt"\nreply = "550 5.7.1 x"', "runs only in"),
        ('[[rule]]\nid = "a.b"\ncheck = "identity.allowed"\nphase = "mail"\nreply = "250 ok"', "must be 4xx/5xx"),
        ('[[rule]]\nid = "a.b"\ncheck = "identity.allowed"\nphase = "mail"\nreply = "550 5.7.1 x"\ncolour = 1',
         "unknown key"),
        ('[[rule]]\nid = "a.b"\ncheck = "identity.allowed"\nphase = "mail"\nreply = "550 5.7.1 x"\nparams = {x = 1}',
         "takes no parameter"),
    ],
)
def test_pack_validation(tmp_path: Path, body: str, message: str) -> None:
    pack = tmp_path / "p.toml"
    pack.write_text(body, encoding="utf-8")
    with pytest.raises(PackError, match=message):
        load_packs([str(pack)])


def test_duplicate_rule_ids_across_packs(tmp_path: Path) -> None:
    base = str(ROOT / "rules" / "baseline.toml")
    with pytest.raises(PackError, match="already defined"):
        load_packs([base, base])


def test_a_pack_left_out_is_named_at_serve() -> None:
    def said(*names: str) -> list[str]:
        return unguarded(load_packs([str(ROOT / "rules" / f"{n}.toml") for n in names]))

    assert said("baseline", "tokuden", "alignment", "reputation") == []
    # the contract's example lists tokuden.toml alone
    alone = said("tokuden")
    assert [w.split("'")[1] for w in alone] == [
        "identity.allowed", "envelope.recipient_syntax", "message.wellformed",
        "message.single_from", "auth.dmarc_aligned", "auth.spf_pass",
        "reputation.rate",
    ]
    assert "any logged-in client may send with any From or envelope domain" in alone[0]
    assert [w.split("'")[1] for w in said("baseline", "alignment", "reputation")] == [
        "consent.recorded", "consent.not_refused", "consent.not_suppressed", "footer.item",
    ]
