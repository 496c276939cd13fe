"""/api/v1: JSON API over the same service functions the CLI uses, one permission per route."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.access import tokens as token_mod
from gateway.access.audit import AuditFilter, describe, mask_event, query_audit
from gateway.access.report import compliance_report, report_csv
from gateway.access.roles import ROLE_PERMISSIONS, Permission, Principal
from gateway.config import SenderConfig
from gateway.consent import erasure, service
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.consent.importer import export_rows
from gateway.consent.model import ConsentEvent, ConsentMethod, ConsentStatus
from gateway.store.base import EventFilter
from gateway.store.events import row_dict
from gateway.volume import standings
from gateway.web.auth import ApiError, Endpoint, api
from gateway.web.context import ctx_of
from gateway.web.openapi import openapi_document

EVENT_CSV_COLUMNS = ("id", "event_id", "created_at", "created_at_iso", "verdict", "phase",
                     "client", "client_ip", "sender_id", "mail_from", "recipient",
                     "header_from", "message_id", "size", "rule_ids", "monitored", "reply",
                     "upstream_reply")
EXPORT_PAGE = 1000
MAX_CLOCK_SKEW = 300.0


# -- parameter parsing ------------------------------------------------------------------------

def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds or ISO 8601 (a naive time is Japan time) -> epoch seconds."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
        if math.isfinite(number):
            return number
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid", f"{name} is neither epoch seconds nor ISO 8601",
                       field=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC) - timedelta(hours=9)  # Asia/Tokyo, no DST
    return moment.timestamp()


def parse_int(value: str | None, name: str, *, default: int | None = None,
              low: int = 0, high: int = 2**62) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(422, "invalid", f"{name} must be an integer", field=name) from None
    if not low <= number <= high:
        raise ApiError(422, "invalid", f"{name} must be between {low} and {high}", field=name)
    return number


def event_filter(params: dict[str, str], *, limit: int = 100) -> EventFilter:
    verdict = params.get("verdict") or None
    if verdict is not None and verdict not in ("accepted", "rejected", "tempfailed"):
        raise ApiError(422, "invalid", "verdict is accepted, rejected or tempfailed",
                       field="verdict")
    phase = params.get("phase") or None
    if phase is not None and phase not in ("mail", "rcpt", "data"):
        raise ApiError(422, "invalid", "phase is mail, rcpt or data", field="phase")
    return EventFilter(
        since=parse_time(params.get("since"), "since"),
        until=parse_time(params.get("until"), "until"),
        verdict=verdict,
        phase=phase,
        rule=params.get("rule") or None,
        client=params.get("client") or None,
        sender_id=params.get("sender") or None,
        recipient=params.get("recipient") or None,
        limit=parse_int(params.get("limit"), "limit", default=limit, low=1, high=1000) or limit,
        before_id=parse_int(params.get("before_id"), "before_id"),
    )


def _sender_or_404(request: Request, sender_id: str) -> SenderConfig:
    sender = ctx_of(request).sender(sender_id)
    if sender is None:
        raise ApiError(404, "not_found", f"no sender identity {sender_id!r}", field="sender")
    return sender


async def reveal_wanted(request: Request, principal: Principal, subject: str) -> bool:
    """True when the caller asked to see addresses and may; audits every reveal."""
    params = request.query_params
    if params.get("reveal") not in ("1", "true", "yes"):
        return False
    if not principal.can(Permission.EVENTS_REVEAL):
        raise ApiError(403, "forbidden",
                       f"role {principal.role.value} may not reveal recipient addresses")
    reason = (params.get("reason") or "").strip()
    if not reason:
        raise ApiError(422, "invalid", "revealing addresses needs a reason", field="reason")
    await service.audit(ctx_of(request).store, principal.actor, "events.reveal", subject, reason)
    return True


# -- events -----------------------------------------------------------------------------------

@api(Permission.EVENTS_READ)
async def events_list(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    params = dict(request.query_params)
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(422, "invalid", "format is json or csv", field="format")
    flt = event_filter(params)
    reveal = await reveal_wanted(request, principal, describe(flt))
    if flt.recipient:
        # searching by an address is a look at that person's data
        await service.audit(ctx.store, principal.actor, "events.search",
                            f"recipient={flt.recipient}", params.get("reason", ""))
    if fmt == "csv":
        await service.audit(ctx.store, principal.actor, "events.export", describe(flt),
                            params.get("reason", ""))
        return StreamingResponse(events_csv(request, flt, reveal), media_type="text/csv",
                                 headers={"Content-Disposition":
                                          'attachment; filename="events.csv"'})
    rows = await ctx.store.query_events(flt)
    events = rows if reveal else [mask_event(r) for r in rows]
    next_id = rows[-1]["id"] if len(rows) == flt.limit else None
    return JSONResponse({"events": events, "next_before_id": next_id, "masked": not reveal})


async def events_csv(request: Request, flt: EventFilter, reveal: bool) -> AsyncIterator[bytes]:
    store = ctx_of(request).store
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EVENT_CSV_COLUMNS)
    yield ("\ufeff" + out.getvalue()).encode("utf-8")
    before = flt.before_id
    while True:
        page = dataclasses.replace(flt, limit=EXPORT_PAGE, before_id=before)
        rows = await store.query_events(page)
        out.seek(0)
        out.truncate()
        for row in rows:
            row = row if reveal else mask_event(row)
            cells = []
            for col in EVENT_CSV_COLUMNS:
                value = row.get(col, "")
                if isinstance(value, list):
                    value = " ".join(value)
                text = "" if value is None else str(value)
                # spreadsheet formula injection: replies and addresses come from outside
                cells.append("'" + text if text[:1] in ("=", "+", "-", "@") else text)
            writer.writerow(cells)
        yield out.getvalue().encode("utf-8")
        if len(rows) < EXPORT_PAGE:
            return
        before = rows[-1]["id"]


async def load_event(request: Request, event_id: int) -> dict[str, Any]:
    rows = await ctx_of(request).store.fetch("SELECT * FROM events WHERE id = ?", (event_id,))
    if not rows:
        raise ApiError(404, "not_found", f"no event {event_id}")
    return row_dict(rows[0])


@api(Permission.EVENTS_READ)
async def event_detail(request: Request, principal: Principal) -> Response:
    event_id = parse_int(request.path_params["event_id"], "event_id")
    assert event_id is not None
    row = await load_event(request, event_id)
    reveal = await reveal_wanted(request, principal, f"event {event_id}")
    return JSONResponse(row if reveal else mask_event(row))


# -- consent ----------------------------------------------------------------------------------

@api(Permission.CONSENT_LOOKUP)
async def consent_lookup(request: Request, principal: Principal) -> Response:
    sender = _sender_or_404(request, request.path_params["sender"])
    address = request.path_params["address"]
    try:
        found = await service.lookup(
            ctx_of(request).store, sender, address, actor=principal.actor,
            reason=request.query_params.get("reason", ""),
            topic=request.query_params.get("topic") or None,
        )
    except InvalidAddress as exc:
        raise ApiError(422, "invalid", exc.reason, field="address") from None
    return JSONResponse(found.to_dict())


async def json_object(request: Request, known: set[str]) -> dict[str, Any]:
    """The request's JSON object body; 422 naming the field for anything else."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "invalid", "the body is not JSON", field="body") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "the body must be a JSON object", field="body")
    for key in body:
        if key not in known:
            raise ApiError(422, "invalid", f"unknown field {key!r}", field=key)
    return body


