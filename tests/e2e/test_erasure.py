"""`consent erase` against a running gateway: the address goes, the refusal stays (legal.md §5.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.unsubscribe.tokens import generate_secret_file
from tests.support.gateway import REVEAL, cli, send_marketing
from tests.support.sink import RecordingSink

pytestmark = pytest.mark.e2e


def test_an_erased_address_gets_no_mail_even_from_an_old_list(
    config: dict[str, Any], start_gateway: Any, sink: RecordingSink, tmp_path: Path
) -> None:
    config["policy"]["erasure_key_file"] = str(generate_secret_file(tmp_path / "erasure.key"))
    config["policy"]["import_approval"] = False
    gw = start_gateway(config)
    assert send_marketing(gw, "taro@example.com")[0] == 250

    erased = cli("consent", "erase", "Taro@Example.com", "--reason", "request #7", "--by", "dpo",
                 "--json", config=gw.config_path)
    assert erased.returncode == 0, erased.stderr
    done = json.loads(erased.stdout)
    assert done["consent_rows_deleted"] >= 1 and done["events_rewritten"] >= 1
    assert "taro@example.com" not in erased.stdout
    assert "taro@example.com" not in cli("log", "--json", *REVEAL, config=gw.config_path).stdout.lower()
    code, reply = send_marketing(gw, "taro@example.com")
    assert code == 550 and reply.startswith(b"5.7.1 [optin.missing]")

    old_list = tmp_path / "old.csv"
    old_list.write_text("email,status,method,consented_at\n"
                        "taro@example.com,opted_in,web_form,2026-01-10T10:00:00+09:00\n",
                        encoding="utf-8")
    imported = cli("consent", "import", "--sender", "sample", str(old_list), "--by", "mk",
                   config=gw.config_path)
    assert imported.returncode == 0, imported.stderr
    code, reply = send_marketing(gw, "taro@example.com")
    assert code == 550 and b"[optin.opted_out]" in reply  # the refusal came back with it


def test_erase_without_a_key_file_names_the_key(config: dict[str, Any], start_gateway: Any,
                                                sink: RecordingSink) -> None:
    gw = start_gateway(config)
    result = cli("consent", "erase", "taro@example.com", "--reason", "x", config=gw.config_path)
    assert result.returncode == 2 and "policy.erasure_key_file: not set" in result.stderr
    assert "Traceback" not in result.stderr
