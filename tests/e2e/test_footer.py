"""Display items (特定電子メール法 第4条) end to end, over the Japanese corpus in tests/data/mail."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gateway.content.footer import FooterSpec, check_message, load_footer_words
from gateway.delivery import headers
from tests.support.gateway import PASSWORD, REVEAL, ROOT, GatewayProcess, cli
from tests.support.messages import marketing, unsigned
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e
CORPUS = ROOT / "tests" / "data" / "mail"
CASES = tomllib.loads((CORPUS / "cases.toml").read_text(encoding="utf-8"))


@pytest.fixture
def corpus_config(config: dict[str, Any]) -> dict[str, Any]:
    spec = CASES["spec"]
    config["senders"][0].update(
        postal_address=spec["postal_address"], contacts=spec["contacts"],
        optout=[o for o in spec["optout"] if "/u/" not in o], info_urls=spec["info_urls"],
        law=spec["law"],
    )
    config["http"]["public_url"] = "https://gw.example.jp"
    return config


def send(gw: GatewayProcess, raw: bytes, rcpt: str = "taro@example.com") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=15) as client:
        client.ehlo("ma.test")
        client.login("ma-tool", PASSWORD)
        client.mail("news@bounce.example.jp")
        assert client.rcpt(rcpt)[0] == 250
        return client.data(raw)


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_corpus_verdicts_through_smtp(
    corpus_config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    gw = start_gateway(corpus_config)
    wrong: list[str] = []
    for case in CASES["case"]:
        if case.get("law", CASES["spec"]["law"]) != CASES["spec"]["law"]:
            continue
        code, reply = send(gw, _crlf((CORPUS / case["file"]).read_bytes()))
        if case.get("malformed"):
            expected = "[message.malformed"
        elif case["missing"]:
            expected = "[" + ",".join(case["missing"]) + "]"
        else:
            expected = ""
        if expected and not (code == 550 and expected.encode() in reply):
            wrong.append(f"{case['file']}: expected 550 {expected}, got {code} {reply[:120]!r}")
        if not expected and code != 250:
            wrong.append(f"{case['file']}: expected 250, got {code} {reply[:160]!r}")
    assert wrong == []


def test_one_refusal_lists_every_missing_item(gateway: GatewayProcess, sink: RecordingSink) -> None:
    code, reply = send(gateway, marketing(footer=False))
    assert code == 550
    assert reply.startswith(
        b"5.7.1 [footer.sender_name,footer.optout_address,footer.optout_notice,"
        b"footer.postal_address,footer.contact]"
    )
    assert sink.received == []
    [event] = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gateway.config_path).stdout.splitlines()
               if json.loads(x)["verdict"] == "rejected"]
    where = {r["rule"]: r for r in event["results"]}
    assert "part 1 (text/plain): absent" in where["footer.contact"]["detail"]


def test_footer_monitor_mode_relays_and_records(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    config["senders"][0]["footer"] = "monitor"
    gw = start_gateway(config)
    assert send(gw, marketing(footer=False))[0] == 250
    [event] = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gw.config_path).stdout.splitlines()]
    assert "footer.postal_address" in event["monitored"]


def test_insert_mode_adds_a_compliant_footer(
    corpus_config: dict[str, Any], start_gateway: Any, sink: RecordingSink
) -> None:
    corpus_config["senders"][0]["footer"] = "insert"
    gw = start_gateway(corpus_config)
    for name in ("missing_contact.eml", "missing_everything.eml", "ok_iso2022jp_text.eml",
                 "text_ok_html_missing_contact.eml"):
        original = _crlf((CORPUS / name).read_bytes())
        code, reply = send(gw, original)
        assert code == 250, (name, reply)
        delivered = sink.received[-1].data
        spec = CASES["spec"]
        footer_spec = FooterSpec(
            name=spec["name"], postal_address=spec["postal_address"], contacts=tuple(spec["contacts"]),
            optout=tuple(spec["optout"]), info_urls=tuple(spec["info_urls"]), law=spec["law"],
        )
        report = check_message(delivered, footer_spec, load_footer_words(ROOT / "rules" / "footer_words.toml"))
        assert report.ok, (name, report.missing())
        if name == "ok_iso2022jp_text.eml":
            body, signatures = unsigned(delivered)
            assert len(signatures) == 2
            for header in ("List-Unsubscribe", "List-Unsubscribe-Post"):
                body = headers.remove_header(body, header)
            assert body.rstrip(b"\r\n") == original.rstrip(b"\r\n")  # compliant: untouched


def test_a_configured_seller_must_be_named_and_insert_mode_names_it(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink, tmp_path: Path
) -> None:
    config["senders"][0]["seller_name"] = "株式会社販売元"
    gw = start_gateway(config)
    code, reply = send(gw, marketing())
    assert (code, reply) == (550, b"5.7.1 [footer.seller_name] Seller name missing")
    assert send(gw, marketing(body="販売元: 株式会社販売元\n"))[0] == 250
    draft = tmp_path / "draft.eml"
    draft.write_bytes(marketing())
    result = cli("check", str(draft), "--json", config=gw.config_path)
    assert result.returncode == 1 and json.loads(result.stdout)["failed"] == ["footer.seller_name"]
    gw.stop()

    config["senders"][0]["footer"] = "insert"
    gw = start_gateway(config)
    assert send(gw, marketing())[0] == 250
    [part] = [p for p in email.message_from_bytes(sink.received[-1].data, policy=email.policy.default).walk()
              if p.get_content_type() == "text/plain"]
    assert "販売業者: 株式会社販売元" in part.get_content()


def test_transactional_mail_skips_footer_rules(gateway: GatewayProcess, sink: RecordingSink) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=15) as client:
        client.ehlo("x.test")
        client.login("receipts", PASSWORD)
        client.mail("shop@bounce.example.jp")
        client.rcpt("someone@example.com")
        assert client.data(marketing(to="someone@example.com", footer=False))[0] == 250


def test_check_command_preflights_a_draft(tmp_path: Path, gateway: GatewayProcess) -> None:
    draft = tmp_path / "draft.eml"
    draft.write_bytes(marketing(footer=False))
    result = cli("check", str(draft), "--sender", "sample", "--json", config=gateway.config_path)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and "footer.contact" in data["failed"]
    assert data["footer"]["parts"][0]["items"]["footer.contact"]["present"] is False
    draft.write_bytes(marketing())
    ok = cli("check", str(draft), config=gateway.config_path)
    assert ok.returncode == 0 and "pass" in ok.stdout
    # a rule that only warns is said, and does not fail the draft
    draft.write_bytes(marketing(subject="未承諾広告※冬のセール"))
    legacy = cli("check", str(draft), config=gateway.config_path)
    assert legacy.returncode == 0, legacy.stdout
    assert "footer.legacy_label (warning only): Subject carries '未承諾広告※'" in legacy.stdout
    data = json.loads(cli("check", str(draft), "--json", config=gateway.config_path).stdout)
    assert (data["ok"], data["failed"], data["warned"]) == (True, [], ["footer.legacy_label"])
    # relayed too, the warning in the event
    assert send(gateway, marketing(subject="未承諾広告※冬のセール"))[0] == 250
    [event] = [json.loads(x) for x in cli("log", "--json", *REVEAL, config=gateway.config_path).stdout.splitlines()]
    [legacy_result] = [r for r in event["results"] if r["rule"] == "footer.legacy_label"]
    assert legacy_result["outcome"] == "fail" and event["verdict"] == "accepted"
