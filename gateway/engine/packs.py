"""Rule packs: TOML files under rules/ turned into validated Rule objects at load time."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import replies
from gateway.engine import registry
from gateway.errors import PackError
from gateway.model import ClientClass, OnFail, Phase
from gateway.replies import Reply

_RULE_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_RULE_KEYS = {
    "id",
    "check",
    "phase",
    "params",
    "on_fail",
    "reply",
    "temp_reply",
    "applies_to",
    "aliases",
    "description",
    "always_enforce",
}


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    check: str
    phases: frozenset[Phase]
    on_fail: OnFail
    reply: Reply
    temp_reply: Reply
    applies_to: frozenset[ClientClass]
    params: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    description: str = ""
    pack: str = ""
    always_enforce: bool = False  # monitor mode does not downgrade it (e.g. smuggling risks)

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All rules of the configured packs, in pack order, plus the packs' data tables."""

    rules: tuple[Rule, ...]
    data: dict[str, Any] = field(default_factory=dict)  # [data.*] tables: word lists etc.

    def for_phase(self, phase: Phase, client_class: ClientClass) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if phase in r.phases and client_class in r.applies_to)

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id or rule_id in r.aliases), None)


# Checks the shipped packs run and what goes unguarded without them: a config may leave a
# pack out (the contract's own example lists tokuden.toml alone), so `serve` says so.
GUARDS: dict[str, str] = {
    "identity.allowed": "any logged-in client may send with any From or envelope domain "
    "(rules/baseline.toml, Art. 5)",
    "envelope.recipient_syntax": "relay-test recipient forms (user%host@, @route:, IP "
    "literals) go to the upstream (rules/baseline.toml)",
    "message.wellformed": "SMTP smuggling sequences, NUL bytes and broken MIME are relayed "
    "(rules/baseline.toml)",
    "message.single_from": "mail without a From, or with several, is relayed "
    "(rules/baseline.toml)",
    "consent.recorded": "advertising mail goes to recipients without consent "
    "(rules/tokuden.toml, Art. 3)",
    "consent.not_refused": "an opt-out does not stop mail (rules/tokuden.toml, Art. 3)",
    "consent.not_suppressed": "advertising mail goes on to addresses that hard-bounced "
    "(rules/tokuden.toml)",
    "footer.item": "nothing checks the display items (rules/tokuden.toml, Art. 4)",
    "auth.dmarc_aligned": "nothing checks that DKIM and DMARC will align at the receiver "
    "(rules/alignment.toml, Art. 5)",
    "auth.spf_pass": "nothing checks that SPF passes for the egress IPs "
    "(rules/alignment.toml)",
    "reputation.rate": "advertising mail goes on whatever its complaint or bounce rate "
    "(rules/reputation.toml)",
}


def unguarded(rules: RuleSet) -> list[str]:
    """A warning for each guarding check that no configured rule runs."""
    running = {rule.check for rule in rules.rules}
    return [
        f"policy.rules runs no {check!r} check: {harm}"
        for check, harm in GUARDS.items()
        if check not in running
    ]


def load_packs(paths: tuple[str, ...] | list[str]) -> RuleSet:
    rules: list[Rule] = []
    data: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for path in paths:
        pack_rules, pack_data = _load_pack(Path(path))
        for rule in pack_rules:
            for name in (rule.id, *rule.aliases):
                if name in seen:
                    raise PackError(f"{path}: rule id {name!r} already defined in {seen[name]}")
                seen[name] = str(path)
            rules.append(rule)
        for key, value in pack_data.items():
            data[key] = value  # later packs override earlier ones (site overrides)
    return RuleSet(tuple(rules), data)


def _load_pack(path: Path) -> tuple[list[Rule], dict[str, Any]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PackError(f"{path}: cannot read rule pack: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PackError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(raw) - {"pack", "rule", "data"}
    if unknown:
        raise PackError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    entries = raw.get("rule", [])
    if not isinstance(entries, list):
        raise PackError(f"{path}: [[rule]] must be an array of tables")
    rules = [_build_rule(path, i, entry) for i, entry in enumerate(entries)]
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise PackError(f"{path}: [data] must be a table")
    return rules, data


def _build_rule(path: Path, index: int, entry: Any) -> Rule:
    where = f"{path}: rule[{index}]"
    if not isinstance(entry, dict):
        raise PackError(f"{where}: must be a table")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise PackError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
    for key in ("id", "check", "phase", "reply"):
        if key not in entry:
            raise PackError(f"{where}: missing key {key!r}")
    rule_id = entry["id"]
    where = f"{path}: rule {rule_id!r}"
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise PackError(f"{where}: id must look like family.name (lower case, snake_case)")
    spec = registry.get(str(entry["check"]))
    if spec is None:
        raise PackError(f"{where}: unknown check {entry['check']!r}")
    try:
        raw_phases = entry["phase"] if isinstance(entry["phase"], list) else [entry["phase"]]
        phases = frozenset(Phase(p) for p in raw_phases)
        on_fail = OnFail(entry.get("on_fail", "reject"))
        applies_to = frozenset(
            ClientClass(c) for c in entry.get("applies_to", ["advertising", "transactional"])
        )
    except ValueError as exc:
        raise PackError(f"{where}: {exc}") from None
    if not phases or not phases <= spec.phases:
        allowed = ", ".join(sorted(p.value for p in spec.phases))
        raise PackError(f"{where}: check {spec.name} runs only in phase(s): {allowed}")
    params = entry.get("params", {})
    if not isinstance(params, dict):
        raise PackError(f"{where}: params must be a table")
    for name, value in params.items():
        expected = spec.params.get(name)
        if expected is None:
            raise PackError(f"{where}: check {spec.name} takes no parameter {name!r}")
        if not _matches(value, expected):
            raise PackError(f"{where}: parameter {name!r} must be {expected.__name__}")
    missing = sorted(spec.required - set(params))
    if missing:
        raise PackError(f"{where}: check {spec.name} needs parameter(s) {', '.join(missing)}")
    problem = spec.validate(params) if spec.validate is not None else ""
    if problem:
        raise PackError(f"{where}: {problem}")
    try:
        reply = replies.parse(entry["reply"])
        temp_reply = replies.parse(
            entry.get("temp_reply", "451 4.3.0 Temporary failure, try again")
        )
    except ValueError as exc:
        raise PackError(f"{where}: {exc}") from None
    if reply.is_success or not temp_reply.is_temporary:
        raise PackError(f"{where}: reply must be 4xx/5xx and temp_reply 4xx")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(_RULE_ID.match(str(a)) for a in aliases):
        raise PackError(f"{where}: aliases must be a list of rule ids")
    return Rule(
        id=rule_id,
        check=spec.name,
        phases=phases,
        on_fail=on_fail,
        reply=reply,
        temp_reply=temp_reply,
        applies_to=applies_to,
        params=dict(params),
        aliases=tuple(aliases),
        description=str(entry.get("description", spec.description)),
        always_enforce=bool(entry.get("always_enforce", False)),
        pack=path.name,
    )


def _matches(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)
