"""deploy/: every example config loads, and the unit, image and compose files keep their promises."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gateway import config
from gateway.cli.main import build_parser
from gateway.engine.packs import load_packs, unguarded
from scripts.sandbox import prepare as prepare_sandbox

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIGS = sorted(DEPLOY.rglob("*.toml"))
SECRET_DIRS = ("keys/", "certs/", "secrets/")  # where example configs keep what is not shipped


def secret_paths(raw: dict[str, Any]) -> dict[str, str]:
    """Every file a config names that holds a secret (or a key/cert): path -> algorithm hint."""
    found: dict[str, str] = {}
    server = raw.get("server", {})
    for key in ("tls_cert", "tls_key"):
        if key in server:
            found[server[key]] = key
    policy = raw.get("policy", {})
    if "unsubscribe_secret_file" in policy:
        found[policy["unsubscribe_secret_file"]] = "secret"
    for sender in raw.get("senders", []):
        for dkim in sender.get("dkim", []):
            found[dkim["key"]] = dkim.get("algorithm", "rsa-sha256")
    return found


def placeholder(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "ed25519-sha256":
        key: Any = ed25519.Ed25519PrivateKey.generate()
    elif kind in ("rsa-sha256", "tls_key"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        path.write_text("placeholder " + kind + "\n")
        return
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def test_every_example_config_is_found() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in CONFIGS}
    assert {"example.toml", "single-instance.toml", "multi-instance.toml", "docker/gateway.toml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_example_config_loads(path: Path, tmp_path: Path) -> None:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    secrets = secret_paths(raw)
    if path.name == "example.toml":
        prepare_sandbox()  # what `make run` does first: the key and secret files in ./var
        loaded = config.load(path)
    elif not secrets:
        loaded = config.load(path)  # runs as shipped
    else:
        # Secrets are not shipped: they must be named clearly (relative, under keys/, certs/ or
        # secrets/), and with placeholders in their place the config must load as it stands.
        for name in secrets:
            assert not os.path.isabs(name) and name.startswith(SECRET_DIRS), name
        home = tmp_path / "etc-tokuden"
        home.mkdir()
        shutil.copy(path, home / "gateway.toml")
        for pack in raw.get("policy", {}).get("rules", []):
            assert pack.startswith("rules/"), f"{pack}: rule packs live in rules/ next to the config"
        (home / "rules").symlink_to(ROOT / "rules")
        for name, kind in secrets.items():
            placeholder(home / name, kind)
        loaded = config.load(home / "gateway.toml")
    assert loaded.policy.rules, "no rule packs"
    assert unguarded(load_packs(loaded.policy.rules)) == [], "a shipped config leaves a pack out"
    assert loaded.clients and loaded.senders
    if path.name == "multi-instance.toml" or path.parent.name == "docker":
        assert loaded.store.url.startswith("postgresql://")
        assert ":" not in loaded.store.url.split("@")[0].removeprefix("postgresql://"), (
            "the database password belongs in PGPASSFILE, not in the config"
        )
    if path.name == "single-instance.toml":
        assert loaded.store.url == "sqlite:////var/lib/tokuden/gateway.sqlite3"
    if loaded.server.listen.startswith("0.0.0.0"):
        assert loaded.server.auth_require_tls and loaded.server.tls_cert, "AUTH in clear text"


def unit(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


HARDENED = {
    "User": ["tokuden"],
    "ProtectSystem": ["strict"],
    "NoNewPrivileges": ["yes"],
    "PrivateTmp": ["yes"],
    "ProtectHome": ["yes"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
    "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
    "ReadWritePaths": ["/var/lib/tokuden"],
    "KillSignal": ["SIGTERM"],
}


@pytest.mark.parametrize("name", ["tokuden.service", "tokuden@.service"])
def test_systemd_unit_is_hardened(name: str) -> None:
    settings = unit(DEPLOY / "systemd" / name)
    for key, value in HARDENED.items():
        assert settings.get(key) == value, key
    sqlite_path = tomllib.loads((DEPLOY / "single-instance.toml").read_text())["store"]["url"]
    assert sqlite_path.removeprefix("sqlite:///").startswith(settings["ReadWritePaths"][0] + "/")
    stop = int(settings["TimeoutStopSec"][0].removesuffix("s"))
    assert stop > 30, "TimeoutStopSec must exceed server.shutdown_grace (30s)"
    assert any("migrate" in v for v in settings["ExecStartPre"])


def test_prune_timer_runs_a_hardened_dry_runnable_prune() -> None:
    service = unit(DEPLOY / "systemd" / "tokuden-prune.service")
    for key, value in HARDENED.items():
        assert service.get(key) == value, key
    assert service["Type"] == ["oneshot"]
    command = shlex.split(service["ExecStart"][0])
    assert command[1:4] == ["log", "prune", "--before"]
    # the command line the unit runs is one the CLI accepts (argparse, not a store)
    parser = build_parser(command[1:])
    args = parser.parse_args([*command[1:], "--dry-run"])
    assert args.func.__name__ == "run_prune" and args.reason and args.by == "systemd"
    timer = unit(DEPLOY / "systemd" / "tokuden-prune.timer")
    assert timer["Unit"] == ["tokuden-prune.service"] and timer["OnCalendar"]
    assert timer["WantedBy"] == ["timers.target"]


def test_dockerfile_is_slim_and_unprivileged() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0"))
    commands = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "[dev]" not in commands and ".[postgres]" in commands
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text()
    assert "!gateway/**" in ignore and "!rules/**" in ignore


def test_compose_runs_postgres_two_gateways_and_postfix() -> None:
    text = (DEPLOY / "docker" / "compose.yaml").read_text()
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed: structure not checked")
    doc = yaml.safe_load(text)
    services = doc["services"]
    assert {"postgres", "gateway-a", "gateway-b", "upstream", "migrate"} <= set(services)
    ports = [p for name in ("gateway-a", "gateway-b") for p in services[name]["ports"]]
    assert len(ports) == len(set(p.rsplit(":", 1)[0] for p in ports))  # distinct host ports
    for name in ("gateway-a", "gateway-b"):
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]


def test_compose_names_what_it_needs() -> None:
    text = (DEPLOY / "docker" / "compose.yaml").read_text()
    for service in ("postgres:", "gateway-a:", "gateway-b:", "upstream:", "migrate:"):
        assert re.search(rf"^  {service}", text, re.M), service
    assert "PGPASSFILE" in text and "postfix.Dockerfile" in text
    gateway = tomllib.loads((DEPLOY / "docker" / "gateway.toml").read_text())
    master = (DEPLOY / "postfix" / "upstream" / "master.cf.snippet").read_text()
    assert re.search(rf"^{gateway['upstream']['port']}\s+inet", master, re.M)
    assert gateway["upstream"]["host"] == "upstream"


def test_postfix_snippets_keep_the_signature_intact() -> None:
    upstream = (DEPLOY / "postfix" / "upstream" / "main.cf.snippet").read_text()
    assert re.search(r"^disable_mime_output_conversion = yes", upstream, re.M)
    ma_side = (DEPLOY / "postfix" / "ma-side" / "main.cf.snippet").read_text()
    for line in ("smtp_sasl_auth_enable = yes", "smtp_destination_recipient_limit = 1",
                 "relayhost = [gw.example.jp]:2525"):
        assert re.search(rf"^{re.escape(line)}$", ma_side, re.M), line
    multi = tomllib.loads((DEPLOY / "multi-instance.toml").read_text())
    master = (DEPLOY / "postfix" / "upstream" / "master.cf.snippet").read_text()
    assert re.search(rf"^{multi['upstream']['port']}\s+inet", master, re.M)
