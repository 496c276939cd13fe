"""`suppression import`: an MA tool's bounce list suppressed at go-live, all or nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.test_suppression import rcpt, suppressions
from tests.support.gateway import GatewayProcess, cli

pytestmark = pytest.mark.e2e

# As Excel writes it in Japan: Shift_JIS, a header of its own words, columns we do not need.
BOUNCES = ("メールアドレス,バウンス日,理由\r\n"
           "taro@example.com,2026/10/01,user unknown\r\n"
           "ＨＡＮＡＫＯ＠ＥＸＡＭＰＬＥ．ＣＯＭ,2026/10/02,user unknown\r\n"  # full width
           "Taro@Example.com,2026/10/03,again\r\n"  # the same address
           "\r\n"
           "not-an-address,2026/10/04,?\r\n")


def run_import(gw: GatewayProcess, path: Path, *args: str) -> tuple[int, dict[str, object]]:
    done = cli("suppression", "import", str(path), "--note", "go-live: bounces of the old MA",
               "--by", "ops-suzuki", "--json", *args, config=gw.config_path)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_bounce_list_is_taken_whole_or_not_at_all(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    path = tmp_path / "bounces.csv"
    path.write_bytes(BOUNCES.encode("cp932"))
    code, result = run_import(gateway, path)
    assert code == 1 and result["added"] == 0  # one bad row: nothing written
    assert (result["rows"], result["addresses"], result["duplicates"], result["invalid"]) == (
        4, 2, 1, 1)
    assert result["encoding"] == "cp932"
    [error] = result["errors"]
    assert error.startswith("line 6: column email: ") and "not-an-address" in error
    assert suppressions(gateway, "--all") == []

    assert run_import(gateway, path, "--dry-run", "--skip-invalid")[1]["added"] == 0
    assert suppressions(gateway, "--all") == []

    code, result = run_import(gateway, path, "--skip-invalid")
    assert (code, result["added"], result["already"]) == (0, 2, 0)
    assert sorted(e["address_key"] for e in suppressions(gateway)) == [
        "hanako@example.com", "taro@example.com"]
    code, reply = rcpt(gateway, "taro@example.com")
    assert (code, reply[:26]) == (550, b"5.1.1 [address.suppressed]")
    [entry] = suppressions(gateway, "hanako@example.com")
    assert (entry["reason"], entry["created_by"], entry["detail"]) == (
        "manual", "ops-suzuki", "import bounces.csv: go-live: bounces of the old MA")

    # Again: nothing new; one audit entry per import that wrote.
    assert run_import(gateway, path, "--skip-invalid")[1] == {**result, "added": 0, "already": 2}
    with sqlite3.connect(Path(gateway.config["store"]["url"].removeprefix("sqlite:///"))) as db:
        audited = db.execute("SELECT actor, subject, reason FROM audit_log "
                             "WHERE action = 'suppression.import'").fetchall()
    assert audited == [("ops-suzuki", "bounces.csv",
                        "go-live: bounces of the old MA (2 addresses in the file)")] * 2


def test_a_plain_list_and_the_files_that_are_no_list(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    plain = tmp_path / "list.txt"
    plain.write_text("jiro@example.com\n<saburo@example.com>\n", encoding="utf-8")
    code, result = run_import(gateway, plain)
    assert (code, result["added"], result["encoding"]) == (0, 2, "utf-8")
    table = cli("suppression", "import", str(plain), "--note", "again", config=gateway.config_path)
    assert table.returncode == 0
    assert "list.txt (utf-8): 2 rows, 2 addresses" in table.stdout
    assert "0 suppressed (2 were already)" in table.stdout

    for name, data, says in (
        ("shot.png", b"\x89PNG\r\n\x1a\n\x00\x00", "binary data (NUL byte) at byte 8"),
        ("wide.csv", "email\n".encode("utf-16"), "file is UTF-16"),
        ("header.csv", b"name,date\nTaro,2026-10-01\n", "line 1: no address column"),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        done = cli("suppression", "import", str(path), "--note", "x", config=gateway.config_path)
        assert done.returncode == 2 and says in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.stderr
    missing = cli("suppression", "import", str(tmp_path / "none.csv"), "--note", "x",
                  config=gateway.config_path)
    assert missing.returncode == 2 and "No such file or directory" in missing.stderr
