"""`complaints [--json]`: each sender's complaint rate against rule sender.complaint_rate."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway import config as config_mod
from gateway.cli.common import with_store
from gateway.cli.table import render
from gateway.engine.packs import load_packs
from gateway.store import Store
from gateway.volume import Standing, standings

_SAYS = {
    Standing.TOO_FEW: "too few to judge",
    Standing.OK: "ok",
    Standing.WARN: "WARN: over the warn rate",
    Standing.STOP: "STOPPED: advertising mail refused",
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "complaints", parents=[common],
        help="each sender's complaint rate over the rule's window (sent, complaints, standing)",
        description="Feedback-loop complaints per recipient of advertising mail, per sender, "
        "over the last days of rule sender.complaint_rate (rules/reputation.toml): at its "
        "warn rate mail goes and ops are told; at its stop rate the sender's advertising mail "
        "is refused. Counts reach the store every [store] volume_interval. Exit 1 when a "
        "sender is stopped.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per sender and line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    rules = load_packs(cfg.policy.rules)

    async def work(store: Store) -> int:
        found = await standings(store, rules, [s.id for s in cfg.senders])
        if args.json:
            for entry in found:
                print(json.dumps(entry.to_dict(), ensure_ascii=False))
        elif found:
            rows = [
                [e.sender_id, f"{e.window_days} days", f"{e.tally.sent:,}",
                 f"{e.tally.complaints:,}", f"{e.tally.rate:.3%}",
                 _SAYS[e.standing] if e.standing else "not checked"]
                for e in found
            ]
            print(render(["sender", "window", "sent", "complaints", "rate", "standing"], rows))
            if found[0].standing is None:
                print("policy.rules runs no reputation.complaint_rate rule "
                      "(rules/reputation.toml): no sender is stopped")
            else:
                t = found[0].thresholds
                print(f"warn at {t['warn']:.2%}, stop at {t['stop']:.2%}, judged from "
                      f"{t['min_sent']:,} recipients")
        else:
            print("no senders configured")
        return 1 if any(e.standing is Standing.STOP for e in found) else 0

    return with_store(cfg, work)
