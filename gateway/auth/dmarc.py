"""DMARC: record parsing, RFC 9989 tree-walk policy and org-domain discovery, alignment."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from gateway.auth.dns import DnsCache

__all__ = [
    "MAX_TREE_WALK_LOOKUPS",
    "AlignmentMode",
    "AlignmentResult",
    "DmarcRecord",
    "DmarcRecordError",
    "DmarcResult",
    "DmarcStatus",
    "OrgDomainFn",
    "OrgDomainResult",
    "Policy",
    "discover",
    "dkim_aligned",
    "evaluate_alignment",
    "org_domain",
    "parse_dmarc_record",
    "psl_org_domain",
    "resolve_org_domains",
    "spf_aligned",
    "tree_walk_targets",
]

MAX_TREE_WALK_LOOKUPS = 8
OrgDomainFn = Callable[[str], str]


class DmarcRecordError(ValueError):
    """A TXT record that claims to be DMARC (starts with v=DMARC1) but cannot be used."""


class DmarcStatus(enum.StrEnum):
    FOUND = "found"
    MISSING = "missing"
    MALFORMED = "malformed"


class Policy(enum.StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class AlignmentMode(enum.StrEnum):
    RELAXED = "r"
    STRICT = "s"


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """A parsed DMARC record. Absent optional tags are None; `tags` keeps every tag as written."""

    raw: str
    p: Policy
    sp: Policy | None = None
    np: Policy | None = None
    adkim: AlignmentMode = AlignmentMode.RELAXED
    aspf: AlignmentMode = AlignmentMode.RELAXED
    testing: bool = False  # t=y
    psd: str | None = None  # "y", "n" or "u"
    pct: int | None = None  # RFC 7489 only; removed by RFC 9989 (replaced by t=)
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OrgDomainResult:
    """The organisational domain by the RFC 9989 tree walk, and RFC 7489's PSL answer beside it."""

    domain: str
    tree_walk: str
    psl: str | None
    queried: tuple[str, ...]

    @property
    def disagree(self) -> bool:
        return self.psl is not None and self.psl != self.tree_walk


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """What the author domain's DMARC looks like, for the pre-send alignment check.

    `policy` is the policy that applies to mail from `author_domain`: p= when the record sits at
    the author domain, sp= (else p=) when it was found higher up. With no usable record it is None
    and alignment modes are the relaxed defaults.
    """

    author_domain: str
    status: DmarcStatus
    record: DmarcRecord | None
    record_domain: str | None
    policy: Policy | None
    adkim: AlignmentMode
    aspf: AlignmentMode
    org_domain: OrgDomainResult
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.status is DmarcStatus.FOUND


@dataclass(frozen=True, slots=True)
class AlignmentResult:
    dkim: bool
    spf: bool

    @property
    def aligned(self) -> bool:
        """DMARC passes if either identifier aligns (and, of course, authenticates)."""
        return self.dkim or self.spf


# --- record parsing ---------------------------------------------------------------------------

_TAG_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+\Z")
_KNOWN = frozenset(
    {"v", "p", "sp", "np", "adkim", "aspf", "t", "psd", "pct", "rua", "ruf", "fo", "rf", "ri"}
)


