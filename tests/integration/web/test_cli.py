"""`token` and `report` commands, run in-process through gateway.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli.main import main
from tests.support import toml
from tests.support.gateway import base_config, free_port


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(toml.dumps(base_config(tmp_path, free_port())), encoding="utf-8")
    return path


def test_token_create_list_revoke(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "ops", "--name", "ops-1", "--expires", "30d",
                 "--json", "--config", str(config_file)]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["secret"].startswith("tkd_") and created["role"] == "ops"
    assert main(["token", "list", "--json", "--config", str(config_file)]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["state"] for t in listed] == ["active"]
    assert created["secret"] not in json.dumps(listed)
    assert main(["token", "revoke", created["id"], "--config", str(config_file)]) == 0
    capsys.readouterr()
    assert main(["token", "revoke", created["id"], "--config", str(config_file)]) == 1
    assert main(["token", "list", "--config", str(config_file)]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "create", "--role", "ops", "--expires", "soon",
                 "--config", str(config_file)]) == 2
    with pytest.raises(SystemExit) as err:
        main(["token", "create", "--role", "god", "--config", str(config_file)])
    assert err.value.code == 2


def test_report_formats(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--month", "2026-05", "--json", "--config", str(config_file)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["month"] == "2026-05" and report["from"].startswith("2026-05-01T00:00:00+09:00")
    assert main(["report", "--month", "2026-05", "--csv", "--config", str(config_file)]) == 0
    assert capsys.readouterr().out.startswith("\ufeffsection,item,value,detail")
    assert main(["report", "--month", "2026-05", "--config", str(config_file)]) == 0
    assert "Compliance report 2026-05" in capsys.readouterr().out
    assert main(["report", "--month", "May", "--config", str(config_file)]) == 2
