"""`reputation [--json]`: each sender's complaint rate and refusals for failed authentication."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway import config as config_mod
from gateway.cli.common import with_store
from gateway.cli.table import render
from gateway.engine.packs import load_packs
from gateway.store import Store
from gateway.volume import SenderStanding, Standing, standings

_SAYS = {
    Standing.TOO_FEW: "too few to judge",
    Standing.OK: "ok",
    Standing.WARN: "WARN: over the warn rate",
    Standing.STOP: "STOPPED: advertising mail refused",
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "reputation", parents=[common],
        help="each sender's complaint rate and refusals for failed authentication",
        description="Per sender, over the windows of the rules in rules/reputation.toml: "
        "feedback-loop complaints per recipient of advertising mail (sender.complaint_rate: "
        "at its warn rate mail goes and ops are told, at its stop rate the sender's "
        "advertising mail is refused) and messages receivers refused for failed SPF, DKIM "
        "or DMARC (sender.auth_refused: recorded for ops). Counts reach the store every "
        "[store] volume_interval. Exit 1 when a sender is stopped or refused for "
        "authentication.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per sender and line")
    p.set_defaults(func=run)


def _rows(found: list[SenderStanding]) -> list[list[str]]:
    rows = []
    for e in found:
        auth = e.to_dict()["auth_refusals"]
        rows.append([
            e.sender_id, f"{e.complaints.sent:,}", f"{e.complaints.complaints:,}",
            f"{e.complaints.rate:.3%}", _SAYS[e.standing] if e.standing else "not checked",
            f"{e.auth_refusals:,}" + (" — CHECK SPF/DKIM/DMARC" if auth["flagged"] else ""),
        ])
    return rows


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    rules = load_packs(cfg.policy.rules)

    async def work(store: Store) -> int:
        found = await standings(store, rules, [s.id for s in cfg.senders])
        if args.json:
            for entry in found:
                print(json.dumps(entry.to_dict(), ensure_ascii=False))
        elif found:
            shown = found[0].to_dict()
            days = shown["complaints"]["window_days"], shown["auth_refusals"]["window_days"]
            print(render(["sender", f"sent ({days[0]} d)", "complaints", "rate", "standing",
                          f"auth refusals ({days[1]} d)"], _rows(found)))
            t = shown["complaints"]["thresholds"]
            print(f"complaints: warn at {t['warn']:.2%}, stop at {t['stop']:.2%}, judged from "
                  f"{t['min_sent']:,} recipients" if t else
                  "policy.rules runs no reputation.complaint_rate rule (rules/reputation.toml)")
        else:
            print("no senders configured")
        troubled = any(e.standing is Standing.STOP or e.auth_flagged for e in found)
        return 1 if troubled else 0

    return with_store(cfg, work)
