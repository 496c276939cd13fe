"""`user add NAME`: hash a client password and print the [[clients]] lines to paste."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from gateway import config
from gateway.errors import ConfigError
from gateway.smtp.credentials import hash_password


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("user", help="manage SMTP client credentials")
    users = p.add_subparsers(dest="user_command", metavar="ACTION")
    users.required = True
    add = users.add_parser(
        "add", parents=[common], help="print a [[clients]] entry with a password hash"
    )
    add.add_argument("name", help="the SMTP AUTH username")
    add.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the password from FILE (default: $GATEWAY_PASSWORD, else prompt)",
    )
    add.add_argument(
        "--sender", action="append", default=[], metavar="ID",
        help="sender identity it may use (repeat for several; default: the config's only one)",
    )
    add.add_argument(
        "--class", dest="class_", choices=["advertising", "transactional"], default="advertising",
        help="advertising (consent and display items checked) or transactional",
    )
    add.set_defaults(func=run_add)


def _senders(args: argparse.Namespace) -> list[str]:
    """--sender as given, checked against the config when there is one; else the config's
    only sender identity. Raises ConfigError (exit 2) naming --sender."""
    path = Path(args.config or config.default_path())
    if not path.exists():
        if args.sender:
            return list(args.sender)  # no config at hand: the ids are taken on trust
        raise ConfigError(f"name the sender identities (no config at {path})", "--sender")
    cfg = config.load(path)  # a config that is there but broken is an error, not skipped
    known = [s.id for s in cfg.senders]
    for sender in args.sender:
        if sender not in known:
            raise ConfigError(
                f"no sender identity {sender!r} (configured: {', '.join(known)})", "--sender"
            )
    if args.sender:
        return list(args.sender)
    if len(known) == 1:
        return known
    raise ConfigError(
        f"name the sender identities with --sender (configured: {', '.join(known)})", "--sender"
    )


def run_add(args: argparse.Namespace) -> int:
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as fh:
                password = fh.read().rstrip("\r\n")
        except OSError as exc:
            print(
                f"tokuden: --password-file: cannot read {args.password_file}: {exc.strerror}",
                file=sys.stderr,
            )
            return 2
    elif os.environ.get("GATEWAY_PASSWORD"):
        password = os.environ["GATEWAY_PASSWORD"]
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("tokuden: passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        print("tokuden: password must be at least 12 characters", file=sys.stderr)
        return 2
    senders = ", ".join(json.dumps(s) for s in _senders(args))
    print("[[clients]]")
    print(f"username = {json.dumps(args.name)}")
    print(f'password_hash = "{hash_password(password)}"')
    print(f"senders = [{senders}]")
    print(f'class = "{args.class_}"')
    return 0
