"""/api/v1/suppressions: hard bounces and manual entries, for ops; every use audited."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.access.audit import mask_suppression
from gateway.access.roles import Permission, Principal
from gateway.consent import service, suppression
from gateway.consent.address import InvalidAddress, normalize_address, suppression_key
from gateway.web.api import by_method, json_object, parse_int, parse_time, str_field
from gateway.web.auth import ApiError, api
from gateway.web.context import ctx_of


def _key(address: str) -> str:
    try:
        return suppression_key(normalize_address(address))
    except InvalidAddress as exc:
        raise ApiError(422, "invalid", exc.reason, field="address") from None


@api(Permission.SUPPRESSIONS_READ)
async def suppressions_list(request: Request, principal: Principal) -> Response:
    """Newest first. Without `address` the addresses are masked: ops asking about one
    address know it already; a list of everyone's needs none of them."""
    params = request.query_params
    key = _key(params["address"]) if params.get("address") else None
    cleared = params.get("all") or "false"
    if cleared not in ("true", "false"):
        raise ApiError(422, "invalid", "all is true or false", field="all")
    limit = parse_int(params.get("limit"), "limit", default=100, low=1, high=1000) or 100
    store = ctx_of(request).store
    found = await suppression.listing(
        store, address_key=key, include_cleared=cleared == "true", limit=limit)
    await service.audit(store, principal.actor, "suppression.list", key or "(all)",
                        params.get("reason") or "")
    entries = [e.to_dict() for e in found]
    if key is None:
        entries = [mask_suppression(e) for e in entries]
    return JSONResponse({"suppressions": entries})


@api(Permission.SUPPRESSIONS_MANAGE)
async def suppressions_add(request: Request, principal: Principal) -> Response:
    body = await json_object(request, {"address", "note"})
    key = _key(str_field(body, "address", required=True) or "")
    note = str_field(body, "note", required=True) or ""
    if not await suppression.suppress(ctx_of(request).store, key, suppression.MANUAL, note,
                                      actor=principal.actor):
        raise ApiError(409, "refused", "the address is suppressed already", field="address")
    return JSONResponse({"address_key": key, "suppressed": True}, status_code=201)


@api(Permission.SUPPRESSIONS_MANAGE)
async def suppressions_clear(request: Request, principal: Principal) -> Response:
    """One address's suppression, or with `since` every hard bounce recorded since then
    (an upstream that answered 5.1.1 for mailboxes that exist)."""
    body = await json_object(request, {"address", "since", "reason"})
    if ("address" in body) == ("since" in body):
        raise ApiError(422, "invalid", "give address or since, not both", field="address")
    if "since" in body:
        since = parse_time(str_field(body, "since", required=True), "since")
        reason = str_field(body, "reason", required=True) or ""
        assert since is not None  # required above
        cleared = await suppression.clear_hard_bounces_since(
            ctx_of(request).store, since, principal.actor, reason)
        return JSONResponse({"since": since, "cleared": cleared})
    key = _key(str_field(body, "address", required=True) or "")
    reason = str_field(body, "reason", required=True) or ""
    cleared = await suppression.clear(ctx_of(request).store, key, principal.actor, reason)
    if not cleared:
        raise ApiError(404, "not_found", "no suppression in force for the address",
                       field="address")
    return JSONResponse({"address_key": key, "cleared": cleared})


routes = [
    Route("/api/v1/suppressions", by_method(GET=suppressions_list, POST=suppressions_add),
          methods=["GET", "POST"]),
    Route("/api/v1/suppressions/clear", suppressions_clear, methods=["POST"]),
]
