"""Server-rendered SVG: a stacked bar chart of decisions per day (no JavaScript)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from gateway.store.base import Store

PALETTE = ("#c0392b", "#e67e22", "#8e44ad", "#2c7fb8", "#16a085", "#7f8c8d", "#d35400",
           "#2c3e50", "#b7950b", "#6c3483")
ACCEPTED_COLOR = "#27ae60"


@dataclass(frozen=True, slots=True)
class DayCounts:
    day: str  # YYYY-MM-DD (Japan time)
    accepted: int
    rejected: int
    tempfailed: int
    by_rule: dict[str, int]


async def daily_counts(store: Store, days: int, tz: str = "Asia/Tokyo",
                       now: datetime | None = None) -> list[DayCounts]:
    """Per-day verdict and refusing-rule counts, one indexed query per day (portable SQL)."""
    zone = ZoneInfo(tz)
    today = (now or datetime.now(zone)).astimezone(zone).replace(hour=0, minute=0, second=0,
                                                                  microsecond=0)
    out: list[DayCounts] = []
    for back in range(days - 1, -1, -1):
        start = today - timedelta(days=back)
        end = start + timedelta(days=1)
        verdicts: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for row in await store.fetch(
            "SELECT verdict, rule_ids, count(*) AS n FROM events WHERE created_at >= ? "
            "AND created_at < ? GROUP BY verdict, rule_ids",
            (start.timestamp(), end.timestamp()),
        ):
            n = int(row["n"])
            verdicts[row["verdict"]] += n
            if row["verdict"] != "accepted":
                for rule in filter(None, str(row["rule_ids"]).split(",")):
                    rules[rule] += n
        out.append(DayCounts(start.strftime("%Y-%m-%d"), verdicts["accepted"],
                             verdicts["rejected"], verdicts["tempfailed"], dict(rules)))
    return out


def rule_colors(days: list[DayCounts]) -> dict[str, str]:
    totals: Counter[str] = Counter()
    for d in days:
        totals.update(d.by_rule)
    return {rule: PALETTE[i % len(PALETTE)] for i, (rule, _) in enumerate(totals.most_common())}


def refusal_chart(days: list[DayCounts], colors: dict[str, str], *, width: int = 860,
                  height: int = 260) -> Markup:
    """Stacked bars: refusals per day, one colour per rule; accepted mail as a thin green bar."""
    left, bottom, top = 44, 34, 12
    plot_h = height - bottom - top
    n = max(1, len(days))
    slot = (width - left - 8) / n
    bar = max(4.0, slot * 0.55)
    highest = max([sum(d.by_rule.values()) for d in days] + [d.accepted for d in days] + [1])
    peak = -(-highest // 4) * 4  # a multiple of 4, so the 5 grid lines get whole numbers
    scale = plot_h / peak
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart" role="img" aria-label="拒否数の推移 / refusals per day">'
    ]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - value * scale
        parts.append(f'<line x1="{left}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#ddd" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#555">{round(value)}</text>')
    for i, d in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        for rule, count in sorted(d.by_rule.items(), key=lambda kv: -kv[1]):
            h = count * scale
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar * 0.75:.1f}" height="{h:.1f}" '
                f'fill="{colors.get(rule, "#999")}"><title>{escape(d.day)} {escape(rule)}: '
                f'{count}</title></rect>')
        if d.accepted:
            h = d.accepted * scale
            parts.append(
                f'<rect x="{x + bar * 0.8:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar * 0.2:.1f}" height="{h:.1f}" fill="{ACCEPTED_COLOR}">'
                f'<title>{escape(d.day)} accepted: {d.accepted}</title></rect>')
        if n <= 16 or i % 2 == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 14}" text-anchor="middle" '
                         f'font-size="11" fill="#333">{escape(d.day[5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def totals(days: list[DayCounts]) -> dict[str, Any]:
    rules: Counter[str] = Counter()
    for d in days:
        rules.update(d.by_rule)
    return {
        "accepted": sum(d.accepted for d in days),
        "rejected": sum(d.rejected for d in days),
        "tempfailed": sum(d.tempfailed for d in days),
        "by_rule": rules.most_common(),
    }
