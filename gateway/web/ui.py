"""/ui/: the server-rendered web UI (Japanese and English), over the API's service functions."""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.access.audit import (
    AuditFilter,
    describe,
    mask_event,
    mask_suppression,
    query_audit,
)
from gateway.access.report import DEFAULT_TZ, compliance_report, report_csv
from gateway.access.roles import Permission
from gateway.access.sessions import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    Session,
    create_session,
    csrf_ok,
    delete_session,
)
from gateway.access.tokens import authenticate
from gateway.consent import service, suppression
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.store.base import EventFilter
from gateway.volume import standings
from gateway.web import api
from gateway.web.auth import ApiError, UiError, ui
from gateway.web.charts import daily_counts, refusal_chart, rule_colors, totals
from gateway.web.context import DISPLAY_TZ, client_ip, ctx_of

LOGIN_CSRF_COOKIE = "tokuden_login_csrf"
NAV = (
    ("dashboard", "/ui/dashboard", "ダッシュボード", "Dashboard", Permission.EVENTS_READ),
    ("events", "/ui/events", "拒否ログ", "Rejection log", Permission.EVENTS_READ),
    ("consents", "/ui/consents", "オプトイン照会", "Opt-in lookup", Permission.CONSENT_LOOKUP),
    ("batches", "/ui/batches", "インポート承認", "Import approvals", Permission.BATCHES_READ),
    ("suppressions", "/ui/suppressions", "宛先の停止", "Suppressions",
     Permission.SUPPRESSIONS_READ),
    ("preflight", "/ui/preflight", "送信前チェック", "Preflight", Permission.PREFLIGHT),
    ("report", "/ui/report", "月次レポート", "Monthly report", Permission.REPORT_READ),
    ("audit", "/ui/audit", "監査ログ", "Audit trail", Permission.AUDIT_READ),
)


def render(request: Request, session: Session | None, name: str, status: int = 200,
           **context: Any) -> Response:
    ctx = ctx_of(request)
    nav = [] if session is None else [
        {"id": i, "href": h, "ja": ja, "en": en}
        for i, h, ja, en, perm in NAV if session.principal.can(perm)
    ]
    base = {"session": session, "nav": nav, "csrf": session.csrf if session else "",
            "active": context.pop("active", ""), "senders": ctx.config.senders}
    return ctx.templates.TemplateResponse(request, name, {**base, **context}, status_code=status,
                                          headers={"Cache-Control": "no-store"})


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return "/ui/"


# -- login ------------------------------------------------------------------------------------

async def login_form(request: Request, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, None, "login.html", status, login_csrf=token, error=error,
                      next=_safe_next(request.query_params.get("next")))
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=1800, path="/ui/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


async def login_page(request: Request) -> Response:
    return await login_form(request)


async def login_submit(request: Request) -> Response:
    ctx = ctx_of(request)
    ip = client_ip(request)
    if ctx.throttle.blocked(ip):
        return await login_form(request, "試行回数が多すぎます。しばらく待ってください。 / "
                                         "Too many failed attempts; try again later.", 429)
    form = await request.form()
    given = form.get("login_csrf")
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""),
                   given if isinstance(given, str) else None):
        return await login_form(request, "フォームの有効期限が切れました。もう一度どうぞ。 / "
                                         "The form expired; please try again.", 403)
    secret = form.get("token")
    principal = await authenticate(ctx.store, secret.strip()) if isinstance(secret, str) else None
    if principal is None:
        ctx.throttle.failure(ip)
        ctx.metrics.http_auth_failures.inc()
        return await login_form(request, "トークンが無効か、期限切れか、失効しています。 / "
                                         "The token is unknown, expired or revoked.", 401)
    cookie, _session = await create_session(ctx.store, principal)
    nxt = form.get("next")
    response = RedirectResponse(_safe_next(nxt if isinstance(nxt, str) else None), 303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(SESSION_LIFETIME), path="/ui/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/")
    return response


