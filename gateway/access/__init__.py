"""Who may do what over HTTP: API tokens, roles, UI sessions with CSRF, throttling, audit reads."""

from __future__ import annotations

from gateway.access.roles import ROLE_PERMISSIONS, Permission, Principal, Role
from gateway.access.tokens import TokenError, authenticate, create_token, list_tokens, revoke_token

__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "Role",
    "TokenError",
    "authenticate",
    "create_token",
    "list_tokens",
    "revoke_token",
]