def parse_dmarc_record(text: str) -> DmarcRecord:
    """Parse one DMARC TXT record (its strings already joined).

    Unknown tags are ignored (with a warning, since a typo like "adkin" would otherwise silently
    fall back to a default). Bad values of optional tags fall back to the default with a warning
    (RFC 7489 6.3). Raises DmarcRecordError for a record that cannot be used at all.
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or not _TAG_NAME.match(name):
            raise DmarcRecordError(f"not a tag=value pair: {part!r}")
        if name in tags:
            raise DmarcRecordError(f"tag {name}= appears twice")
        if not tags and name != "v":
            raise DmarcRecordError("a DMARC record must start with v=DMARC1")
        tags[name] = value.strip()
    if tags.get("v") != "DMARC1":
        raise DmarcRecordError(f"a DMARC record must start with v=DMARC1 (got {text[:40]!r})")

    warnings: list[str] = []
    rua = _uris(tags, "rua", warnings)
    ruf = _uris(tags, "ruf", warnings)

    if "p" not in tags:
        p = Policy.NONE
        warnings.append("no p= tag: treated as p=none (RFC 9989)")
    else:
        parsed = _policy(tags["p"])
        if parsed is None:
            if not rua:
                raise DmarcRecordError(
                    f"invalid p={tags['p']!r}: must be none, quarantine or reject"
                )
            # RFC 7489 6.6.3: an invalid p= with a usable rua= is treated as p=none.
            warnings.append(f"invalid p={tags['p']!r}: treated as p=none because rua= is set")
            parsed = Policy.NONE
        p = parsed

    sp = _optional_policy(tags, "sp", warnings)
    np_ = _optional_policy(tags, "np", warnings)
    adkim = _mode(tags, "adkim", warnings)
    aspf = _mode(tags, "aspf", warnings)

    testing = False
    if "t" in tags:
        if tags["t"].lower() in ("y", "n"):
            testing = tags["t"].lower() == "y"
        else:
            warnings.append(f"invalid t={tags['t']!r} ignored (y or n)")
    psd: str | None = None
    if "psd" in tags:
        if tags["psd"].lower() in ("y", "n", "u"):
            psd = tags["psd"].lower()
        else:
            warnings.append(f"invalid psd={tags['psd']!r} ignored (y, n or u)")
    pct: int | None = None
    if "pct" in tags:
        if tags["pct"].isdigit() and 0 <= int(tags["pct"]) <= 100:
            pct = int(tags["pct"])
        else:
            warnings.append(f"invalid pct={tags['pct']!r} ignored (0-100)")
    for name in tags:
        if name not in _KNOWN:
            warnings.append(f"unknown tag {name}= ignored")

    return DmarcRecord(
        raw=text,
        p=p,
        sp=sp,
        np=np_,
        adkim=adkim,
        aspf=aspf,
        testing=testing,
        psd=psd,
        pct=pct,
        rua=rua,
        ruf=ruf,
        fo=tags.get("fo"),
        tags=dict(tags),
        warnings=tuple(warnings),
    )


def _policy(value: str) -> Policy | None:
    try:
        return Policy(value.strip().lower())
    except ValueError:
        return None


def _optional_policy(tags: Mapping[str, str], name: str, warnings: list[str]) -> Policy | None:
    if name not in tags:
        return None
    parsed = _policy(tags[name])
    if parsed is None:
        warnings.append(f"invalid {name}={tags[name]!r} ignored")
    return parsed


def _mode(tags: Mapping[str, str], name: str, warnings: list[str]) -> AlignmentMode:
    if name not in tags:
        return AlignmentMode.RELAXED
    try:
        return AlignmentMode(tags[name].strip().lower())
    except ValueError:
        warnings.append(f"invalid {name}={tags[name]!r}: relaxed alignment assumed (r or s)")
        return AlignmentMode.RELAXED


def _uris(tags: Mapping[str, str], name: str, warnings: list[str]) -> tuple[str, ...]:
    if name not in tags:
        return ()
    good: list[str] = []
    for item in tags[name].split(","):
        uri = item.strip().split("!", 1)[0]  # "!10m" size limits are obsolete (RFC 9989)
        if _URI.match(uri):
            good.append(uri)
        elif uri:
            warnings.append(f"invalid {name} URI {item.strip()!r} ignored")
    return tuple(good)


def _is_dmarc(text: str) -> bool:
    head = text.lstrip().split(";", 1)[0].replace(" ", "").replace("\t", "")
    return head.lower() == "v=dmarc1"


# --- the tree walk ----------------------------------------------------------------------------


def tree_walk_targets(domain: str) -> list[str]:
    """The names whose _dmarc record the RFC 9989 DNS tree walk may query, in order (<= 8).

    The domain itself, then: with fewer than 8 labels drop one label at a time; with 8 or more
    jump to the last 7 labels first. So at most 1 + 7 lookups.
    """
    labels = _norm(domain).split(".")
    targets = [".".join(labels)]
    k = min(len(labels) - 1, MAX_TREE_WALK_LOOKUPS - 1)
    while k >= 1:
        targets.append(".".join(labels[-k:]))
        k -= 1
    return targets


@dataclass(frozen=True, slots=True)
class _Level:
    domain: str
    record: DmarcRecord | None
    problem: str | None  # malformed / duplicated record at this level


async def _level(cache: DnsCache, domain: str) -> _Level:
    texts = [t for t in await cache.txt(f"_dmarc.{domain}") if _is_dmarc(t)]
    if not texts:
        return _Level(domain, None, None)
    if len(texts) > 1:
        # RFC 7489 6.6.3 / RFC 9989: several records at one name are all discarded.
        return _Level(domain, None, f"{len(texts)} DMARC records at _dmarc.{domain}")
    try:
        return _Level(domain, parse_dmarc_record(texts[0]), None)
    except DmarcRecordError as exc:
        return _Level(domain, None, f"malformed record at _dmarc.{domain}: {exc}")


async def _walk(cache: DnsCache, domain: str) -> list[_Level]:
    """Query the targets in order, stopping at a psd=y/n record (it decides the org domain).

    The policy is the first record on the way, but the walk goes on for the org domain, which
    relaxed alignment needs anyway; every answer is cached. DnsTempError propagates: a walk with
    a hole in it could name the wrong policy, so the caller must answer "try later".
    """
    levels: list[_Level] = []
    for target in tree_walk_targets(domain):
        level = await _level(cache, target)
        levels.append(level)
        if level.record is not None and level.record.psd in ("y", "n"):
            break
    return levels


def _org_result(domain: str, levels: list[_Level]) -> OrgDomainResult:
    return OrgDomainResult(
        domain=domain,
        tree_walk=_org_from_levels(domain, levels),
        psl=psl_org_domain(domain),
        queried=tuple(f"_dmarc.{lv.domain}" for lv in levels),
    )


def _org_from_levels(domain: str, levels: list[_Level]) -> str:
    found = [lv for lv in levels if lv.record is not None]
    for level in found:
        assert level.record is not None
        if level.record.psd == "n":
            return level.domain
        if level.record.psd == "y":
            if level.domain == domain:
                # A public suffix sending as itself: there is no label below it to pick, so it is
                # its own organisational domain.
                return domain
            return _child_toward(domain, level.domain)
    if found:
        return min(found, key=lambda lv: lv.domain.count(".")).domain
    return domain


def _child_toward(domain: str, ancestor: str) -> str:
    """The name one label below `ancestor` on the way down to `domain`."""
    labels = domain.split(".")
    n = ancestor.count(".") + 2
    return ".".join(labels[-n:])


@functools.cache
def _psl() -> PublicSuffixList:
    # Loaded once: the bundled list, no network access.
    return PublicSuffixList()


def psl_org_domain(domain: str) -> str | None:
    """RFC 7489's organisational domain: the registrable domain by the Public Suffix List."""
    result = _psl().privatesuffix(_norm(domain))
    return str(result) if result is not None else None


