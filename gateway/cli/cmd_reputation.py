"""`reputation [--json]`: each sender's complaint rate and refusals for failed authentication."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway import config as config_mod
from gateway.cli.common import with_store
from gateway.cli.table import render
from gateway.engine.packs import load_packs
from gateway.gmail_bulk import GmailStanding
from gateway.store import Store
from gateway.volume import RateStanding, Standing, standings

_SAYS = {
    Standing.TOO_FEW: "too few to judge",
    Standing.OK: "ok",
    Standing.WARN: "WARN",
    Standing.STOP: "STOPPED: advertising mail refused",
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "reputation", parents=[common],
        help="each sender's complaint and bounce rates, refusals for failed authentication, "
        "Gmail bulk status",
        description="Per sender, over the windows of the rules in rules/reputation.toml: "
        "feedback-loop complaints and hard bounces per recipient of advertising mail "
        "(sender.complaint_rate, sender.bounce_rate: at the warn rate mail goes and ops are "
        "told, at the stop rate the sender's advertising mail is refused) and messages "
        "receivers refused for failed SPF, DKIM or DMARC (sender.auth_refused: recorded); "
        "recipients at personal Gmail today and Gmail's bulk-sender status, permanent once "
        "reached (sender.gmail_bulk; senders of one From organisational domain are counted "
        "together, as Gmail counts). Counts reach the store every [store] volume_interval. "
        "Exit 1 when a sender is stopped, refused for authentication, or at or near Gmail's "
        "bulk limit while a bulk requirement is not enforced.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per sender and line")
    p.set_defaults(func=run)


_OF = {"complaints": "complaints", "hard_bounces": "hard bounces"}


def _rate_cell(rate: RateStanding) -> str:
    cell = (f"{rate.tally.rate(rate.of):.3%} ({getattr(rate.tally, rate.of):,} of "
            f"{rate.tally.sent:,})")
    return f"{cell} {_SAYS[rate.standing]}" if rate.standing is not Standing.OK else cell


def _gmail_cell(gmail: GmailStanding) -> str:
    cell = f"{gmail.today:,}"
    if gmail.bulk_since is not None:
        cell += f" (bulk since {gmail.to_dict()['bulk_since']})"
    elif gmail.today >= gmail.near:
        cell += " (near the limit)"
    if gmail.counted_with:
        cell += f" with {', '.join(gmail.counted_with)}"
    return cell + (" CHECK REQUIREMENTS" if gmail.flagged else "")


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    rules = load_packs(cfg.policy.rules)

    async def work(store: Store) -> int:
        found = await standings(store, rules, cfg.senders,
                                monitor=cfg.policy.mode == "monitor")
        if args.json:
            for entry in found:
                print(json.dumps(entry.to_dict(), ensure_ascii=False))
        elif found:
            first = found[0]
            auth_days = first.to_dict()["auth_refusals"]["window_days"]
            headers = ["sender", *(f"{_OF[r.of]} ({r.params['window_days']} d)"
                                   for r in first.rates), f"auth refusals ({auth_days} d)"]
            if first.gmail is not None:
                headers.append("Gmail today (bulk)")
            rows = [[e.sender_id, *map(_rate_cell, e.rates),
                     f"{e.auth_refusals:,}" + (" CHECK SPF/DKIM/DMARC" if e.auth_flagged else ""),
                     *([_gmail_cell(e.gmail)] if e.gmail is not None else [])]
                    for e in found]
            print(render(headers, rows, max_col=60))
            for r in first.rates:
                print(f"{r.rule_id}: warn at {r.params['warn']:.2%}, stop at "
                      f"{r.params['stop']:.2%}, judged from {r.params['min_sent']:,} recipients")
            if not first.rates:
                print("policy.rules runs no reputation.rate rule (rules/reputation.toml)")
            if first.gmail is not None:
                print(f"sender.gmail_bulk: Gmail's bulk limit {first.gmail.daily_limit:,} a day "
                      f"to personal accounts, near it from {first.gmail.near:,}; once reached, "
                      "bulk for good")
                for unmet in first.gmail.unmet:
                    print(f"  bulk requirement not enforced here: {unmet}")
        else:
            print("no senders configured")
        return 1 if any(e.flagged for e in found) else 0

    return with_store(cfg, work)
