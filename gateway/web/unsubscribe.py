"""/u/TOKEN: RFC 8058 one-click POST, and the confirmation page a person sees on GET.

No login, no cookies. A GET only shows a page: link scanners follow GETs. A POST with
`List-Unsubscribe=One-Click` (urlencoded or multipart, RFC 8058 §3.1) records the opt-out
at once; the confirmation page's button POSTs `confirm=yes`. Unauthentic tokens get a 400
page and nothing is recorded.
"""

from __future__ import annotations

import logging

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.consent.model import ConsentMethod
from gateway.errors import StoreUnavailable
from gateway.unsubscribe.service import record_optout
from gateway.unsubscribe.tokens import InvalidToken
from gateway.web.context import client_ip, ctx_of

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store"}


def _page(request: Request, name: str, status: int, **context: object) -> Response:
    ctx = ctx_of(request)
    return ctx.templates.TemplateResponse(request, name, context, status_code=status,
                                          headers=_NO_STORE)


def _invalid(request: Request, reason: str) -> Response:
    log.info("unsubscribe token refused", extra={"fields": {"reason": reason,
                                                            "client_ip": client_ip(request)}})
    return _page(request, "unsub_invalid.html", 400)


async def unsubscribe_get(request: Request) -> Response:
    ctx = ctx_of(request)
    if ctx.codec is None:
        return _page(request, "unsub_unavailable.html", 503)
    token = request.path_params["token"]
    try:
        sender_id, _key = ctx.codec.decode(token)
    except InvalidToken as exc:
        return _invalid(request, exc.reason)
    sender = ctx.sender(sender_id)
    return _page(request, "unsub_confirm.html", 200, token=token,
                 sender_name=sender.name if sender and sender.name else sender_id)


async def _form(request: Request) -> FormData | None:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return None
    try:
        return await request.form(max_files=0, max_fields=20, max_part_size=MAX_BODY)
    except Exception:  # malformed multipart / urlencoded bodies: a 400, never a 500
        return None


async def unsubscribe_post(request: Request) -> Response:
    ctx = ctx_of(request)
    if ctx.codec is None:
        return _page(request, "unsub_unavailable.html", 503)
    token = request.path_params["token"]
    try:
        sender_id, key = ctx.codec.decode(token)
    except InvalidToken as exc:
        return _invalid(request, exc.reason)
    form = await _form(request)
    if form is None:
        return _page(request, "unsub_invalid.html", 400)
    if form.get("List-Unsubscribe") == "One-Click":
        method = ConsentMethod.ONE_CLICK
    elif form.get("confirm") == "yes":
        method = ConsentMethod.UNSUBSCRIBE_PAGE
    else:
        return _page(request, "unsub_invalid.html", 400)
    try:
        await record_optout(ctx.store, sender_id, key, method, client_ip(request) or None,
                            request.headers.get("user-agent"))
    except StoreUnavailable as exc:
        # 5xx: mailbox providers retry a one-click POST that did not succeed
        log.error("opt-out not recorded", extra={"fields": {"error": str(exc)}})
        return _page(request, "unsub_unavailable.html", 503)
    ctx.metrics.unsubscribe(method.value)
    sender = ctx.sender(sender_id)
    return _page(request, "unsub_done.html", 200,
                 sender_name=sender.name if sender and sender.name else sender_id)


routes = [
    Route("/u/{token}", unsubscribe_get, methods=["GET", "HEAD"]),
    Route("/u/{token}", unsubscribe_post, methods=["POST"]),
]