async def org_domain(cache: DnsCache, domain: str) -> OrgDomainResult:
    """The organisational domain by the RFC 9989 tree walk, with the PSL's answer to compare."""
    domain = _norm(domain)
    return _org_result(domain, await _walk(cache, domain))


async def resolve_org_domains(cache: DnsCache, domains: Iterable[str]) -> dict[str, str]:
    """Tree-walk org domains for several names, as a mapping whose __getitem__ is an OrgDomainFn.

    Gather these facts first, then run the pure alignment functions over them.
    """
    out: dict[str, str] = {}
    for domain in dict.fromkeys(_norm(d) for d in domains):
        out[domain] = (await org_domain(cache, domain)).tree_walk
    return out


async def discover(cache: DnsCache, author_domain: str) -> DmarcResult:
    """DMARC policy discovery for the RFC5322.From domain, by the RFC 9989 tree walk.

    Raises DnsTempError when DNS fails and nothing usable is cached.
    """
    domain = _norm(author_domain)
    levels = await _walk(cache, domain)
    org = _org_result(domain, levels)
    policy_level = next((lv for lv in levels if lv.record is not None), None)
    problems = [lv.problem for lv in levels if lv.problem is not None]
    warnings: list[str] = []
    if org.disagree:
        warnings.append(
            f"organisational domain by tree walk is {org.tree_walk}, by the PSL {org.psl}: "
            "receivers still on RFC 7489 will align differently"
        )

    if policy_level is None or policy_level.record is None:
        status = DmarcStatus.MALFORMED if problems else DmarcStatus.MISSING
        return DmarcResult(
            author_domain=domain,
            status=status,
            record=None,
            record_domain=None,
            policy=None,
            adkim=AlignmentMode.RELAXED,
            aspf=AlignmentMode.RELAXED,
            org_domain=org,
            error="; ".join(problems) if problems else f"no DMARC record for {domain}",
            warnings=tuple(warnings),
        )

    record = policy_level.record
    at_author = policy_level.domain == domain
    policy = record.p if at_author else (record.sp or record.p)
    warnings.extend(record.warnings)
    warnings.extend(f"ignored: {p}" for p in problems)
    if policy is Policy.NONE:
        warnings.append(
            f"p=none at _dmarc.{policy_level.domain}: monitoring only, failing mail is not "
            "quarantined or rejected"
        )
    if not record.rua:
        warnings.append("no rua=: the domain receives no aggregate reports")
    if record.testing:
        warnings.append("t=y: receivers are asked to apply a weaker policy (testing mode)")
    if record.pct is not None and record.pct < 100:
        warnings.append(
            f"pct={record.pct}: removed by RFC 9989; older receivers apply the policy to "
            f"{record.pct}% of failing mail"
        )
    return DmarcResult(
        author_domain=domain,
        status=DmarcStatus.FOUND,
        record=record,
        record_domain=policy_level.domain,
        policy=policy,
        adkim=record.adkim,
        aspf=record.aspf,
        org_domain=org,
        warnings=tuple(warnings),
    )


