"""Unsubscribe links: the token codec (RFC 8058 URLs) and opt-out recording."""

from __future__ import annotations

from gateway.unsubscribe.service import record_optout
from gateway.unsubscribe.tokens import InvalidToken, TokenCodec, generate_secret_file

__all__ = ["InvalidToken", "TokenCodec", "generate_secret_file", "record_optout"]
