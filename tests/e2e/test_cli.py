"""The CLI as a real process: config errors exit 2 naming the key, never a traceback."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, from_dict, warnings
from scripts.sandbox import prepare as prepare_sandbox
from tests.support import toml
from tests.support.gateway import GatewayProcess, base_config, cli

pytestmark = pytest.mark.e2e


def write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(toml.dumps(cfg), encoding="utf-8")
    return path


def mutate(tmp_path: Path, change: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(base_config(tmp_path, 2526))
    change(cfg)
    return cfg


BAD_CONFIGS = {
    "unknown key": (lambda c: c["server"].update(listne="x"), "server.listne: unknown key"),
    "wrong type": (lambda c: c["upstream"].update(port="25"), "upstream.port: expected an integer"),
    "bad enum": (lambda c: c["policy"].update(mode="strict"), "policy.mode: must be one of"),
    "unknown sender": (
        lambda c: c["clients"][0].update(senders=["nope"]), "clients[0].senders[0]: names unknown sender 'nope'"
    ),
    "unreadable key file": (
        lambda c: c["senders"][0].update(dkim=[{"selector": "s1", "key": "/nonexistent/k.pem"}]),
        "senders[0].dkim[0].key: cannot read /nonexistent/k.pem",
    ),
    "bad duration": (lambda c: c["server"].update(idle_timeout="soon"), "server.idle_timeout: expected a duration"),
    "missing required": (lambda c: c["senders"][1].pop("domains"), "senders[1].domains: required key is missing"),
    "bad store url": (lambda c: c["store"].update(url="mysql://x"), "store.url: must start with"),
    "missing upstream CA file": (
        lambda c: c["upstream"].update(tls="required", ca_file="/nonexistent/ca.pem"),
        "upstream.ca_file: cannot read /nonexistent/ca.pem",
    ),
    "upstream CA file that is no PEM": (
        lambda c: c["upstream"].update(tls="required", ca_file=str(Path(__file__))),
        "upstream.ca_file: not a PEM bundle of CA certificates",
    ),
    "negative upstream cap": (
        lambda c: c["upstream"].update(max_connections=-1),
        "upstream.max_connections: must not be negative (0 means no limit)",
    ),
    "negative body cache": (
        lambda c: c["server"].update(body_cache=-1),
        "server.body_cache: must not be negative (0 turns the cache off)",
    ),
    "AUTH throttle below 1": (
        lambda c: c["server"].update(auth_failure_limit=0),
        "server.auth_failure_limit: must be at least 1 (failures before the address is throttled)",
    ),
    "negative API throttle": (
        lambda c: c["http"].update(auth_failure_limit=-5),
        "http.auth_failure_limit: must be at least 1 (failures before the address is throttled)",
    ),
    "plain password": (
        lambda c: c["clients"][0].update(password_hash="hunter2"), "clients[0].password_hash: must be a hash"
    ),
    "nameserver by name": (
        lambda c: c["dns"].update(nameservers=["ns.example.jp:53"]),
        "dns.nameservers[0]: 'ns.example.jp' is not an IP address",
    ),
    "zero DNS timeout": (lambda c: c["dns"].update(timeout=0), "dns.timeout: must be more than 0"),
    "zero upstream timeout": (
        lambda c: c["upstream"].update(connect_timeout="0s"), "upstream.connect_timeout: must be more than 0"
    ),
    "upstream port out of range": (
        lambda c: c["upstream"].update(port=70000), "upstream.port: must be a TCP port"
    ),
    "upper-case envelope domain": (
        lambda c: c["senders"][0].update(envelope_domains=["Bounce.example.jp"]),
        "senders[0].envelope_domains[0]: 'Bounce.example.jp' must be",
    ),
    "seller name that an old insert template would leave out": (
        lambda c: (c["policy"].update(footer_template=str(
            Path(__file__).parents[1] / "data" / "rules" / "footer_template_without_seller.toml")),
            c["senders"][0].update(seller_name="株式会社販売元", footer="insert")),
        "senders[0].seller_name: ",
    ),
    "erasure key file that holds no key": (
        lambda c: c["policy"].update(erasure_key_file=str(Path(__file__))),
        "policy.erasure_key_file: not a key file made by `tokuden secret generate`",
    ),
    "client name with a colon while Feedback-ID is on": (
        lambda c: (c["policy"].update(feedback_id=True),
                   c["clients"][1].update(username="ma:tool")),
        "clients[1].username: 'ma:tool' cannot be a Feedback-ID field",
    ),
    "DKIM key file that holds no key, on the second sender": (
        lambda c: c["senders"][1].update(dkim=[{"selector": "s1", "key": str(Path(__file__))}]),
        "senders[1].dkim[0].key:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, case: str) -> None:
    change, expected = BAD_CONFIGS[case]
    path = write(tmp_path, mutate(tmp_path, change))
    result = cli("serve", config=path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("key", ["server.listen", "http.listen"])
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_exits_2_when_its_address_is_taken(tmp_path: Path, key: str, workers: int) -> None:
    # Another process holds the port: serve must say which key and exit, not hang.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = base_config(tmp_path, 2526)
        section, name = key.split(".")
        cfg[section][name] = f"127.0.0.1:{port}"
        cfg["server"]["workers"] = workers
        if key == "server.listen":
            cfg["http"]["listen"] = "127.0.0.1:0"
        else:
            cfg["server"]["listen"] = "127.0.0.1:0"
        result = cli("serve", config=write(tmp_path, cfg), timeout=20)
    assert result.returncode == 2, result.stderr
    assert f"{key}: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\nlisten = 1", encoding="utf-8")
    result = cli("serve", config=path)
    assert result.returncode == 2 and "invalid TOML" in result.stderr
    result = cli("serve", config=tmp_path / "nope.toml")
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_bad_rule_pack_exits_2(tmp_path: Path) -> None:
    pack = tmp_path / "pack.toml"
    pack.write_text('[[rule]]\nid = "Bad Id"\ncheck = "identity.allowed"\nphase = "mail"\nreply = "550 5.7.1 x"\n')
    cfg = base_config(tmp_path, 2526)
    cfg["policy"]["rules"] = [str(pack)]
    result = cli("serve", config=write(tmp_path, cfg))
    assert result.returncode == 2
    assert "id must look like family.name" in result.stderr


def test_example_config_loads_and_migrate_creates_the_store(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, 2526)
    path = write(tmp_path, cfg)
    first = cli("migrate", config=path)
    assert first.returncode == 0, first.stderr
    assert "applied: 0001_events" in first.stdout
    again = cli("migrate", config=path)
    assert again.stdout.strip() == "store is up to date"
    assert (tmp_path / "gateway.sqlite3").exists()
    prepare_sandbox()  # `make run` makes the example's key and secret files in ./var first
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "example.toml"
    assert cli("log", "--limit", "1", config=shipped).returncode == 0


def test_user_add_prints_a_working_client_entry(tmp_path: Path) -> None:
    result = cli("user", "add", "crm", "--sender", "sample", input="a-long-enough-password\n")
    assert result.returncode == 0, result.stderr
    assert 'username = "crm"' in result.stdout
    assert 'password_hash = "scrypt$' in result.stdout
    from gateway.smtp.credentials import verify_password

    line = next(x for x in result.stdout.splitlines() if x.startswith("password_hash"))
    assert verify_password("a-long-enough-password", line.split('"')[1])
    short = cli("user", "add", "crm", input="short\n")
    assert short.returncode == 2 and "at least 12" in short.stderr
    nameless = cli("user", "add", "crm", input="a-long-enough-password\n")
    assert nameless.returncode == 2
    assert "--sender: name the sender identities (no config at " in nameless.stderr


def test_user_add_takes_its_senders_from_the_config(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, 2526)
    path = write(tmp_path, cfg)
    password = "a-long-enough-password\n"
    several = cli("user", "add", "crm", config=path, input=password)
    assert several.returncode == 2
    assert "name the sender identities with --sender (configured: sample, other)" in several.stderr
    unknown = cli("user", "add", "crm", "--sender", "nope", config=path, input=password)
    assert unknown.returncode == 2 and "--sender: no sender identity 'nope'" in unknown.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n", encoding="utf-8")
    named = cli("user", "add", "crm", "--sender", "sample", config=broken, input=password)
    assert named.returncode == 2 and "invalid TOML" in named.stderr  # not skipped
    made = cli("user", "add", "crm", "--sender", "other", "--class", "transactional",
               config=path, input=password)
    assert made.returncode == 0, made.stderr
    entry = tomllib.loads(made.stdout)["clients"][0]
    assert (entry["senders"], entry["class"]) == (["other"], "transactional")
    cfg["clients"].append(entry)
    assert from_dict(cfg, base_dir=tmp_path).client("crm") is not None  # pastes as it is
    cfg["senders"] = cfg["senders"][:1]
    cfg["clients"] = [c for c in cfg["clients"] if c["senders"] == ["sample"]]
    alone = cli("user", "add", "crm", config=write(tmp_path, cfg), input=password)
    assert alone.returncode == 0, alone.stderr
    assert tomllib.loads(alone.stdout)["clients"][0]["senders"] == ["sample"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = cli("log", "--verdict", "maybe")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr and "copy-store" in result.stderr
    for argv, said in (
        (["log", "--since", "yesterday"], "argument --since: 'yesterday' is neither like 1h"),
        (["log", "--limit", "-5"], "argument --limit: -5 is less than 1"),  # SQL: no limit
        (["log", "--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
        (["copy-store", "sqlite:///a", "sqlite:///b", "--batch-size", "0"],
         "argument --batch-size: 0 is less than 1"),
        (["secret", "rotate", str(tmp_path / "k"), "--keep", "-1"],
         "argument --keep: -1 is less than 0"),
    ):
        result = cli(*argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert said in result.stderr and "Traceback" not in result.stderr


def test_help_lists_every_command() -> None:
    from gateway.cli.main import COMMANDS

    result = cli("--help")
    assert result.returncode == 0
    commands = result.stdout.split("COMMAND\n", 1)[1].split("\n\n", 1)[0]
    # each command starts a line indented by 4; wrapped help lines are indented further
    listed = [line.split()[0] for line in commands.splitlines() if line[4:5].strip()]
    assert listed == list(COMMANDS)
    dkim = cli("dkim", "--help")  # a command registered by another command's module
    assert dkim.returncode == 0 and "keygen" in dkim.stdout


# Modules only `serve` (and the web UI) needs: a consent or log command must not pay for them.
SERVER_ONLY = ("aiosmtpd", "gateway.app", "gateway.web", "gateway.smtp.handler", "uvicorn")


@pytest.mark.parametrize("argv", [["consent", "import", "--help"], ["log", "--help"]])
def test_a_command_imports_only_what_it_needs(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from gateway.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in sys.modules if m.startswith({SERVER_ONLY!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_serve_says_once_that_a_plain_http_public_url_breaks_one_click(
    config: dict[str, Any], start_gateway: Callable[..., GatewayProcess]
) -> None:
    config["server"]["workers"] = 2
    gw = start_gateway(config)
    said = [json.loads(line) for line in gw.stderr_lines if "is not https://" in line]
    assert [(s["level"], s["logger"]) for s in said] == [("warning", "gateway.cli.cmd_serve")]
    assert "Gmail and Yahoo take one-click unsubscribe only from an HTTPS URL" in said[0]["msg"]


def test_serve_names_a_rule_pack_left_out(
    config: dict[str, Any], start_gateway: Callable[..., GatewayProcess]
) -> None:
    config["policy"]["rules"] = [p for p in config["policy"]["rules"] if "alignment" not in p]
    gw = start_gateway(config)
    said = [json.loads(line)["msg"] for line in gw.stderr_lines if "policy.rules" in line]
    assert [m.split("'")[1] for m in said] == ["auth.dmarc_aligned", "auth.spf_pass"]


@pytest.mark.parametrize(("public_url", "mode", "expected"), [
    ("https://gw.example.jp", "enforce", []),
    ("HTTPS://gw.example.jp", "enforce", []),
    ("http://gw.example.jp", "enforce", ["is not https://"]),
    ("https://gw.example.jp", "monitor", ['policy.mode = "monitor"']),
])
def test_config_warnings(tmp_path: Path, public_url: str, mode: str,
                         expected: list[str]) -> None:
    raw = base_config(tmp_path, 2525)
    raw["http"]["public_url"] = public_url
    raw["policy"]["mode"] = mode
    said = warnings(from_dict(raw, base_dir=tmp_path))
    assert len(said) == len(expected) and all(e in w for e, w in zip(expected, said, strict=True))


def _warned(tmp_path: Path, section: str, key: str, value: Any) -> tuple[dict[str, Any], list[str]]:
    """A config that draws no warning but for the one key set here, and what serve says."""
    raw = base_config(tmp_path, 2525)
    raw["http"]["public_url"] = "https://gw.example.jp"
    raw[section][key] = value
    return raw, warnings(from_dict(raw, base_dir=tmp_path))


def test_config_warns_that_commit_interval_has_no_effect(tmp_path: Path) -> None:
    raw, [said] = _warned(tmp_path, "store", "commit_interval", "5ms")
    assert said.startswith("store.commit_interval = 0.005s has no effect")
    raw["store"]["commit_interval"] = 0.002  # the default, as an old config may spell it out
    assert warnings(from_dict(raw, base_dir=tmp_path)) == []


def test_config_warns_that_cpu_affinity_needs_workers(tmp_path: Path) -> None:
    raw, [said] = _warned(tmp_path, "server", "cpu_affinity", "auto")
    assert said.startswith('server.cpu_affinity = "auto" has no effect with one worker')
    raw["server"]["workers"] = 2
    assert warnings(from_dict(raw, base_dir=tmp_path)) == []
    raw["server"]["cpu_affinity"] = "on"
    with pytest.raises(ConfigError, match=r"server\.cpu_affinity"):
        from_dict(raw, base_dir=tmp_path)


def test_config_warns_when_advertising_mail_would_carry_no_list_unsubscribe(tmp_path: Path) -> None:
    raw = base_config(tmp_path, 2525)
    raw["http"]["public_url"] = "https://gw.example.jp"
    del raw["policy"]["unsubscribe_secret_file"]
    [said] = warnings(from_dict(raw, base_dir=tmp_path))
    assert said.startswith("policy.unsubscribe_secret_file is not set")
    raw["clients"] = [c for c in raw["clients"] if c["class"] != "advertising"]
    assert warnings(from_dict(raw, base_dir=tmp_path)) == []  # transactional mail needs none
