"""The OpenAPI 3.1 document of /api/v1 (hand-written; a test keeps it in step with the routes)."""

from __future__ import annotations

import re
from typing import Any

from gateway import __version__
from gateway.consent.service import BATCH_STATES

_ERR = {"$ref": "#/components/responses/Error"}


def _q(name: str, desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    # Every query parameter is optional, and an empty value counts as leaving it out (what an
    # HTML form sends for "any"); say so where the schema would otherwise refuse "".
    if schema is not None:
        schema = {"anyOf": [schema, {"const": ""}]}
    return {"name": name, "in": "query", "required": False,
            "description": desc + " (empty: as if left out)",
            "schema": schema or {"type": "string"}}


def _p(name: str, desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": desc,
            "schema": schema or {"type": "string"}}


def _ok(desc: str, schema: dict[str, Any] | None = None, media: str = "application/json"
        ) -> dict[str, Any]:
    out: dict[str, Any] = {"description": desc}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def _op(summary: str, permission: str | None, responses: dict[str, Any], **extra: Any
        ) -> dict[str, Any]:
    desc = f"Permission: `{permission}`." if permission else "Any valid token."
    refusals = {"401": _ERR, "403": _ERR, "429": _ERR}
    if "parameters" in extra or "requestBody" in extra:
        refusals["422"] = _ERR  # a value the operation cannot use, with the field named
    if "requestBody" in extra:
        refusals["400"] = _ERR  # a body that does not parse (JSON, multipart)
    return {"summary": summary, "description": extra.pop("description", "") + " " + desc,
            "responses": {**responses, **refusals}, **extra}


_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}


def _address_body(why: str, desc: str) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": 500, "pattern": r"\S"}
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["address", why], "additionalProperties": False,
        "properties": {"address": {"type": "string", "description": "e-mail address"},
                       why: {**text, "description": desc}}}}}}


def _clear_body() -> dict[str, Any]:
    body = _address_body("reason", "why (kept with the entry)")
    schema = body["content"]["application/json"]["schema"]
    schema["properties"]["since"] = {
        "type": "string", "minLength": 1,
        "description": "epoch seconds or ISO 8601 (naive = Japan time): every hard bounce "
                       "recorded since then, instead of one address"}
    schema["required"] = ["reason"]
    schema["oneOf"] = [{"required": ["address"]}, {"required": ["since"]}]
    return body


_ROW_ID = {"type": "integer", "minimum": 0, "maximum": 2**62}
_NAME = {"type": "string", "minLength": 1, "pattern": r"\S"}  # not blank

_REVEAL = [_q("reveal", "1 to show recipient addresses unmasked (events.reveal; audited)"),
           _q("reason", "why (required with reveal=1; kept in the audit trail)")]
_EVENT_FILTERS = [
    _q("since", "from this time (epoch seconds or ISO 8601; naive = Japan time)"),
    _q("until", "before this time"),
    _q("verdict", "accepted | rejected | tempfailed",
       {"type": "string", "enum": ["accepted", "rejected", "tempfailed"]}),
    _q("phase", "mail | rcpt | data: where the decision fell",
       {"type": "string", "enum": ["mail", "rcpt", "data"]}),
    _q("rule", "events naming this rule id (refused or monitored)"),
    _q("client", "MA tool user name"),
    _q("sender", "sender identity id"),
    _q("recipient", "exact recipient address (audited as a search)"),
    _q("limit", "page size, 1-1000 (default 100)", _LIMIT),
    _q("before_id", "cursor: events with a smaller id (use next_before_id)", _ROW_ID),
    _q("format", "json (default) or csv (all matching events, streamed; audited)",
       {"type": "string", "enum": ["json", "csv"]}),
]

