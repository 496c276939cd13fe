"""Configuration: one TOML file loaded into frozen, validated dataclasses.

Unknown keys, wrong types and broken cross-references are errors that name the
dotted key, so a typo never passes silently. Relative paths are resolved against
the directory of the config file. There is no module-level config object: the
loaded `Config` is passed down from `app.build()`.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
import ssl
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from gateway.errors import ConfigError


class _Duration:
    """Marker: seconds, given as a number or a string like "30s", "5m", "2h"."""


class _Size:
    """Marker: bytes, given as an integer or a string like "20MiB"."""


class _PathMarker:
    """Marker: a file path, resolved against the config file's directory."""


Seconds = Annotated[float, _Duration]
Bytes = Annotated[int, _Size]
FilePath = Annotated[str, _PathMarker]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}

DEFAULT_CONFIG_NAME = "gateway.toml"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    listen: str = "127.0.0.1:2525"
    hostname: str = "localhost"
    max_message_size: Bytes = 20 * 1024 * 1024
    tls_cert: FilePath | None = None
    tls_key: FilePath | None = None
    auth_require_tls: bool = True
    # RFC 5321 §4.5.3.2.7 asks for 5 minutes per command; aiosmtpd restarts this timer
    # only on a complete command, so it also bounds a whole DATA phase (byte tricklers).
    idle_timeout: Seconds = 300.0
    max_recipients: int = 100  # per transaction, for transactional clients
    max_connections: int = 1000  # per process; more get 421 4.3.2 at connect (0: no limit)
    # Per client IP address and per process (each worker counts its own):
    max_connections_per_ip: int = 200  # concurrent; more get 421 4.7.0 at connect (0: no limit)
    max_messages_per_minute_per_ip: int = 0  # MAIL commands; more get 451 4.7.1 (0: no limit)
    auth_failure_limit: int = 5  # failures per client address before AUTH is throttled
    auth_failure_window: Seconds = 300.0
    shutdown_grace: Seconds = 30.0
    workers: int = 1
    # "auto": worker i runs on the i-th CPU this process may use (mod their number), as
    # nginx's worker_cpu_affinity auto: a worker and its store thread keep their caches
    # and stop migrating between cores (2 workers on 2 cores: +4-5 % msgs/s, interleaved
    # pairs). "off": the kernel places them. Workers only; one process is never pinned.
    cpu_affinity: Literal["off", "auto"] = "off"
    # uvloop (libuv) halves the event loop's share of the CPU per message; "asyncio" is
    # the standard library's loop, for debugging or where uvloop does not build.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Entries per worker in each per-body cache (the footer report and the DKIM body hash,
    # keyed by a digest of the body): a campaign body sent to many recipients is decoded,
    # checked and hashed once. Personalised bodies miss it. 0: off.
    body_cache: int = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    host: str = "127.0.0.1"
    port: int = 25
    # starttls: when the upstream offers it, certificate unchecked; required: always, verified
    tls: Literal["none", "starttls", "required"] = "none"
    # PEM bundle of the CAs that may vouch for the upstream's certificate (a private
    # relay's own CA); unset: the system's trust store. The name checked is `host`.
    ca_file: FilePath | None = None
    timeout: Seconds = 30.0
    connect_timeout: Seconds = 10.0
    helo: str | None = None
    pool_size: int = 16  # idle connections kept per process
    pool_idle: Seconds = 30.0
    # Open at once, per process (each worker counts its own); a transaction beyond it
    # waits up to connect_timeout for one to come back, then gets 451 4.4.5 (0: no limit).
    max_connections: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    url: str = "sqlite:///var/gateway.sqlite3"
    # Accepted for old configs; it has no effect (`serve` says so when it is set): a group
    # commit takes whatever queued while the previous one ran, and commit_max_batch caps it.
    commit_interval: Seconds = 0.002
    commit_max_batch: int = 512
    # How often each process adds its sent and complaint counts to the store and reads
    # every process's sums back (rule sender.complaint_rate acts on them that much later).
    volume_interval: Seconds = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    nameservers: tuple[str, ...] = ()
    timeout: Seconds = 2.0
    stale_ttl: Seconds = 3600.0  # how long a last good answer may stand in for an outage


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    listen: str = "127.0.0.1:8025"
    public_url: str = "http://127.0.0.1:8025"
    auth_failure_limit: int = 10  # wrong tokens per client address before it gets 429
    auth_failure_window: Seconds = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    mode: Literal["enforce", "monitor"] = "enforce"
    rules: tuple[FilePath, ...] = ()
    soft_reject: bool = False  # every 5xx refusal becomes 4xx (rollout safety switch)
    unsubscribe_secret_file: FilePath | None = None  # keys for /u/ tokens (tokuden secret generate)
    unsubscribe_address: str | None = None  # mailto: opt-out address, accepted without AUTH
    # keys that hash the addresses of erased opt-outs (consent erase); never rotate them away
    erasure_key_file: FilePath | None = None
    list_unsubscribe: Literal["replace", "keep"] = "replace"  # an MA tool's own header
    topic_header: str = "X-Tokuden-Topic"
    import_approval: bool = True  # consent imports wait for a second person's approval
    approvers: tuple[str, ...] = ()  # who may approve imports (empty: anyone but the importer)
    footer_words: FilePath | None = None  # default: footer_words.toml next to the rule packs
    footer_template: FilePath | None = None  # default: footer_template.toml next to the packs
    feedback_id: bool = False  # add Feedback-ID: client:class:sender (delivery/feedback_id.py)


