"""Checks: small pure predicates over gathered facts, registered by name (one module per family)."""

from gateway.checks import auth, consent, envelope, footer, message, reputation

__all__ = ["auth", "consent", "envelope", "footer", "message", "reputation"]