@ui(None)
async def logout(request: Request, session: Session) -> Response:
    await delete_session(ctx_of(request).store, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/ui/")
    return response


@ui(None)
async def home(request: Request, session: Session) -> Response:
    for _id, href, _ja, _en, perm in NAV:
        if session.principal.can(perm):
            return RedirectResponse(href, 303)
    return render(request, session, "home.html")


# -- events -----------------------------------------------------------------------------------

def _day_bound(value: str | None, name: str, end: bool) -> str | None:
    """A date input (YYYY-MM-DD, Japan time) as an ISO bound; the end day is inclusive."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=DISPLAY_TZ)
    except ValueError:
        raise UiError(400, f"{name} の日付が不正です。", f"{name} is not a date") from None
    return str(day.timestamp() + (86400 if end else 0))


_EVENT_FIELDS = ("verdict", "phase", "rule", "client", "sender", "recipient", "from", "to")


def _event_filter(params: dict[str, str], limit: int) -> EventFilter:
    """The log page's form fields (dates in Japan time) as the API's event filter."""
    return api.event_filter({
        "verdict": params.get("verdict", ""), "phase": params.get("phase", ""),
        "rule": params.get("rule", "").strip(), "client": params.get("client", "").strip(),
        "sender": params.get("sender", ""), "recipient": params.get("recipient", "").strip(),
        "before_id": params.get("before_id", ""),
        "since": _day_bound(params.get("from"), "from", False) or "",
        "until": _day_bound(params.get("to"), "to", True) or "", "limit": str(limit),
    }, limit=limit)


@ui(Permission.EVENTS_READ)
async def events_page(request: Request, session: Session) -> Response:
    ctx = ctx_of(request)
    q = request.query_params
    params = {k: q.get(k, "") for k in (*_EVENT_FIELDS, "before_id")}
    if "verdict" not in q:
        params["verdict"] = "rejected"  # the rejection log by default
    flt = _event_filter(params, limit=50)
    if flt.recipient:
        await service.audit(ctx.store, session.principal.actor, "events.search",
                            f"recipient={flt.recipient}")
    rows = [mask_event(r) for r in await ctx.store.query_events(flt)]
    next_link = None
    if len(rows) == flt.limit:
        next_link = "/ui/events?" + urlencode({**params, "before_id": rows[-1]["id"]})
    rules = sorted({r.id for r in ctx.gateway.rules.rules})
    csv_params = {k: v for k, v in params.items() if k != "before_id"}
    return render(request, session, "events.html", active="events", events=rows,
                  params=params, next_link=next_link, rules=rules,
                  csv_link="/ui/events.csv?" + urlencode(csv_params))


@ui(Permission.EVENTS_READ)
async def events_csv(request: Request, session: Session) -> Response:
    """Every event matching the page's filters, masked, as CSV (audited as an export)."""
    q = request.query_params
    flt = _event_filter({k: q.get(k, "") for k in _EVENT_FIELDS}, limit=100)
    await service.audit(ctx_of(request).store, session.principal.actor, "events.export",
                        describe(flt))
    return StreamingResponse(api.events_csv(request, flt, False), media_type="text/csv",
                             headers={"Content-Disposition": 'attachment; filename="events.csv"'})


async def _event_page(request: Request, session: Session, reveal_reason: str | None
                      ) -> Response:
    ctx = ctx_of(request)
    event_id = int(request.path_params["event_id"])
    row = await api.load_event(request, event_id)
    if reveal_reason is not None:
        if not session.principal.can(Permission.EVENTS_REVEAL):
            raise UiError(403, "アドレスを表示する権限がありません。",
                          "Your role may not reveal addresses.")
        if not reveal_reason.strip():
            raise UiError(400, "理由を入力してください。", "A reason is required.")
        await service.audit(ctx.store, session.principal.actor, "events.reveal",
                            f"event {event_id}", reveal_reason.strip())
        shown = dict(row, masked=False)
    else:
        shown = mask_event(row)
    return render(request, session, "event.html", active="events", event=shown,
                  can_reveal=session.principal.can(Permission.EVENTS_REVEAL))


@ui(Permission.EVENTS_READ)
async def event_page(request: Request, session: Session) -> Response:
    return await _event_page(request, session, None)


@ui(Permission.EVENTS_READ)
async def event_reveal(request: Request, session: Session) -> Response:
    form = await request.form()
    reason = form.get("reason")
    return await _event_page(request, session, reason if isinstance(reason, str) else "")


@ui(Permission.EVENTS_READ)
async def dashboard(request: Request, session: Session) -> Response:
    days = int(request.query_params.get("days", "14") or 14)
    days = max(1, min(days, 90))
    ctx = ctx_of(request)
    counts = await daily_counts(ctx.store, days)
    colors = rule_colors(counts)
    senders = await standings(ctx.store, ctx.gateway.rules, ctx.config.senders,
                              monitor=ctx.config.policy.mode == "monitor")
    return render(request, session, "dashboard.html", active="dashboard", days=days,
                  chart=refusal_chart(counts, colors), colors=colors, totals=totals(counts),
                  counts=counts, senders=senders)


# -- consent lookup -----------------------------------------------------------------------------

@ui(Permission.CONSENT_LOOKUP)
async def consent_form(request: Request, session: Session) -> Response:
    return render(request, session, "consents.html", active="consents", result=None,
                  form={"sender": "", "address": "", "reason": ""}, error="")


@ui(Permission.CONSENT_LOOKUP)
async def consent_lookup(request: Request, session: Session) -> Response:
    ctx = ctx_of(request)
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("sender", "address", "reason")}
    sender = ctx.sender(values["sender"])
    error = ""
    result = None
    if sender is None:
        error = "送信者を選んでください。 / Choose a sender identity."
    elif not values["address"]:
        error = "アドレスを入力してください。 / Enter an address."
    else:
        try:
            found = await service.lookup(ctx.store, sender, values["address"],
                                         actor=session.principal.actor, reason=values["reason"])
            result = found.to_dict()
        except InvalidAddress as exc:
            error = f"アドレスが不正です / Invalid address: {exc.reason}"
    return render(request, session, "consents.html", status=200 if not error else 422,
                  active="consents", result=result, form=values, error=error)


