"""`check FILE.eml [--sender ID] [--json]`: preflight a campaign draft; exit 1 on violations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway import config as config_mod
from gateway.cli.table import render
from gateway.content.footer import ITEM_IDS
from gateway.engine.packs import load_packs
from gateway.errors import ConfigError
from gateway.footer_policy import FooterPolicy
from gateway.preflight import preflight


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "check", parents=[common], help="preflight a draft (.eml) against the content rules"
    )
    p.add_argument("file", type=Path, help="the draft as an .eml file")
    p.add_argument("--sender", metavar="ID", help="sender identity (default: from the From domain)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    try:
        raw = args.file.read_bytes()
    except OSError as exc:
        print(f"tokuden check: error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    sender = cfg.sender(args.sender) if args.sender else _sender_from(cfg, raw)
    if sender is None:
        known = ", ".join(s.id for s in cfg.senders)
        raise ConfigError(f"no sender identity for this draft (known: {known})", "--sender")
    result = preflight(cfg, load_packs(cfg.policy.rules), FooterPolicy(cfg), sender, raw)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return 0 if result.ok else 1
    print(f"{args.file} — sender {sender.id} ({sender.law})")
    if result.footer is not None:
        for part in result.footer.parts:
            print(f"\npart {part.path} {part.content_type} ({part.charset or 'no charset'})")
            rows = [
                [r.item, "OK" if r.present else "MISSING", r.reason.value, (r.matched or r.detail)]
                for r in part.items
            ]
            print(render(["item", "", "why", "found / detail"], rows, max_col=60))
        for problem in result.footer.problems:
            print(f"problem: {problem}")
    others = [
        r
        for r in result.results
        if r["outcome"] == "fail"
        and r["rule"] not in ITEM_IDS
    ]
    for r in others:
        warning = " (warning only)" if r["rule"] in result.warned else ""
        print(f"{r['rule']}{warning}: {r.get('detail', '')}")
    print(
        "\nresult: "
        + (
            "pass — 送信可能です"
            if result.ok
            else "violations: " + ", ".join(result.failed) + " — 修正が必要です"
        )
    )
    return 0 if result.ok else 1


def _sender_from(cfg: config_mod.Config, raw: bytes) -> config_mod.SenderConfig | None:
    import email.parser
    import email.policy
    import email.utils

    headers = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        raw, headersonly=True
    )
    addresses = email.utils.getaddresses([str(v) for v in headers.get_all("From") or []])
    domain = addresses[0][1].rpartition("@")[2].lower() if addresses else ""
    return next((s for s in cfg.senders if s.owns_from_domain(domain)), None)