CONSENT_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sender", "address", "status", "method", "occurred_at", "source_system",
                 "source_ref"],
    "properties": {
        "sender": {"type": "string", "minLength": 1,
                   "description": "sender identity id ([[senders]] id)"},
        "address": {"type": "string", "format": "email"},
        "status": {"type": "string", "enum": ["opted_in", "opted_out", "exempt"]},
        "method": {"type": "string", "enum": [
            "web_form", "double_opt_in", "paper_form", "cmp", "manual", "business_card",
            "transaction", "published_address", "one_click", "unsubscribe_page", "mailto",
            "complaint", "import_optout"],
            "description": "opted_in: web_form, double_opt_in, paper_form, cmp, manual; "
                           "exempt: business_card, transaction, published_address; "
                           "opted_out: any"},
        "occurred_at": {"type": "string", "format": "date-time",
                        "description": "when the person consented or refused; with offset"},
        "source_system": {"type": "string", "maxLength": 100, "description": "e.g. the CMP"},
        "source_ref": {"type": "string", "maxLength": 200,
                       "description": "the source's id of this event: a resend with the same "
                                      "(sender, source_system, source_ref) is recorded once "
                                      "(200); another event under a used ref is refused "
                                      "(409), never taken for a resend"},
        "topic": {"type": ["string", "null"], "description": "null: all topics"},
        "client_ip": {"type": ["string", "null"]},
        "user_agent": {"type": ["string", "null"]},
    },
}