def str_field(body: dict[str, Any], name: str, *, required: bool, max_len: int = 500
              ) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(422, "invalid", f"{name} is required", field=name)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApiError(422, "invalid", f"{name} must be a non-empty string", field=name)
    if len(value) > max_len:
        raise ApiError(422, "invalid", f"{name} is longer than {max_len} characters", field=name)
    return value


@api(Permission.CONSENT_INGEST)
async def consent_ingest(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    body = await json_object(request, {
        "sender", "address", "status", "method", "occurred_at", "source_system", "source_ref",
        "topic", "client_ip", "user_agent"})
    sender = ctx.sender(str_field(body, "sender", required=True) or "")
    if sender is None:
        raise ApiError(422, "invalid", f"no sender identity {body['sender']!r}", field="sender")
    try:
        addr = normalize_address(str_field(body, "address", required=True) or "")
    except InvalidAddress as exc:
        raise ApiError(422, "invalid", exc.reason, field="address") from None
    try:
        status = ConsentStatus(str_field(body, "status", required=True) or "")
    except ValueError:
        raise ApiError(422, "invalid", "status is opted_in, opted_out or exempt",
                       field="status") from None
    try:
        method = ConsentMethod(str_field(body, "method", required=True) or "")
    except ValueError:
        raise ApiError(422, "invalid", "unknown method (" + ", ".join(m.value for m in
                       ConsentMethod) + ")", field="method") from None
    when_text = str_field(body, "occurred_at", required=True) or ""
    try:
        occurred = datetime.fromisoformat(when_text)
    except ValueError:
        raise ApiError(422, "invalid", "occurred_at is not ISO 8601",
                       field="occurred_at") from None
    if occurred.tzinfo is None:
        raise ApiError(422, "invalid", "occurred_at needs a UTC offset (e.g. +09:00)",
                       field="occurred_at")
    if occurred.timestamp() > time.time() + MAX_CLOCK_SKEW:
        raise ApiError(422, "invalid", "occurred_at is in the future", field="occurred_at")
    topic = str_field(body, "topic", required=False, max_len=100)
    try:
        event = ConsentEvent(
            sender_id=sender.id,
            address_key=suppression_key(addr),
            status=status,
            method=method,
            occurred_at=occurred,
            source_system=str_field(body, "source_system", required=True, max_len=100) or "",
            source_ref=str_field(body, "source_ref", required=True, max_len=200),
            topic=topic or None,
            client_ip=str_field(body, "client_ip", required=False, max_len=64),
            user_agent=str_field(body, "user_agent", required=False, max_len=512),
            recorded_by=principal.actor,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), field="method") from None
    keys = erasure.configured_keys(ctx.config)
    if keys and status is not ConsentStatus.OPTED_OUT:
        await erasure.reattach(ctx.store, event, addr.address, keys)
    recorded = await ctx.store.append_consent(event, addr.address)
    if not recorded:
        clash = await service.other_event_under_ref(ctx.store, event)
        if clash:
            raise ApiError(409, "conflict", clash, field="source_ref")
    if recorded and status is ConsentStatus.OPTED_OUT:
        ctx.metrics.unsubscribe(method.value)
    return JSONResponse({"recorded": recorded, "duplicate": not recorded,
                         "sender": sender.id, "address_key": event.address_key},
                        status_code=201 if recorded else 200)


