"""`token create|revoke|list`: API / web UI tokens (the secret is printed once, stored hashed)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import time
from typing import Any

from gateway import config as config_mod
from gateway.access import tokens
from gateway.access.roles import Role
from gateway.cli.table import render
from gateway.store import open_store


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("token", help="API / web UI tokens: create, revoke, list")
    actions = p.add_subparsers(dest="token_command", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", parents=[common], help="new token (secret shown once)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", default=None,
                        help="who or what uses it; the audit trail's actor (default: login name)")
    create.add_argument("--expires", default=None, metavar="DURATION",
                        help="lifetime like 30d, 12h, 2w (default: no expiry)")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=run_create)
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a token by id")
    revoke.add_argument("id", metavar="ID")
    revoke.set_defaults(func=run_revoke)
    lst = actions.add_parser("list", parents=[common], help="every token (never secrets)")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=run_list)


async def _run(url: str, work: Any) -> Any:
    store = open_store(url)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def run_create(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    try:
        expires = tokens.parse_duration(args.expires) if args.expires else None
    except tokens.TokenError as exc:
        print(f"tokuden token: error: --expires: {exc}")
        return 2
    name = args.name or getpass.getuser()
    new = asyncio.run(_run(cfg.store.url, lambda s: tokens.create_token(
        s, args.role, name, expires_in=expires, created_by=getpass.getuser())))
    if args.json:
        print(json.dumps({"id": new.id, "name": new.name, "role": new.role.value,
                          "secret": new.secret, "expires_at": new.expires_at}))
        return 0
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(new.expires_at)) \
        if new.expires_at else "never"
    print(f"token {new.id} ({new.role.value}) for {new.name}, expires {until}")
    print("secret (shown only now; use it as 'Authorization: Bearer ...' or to log in to /ui/):")
    print(new.secret)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    try:
        asyncio.run(_run(cfg.store.url, lambda s: tokens.revoke_token(s, args.id)))
    except tokens.TokenError as exc:
        print(f"tokuden token revoke: {exc}")
        return 1
    print(f"revoked {args.id}")
    return 0


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def run_list(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    rows = asyncio.run(_run(cfg.store.url, tokens.list_tokens))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    if not rows:
        print("no tokens")
        return 0
    print(render(["id", "name", "role", "state", "created", "expires", "last used"], [
        [r["id"], r["name"], r["role"], r["state"], _when(r["created_at"]),
         _when(r["expires_at"]), _when(r["last_used_at"])] for r in rows]))
    return 0