def openapi_document(public_url: str = "") -> dict[str, Any]:
    obj = {"type": "object"}
    paths: dict[str, Any] = {
        "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                         "responses": {"200": _ok("OpenAPI 3.1", obj)}}},
        "/api/v1/me": {"get": _op("The calling token's name, role and permissions", None,
                                  {"200": _ok("caller", obj)})},
        "/api/v1/events": {"get": _op(
            "The event log, newest first; recipients masked unless revealed", "events.read",
            {"200": {"description": "a page of events (JSON) or every match (CSV)",
                     "content": {"application/json": {"schema": {"$ref":
                                                                 "#/components/schemas/EventPage"}},
                                 "text/csv": {"schema": {"type": "string"}}}},
             "422": _ERR},
            parameters=_EVENT_FILTERS + _REVEAL)},
        "/api/v1/events/{event_id}": {"get": _op(
            "One event with every rule result and the exact SMTP reply", "events.read",
            {"200": _ok("event", obj), "404": _ERR},
            parameters=[_p("event_id", "event row id", _ROW_ID), *_REVEAL])},
        "/api/v1/consents": {"post": _op(
            "Record one consent event from a CMP or a form", "consent.ingest",
            {"201": _ok("recorded", obj), "200": _ok("already recorded (idempotent)", obj),
             "409": _ERR, "422": _ERR},
            requestBody={"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ConsentEvent"}}}})},
        "/api/v1/consents/{sender}/{address}": {"get": _op(
            "Consent status, evidence and history of one address (audited)", "consent.lookup",
            {"200": _ok("lookup", obj), "404": _ERR, "422": _ERR},
            parameters=[_p("sender", "sender identity id"), _p("address", "e-mail address"),
                        _q("topic", "decide for mail on this topic"),
                        _q("reason", "why you look (audit trail)")])},
        "/api/v1/erasures": {"post": _op(
            "An erasure request: delete an address's consent rows, last sends and "
            "suppressions, write it out of the event log, and keep its refusal per sender "
            "under a keyed hash (audited by hash; cannot be undone)", "consent.erase",
            {"200": _ok("what was erased (the hash, the counts)", obj), "409": _ERR,
             "422": _ERR},
            requestBody=_address_body("reason", "the request it answers (audited)"))},
        "/api/v1/suppressions": {
            "get": _op(
                "Suppressed addresses (hard bounces, manual entries), newest first; addresses "
                "masked unless one is asked for (audited)", "suppressions.read",
                {"200": _ok("suppressions", obj)},
                parameters=[_q("address", "only this address (shown unmasked)"),
                            _q("all", "true: cleared entries too",
                               {"type": "string", "enum": ["true", "false"]}),
                            _q("limit", "1-1000", _LIMIT),
                            _q("reason", "why you look (audit trail)")]),
            "post": _op("Suppress an address by hand (audited)", "suppressions.manage",
                        {"201": _ok("suppressed", obj), "409": _ERR, "422": _ERR},
                        requestBody=_address_body("note", "why (kept with the entry)")),
        },
        "/api/v1/suppressions/clear": {"post": _op(
            "End an address's suppression, or with `since` instead of `address` every "
            "hard-bounce suppression recorded since then (manual entries stay); the entries "
            "stay, with who cleared them and why (audited)", "suppressions.manage",
            {"200": _ok("cleared: the count", obj), "404": _ERR, "422": _ERR},
            requestBody=_clear_body())},
        "/api/v1/reputation": {"get": _op(
            "Per sender: the complaint rate over rule sender.complaint_rate's window (sent, "
            "complaints, rate, standing: too_few, ok, warn, stop; null without the rule) and "
            "refusals for failed authentication over rule sender.auth_refused's (count, "
            "flagged); gmail (null without rule sender.gmail_bulk): recipients at personal "
            "Gmail today, daily_limit, near, bulk_since (the first UTC day at the limit, "
            "permanent), unmet (bulk requirements not enforced here), flagged, counted_with "
            "(the other senders of the same From organisational domain, summed in: Gmail "
            "counts per primary domain)",
            "reputation.read", {"200": _ok("senders", obj)})},
        "/api/v1/exports/consents/{sender}": {"get": _op(
            "Every consent row of a sender (audited)", "consent.export",
            {"200": {"description": "CSV (UTF-8 BOM) or JSON lines",
                     "content": {"text/csv": {"schema": {"type": "string"}},
                                 "application/x-ndjson": {"schema": {"type": "string"}}}},
             "404": _ERR},
            parameters=[_p("sender", "sender identity id"),
                        _q("format", "csv or jsonl", {"type": "string", "enum": ["csv", "jsonl"]}),
                        _q("reason", "why (audit trail)")])},
        "/api/v1/imports": {
            "get": _op("Consent import batches", "batches.read", {"200": _ok("batches", obj)},
                       parameters=[_q("status", "batch state", {"type": "string",
                                                                "enum": list(BATCH_STATES)})]),
            "post": _op("Import a CSV / JSON-lines file of consent records (all-or-nothing)",
                        "batches.import", {"201": _ok("imported", obj), "422": _ERR},
                        requestBody={"required": True, "content": {"multipart/form-data": {
                            "schema": {"type": "object", "required": ["sender", "file"],
                                       "properties": {
                                           "sender": _NAME,
                                           "format": {"type": "string",
                                                      "enum": ["csv", "jsonl"]},
                                           "file": {"type": "string",
                                                    "contentMediaType":
                                                        "application/octet-stream"}}}}}}),
        },
        "/api/v1/imports/{batch_id}/approve": {"post": _op(
            "Approve a pending batch (four eyes: not by its importer)", "batches.approve",
            {"200": _ok("the approved batch", obj), "404": _ERR, "409": _ERR},
            parameters=[_p("batch_id", "batch id")])},
        "/api/v1/imports/{batch_id}/discard": {"post": _op(
            "Remove a loading or failed batch that never took effect (an import that died); "
            "pending and approved batches, and a loading batch whose import is still running "
            "(unless force=true), are refused", "batches.import",
            {"200": _ok("the batch id and the rows removed", obj), "400": _ERR, "404": _ERR,
             "409": _ERR},
            parameters=[_p("batch_id", "batch id"),
                        _q("force", "true: discard even a running import's batch (it fails)",
                           {"type": "string", "enum": ["true", "false"]})])},
        "/api/v1/preflight": {"post": _op(
            "Check a draft's display items (特定電子メール法 第4条) without sending", "preflight",
            {"200": _ok("report", obj), "413": _ERR, "422": _ERR},
            parameters=[_q("sender", "sender identity id (or a form field)")],
            requestBody={"required": True, "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                   "properties": {
                                                       "sender": {"type": "string"},
                                                       "file": {"type": "string",
                                                                "contentMediaType":
                                                                    "message/rfc822"}}}},
                "message/rfc822": {"schema": {"type": "string"}}}})},
        "/api/v1/audit": {"get": _op(
            "The audit trail of personal-data access, newest first", "audit.read",
            {"200": _ok("entries", obj)},
            parameters=[_q("since", "from"), _q("until", "before"), _q("actor", "who"),
                        _q("action", "e.g. consent.lookup, events.reveal, consent.export"),
                        _q("before_id", "cursor", _ROW_ID),
                        _q("limit", "1-1000", _LIMIT)])},
        "/api/v1/reports/{month}": {"get": _op(
            "Monthly compliance report (month in Japan time)", "report.read",
            {"200": {"description": "figures", "content": {
                "application/json": {"schema": obj}, "text/csv": {"schema": {"type": "string"}}}},
             "422": _ERR},
            parameters=[_p("month", "YYYY-MM", {"type": "string",
                                                "pattern": r"^\d{4}-(0[1-9]|1[0-2])$"}),
                        _q("format", "json or csv", {"type": "string", "enum": ["json", "csv"]})])},
        "/api/v1/tokens": {
            "get": _op("API tokens (never their secrets)", "tokens.manage",
                       {"200": _ok("tokens", obj)}),
            "post": _op("Create a token; the secret is in this response only", "tokens.manage",
                        {"201": _ok("token with secret", obj), "422": _ERR},
                        requestBody={"required": True, "content": {"application/json": {
                            "schema": {"type": "object", "required": ["role", "name"],
                                       "properties": {
                                           "role": {"type": "string", "enum": [
                                               "marketer", "ops", "approver", "auditor",
                                               "admin"]},
                                           "name": _NAME,
                                           "expires": {"type": ["string", "null"],
                                                       "description": "e.g. 30d, 12h"}}}}}}),
        },
        "/api/v1/tokens/{token_id}": {"delete": _op(
            "Revoke a token (its UI sessions end too)", "tokens.manage",
            {"204": {"description": "revoked"}, "404": _ERR, "409": _ERR},
            parameters=[_p("token_id", "token id (tk_...)")])},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokuden gateway API", "version": __version__,
                 "description": "Event log, consent, import approvals, preflight, audit trail "
                                "and reports. Authenticate with `Authorization: Bearer tkd_...` "
                                "(`tokuden token create --role ROLE`). Unsubscribe endpoints "
                                "(/u/TOKEN) are outside /api and need no token."},
        "servers": [{"url": public_url}] if public_url else [],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ConsentEvent": CONSENT_EVENT_SCHEMA,
                "Error": {"type": "object", "required": ["error", "detail"], "properties": {
                    "error": {"type": "string"}, "detail": {"type": "string"},
                    "field": {"type": "string", "description": "the offending field"}}},
                "EventPage": {"type": "object", "properties": {
                    "events": {"type": "array", "items": {"type": "object"}},
                    "next_before_id": {"type": ["integer", "null"]},
                    "masked": {"type": "boolean"}}},
            },
            "responses": {"Error": {"description": "refused", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }


_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
_query_names: dict[tuple[str, str], frozenset[str]] = {}


def query_names(route_path: str, method: str) -> frozenset[str] | None:
    """The query parameters the document lists for an operation (None: not in the document).

    `route_path` is the Starlette route's path ("{event_id:int}" style is accepted).
    """
    if not _query_names:
        for path, item in openapi_document()["paths"].items():
            for verb, op in item.items():
                names = frozenset(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
                _query_names[(path, verb.upper())] = names
    return _query_names.get((_CONVERTOR.sub(r"{\1}", route_path), method))