# -- suppressions -------------------------------------------------------------------------------

async def _suppressions(request: Request, session: Session, message: str = "", error: str = "",
                        status: int = 200, form: dict[str, str] | None = None) -> Response:
    store = ctx_of(request).store
    found = await suppression.listing(store, limit=200)
    await service.audit(store, session.principal.actor, "suppression.list", "(all)", "web UI")
    return render(request, session, "suppressions.html", status, active="suppressions",
                  entries=[mask_suppression(e.to_dict()) for e in found], message=message,
                  error=error, form=form or {"address": "", "reason": ""},
                  can_clear=session.principal.can(Permission.SUPPRESSIONS_MANAGE))


@ui(Permission.SUPPRESSIONS_READ)
async def suppressions_page(request: Request, session: Session) -> Response:
    return await _suppressions(request, session)


@ui(Permission.SUPPRESSIONS_MANAGE)
async def suppression_clear(request: Request, session: Session) -> Response:
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("address", "reason")}
    if not values["address"] or not values["reason"]:
        return await _suppressions(request, session, status=422, form=values,
                                   error="アドレスと理由を入力してください。 / Enter the address "
                                         "and the reason.")
    try:
        key = suppression_key(normalize_address(values["address"]))
    except InvalidAddress as exc:
        return await _suppressions(request, session, status=422, form=values,
                                   error=f"アドレスが不正です / Invalid address: {exc.reason}")
    cleared = await suppression.clear(ctx_of(request).store, key, session.principal.actor,
                                      values["reason"])
    if not cleared:
        return await _suppressions(request, session, status=404, form=values,
                                   error="この宛先は停止されていません。 / No suppression in "
                                         "force for this address.")
    return await _suppressions(request, session, message=f"解除しました / Cleared: {key}")