@functools.cache
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    # Asked on every connection of a client authorised by source address: parse once.
    return ipaddress.ip_network(text, strict=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    username: str
    password_hash: str | None = None
    senders: tuple[str, ...] = ()
    class_: Literal["advertising", "transactional"] = "advertising"
    networks: tuple[str, ...] = ()

    def allows_network(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in _network(net) for net in self.networks)


@dataclass(frozen=True, slots=True, kw_only=True)
class DkimKeyConfig:
    selector: str
    key: FilePath
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"
    domain: str | None = None  # defaults to the sender identity's first domain


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderConfig:
    id: str
    domains: tuple[str, ...]
    envelope_domains: tuple[str, ...] = ()
    name: str = ""
    postal_address: str = ""
    contacts: tuple[str, ...] = ()
    optout: tuple[str, ...] = ()
    info_urls: tuple[str, ...] = ()
    # 特定商取引法 第11条: the seller's name, where another company sells what the mail offers.
    seller_name: str = ""
    law: Literal["tokuden", "tokusho"] = "tokusho"  # the safe default: 3-year records
    footer: Literal["enforce", "insert", "monitor"] = "enforce"
    egress_ips: tuple[str, ...] = ()
    dkim: tuple[DkimKeyConfig, ...] = ()
    art7_order: bool = False  # an Art. 7 order was received: keep evidence 1 year

    def owns_from_domain(self, domain: str) -> bool:
        return domain.lower() in self.domains

    def owns_envelope_domain(self, domain: str) -> bool:
        domain = domain.lower()
        return domain in self.domains or domain in self.envelope_domains


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    clients: tuple[ClientConfig, ...] = ()
    senders: tuple[SenderConfig, ...] = ()
    path: str = ""  # where it was loaded from (not a TOML key)

    def sender(self, sender_id: str) -> SenderConfig | None:
        return next((s for s in self.senders if s.id == sender_id), None)

    def client(self, username: str) -> ClientConfig | None:
        return next((c for c in self.clients if c.username == username), None)


# TOML key -> field name, where the TOML word is a Python keyword.
_RENAMED = {"class": "class_"}
_NOT_FROM_TOML = {"path"}


def default_path() -> str:
    return os.environ.get("GATEWAY_CONFIG") or DEFAULT_CONFIG_NAME


def load(path: str | os.PathLike[str], *, validate: bool = True) -> Config:
    """Read, build and validate the config at `path`; raise ConfigError naming the key.

    validate=False skips the checks across keys and of the files the config names: for
    `secret generate`, which makes a file the config names before it can be read."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {file} is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    return from_dict(raw, base_dir=file.resolve().parent, path=str(file), validate=validate)


def from_dict(raw: dict[str, Any], *, base_dir: Path, path: str = "",
              validate: bool = True) -> Config:
    built: Config = _build(Config, raw, "", base_dir)
    store = built.store
    if store.url.startswith("sqlite:///"):
        # sqlite:///relative (against the config file's directory), sqlite:////absolute
        db_path = store.url.removeprefix("sqlite:///")
        if db_path and not os.path.isabs(db_path):
            absolute = (base_dir / db_path).resolve()
            store = dataclasses.replace(store, url=f"sqlite:///{absolute}")
    config = dataclasses.replace(built, path=path, store=store)
    if validate:
        _validate(config)
    return config


def _build(cls: type[Any], raw: Any, where: str, base_dir: Path) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", where or "(top level)")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _NOT_FROM_TOML}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        name = _RENAMED.get(key, key)
        dotted = f"{where}.{key}" if where else key
        if name not in fields:
            known = ", ".join(sorted(k if k not in _RENAMED.values() else "class" for k in fields))
            raise ConfigError(f"unknown key (known keys: {known})", dotted)
        kwargs[name] = _convert(hints[name], value, dotted, base_dir)
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in kwargs and no_default:
            key = next((k for k, v in _RENAMED.items() if v == name), name)
            raise ConfigError("required key is missing", f"{where}.{key}" if where else key)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str, base_dir: Path) -> Any:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *markers = get_args(hint)
        if _Duration in markers:
            return _duration(value, where)
        if _Size in markers:
            return _size(value, where)
        if _PathMarker in markers:
            text = _convert(base, value, where, base_dir)
            return str((base_dir / text).resolve()) if text and not os.path.isabs(text) else text
        return _convert(base, value, where, base_dir)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, where, base_dir)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            choices = " | ".join(str(a) for a in allowed)
            raise ConfigError(f"must be one of {choices}, not {value!r}", where)
        return value
    if origin is tuple:
        item = get_args(hint)[0]
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {_tname(value)}", where)
        return tuple(_convert(item, v, f"{where}[{i}]", base_dir) for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, base_dir)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_tname(value)}", where)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_tname(value)}", where)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {_tname(value)}", where)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_tname(value)}", where)
        return value
    raise ConfigError(f"unsupported type {hint!r}", where)  # a bug in this module


def _tname(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ConfigError(f'expected a duration like 30 or "30s", got {value!r}', where)
    if seconds < 0:
        raise ConfigError("must not be negative", where)
    return seconds


def _size(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        size = int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    else:
        raise ConfigError(f'expected a size like 20971520 or "20MiB", got {value!r}', where)
    if size <= 0:
        raise ConfigError("must be positive", where)
    return size


def parse_hostport(text: str, default_port: int, where: str) -> tuple[str, int]:
    """Split "host:port" / "[v6]:port" / "host" with a clear error."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"malformed address {text!r}", where)
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ConfigError(f"malformed address {text!r}", where)
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ConfigError(f"port must be a number in {text!r}", where)
        port = int(port_text)
    if not host or not 0 <= port <= 65535:
        raise ConfigError(f"malformed address {text!r}", where)
    return host, port


def warnings(config: Config) -> list[str]:
    """What a valid config does that an operator may not mean: said at `serve` start."""
    found: list[str] = []
    advertising = any(c.class_ == "advertising" for c in config.clients)
    if advertising and not config.http.public_url.lower().startswith("https://"):
        found.append(
            f"http.public_url {config.http.public_url!r} is not https://: the List-Unsubscribe "
            "one-click link is built on it, and Gmail and Yahoo take one-click unsubscribe only "
            "from an HTTPS URL (RFC 8058)"
        )
    if advertising and not config.policy.unsubscribe_secret_file:
        found.append(
            "policy.unsubscribe_secret_file is not set: advertising mail goes out without "
            "List-Unsubscribe, which Gmail and Yahoo require of bulk senders (one-click, RFC "
            "8058), and the opt-out mailbox is off (tokuden secret generate FILE makes one)"
        )
    if config.policy.mode == "monitor":
        found.append('policy.mode = "monitor": every verdict is recorded and nothing is refused')
    if config.store.commit_interval != StoreConfig().commit_interval:
        found.append(
            f"store.commit_interval = {config.store.commit_interval:g}s has no effect: a group "
            "commit takes whatever queued while the previous one ran, without waiting "
            f"(store.commit_max_batch = {config.store.commit_max_batch} caps it)"
        )
    if config.server.cpu_affinity == "auto" and config.server.workers == 1:
        found.append(
            'server.cpu_affinity = "auto" has no effect with one worker: it pins worker '
            "processes (server.workers > 1), one to a CPU"
        )
    return found


# A Feedback-ID field (policy.feedback_id): Gmail splits the header at colons
_FEEDBACK_FIELD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _feedback_field(config: Config, value: str, where: str) -> None:
    if config.policy.feedback_id and not _FEEDBACK_FIELD.fullmatch(value):
        raise ConfigError(
            f"{value!r} cannot be a Feedback-ID field (policy.feedback_id = true): use 1-64 "
            "ASCII letters, digits, '.', '_' or '-', starting with a letter or digit", where)


def _validate(config: Config) -> None:
    parse_hostport(config.server.listen, 25, "server.listen")
    # values that end up in SMTP replies, commands or header names: one printable token
    for key, value in (
        ("server.hostname", config.server.hostname),
        ("upstream.helo", config.upstream.helo or "x"),
        ("policy.topic_header", config.policy.topic_header),
        ("policy.unsubscribe_address", config.policy.unsubscribe_address or "x"),
    ):
        if not value or any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ConfigError("must be one word without spaces or control characters", key)
    parse_hostport(config.http.listen, 8025, "http.listen")
    for i, ns in enumerate(config.dns.nameservers):
        host, _ = parse_hostport(ns, 53, f"dns.nameservers[{i}]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            # finding a resolver by its name would need a resolver
            raise ConfigError(
                f"{host!r} is not an IP address: nameservers are asked by address",
                f"dns.nameservers[{i}]",
            ) from None
    if not 0 < config.upstream.port <= 65535:
        raise ConfigError("must be a TCP port, 1 to 65535", "upstream.port")
    for key, seconds in (
        ("dns.timeout", config.dns.timeout),
        ("upstream.timeout", config.upstream.timeout),
        ("upstream.connect_timeout", config.upstream.connect_timeout),
        ("server.idle_timeout", config.server.idle_timeout),
    ):
        if seconds <= 0:
            raise ConfigError("must be more than 0 seconds", key)
    if bool(config.server.tls_cert) != bool(config.server.tls_key):
        raise ConfigError("tls_cert and tls_key must be given together", "server.tls_cert")
    for key in ("tls_cert", "tls_key"):
        value = getattr(config.server, key)
        if value:
            _readable(value, f"server.{key}")
    if config.upstream.ca_file:
        _readable(config.upstream.ca_file, "upstream.ca_file")
        try:
            ssl.create_default_context(cafile=config.upstream.ca_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"not a PEM bundle of CA certificates: {exc}", "upstream.ca_file"
            ) from None
    if config.upstream.max_connections < 0:
        raise ConfigError("must not be negative (0 means no limit)", "upstream.max_connections")
    if config.server.body_cache < 0:
        raise ConfigError("must not be negative (0 turns the cache off)", "server.body_cache")
    if config.server.workers < 1:
        raise ConfigError("must be at least 1", "server.workers")
    throttles = {"server.auth_failure_limit": config.server.auth_failure_limit,
                 "http.auth_failure_limit": config.http.auth_failure_limit}
    for name, limit in throttles.items():
        if limit < 1:
            raise ConfigError("must be at least 1 (failures before the address is throttled)", name)
    for key in ("max_connections", "max_connections_per_ip", "max_messages_per_minute_per_ip"):
        if getattr(config.server, key) < 0:
            raise ConfigError("must not be negative (0 means no limit)", f"server.{key}")
    if not (
        config.store.url.startswith("sqlite:///")
        or config.store.url.startswith(("postgresql://", "postgres://"))
    ):
        raise ConfigError("must start with sqlite:/// or postgresql://", "store.url")
    for i, pack in enumerate(config.policy.rules):
        _readable(pack, f"policy.rules[{i}]")
    if config.policy.unsubscribe_secret_file:
        _readable(config.policy.unsubscribe_secret_file, "policy.unsubscribe_secret_file")
    if config.policy.erasure_key_file:
        _readable(config.policy.erasure_key_file, "policy.erasure_key_file")
        from gateway.unsubscribe.tokens import SecretFileError, parse_secret

        try:
            parse_secret(Path(config.policy.erasure_key_file).read_text(encoding="ascii"))
        except (SecretFileError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not a key file made by `tokuden secret generate`: {exc}",
                              "policy.erasure_key_file") from None

    sender_ids: set[str] = set()
    for i, sender in enumerate(config.senders):
        where = f"senders[{i}]"
        if sender.id in sender_ids:
            raise ConfigError(f"duplicate sender id {sender.id!r}", f"{where}.id")
        sender_ids.add(sender.id)
        _feedback_field(config, sender.id, f"{where}.id")
        if not sender.domains:
            raise ConfigError("at least one From domain is required", f"{where}.domains")
        for key in ("domains", "envelope_domains"):
            for j, domain in enumerate(getattr(sender, key)):
                if domain != domain.lower() or not re.match(r"^[a-z0-9.-]+$", domain):
                    raise ConfigError(
                        f"{domain!r} must be a lower-case ASCII (A-label) domain",
                        f"{where}.{key}[{j}]",
                    )
        for j, ip in enumerate(sender.egress_ips):
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ConfigError(
                    f"{ip!r} is not an IP address", f"{where}.egress_ips[{j}]"
                ) from None
        for j, dkim_key in enumerate(sender.dkim):
            _readable(dkim_key.key, f"{where}.dkim[{j}].key")
            domain = dkim_key.domain or sender.domains[0]
            if domain not in sender.domains:
                raise ConfigError(
                    f"DKIM domain {domain!r} is not one of the sender's domains",
                    f"{where}.dkim[{j}].domain",
                )
        for value in (sender.name, sender.seller_name, sender.postal_address, *sender.contacts,
                      *sender.optout):
            if "\r" in value or "\n" in value:
                raise ConfigError("line breaks are not allowed in display values", where)

    usernames: set[str] = set()
    for i, client in enumerate(config.clients):
        where = f"clients[{i}]"
        if client.username in usernames:
            raise ConfigError(f"duplicate username {client.username!r}", f"{where}.username")
        usernames.add(client.username)
        _feedback_field(config, client.username, f"{where}.username")
        if not client.password_hash and not client.networks:
            raise ConfigError(
                "a client needs password_hash (AUTH) or networks (source address)", where
            )
        if client.password_hash and not client.password_hash.startswith("scrypt$"):
            raise ConfigError(
                "must be a hash made by `tokuden user add` (scrypt$...)", f"{where}.password_hash"
            )
        for j, net in enumerate(client.networks):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"{net!r} is not a network", f"{where}.networks[{j}]") from None
        if not client.senders:
            raise ConfigError("a client must be allowed at least one sender", f"{where}.senders")
        for j, sender_id in enumerate(client.senders):
            if sender_id not in sender_ids:
                raise ConfigError(
                    f"names unknown sender {sender_id!r} (known: {', '.join(sorted(sender_ids))})",
                    f"{where}.senders[{j}]",
                )


def _readable(path: str, where: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", where) from None