@api(Permission.CONSENT_ERASE)
async def consent_erase(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    body = await json_object(request, {"address", "reason"})
    address = str_field(body, "address", required=True) or ""
    reason = str_field(body, "reason", required=True) or ""
    keys = erasure.configured_keys(ctx.config)
    if not keys:
        raise ApiError(409, "refused", "policy.erasure_key_file is not set: nothing to hash "
                       "the address with")
    try:
        done = await erasure.erase(ctx.store, address, senders=[s.id for s in ctx.config.senders],
                                   keys=keys, actor=principal.actor, reason=reason)
    except InvalidAddress as exc:
        raise ApiError(422, "invalid", exc.reason, field="address") from None
    return JSONResponse(done.to_dict())


@api(Permission.CONSENT_EXPORT)
async def consent_export(request: Request, principal: Principal) -> Response:
    sender = _sender_or_404(request, request.path_params["sender"])
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "jsonl"):
        raise ApiError(422, "invalid", "format is csv or jsonl", field="format")
    rows = await service.export_records(ctx_of(request).store, sender, actor=principal.actor,
                                        reason=request.query_params.get("reason", ""))
    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    body = b"".join(export_rows(rows, fmt))  # type: ignore[arg-type]
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="consent-{sender.id}.{fmt}"'})


