"""create_app(gateway): the Starlette application (health, metrics, unsubscribe, API, UI).

Starlette rather than FastAPI or aiohttp: it is the small ASGI core (routing, forms,
templates, test client) with strict typing, it runs on uvicorn inside the gateway's own
event loop next to aiosmtpd, and there is no dependency-injection or model layer to learn;
the OpenAPI document is written by hand and checked against the routes by a test.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access.throttle import FailureThrottle
from gateway.errors import StoreUnavailable
from gateway.unsubscribe.tokens import TokenCodec
from gateway.web import api, api_suppressions, ui, unsubscribe
from gateway.web.auth import ApiError, UiError
from gateway.web.context import PreflightFn, WebContext, ctx_of, make_templates
from gateway.web.metrics import CONTENT_TYPE_LATEST, Metrics

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)

__all__ = ["create_app"]

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # /u/TOKEN pages must not leak the token to other sites through Referer
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
]


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def healthz(request: Request) -> Response:
    ctx = ctx_of(request)
    try:
        await ctx.store.fetch("SELECT 1 AS ok")
    except (StoreUnavailable, Exception) as exc:  # any failure to answer is "not healthy"
        return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok", "draining": bool(getattr(ctx.gateway, "draining",
                                                                      False))})


async def metrics(request: Request) -> Response:
    return Response(ctx_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def root(request: Request) -> Response:
    return RedirectResponse("/ui/", 303)


def _wants_html(request: Request) -> bool:
    return request.url.path.startswith("/ui")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if _wants_html(request):
        return _error_page(request, exc.status, exc.detail, exc.detail)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _ui_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiError)
    return _error_page(request, exc.status, exc.message_ja, exc.message_en)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _wants_html(request):
        page = _error_page(request, exc.status_code, "エラー", str(exc.detail))
    else:
        page = JSONResponse({"error": "http", "detail": str(exc.detail)},
                            status_code=exc.status_code)
    # The exception's own headers, e.g. the Allow of a 405 (RFC 9110 15.5.6 requires it).
    page.headers.update(exc.headers or {})
    return page


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("store unavailable during HTTP request", extra={"fields": {"error": str(exc)}})
    if _wants_html(request):
        return _error_page(request, 503, "データストアに接続できません。",
                           "The store is unavailable; try again later.")
    return JSONResponse({"error": "unavailable", "detail": "the store is unavailable"},
                        status_code=503)


def _error_page(request: Request, status: int, ja: str, en: str) -> Response:
    return ctx_of(request).templates.TemplateResponse(
        request, "error.html", {"status": status, "message_ja": ja, "message_en": en,
                                "session": None, "nav": [], "csrf": "", "active": ""},
        status_code=status)


def load_codec(gateway: Gateway) -> TokenCodec | None:
    path = gateway.config.policy.unsubscribe_secret_file
    return TokenCodec.from_file(path) if path else None


def create_app(
    gateway: Gateway,
    *,
    metrics_: Metrics | None = None,
    codec: TokenCodec | None = None,
    throttle: FailureThrottle | None = None,
    preflight: PreflightFn | None = None,
) -> Starlette:
    """The HTTP app of one gateway; `metrics_` should be the registry the SMTP side updates.

    The unsubscribe codec is read from [policy] unsubscribe_secret_file unless given
    (raises SecretFileError naming the file when it is unusable).
    """
    ctx = WebContext(
        gateway=gateway,
        config=gateway.config,
        store=gateway.store,
        metrics=metrics_ if metrics_ is not None else getattr(gateway, "metrics", None)
        or Metrics(),
        codec=codec if codec is not None else load_codec(gateway),
        throttle=throttle or FailureThrottle(limit=gateway.config.http.auth_failure_limit,
                                             window=gateway.config.http.auth_failure_window),
        templates=make_templates(),
        preflight_fn=preflight,
    )
    routes = [
        Route("/", root, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *unsubscribe.routes,
        *api.routes,
        *api_suppressions.routes,
        *ui.routes,
        Mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")),
              name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            UiError: _ui_error,
            HTTPException: _http_error,
            StoreUnavailable: _store_error,
        },
        middleware=[Middleware(SecurityHeaders)],
    )
    app.state.ctx = ctx
    return app
