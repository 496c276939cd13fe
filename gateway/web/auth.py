"""Request authentication: bearer tokens for the API, session cookies + CSRF for the UI."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.access.roles import Permission, Principal
from gateway.access.sessions import SESSION_COOKIE, Session, csrf_ok, load_session
from gateway.access.tokens import authenticate
from gateway.web.context import client_ip, ctx_of
from gateway.web.openapi import query_names

ApiHandler = Callable[[Request, Principal], Awaitable[Response]]
UiHandler = Callable[[Request, Session], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An API refusal, rendered as JSON {"error", "detail", "field"?} with its status."""

    def __init__(self, status: int, error: str, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        return out


class UiError(Exception):
    """A UI refusal, rendered as the bilingual error page."""

    def __init__(self, status: int, message_ja: str, message_en: str) -> None:
        super().__init__(message_en)
        self.status = status
        self.message_ja = message_ja
        self.message_en = message_en


def _throttled(request: Request) -> ApiError | None:
    ctx = ctx_of(request)
    ip = client_ip(request)
    if ctx.throttle.blocked(ip):
        return ApiError(429, "throttled", "too many failed authentication attempts",
                        headers={"Retry-After": str(ctx.throttle.retry_after(ip))})
    return None


async def bearer_principal(request: Request) -> Principal:
    """The caller of an API request, or ApiError 401/429."""
    ctx = ctx_of(request)
    throttled = _throttled(request)
    if throttled is not None:
        raise throttled
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="tokuden"'}
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "a bearer token is required", headers=challenge)
    principal = await authenticate(ctx.store, secret.strip())
    if principal is None:
        ctx.throttle.failure(client_ip(request))
        ctx.metrics.http_auth_failures.inc()
        raise ApiError(
            401, "invalid_token", "the token is unknown, expired or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="tokuden", error="invalid_token"'})
    return principal


def api(permission: Permission | None) -> Callable[[ApiHandler], Endpoint]:
    """Decorate an API handler: authenticate, then require `permission` (None: any valid token)."""

    def wrap(handler: ApiHandler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            principal = await bearer_principal(request)
            if permission is not None and not principal.can(permission):
                raise ApiError(403, "forbidden",
                               f"role {principal.role.value} lacks permission {permission.value}")
            _refuse_unknown_query(request)
            return await handler(request, principal)

        return endpoint

    return wrap


def _refuse_unknown_query(request: Request) -> None:
    # A misspelt filter (?verdcit=rejected) would otherwise be ignored and the answer look
    # like a result for the filter: refuse what the operation does not take, naming it.
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    known = query_names(route.path, method) if route is not None else None
    if known is None:
        return
    given = request.query_params
    unknown = sorted(set(given) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise ApiError(422, "invalid",
                       f"unknown query parameter {unknown[0]!r} (this operation takes: {takes})",
                       field=unknown[0])
    repeated = sorted(name for name in given if len(given.getlist(name)) > 1)
    if repeated:  # which of the values would count is a guess the caller should not rely on
        raise ApiError(422, "invalid", f"query parameter {repeated[0]!r} is given more than once",
                       field=repeated[0])


def ui(permission: Permission | None, *, csrf: bool = True) -> Callable[[UiHandler], Endpoint]:
    """Decorate a UI handler: a live session (else to the login page), the permission, and a
    valid CSRF token on every unsafe method."""

    def wrap(handler: UiHandler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            ctx = ctx_of(request)
            session = await load_session(ctx.store, request.cookies.get(SESSION_COOKIE, ""))
            if session is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = "/ui/"
                return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
            if request.method not in ("GET", "HEAD") and csrf:
                form = await request.form()
                given = form.get("csrf")
                if not csrf_ok(session.csrf, given if isinstance(given, str) else None):
                    raise UiError(403, "フォームの有効期限が切れたか、不正な送信です。",
                                  "The form is stale or was not sent by this site (CSRF check).")
            if permission is not None and not session.principal.can(permission):
                raise UiError(403, "この操作の権限がありません。",
                              f"Your role ({session.principal.role.value}) may not do this.")
            return await handler(request, session)

        return endpoint

    return wrap