# -- import batches ---------------------------------------------------------------------------

@api(Permission.BATCHES_READ)
async def batches_list(request: Request, principal: Principal) -> Response:
    status = request.query_params.get("status") or None
    if status not in (None, *service.BATCH_STATES):
        raise ApiError(422, "invalid", f"status is one of {', '.join(service.BATCH_STATES)}",
                       field="status")
    rows = await service.list_batches(ctx_of(request).store, status)
    return JSONResponse({"batches": rows})


async def approve(request: Request, batch_id: str, approver: str) -> dict[str, Any]:
    """Four eyes, shared by API and UI: ApiError 404 / 403 (own import) / 409."""
    ctx = ctx_of(request)
    rows = await ctx.store.fetch("SELECT * FROM import_batches WHERE id = ?", (batch_id,))
    if not rows:
        raise ApiError(404, "not_found", f"no import batch {batch_id!r}")
    if rows[0]["created_by"] == approver:
        raise ApiError(403, "same_person",
                       f"{approver!r} imported batch {batch_id}; a second person must approve it")
    try:
        return await service.approve_batch(ctx.store, batch_id, approver,
                                           ctx.config.policy.approvers)
    except service.ApprovalRefused as exc:
        raise ApiError(409, "refused", str(exc)) from None


@api(Permission.BATCHES_APPROVE)
async def batch_approve(request: Request, principal: Principal) -> Response:
    batch = await approve(request, request.path_params["batch_id"], principal.actor)
    return JSONResponse(batch)


async def discard(request: Request, batch_id: str, actor: str, *, force: bool = False) -> int:
    """Remove a batch that never took effect, shared by API and UI: ApiError 404 / 409."""
    store = ctx_of(request).store
    if not await store.fetch("SELECT id FROM import_batches WHERE id = ?", (batch_id,)):
        raise ApiError(404, "not_found", f"no import batch {batch_id!r}")
    try:
        return await service.discard_batch(store, batch_id, actor, force=force)
    except service.DiscardRefused as exc:
        raise ApiError(409, "refused", str(exc)) from None


@api(Permission.BATCHES_IMPORT)
async def batch_discard(request: Request, principal: Principal) -> Response:
    batch_id = request.path_params["batch_id"]
    force = request.query_params.get("force", "").lower()
    if force not in ("", "true", "false"):
        raise ApiError(400, "bad_request", "force must be true or false")
    removed = await discard(request, batch_id, principal.actor, force=force == "true")
    return JSONResponse({"batch_id": batch_id, "status": "failed", "removed": removed})


async def run_import(request: Request, sender: SenderConfig, upload: UploadFile, actor: str,
                     fmt: str | None) -> service.ImportResult:
    """Spool an uploaded file and import it (shared by API and UI)."""
    ctx = ctx_of(request)
    suffix = Path(upload.filename or "upload.csv").suffix[:8] or ".csv"
    fd, name = tempfile.mkstemp(prefix="tokuden-import-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := await upload.read(1 << 20):
                fh.write(chunk)
        path = Path(name)
        return await service.import_file(
            ctx.store, sender=sender, path=path, recorded_by=actor, fmt=fmt,
            approval_required=ctx.config.policy.import_approval,
            erasure_keys=erasure.configured_keys(ctx.config),
        )
    finally:
        os.unlink(name)


@api(Permission.BATCHES_IMPORT)
async def batch_import(request: Request, principal: Principal) -> Response:
    form = await request.form(max_files=1)
    sender_id = form.get("sender")
    if not isinstance(sender_id, str) or not sender_id:
        raise ApiError(422, "invalid", "sender is required", field="sender")
    sender = ctx_of(request).sender(sender_id)
    if sender is None:
        raise ApiError(422, "invalid", f"no sender identity {sender_id!r}", field="sender")
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "invalid", "file (CSV or JSON lines) is required", field="file")
    fmt = form.get("format")
    if fmt not in (None, "", "csv", "jsonl"):
        raise ApiError(422, "invalid", "format is csv or jsonl", field="format")
    result = await run_import(request, sender, upload, principal.actor,
                              fmt if isinstance(fmt, str) and fmt else None)
    body = import_result_dict(result)
    return JSONResponse(body, status_code=201 if result.state != "failed" else 422)


