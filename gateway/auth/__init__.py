"""Sender authentication before sending: one DNS cache, SPF, DMARC alignment, DKIM signing."""

from gateway.auth.dkim_sign import (
    DkimKey,
    DkimMessageError,
    DkimSigner,
    SigningKeyError,
    generate_key,
    load_key,
    public_key_record,
    published_key_matches,
    verify_existing,
)
from gateway.auth.dmarc import DmarcResult, DmarcStatus, discover, dkim_aligned, spf_aligned
from gateway.auth.dns import DnsCache, DnsConfig, DnsTempError
from gateway.auth.spf import SpfEvaluator, SpfResult, SpfVerdict

__all__ = [
    "DkimKey",
    "DkimMessageError",
    "DkimSigner",
    "DmarcResult",
    "DmarcStatus",
    "DnsCache",
    "DnsConfig",
    "DnsTempError",
    "SigningKeyError",
    "SpfEvaluator",
    "SpfResult",
    "SpfVerdict",
    "discover",
    "dkim_aligned",
    "generate_key",
    "load_key",
    "public_key_record",
    "published_key_matches",
    "spf_aligned",
    "verify_existing",
]
