"""`dns check`, `dkim keygen` and `secret` against a real knotd: the go-live checklist."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.support import authenv, toml
from tests.support.gateway import base_config, cli
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


def sample_checked(
    tmp_path: Path, sink: RecordingSink, **sender: Any
) -> tuple[Path, int, list[dict[str, Any]]]:
    """`dns check --json` of the sample sender with `sender` settings changed: (config path,
    exit status, its records)."""
    cfg = base_config(tmp_path, sink.port)
    cfg["senders"][0].update(sender)
    path = tmp_path / "gw.toml"
    path.write_text(toml.dumps(cfg), encoding="utf-8")
    result = cli("dns", "check", "--sender", "sample", "--json", config=path)
    return path, result.returncode, json.loads(result.stdout)["senders"][0]["records"]


def test_dns_check_passes_when_everything_is_published(tmp_path: Path, sink: RecordingSink) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(toml.dumps(base_config(tmp_path, sink.port)), encoding="utf-8")
    result = cli("dns", "check", "--sender", "sample", "--json", config=path)
    assert result.returncode == 0, result.stdout + result.stderr
    records = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)["senders"][0]["records"]}
    assert records[("spf", "bounce.example.jp")]["ok"] is True
    assert records[("dkim", "mk2026._domainkey.example.jp")]["ok"] is True
    assert records[("dkim", "ed2026._domainkey.example.jp")]["ok"] is True
    assert records[("dmarc", "_dmarc.example.jp")]["ok"] is True
    # the From domain's SPF does not list the egress IP: advice, not a failure
    assert records[("spf", "example.jp")]["required"] is False
    # somewhere for bounces to go (required), and an MX on the From domain (advice)
    bounce, author = records[("mx", "bounce.example.jp")], records[("mx", "example.jp")]
    assert (bounce["ok"], bounce["required"], bounce["detail"]) == (True, True, "MX mx1.example.jp")
    assert (author["ok"], author["required"]) == (True, False)
    ptr = records[("ptr", "192.0.2.10")]  # forward-confirmed reverse DNS of the egress IP
    assert (ptr["ok"], ptr["detail"]) == (True, "PTR out1.example.jp, whose A is 192.0.2.10")
    rua = records[("dmarc_rua", "_dmarc.example.jp")]  # aggregate reports: advice
    assert (rua["ok"], rua["required"]) == (True, False)
    assert rua["detail"] == "rua=mailto:dmarc-reports@example.jp"


def test_dns_check_advises_dmarc_aggregate_reports(tmp_path: Path, sink: RecordingSink) -> None:
    _path, code, records = sample_checked(tmp_path, sink, domains=["example.jp", "monitor.example.jp"])
    rua = {r["name"]: r for r in records if r["kind"] == "dmarc_rua"}
    assert rua["_dmarc.example.jp"]["ok"] is True
    missing = rua["_dmarc.monitor.example.jp"]
    assert (missing["ok"], missing["required"]) == (False, False)
    assert "add rua=mailto:dmarc-reports@monitor.example.jp" in missing["detail"]
    assert code == 0, records  # advice does not fail the check


@pytest.mark.parametrize(("ip", "detail"), [
    ("192.0.2.11", "no PTR at 11.2.0.192.in-addr.arpa: ask whoever holds the address (the "
                   "hosting provider) for one naming a host of yours"),
    ("192.0.2.12", "PTR out2.example.jp, but no A of it is 192.0.2.12 (forward-confirmed "
                   "reverse DNS fails)"),
])
def test_dns_check_wants_forward_confirmed_reverse_dns_for_each_egress_ip(
    tmp_path: Path, sink: RecordingSink, ip: str, detail: str
) -> None:
    # inside bounce.example.jp's SPF range: SPF passes
    _, code, records = sample_checked(tmp_path, sink, egress_ips=[ip])
    assert code == 1
    assert [(r["name"], r["ok"], r["detail"]) for r in records if r["kind"] == "ptr"] == [
        (ip, False, detail)]
    assert [r["kind"] for r in records if not r["ok"] and r["required"]] == ["ptr"]


@pytest.mark.parametrize(("domain", "detail"), [
    ("nullmx.example.jp", "null MX (RFC 7505): the domain takes no mail, so bounces and "
                          "replies to it are lost"),
    ("nospf.example.jp", "no MX; A 192.0.2.1 takes its place (RFC 5321 §5.1)"),
    ("gone1.example.jp", "neither MX nor A/AAAA: publish an MX naming the host that receives "
                         "this domain's mail"),
])
def test_dns_check_wants_a_mail_host_for_the_envelope_domain(
    tmp_path: Path, sink: RecordingSink, domain: str, detail: str
) -> None:
    path, _, records = sample_checked(tmp_path, sink, envelope_domains=[domain])
    [found] = [r for r in records if (r["kind"], r["name"]) == ("mx", domain)]
    assert (found["detail"], found["required"]) == (detail, True)
    assert found["ok"] is detail.startswith("no MX;")
    table = cli("dns", "check", "--sender", "sample", config=path).stdout
    [row] = [line.split() for line in table.splitlines() if line.startswith("mx ")
             and domain in line]
    assert row[2] == ("OK" if found["ok"] else "MISSING"), table


def test_new_selector_is_reported_until_published(tmp_path: Path, sink: RecordingSink) -> None:
    env = authenv.start(tmp_path / "dns")
    try:
        cfg = base_config(tmp_path, sink.port, env)
        path = tmp_path / "gw.toml"
        path.write_text(toml.dumps(cfg), encoding="utf-8")
        made = cli("dkim", "keygen", "--sender", "sample", "--selector", "mk2027", config=path)
        assert made.returncode == 0, made.stderr
        key = tmp_path / "keys" / "example.jp.mk2027.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        record = made.stdout.split('IN TXT "', 1)[1].split('"', 1)[0]
        assert record.startswith("v=DKIM1; k=rsa; p=")
        again = cli("dkim", "keygen", "--sender", "sample", "--selector", "mk2027", config=path)
        assert again.returncode == 1 and "exists" in again.stderr  # never overwrites a key
        cfg["senders"][0]["dkim"] = [{"selector": "mk2027", "key": str(key)}]
        path.write_text(toml.dumps(cfg), encoding="utf-8")
        missing = cli("dns", "check", "--sender", "sample", config=path)
        assert missing.returncode == 1
        assert f'mk2027._domainkey.example.jp. IN TXT "{record}"' in missing.stdout
        from tests.dns.server import txt_rdata

        env.dns.write_zone("_domainkey.example.jp", f"mk2027 IN TXT {txt_rdata(record)}\n")
        assert cli("dns", "check", "--sender", "sample", config=path).returncode == 0
    finally:
        env.dns.stop()


def test_dns_check_says_what_to_publish_for_a_domain_without_records(tmp_path: Path, sink: RecordingSink) -> None:
    cfg = base_config(tmp_path, sink.port)
    cfg["senders"][1].update(domains=["nodmarc.test"], egress_ips=["192.0.2.10"])
    path = tmp_path / "gw.toml"
    path.write_text(toml.dumps(cfg), encoding="utf-8")
    result = cli("dns", "check", "--sender", "other", config=path)
    assert result.returncode == 1
    assert '_dmarc.nodmarc.test. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@nodmarc.test"' in result.stdout
    assert 'nodmarc.test. IN TXT "v=spf1 ip4:192.0.2.10 -all"' in result.stdout


def test_secret_generate_and_rotate(tmp_path: Path) -> None:
    path = tmp_path / "unsub.key"
    assert cli("secret", "generate", str(path)).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    def keys() -> list[str]:
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]

    first = keys()
    assert cli("secret", "generate", str(path)).returncode == 1  # never overwritten
    assert cli("secret", "rotate", str(path)).returncode == 0
    rotated = keys()
    assert len(rotated) == 2 and rotated[1] == first[0]


def test_secret_takes_its_path_from_the_config(tmp_path: Path, sink: RecordingSink) -> None:
    cfg = base_config(tmp_path, sink.port)
    cfg["policy"]["unsubscribe_secret_file"] = "secrets/new.key"  # next to the config, not there yet
    (tmp_path / "secrets").mkdir()
    config = tmp_path / "gw.toml"
    config.write_text(toml.dumps(cfg), encoding="utf-8")
    made = cli("secret", "generate", config=config)
    assert made.returncode == 0, made.stderr
    key = tmp_path / "secrets" / "new.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cli("secret", "rotate", config=config).returncode == 0
    assert len([x for x in key.read_text().splitlines() if not x.startswith("#")]) == 2
    del cfg["policy"]["unsubscribe_secret_file"]
    config.write_text(toml.dumps(cfg), encoding="utf-8")
    unset = cli("secret", "rotate", config=config)
    assert unset.returncode == 2 and "policy.unsubscribe_secret_file: not set" in unset.stderr