@ui(Permission.SUPPRESSIONS_MANAGE)
async def suppression_clear_since(request: Request, session: Session) -> Response:
    """Every hard bounce since a moment (Japan time): an upstream that went wrong."""
    form = await request.form()
    since, reason = (str(form.get(k) or "").strip() for k in ("since", "reason"))
    try:  # a datetime-local field: minutes, or seconds where the browser offers them
        moment = datetime.fromisoformat(since).replace(tzinfo=DISPLAY_TZ) if since else None
    except ValueError:
        moment = None
    if moment is None or not reason:
        return await _suppressions(request, session, status=422,
                                   error="日時と理由を入力してください。 / Enter the moment and "
                                         "the reason.")
    cleared = await suppression.clear_hard_bounces_since(
        ctx_of(request).store, moment.timestamp(), session.principal.actor, reason)
    return await _suppressions(request, session, message=(
        f"{since.replace('T', ' ')} 以降の宛先不明を {cleared} 件解除しました / Cleared "
        f"{cleared} hard bounce(s) recorded since {since.replace('T', ' ')} (Japan time)"))


# -- import batches ------------------------------------------------------------------------------

async def _batches(request: Request, session: Session, message: str = "", error: str = "",
                   status: int = 200) -> Response:
    store = ctx_of(request).store
    pending = await service.list_batches(store, "pending")
    recent = [b for b in await service.list_batches(store) if b["status"] != "pending"][:20]
    return render(request, session, "batches.html", status, active="batches", pending=pending,
                  recent=recent, message=message, error=error,
                  can_approve=session.principal.can(Permission.BATCHES_APPROVE),
                  can_import=session.principal.can(Permission.BATCHES_IMPORT))


@ui(Permission.BATCHES_READ)
async def batches_page(request: Request, session: Session) -> Response:
    return await _batches(request, session)


@ui(Permission.BATCHES_APPROVE)
async def batch_approve(request: Request, session: Session) -> Response:
    batch_id = request.path_params["batch_id"]
    try:
        await api.approve(request, batch_id, session.principal.actor)
    except ApiError as exc:
        return await _batches(request, session, error=exc.detail, status=exc.status)
    return await _batches(request, session, message=f"承認しました / Approved: {batch_id}")


@ui(Permission.BATCHES_IMPORT)
async def batch_discard(request: Request, session: Session) -> Response:
    batch_id = request.path_params["batch_id"]
    try:
        removed = await api.discard(request, batch_id, session.principal.actor)
    except ApiError as exc:
        return await _batches(request, session, error=exc.detail, status=exc.status)
    return await _batches(request, session, message=f"破棄しました / Discarded: {batch_id} "
                                                    f"({removed} 行 / rows)")


@ui(Permission.BATCHES_IMPORT)
async def batch_import(request: Request, session: Session) -> Response:
    ctx = ctx_of(request)
    form = await request.form(max_files=1)
    sender = ctx.sender(str(form.get("sender") or ""))
    upload = form.get("file")
    if sender is None or not isinstance(upload, UploadFile) or not upload.filename:
        return await _batches(request, session, error="送信者とファイルを指定してください。 / "
                                                      "Choose a sender and a file.", status=422)
    result = await api.run_import(request, sender, upload, session.principal.actor, None)
    if result.state == "failed":
        return await _batches(request, session, status=422,
                              error=f"インポート失敗 / Import failed: {result.report.summary()}")
    return await _batches(request, session, message=f"{result.batch_id}: {result.state} "
                                                    f"({result.grants} grants, "
                                                    f"{result.optouts} opt-outs)")


# -- preflight ------------------------------------------------------------------------------------

@ui(Permission.PREFLIGHT)
async def preflight_form(request: Request, session: Session) -> Response:
    return render(request, session, "preflight.html", active="preflight", report=None, error="",
                  filename="")


