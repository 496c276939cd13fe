"""Checks: small pure predicates over gathered facts, registered by name (one module per family)."""

from gateway.checks import consent, envelope, footer, message

__all__ = ["consent", "envelope", "footer", "message"]
