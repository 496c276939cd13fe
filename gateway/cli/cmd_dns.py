"""`dns check`, `dkim keygen`, `secret generate|rotate`: the DNS and key chores of going live."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gateway import config as config_mod
from gateway.auth.dkim_sign import generate_key
from gateway.auth.dnscheck import SenderCheck, check_sender
from gateway.auth.policy import AuthPolicy
from gateway.cli import args as args_mod
from gateway.cli.table import render
from gateway.errors import ConfigError
from gateway.unsubscribe.tokens import generate_secret_file, rotate_secret_file


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    dns = sub.add_parser("dns", help="DNS records to publish, and whether DNS matches")
    dns_actions = dns.add_subparsers(dest="dns_command", metavar="ACTION")
    dns_actions.required = True
    check = dns_actions.add_parser("check", parents=[common], help="the go-live DNS checklist")
    check.add_argument("--sender", metavar="ID", help="one sender identity (default: all)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=run_check)

    dkim = sub.add_parser("dkim", help="DKIM keys")
    dkim_actions = dkim.add_subparsers(dest="dkim_command", metavar="ACTION")
    dkim_actions.required = True
    keygen = dkim_actions.add_parser("keygen", parents=[common], help="new key and its TXT record")
    keygen.add_argument("--sender", required=True, metavar="ID")
    keygen.add_argument("--selector", required=True, metavar="S")
    keygen.add_argument("--algorithm", choices=["rsa", "ed25519"], default="rsa")
    keygen.add_argument("--output", type=Path, help="key file (default: keys/DOMAIN.SELECTOR.pem)")
    keygen.set_defaults(func=run_keygen)

    secret = sub.add_parser("secret", help="the unsubscribe-token key file")
    secret_actions = secret.add_subparsers(dest="secret_command", metavar="ACTION")
    secret_actions.required = True
    where = "the key file (default: the config's policy.unsubscribe_secret_file)"
    gen = secret_actions.add_parser("generate", parents=[common],
                                    help="write a new key file (mode 0600)")
    gen.add_argument("path", type=Path, nargs="?", help=where)
    gen.set_defaults(func=run_secret_generate)
    rot = secret_actions.add_parser("rotate", parents=[common],
                                    help="new current key; older keys keep working")
    rot.add_argument("path", type=Path, nargs="?", help=where)
    rot.add_argument("--keep", type=args_mod.at_least(0), default=3,
                     help="older keys to keep (default 3)")
    rot.set_defaults(func=run_secret_rotate)


def run_check(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    senders = [cfg.sender(args.sender)] if args.sender else list(cfg.senders)
    if args.sender and senders[0] is None:
        raise ConfigError(f"unknown sender {args.sender!r}", "--sender")

    async def go() -> list[SenderCheck]:
        auth = AuthPolicy(cfg)
        try:
            return [await check_sender(auth, s) for s in senders if s is not None]
        finally:
            await auth.close()

    results = asyncio.run(go())
    ok = all(r.ok for r in results)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "senders": [
                        {
                            "sender": r.sender,
                            "ok": r.ok,
                            "records": [x.to_dict() for x in r.records],
                        }
                        for r in results
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0 if ok else 1
    for r in results:
        print(f"\nsender {r.sender}: {'OK' if r.ok else 'ACTION NEEDED'}")
        rows = [
            [x.kind, x.name, "OK" if x.ok else ("MISSING" if x.required else "advice"), x.detail]
            for x in r.records
        ]
        print(render(["record", "name", "", "now"], rows, max_col=70))
        for x in r.records:
            if not x.ok and x.publish:
                print(f'  publish: {x.name}. IN TXT "{x.publish}"')
    return 0 if ok else 1


def run_keygen(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    sender = cfg.sender(args.sender)
    if sender is None:
        raise ConfigError(f"unknown sender {args.sender!r}", "--sender")
    domain = sender.domains[0]
    path = args.output or Path(cfg.path).resolve().parent / "keys" / f"{domain}.{args.selector}.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    algorithm = "rsa-sha256" if args.algorithm == "rsa" else "ed25519-sha256"
    try:
        record = generate_key(path, algorithm)
    except FileExistsError:
        print(f"tokuden dkim keygen: error: {path} exists; choose a new selector", file=sys.stderr)
        return 1
    print(f"wrote {path} (mode 0600)")
    print(f'\npublish:\n  {args.selector}._domainkey.{domain}. IN TXT "{record}"')
    print("\nthen add to the sender identity:\n  [[senders.dkim]]")
    print(f'  selector = "{args.selector}"\n  key = "{path}"\n  algorithm = "{algorithm}"')
    return 0


def _secret_path(args: argparse.Namespace) -> Path:
    if args.path is not None:
        return Path(args.path)
    named = config_mod.load(args.config, validate=False).policy.unsubscribe_secret_file
    if not named:
        raise ConfigError("not set: give the key file's path, or set it here",
                          "policy.unsubscribe_secret_file")
    return Path(named)


def run_secret_generate(args: argparse.Namespace) -> int:
    args.path = _secret_path(args)
    try:
        generate_secret_file(args.path)
    except FileExistsError:
        print(f"tokuden secret generate: error: {args.path} exists (use rotate)", file=sys.stderr)
        return 1
    print(f"wrote {args.path} (mode 0600)")
    return 0


def run_secret_rotate(args: argparse.Namespace) -> int:
    args.path = _secret_path(args)
    rotate_secret_file(args.path, keep=args.keep)
    print(f"rotated {args.path}: new links use the new key; older links still work")
    return 0