# --- alignment (pure) -------------------------------------------------------------------------


def _aligned(a: str, b: str, mode: AlignmentMode | str, org_domain_fn: OrgDomainFn) -> bool:
    a, b = _norm(a), _norm(b)
    if a == b:
        return True
    if AlignmentMode(mode) is AlignmentMode.STRICT:
        return False
    return org_domain_fn(a) == org_domain_fn(b)


def dkim_aligned(
    from_domain: str, d_domain: str, mode: AlignmentMode | str, org_domain_fn: OrgDomainFn
) -> bool:
    """Does a DKIM signature with d=`d_domain` align with the From domain (RFC 9989 4.4.1)?"""
    return _aligned(from_domain, d_domain, mode, org_domain_fn)


def spf_aligned(
    from_domain: str, mail_from_domain: str, mode: AlignmentMode | str, org_domain_fn: OrgDomainFn
) -> bool:
    """Does the SPF-authenticated MAIL FROM domain align with the From domain (RFC 9989 4.4.2)?"""
    return _aligned(from_domain, mail_from_domain, mode, org_domain_fn)


def evaluate_alignment(
    result: DmarcResult,
    dkim_domains: Iterable[str],
    mail_from_domain: str | None,
    org_domain_fn: OrgDomainFn,
) -> AlignmentResult:
    """Would our signatures (d= domains) or the envelope domain align under `result`'s modes?"""
    frm = result.author_domain
    dkim = any(dkim_aligned(frm, d, result.adkim, org_domain_fn) for d in dkim_domains)
    spf = mail_from_domain is not None and spf_aligned(
        frm, mail_from_domain, result.aspf, org_domain_fn
    )
    return AlignmentResult(dkim=dkim, spf=spf)


def _norm(domain: str) -> str:
    return domain.strip().rstrip(".").lower()
