"""Roles and the permissions each grants: every person gets what the job needs, no more."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    MARKETER = "marketer"  # may this address be mailed? consent ingest/import, preflight
    OPS = "ops"  # why was mail refused? events (addresses masked), dashboard, hard bounces
    APPROVER = "approver"  # the second pair of eyes on consent imports
    AUDITOR = "auditor"  # the DPO: audit trail, reports, consent export, revealing addresses
    ADMIN = "admin"  # manages tokens; can mint any role, so it holds every permission


class Permission(StrEnum):
    EVENTS_READ = "events.read"
    EVENTS_REVEAL = "events.reveal"  # see recipient addresses unmasked (audited, with reason)
    CONSENT_LOOKUP = "consent.lookup"
    CONSENT_INGEST = "consent.ingest"
    CONSENT_EXPORT = "consent.export"
    CONSENT_ERASE = "consent.erase"  # an erasure request: the address goes, its refusal stays
    BATCHES_READ = "batches.read"
    BATCHES_IMPORT = "batches.import"
    BATCHES_APPROVE = "batches.approve"
    PREFLIGHT = "preflight"
    AUDIT_READ = "audit.read"
    REPORT_READ = "report.read"
    TOKENS_MANAGE = "tokens.manage"
    SUPPRESSIONS_READ = "suppressions.read"  # hard bounces: list (masked unless asked by address)
    SUPPRESSIONS_MANAGE = "suppressions.manage"  # add one by hand, clear a wrong one
    REPUTATION_READ = "reputation.read"  # senders' complaint rates, auth refusals (counts only)


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.MARKETER: frozenset({
        Permission.CONSENT_LOOKUP, Permission.CONSENT_INGEST, Permission.BATCHES_READ,
        Permission.BATCHES_IMPORT, Permission.PREFLIGHT, Permission.REPUTATION_READ,
    }),
    Role.OPS: frozenset({Permission.EVENTS_READ, Permission.SUPPRESSIONS_READ,
                         Permission.SUPPRESSIONS_MANAGE, Permission.REPUTATION_READ}),
    Role.APPROVER: frozenset({Permission.BATCHES_READ, Permission.BATCHES_APPROVE}),
    Role.AUDITOR: frozenset({
        Permission.AUDIT_READ, Permission.REPORT_READ, Permission.CONSENT_EXPORT,
        Permission.EVENTS_READ, Permission.EVENTS_REVEAL, Permission.CONSENT_ERASE,
        Permission.REPUTATION_READ,
    }),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the token's id, name (the audit actor) and role."""

    token_id: str
    name: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return self.name