def import_result_dict(result: service.ImportResult) -> dict[str, Any]:
    report = result.report
    return {
        "batch_id": result.batch_id,
        "state": result.state,
        "imported": result.imported,
        "grants": result.grants,
        "optouts": result.optouts,
        "ok": report.ok,
        "fatal": str(report.fatal) if report.fatal is not None else None,
        "summary": report.summary(),
        "errors": [
            {"line": e.line_number, "column": e.column, "reason": e.reason}
            for e in report.errors[:100]
        ],
    }


# -- preflight, audit, report, tokens ----------------------------------------------------------

async def read_eml(request: Request) -> tuple[str | None, bytes]:
    """(sender from the form/query, raw message) from multipart 'file' or a message/rfc822 body."""
    ctx = ctx_of(request)
    limit = ctx.config.server.max_message_size
    sender_id = request.query_params.get("sender")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_part_size=limit)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid", "file (.eml) is required", field="file")
        raw = await upload.read(limit + 1)
        value = form.get("sender")
        if isinstance(value, str) and value:
            sender_id = value
    else:
        raw = await request.body()
    if not raw:
        raise ApiError(422, "invalid", "the message is empty", field="file")
    if len(raw) > limit:
        raise ApiError(413, "too_large", f"the message is larger than {limit} bytes",
                       field="file")
    return sender_id, raw


@api(Permission.PREFLIGHT)
async def preflight(request: Request, principal: Principal) -> Response:
    ctx = ctx_of(request)
    sender_id, raw = await read_eml(request)
    if not sender_id:
        if len(ctx.config.senders) != 1:
            raise ApiError(422, "invalid", "sender is required", field="sender")
        sender_id = ctx.config.senders[0].id
    sender = ctx.sender(sender_id)
    if sender is None:
        raise ApiError(422, "invalid", f"no sender identity {sender_id!r}", field="sender")
    return JSONResponse(ctx.preflight(sender, raw))


@api(Permission.AUDIT_READ)
async def audit_list(request: Request, principal: Principal) -> Response:
    params = request.query_params
    flt = AuditFilter(
        since=parse_time(params.get("since"), "since"),
        until=parse_time(params.get("until"), "until"),
        actor=params.get("actor") or None,
        action=params.get("action") or None,
        before_id=parse_int(params.get("before_id"), "before_id"),
        limit=parse_int(params.get("limit"), "limit", default=100, low=1, high=1000) or 100,
    )
    rows = await query_audit(ctx_of(request).store, flt)
    next_id = rows[-1]["id"] if len(rows) == flt.limit else None
    return JSONResponse({"entries": rows, "next_before_id": next_id})


@api(Permission.REPORT_READ)
async def report(request: Request, principal: Principal) -> Response:
    month = request.path_params["month"]
    fmt = request.query_params.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise ApiError(422, "invalid", "format is json or csv", field="format")
    try:
        figures = await compliance_report(ctx_of(request).store, month)
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), field="month") from None
    if fmt == "csv":
        return Response(report_csv(figures).encode("utf-8"), media_type="text/csv",
                        headers={"Content-Disposition":
                                 f'attachment; filename="compliance-{month}.csv"'})
    return JSONResponse(figures)


