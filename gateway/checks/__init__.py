"""Checks: small pure predicates over gathered facts, registered by name (one module per family)."""

from gateway.checks import envelope, message

__all__ = ["envelope", "message"]
