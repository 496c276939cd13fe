"""The reputation rules' thresholds and windows, and their packs' parameter checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import SenderConfig
from gateway.engine.packs import load_packs
from gateway.errors import PackError
from gateway.gmail_bulk import GmailBulk, gmail_bulk, gmail_groups
from gateway.volume import SenderDays, Standing, Tally, auth_refusal_statuses, judge

ROOT = Path(__file__).resolve().parents[3]
PACK = load_packs([str(ROOT / "rules" / "reputation.toml")])
SHIPPED = next(r.params for r in PACK.rules if r.id == "sender.complaint_rate")


@pytest.mark.parametrize(("sent", "complaints", "expected"), [
    (999, 999, Standing.TOO_FEW),  # under min_sent nothing is judged, however bad
    (1000, 0, Standing.OK),
    (1000, 1, Standing.WARN),  # 0.1 % exactly
    (1000, 2, Standing.WARN),
    (1000, 3, Standing.STOP),  # 0.3 % exactly
    (100_000, 299, Standing.WARN),
    (100_000, 300, Standing.STOP),
])
def test_the_shipped_thresholds(sent: int, complaints: int, expected: Standing) -> None:
    assert judge(Tally(sent, complaints), SHIPPED) is expected


def test_the_window_counts_today_and_the_days_before_it() -> None:
    days = SenderDays(today=100, days={93: (1, 1, 0, 0), 94: (10, 0, 1, 2), 100: (5, 2, 3, 1),
                                       101: (7, 7, 7, 7)})
    assert days.over(7) == Tally(15, 2, 4, 3)  # 94..100; 101 is in the future (a clock step)
    assert days.over(1) == Tally(5, 2, 3, 1)
    assert days.over(8) == Tally(16, 3, 4, 3)
    assert Tally().rate("complaints") == Tally().rate("hard_bounces") == 0.0
    assert days.over(7).rate("hard_bounces") == 0.2


RATE, AUTH, GMAIL = "reputation.rate", "reputation.auth_refusals", "reputation.gmail_bulk"


@pytest.mark.parametrize(("check", "params", "problem"), [
    (RATE, 'of = "complaints", window_days = 7, min_sent = 1000, warn = 0.004, stop = 0.003',
     "0 < warn <= stop < 1"),
    (RATE, 'of = "complaints", window_days = 7, min_sent = 1000, warn = 0.001, stop = 3',
     "0 < warn <= stop < 1"),
    (RATE, 'of = "complaints", window_days = 0, min_sent = 1000, warn = 0.001, stop = 0.003',
     "window_days must be 1"),
    (RATE, 'of = "complaints", window_days = 7, min_sent = 0, warn = 0.001, stop = 0.003',
     "min_sent must be at least"),
    (RATE, 'of = "complaints", window_days = 7, warn = 0.001, stop = 0.003',
     "needs parameter(s) min_sent"),
    (RATE, 'of = "complaints", window_days = 7.5, min_sent = 1, warn = 0.001, stop = 0.003',
     "'window_days' must be int"),
    (RATE, 'of = "opt_outs", window_days = 7, min_sent = 1, warn = 0.001, stop = 0.003',
     "of must be one of complaints, hard_bounces"),
    (AUTH, 'statuses = ["5.7.26", "5.7"], window_days = 1, at_least = 1',
     "statuses must be enhanced status codes like 5.7.26, not ['5.7']"),
    (AUTH, "statuses = [], window_days = 1, at_least = 1", "statuses must be enhanced status codes"),
    (AUTH, 'statuses = ["5.7.26"], window_days = 1, at_least = 0', "at_least must be at least 1"),
    (AUTH, 'statuses = ["5.7.26"], window_days = 91, at_least = 1', "window_days must be 1 to 90"),
    (GMAIL, 'domains = [], daily_limit = 5000, approach = 0.8, requires = []',
     "domains must name mail domains"),
    (GMAIL, 'domains = ["gmail.com"], daily_limit = 0, approach = 0.8, requires = []',
     "daily_limit must be at least 1"),
    (GMAIL, 'domains = ["gmail.com"], daily_limit = 5000, approach = 80.0, requires = []',
     "approach must be over 0 and at most 1"),
    (GMAIL, 'domains = ["gmail.com"], daily_limit = 5000, approach = 0.8, requires = ["dmarc"]',
     "requires must list rule ids"),
])
def test_a_pack_with_impossible_parameters_is_refused(
    tmp_path: Path, check: str, params: str, problem: str
) -> None:
    pack = tmp_path / "site.toml"
    pack.write_text(
        f'[[rule]]\nid = "sender.site"\ncheck = "{check}"\n'
        f'phase = "mail"\nparams = {{ {params} }}\nreply = "550 5.7.1 stop"\n', "utf-8")
    with pytest.raises(PackError, match=r"rule 'sender\.site'") as raised:
        load_packs([str(pack)])
    assert problem in str(raised.value)


def test_the_shipped_auth_rule_watches_the_statuses_legal_md_names() -> None:
    # legal.md §5.1: 5.7.26/5.7.27/5.7.30/5.7.32/5.7.40/5.7.515 -> "auth misconfig"
    assert {"5.7.26", "5.7.27", "5.7.30", "5.7.32", "5.7.40", "5.7.515"} <= auth_refusal_statuses(
        PACK)
    [rule] = [r for r in PACK.rules if r.id == "sender.auth_refused"]
    assert rule.on_fail.value == "warn"  # recorded only: mail to other receivers may pass


EVERY_PACK = load_packs([str(ROOT / "rules" / f"{p}.toml")
                         for p in ("baseline", "tokuden", "alignment", "reputation")])


def test_gmail_counts_personal_gmail_addresses_only() -> None:
    bulk = gmail_bulk(EVERY_PACK, monitor=False)
    assert bulk is not None and (bulk.daily_limit, bulk.near) == (5000, 4000)
    assert bulk.count(["a@gmail.com", "b@GoogleMail.com", "c@Gmail.COM", "d@example.com",
                       "e@mail.gmail.com", "f@gmail.com.example", '"g,h"@gmail.com', ""]) == 4


def test_gmail_bulk_requirements_unmet_when_a_rule_is_missing_warns_or_is_monitored(
    tmp_path: Path,
) -> None:
    assert gmail_bulk(EVERY_PACK, monitor=False).unmet == ()  # type: ignore[union-attr]
    assert gmail_bulk(EVERY_PACK, monitor=True).unmet == (  # type: ignore[union-attr]
        "align.spf (monitor mode)", "align.dkim (monitor mode)", "align.dmarc (monitor mode)",
        "sender.complaint_rate (monitor mode)")
    site = tmp_path / "site.toml"
    site.write_text('[[rule]]\nid = "align.dmarc"\ncheck = "auth.dmarc_aligned"\n'
                    'phase = "data"\non_fail = "warn"\nreply = "550 5.7.1 x"\n', "utf-8")
    relaxed = load_packs([str(ROOT / "rules" / "reputation.toml"), str(site)])
    assert gmail_bulk(relaxed, monitor=False).unmet == (  # type: ignore[union-attr]
        "align.spf (not loaded)", "align.dkim (not loaded)", "align.dmarc (on_fail warn)")
    assert gmail_bulk(load_packs([str(ROOT / "rules" / "tokuden.toml")]), monitor=False) is None


@pytest.mark.parametrize(("today", "bulk_since", "unmet", "flagged"), [
    (3999, None, ("align.spf (not loaded)",), False),  # under 80 % of the limit
    (4000, None, ("align.spf (not loaded)",), True),  # near it, a requirement unmet
    (0, 19000, ("align.spf (not loaded)",), True),  # bulk for good, however quiet today
    (6000, 19000, (), False),  # bulk, every requirement enforced
])
def test_a_gmail_standing_is_flagged_near_or_over_the_limit_with_a_requirement_unmet(
    today: int, bulk_since: int | None, unmet: tuple[str, ...], flagged: bool
) -> None:
    bulk = GmailBulk(frozenset({"gmail.com"}), 5000, 0.8, unmet)
    standing = bulk.standing("sample", today, bulk_since)
    assert standing.flagged is flagged
    assert standing.to_dict()["bulk_since"] == ("2022-01-08" if bulk_since else None)
    assert standing.to_dict()["counted_with"] == []


def _sender(sender_id: str, *domains: str) -> SenderConfig:
    return SenderConfig(id=sender_id, domains=domains)


def test_senders_of_one_organisational_domain_are_counted_together_at_gmail() -> None:
    senders = [
        _sender("news", "news.example.co.jp"),
        _sender("shop", "shop.example.co.jp", "Example.co.jp"),
        _sender("other", "other.example"),  # alone: left out
        _sender("brand", "brand.example", "mail.example.com"),  # links brand.example ...
        _sender("legacy", "example.com"),  # ... to example.com's senders
        _sender("corp", "corp.brand.example"),
    ]
    groups = gmail_groups(senders)
    assert groups == {
        "news": ("news", "shop"), "shop": ("news", "shop"),  # co.jp is a public suffix
        "brand": ("brand", "corp", "legacy"), "legacy": ("brand", "corp", "legacy"),
        "corp": ("brand", "corp", "legacy"),
    }
    # example.co.jp and example.com are different organisations; co.jp itself is no one's
    assert gmail_groups([_sender("a", "a.example.co.jp"), _sender("b", "b.other.co.jp")]) == {}
    bulk = GmailBulk(frozenset({"gmail.com"}), 5000, 0.8, (), groups)
    standing = bulk.standing("shop", 4000, None)
    assert standing.counted_with == ("news",)
    assert standing.describe() == ("4,000 of Gmail's 5,000 a day to personal accounts today "
                                   "(counted with news: one organisational domain)")
    assert bulk.standing("other", 1, None).counted_with == ()
