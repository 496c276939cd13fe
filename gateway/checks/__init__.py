"""Checks: small pure predicates over gathered facts, registered by name (one module per family)."""

from gateway.checks import consent, envelope, message

__all__ = ["consent", "envelope", "message"]