@api(Permission.REPUTATION_READ)
async def reputation(request: Request, principal: Principal) -> Response:
    """Each sender's complaint and bounce rates, refusals for failed authentication and
    Gmail bulk-sender status: counts only, no addresses."""
    ctx = ctx_of(request)
    found = await standings(ctx.store, ctx.gateway.rules, ctx.config.senders,
                            monitor=ctx.config.policy.mode == "monitor")
    return JSONResponse({"senders": [entry.to_dict() for entry in found]})


@api(Permission.TOKENS_MANAGE)
async def tokens_list(request: Request, principal: Principal) -> Response:
    return JSONResponse({"tokens": await token_mod.list_tokens(ctx_of(request).store)})


@api(Permission.TOKENS_MANAGE)
async def tokens_create(request: Request, principal: Principal) -> Response:
    body = await json_object(request, {"role", "name", "expires"})
    role = str_field(body, "role", required=True) or ""
    name = str_field(body, "name", required=True, max_len=100) or ""
    expires = str_field(body, "expires", required=False, max_len=20)
    try:
        new = await token_mod.create_token(
            ctx_of(request).store, role, name, created_by=principal.actor,
            expires_in=token_mod.parse_duration(expires) if expires else None)
    except token_mod.TokenError as exc:
        field = "expires" if "duration" in str(exc) else "role" if "role" in str(exc) else "name"
        raise ApiError(422, "invalid", str(exc), field=field) from None
    return JSONResponse({"id": new.id, "name": new.name, "role": new.role.value,
                         "secret": new.secret, "expires_at": new.expires_at}, status_code=201)


@api(Permission.TOKENS_MANAGE)
async def tokens_revoke(request: Request, principal: Principal) -> Response:
    try:
        await token_mod.revoke_token(ctx_of(request).store, request.path_params["token_id"])
    except token_mod.TokenError as exc:
        raise ApiError(404 if "no token" in str(exc) else 409, "refused", str(exc)) from None
    return Response(status_code=204)


@api(None)
async def me(request: Request, principal: Principal) -> Response:
    perms = sorted(p.value for p in ROLE_PERMISSIONS[principal.role])
    return JSONResponse({"id": principal.token_id, "name": principal.name,
                         "role": principal.role.value, "permissions": perms})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(ctx_of(request).config.http.public_url))


def by_method(**handlers: Endpoint) -> Endpoint:
    """One route for a path served by several handlers, so that a 405 lists all its methods."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


routes = [
    Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    Route("/api/v1/me", me, methods=["GET"]),
    Route("/api/v1/events", events_list, methods=["GET"]),
    Route("/api/v1/events/{event_id:int}", event_detail, methods=["GET"]),
    Route("/api/v1/consents", consent_ingest, methods=["POST"]),
    Route("/api/v1/consents/{sender}/{address}", consent_lookup, methods=["GET"]),
    Route("/api/v1/exports/consents/{sender}", consent_export, methods=["GET"]),
    Route("/api/v1/erasures", consent_erase, methods=["POST"]),
    Route("/api/v1/imports", by_method(GET=batches_list, POST=batch_import),
          methods=["GET", "POST"]),
    Route("/api/v1/imports/{batch_id}/approve", batch_approve, methods=["POST"]),
    Route("/api/v1/imports/{batch_id}/discard", batch_discard, methods=["POST"]),
    Route("/api/v1/preflight", preflight, methods=["POST"]),
    Route("/api/v1/audit", audit_list, methods=["GET"]),
    Route("/api/v1/reports/{month}", report, methods=["GET"]),
    Route("/api/v1/reputation", reputation, methods=["GET"]),
    Route("/api/v1/tokens", by_method(GET=tokens_list, POST=tokens_create),
          methods=["GET", "POST"]),
    Route("/api/v1/tokens/{token_id}", tokens_revoke, methods=["DELETE"]),
]
