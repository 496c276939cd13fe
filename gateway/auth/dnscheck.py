"""The go-live checklist: what each sender identity must publish in DNS, and whether it does."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import dns.reversename

from gateway.auth.dkim_sign import published_key_matches
from gateway.auth.dmarc import DmarcRecord, DmarcStatus, discover
from gateway.auth.policy import AuthPolicy, signing_domain
from gateway.config import SenderConfig
from gateway.errors import LookupTempError


@dataclass(slots=True)
class RecordCheck:
    kind: str  # spf | mx | ptr | dkim | dmarc | dmarc_rua
    name: str
    ok: bool
    publish: str  # the TXT value to publish (or keep)
    detail: str
    required: bool = True  # False: advice (e.g. SPF on the From domain for Japanese carriers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "ok": self.ok,
            "publish": self.publish,
            "detail": self.detail,
            "required": self.required,
        }


@dataclass(slots=True)
class SenderCheck:
    sender: str
    records: list[RecordCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.records if r.required)


def _spf_suggestion(ips: tuple[str, ...]) -> str:
    mechanisms = " ".join(("ip6:" if ":" in ip else "ip4:") + ip for ip in ips)
    return f"v=spf1 {mechanisms} -all" if ips else "v=spf1 -all"


def _aggregate_reports(record: DmarcRecord | None, where: str) -> RecordCheck:
    """Advice: rua= on the DMARC record (legal.md §5.2: Japanese carriers look for it, and
    the reports show who else sends as the domain)."""
    name = f"_dmarc.{where}"
    if record is not None and record.rua:
        return RecordCheck("dmarc_rua", name, True, "", "rua=" + ",".join(record.rua),
                           required=False)
    return RecordCheck(
        "dmarc_rua", name, False, "",
        f"no rua=: add rua=mailto:dmarc-reports@{where} to receive aggregate reports "
        "(recommended; Japanese carriers look for it)", required=False,
    )


async def _mail_host(auth: AuthPolicy, domain: str, *, required: bool) -> RecordCheck:
    """Somewhere to deliver mail for `domain`: an MX, or an A/AAAA as the implicit MX (RFC 5321
    §5.1). Bounces go to the envelope domain, and receivers that check the sender's domain
    refuse one that takes no mail; Japanese carriers also look for an MX on the From domain
    (legal.md §2.4), so there it is advice unless it is an envelope domain too."""
    why = "" if required else " (recommended for Japanese carriers)"
    try:
        hosts = (await auth.dns.lookup(domain, "MX")).mx()
        if hosts and all(host in ("", ".") for _, host in hosts):
            return RecordCheck("mx", domain, False, "", "null MX (RFC 7505): the domain takes "
                               f"no mail, so bounces and replies to it are lost{why}", required)
        if hosts:
            names = ", ".join(host for _, host in sorted(hosts))
            return RecordCheck("mx", domain, True, "", f"MX {names}", required)
        for rdtype in ("A", "AAAA"):
            found = (await auth.dns.lookup(domain, rdtype)).addresses()
            if found:
                return RecordCheck("mx", domain, True, "",
                                   f"no MX; {rdtype} {found[0]} takes its place (RFC 5321 §5.1)",
                                   required)
    except LookupTempError as exc:
        return RecordCheck("mx", domain, False, "", f"DNS failing: {exc}", required)
    return RecordCheck("mx", domain, False, "", "neither MX nor A/AAAA: publish an MX naming "
                       f"the host that receives this domain's mail{why}", required)


async def _reverse_dns(auth: AuthPolicy, ip: str) -> RecordCheck:
    """Forward-confirmed reverse DNS of an egress address: its PTR names a host whose A/AAAA
    is the address again. Gmail and Yahoo require it of every sender (legal.md §2.1-2.2);
    the PTR is published by whoever holds the address block, often the hosting provider."""
    name = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
    rdtype = "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"
    try:
        hosts = (await auth.dns.lookup(name, "PTR")).ptr()
        for host in hosts:
            back = (await auth.dns.lookup(host, rdtype)).addresses()
            if any(ipaddress.ip_address(a) == ipaddress.ip_address(ip) for a in back):
                return RecordCheck("ptr", ip, True, "", f"PTR {host}, whose {rdtype} is {ip}")
    except LookupTempError as exc:
        return RecordCheck("ptr", ip, False, "", f"DNS failing: {exc}")
    if not hosts:
        return RecordCheck("ptr", ip, False, "", f"no PTR at {name}: ask whoever holds the "
                           "address (the hosting provider) for one naming a host of yours")
    return RecordCheck("ptr", ip, False, "", f"PTR {', '.join(hosts)}, but no {rdtype} of it "
                       f"is {ip} (forward-confirmed reverse DNS fails)")


async def check_sender(auth: AuthPolicy, sender: SenderConfig) -> SenderCheck:
    result = SenderCheck(sender.id)
    envelope = set(sender.envelope_domains) or set(sender.domains)
    for domain in dict.fromkeys((*sender.envelope_domains, *sender.domains)):
        # Receivers check SPF on the envelope domain; Japanese carriers also look at the
        # From domain (legal.md §2.4), so that one is advice unless it is an envelope domain.
        required = domain in envelope
        try:
            spf = await auth.spf.evaluate_all(sender.egress_ips, domain, auth.helo)
        except LookupTempError as exc:
            result.records.append(
                RecordCheck("spf", domain, False, "", f"DNS failing: {exc}", required)
            )
            continue
        bad = [r for r in spf if not r.passed]
        detail = "; ".join(f"{r.ip}: {r.verdict.value}" for r in spf) or "no egress_ips configured"
        result.records.append(
            RecordCheck(
                "spf",
                domain,
                bool(spf) and not bad,
                _spf_suggestion(sender.egress_ips) if bad or not spf else "",
                detail if required else f"{detail} (recommended for Japanese carriers)",
                required,
            )
        )
    for domain in dict.fromkeys((*sender.envelope_domains, *sender.domains)):
        result.records.append(await _mail_host(auth, domain, required=domain in envelope))
    for ip in sender.egress_ips:
        result.records.append(await _reverse_dns(auth, ip))
    for key in auth.signer.active_keys(signing_domain(sender)):
        pub = await published_key_matches(auth.dns, key.selector, key.domain, key)
        result.records.append(RecordCheck("dkim", pub.name, pub.ok, pub.expected, pub.detail))
    for domain in sender.domains:
        name = f"_dmarc.{domain}"
        try:
            dmarc = await discover(auth.dns, domain)
        except LookupTempError as exc:
            result.records.append(RecordCheck("dmarc", name, False, "", f"DNS failing: {exc}"))
            continue
        suggestion = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"
        if dmarc.status is DmarcStatus.FOUND:
            where = dmarc.record_domain or domain
            note = "; ".join(dmarc.warnings)
            result.records.append(
                RecordCheck(
                    "dmarc",
                    f"_dmarc.{where}",
                    True,
                    "",
                    f"p={dmarc.policy.value if dmarc.policy else '?'}"
                    + (f"; {note}" if note else ""),
                )
            )
            result.records.append(_aggregate_reports(dmarc.record, where))
        else:
            result.records.append(
                RecordCheck("dmarc", name, False, suggestion, dmarc.error or dmarc.status.value)
            )
    return result