@ui(Permission.PREFLIGHT)
async def preflight_run(request: Request, session: Session) -> Response:
    ctx = ctx_of(request)
    limit = ctx.config.server.max_message_size
    form = await request.form(max_files=1, max_part_size=limit)
    sender = ctx.sender(str(form.get("sender") or ""))
    upload = form.get("file")
    if sender is None or not isinstance(upload, UploadFile):
        return render(request, session, "preflight.html", 422, active="preflight", report=None,
                      filename="", error="送信者と .eml ファイルを指定してください。 / "
                                         "Choose a sender and an .eml file.")
    raw = await upload.read(limit + 1)
    if not raw or len(raw) > limit:
        return render(request, session, "preflight.html", 422, active="preflight", report=None,
                      filename=upload.filename or "",
                      error=f"ファイルが空か大きすぎます / Empty or larger than {limit} bytes.")
    report = ctx.preflight(sender, raw)
    return render(request, session, "preflight.html", active="preflight", report=report,
                  error="", filename=upload.filename or "")


# -- report, audit ---------------------------------------------------------------------------------

def _month(request: Request) -> str:
    month = request.query_params.get("month")
    return month or datetime.now(DISPLAY_TZ).strftime("%Y-%m")


@ui(Permission.REPORT_READ)
async def report_page(request: Request, session: Session) -> Response:
    month = _month(request)
    try:
        figures = await compliance_report(ctx_of(request).store, month, DEFAULT_TZ)
    except ValueError as exc:
        raise UiError(400, "月の形式は YYYY-MM です。", str(exc)) from None
    return render(request, session, "report.html", active="report", month=month, r=figures)


@ui(Permission.REPORT_READ)
async def report_csv_download(request: Request, session: Session) -> Response:
    month = _month(request)
    try:
        figures = await compliance_report(ctx_of(request).store, month, DEFAULT_TZ)
    except ValueError as exc:
        raise UiError(400, "月の形式は YYYY-MM です。", str(exc)) from None
    return Response(report_csv(figures).encode("utf-8"), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="compliance-{month}.csv"'})


@ui(Permission.AUDIT_READ)
async def audit_page(request: Request, session: Session) -> Response:
    q = request.query_params
    before = q.get("before_id")
    flt = AuditFilter(actor=q.get("actor") or None, action=q.get("action") or None,
                      before_id=int(before) if before and before.isdigit() else None, limit=100)
    rows = await query_audit(ctx_of(request).store, flt)
    next_link = None
    if len(rows) == flt.limit:
        next_link = "/ui/audit?" + urlencode({"actor": flt.actor or "", "action": flt.action or "",
                                              "before_id": rows[-1]["id"]})
    return render(request, session, "audit.html", active="audit", entries=rows,
                  params={"actor": flt.actor or "", "action": flt.action or ""},
                  next_link=next_link, generated=time.time())


routes = [
    Route("/ui/login", login_page, methods=["GET"]),
    Route("/ui/login", login_submit, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui/", home, methods=["GET"]),
    Route("/ui/events", events_page, methods=["GET"]),
    Route("/ui/events.csv", events_csv, methods=["GET"]),
    Route("/ui/events/{event_id:int}", event_page, methods=["GET"]),
    Route("/ui/events/{event_id:int}/reveal", event_reveal, methods=["POST"]),
    Route("/ui/dashboard", dashboard, methods=["GET"]),
    Route("/ui/consents", consent_form, methods=["GET"]),
    Route("/ui/consents", consent_lookup, methods=["POST"]),
    Route("/ui/suppressions", suppressions_page, methods=["GET"]),
    Route("/ui/suppressions/clear", suppression_clear, methods=["POST"]),
    Route("/ui/suppressions/clear-since", suppression_clear_since, methods=["POST"]),
    Route("/ui/batches", batches_page, methods=["GET"]),
    Route("/ui/batches/import", batch_import, methods=["POST"]),
    Route("/ui/batches/{batch_id}/approve", batch_approve, methods=["POST"]),
    Route("/ui/batches/{batch_id}/discard", batch_discard, methods=["POST"]),
    Route("/ui/preflight", preflight_form, methods=["GET"]),
    Route("/ui/preflight", preflight_run, methods=["POST"]),
    Route("/ui/report", report_page, methods=["GET"]),
    Route("/ui/report.csv", report_csv_download, methods=["GET"]),
    Route("/ui/audit", audit_page, methods=["GET"]),
]
