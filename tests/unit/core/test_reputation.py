"""The complaint-rate rule's thresholds and window, and its pack's parameter checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.engine.packs import load_packs
from gateway.errors import PackError
from gateway.volume import SenderDays, Standing, Tally, judge

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = next(r.params for r in load_packs([str(ROOT / "rules" / "reputation.toml")]).rules)


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
    days = SenderDays(today=100, days={93: (1, 1), 94: (10, 0), 100: (5, 2), 101: (7, 7)})
    assert days.over(7) == Tally(15, 2)  # 94..100; 101 is in the future (a clock step)
    assert days.over(1) == Tally(5, 2)
    assert days.over(8) == Tally(16, 3)
    assert Tally().rate == 0.0


@pytest.mark.parametrize(("params", "problem"), [
    ("window_days = 7, min_sent = 1000, warn = 0.004, stop = 0.003", "0 < warn <= stop < 1"),
    ("window_days = 7, min_sent = 1000, warn = 0.001, stop = 3", "0 < warn <= stop < 1"),
    ("window_days = 0, min_sent = 1000, warn = 0.001, stop = 0.003", "window_days must be 1"),
    ("window_days = 7, min_sent = 0, warn = 0.001, stop = 0.003", "min_sent must be at least"),
    ("window_days = 7, warn = 0.001, stop = 0.003", "needs parameter(s) min_sent"),
    ("window_days = 7.5, min_sent = 1, warn = 0.001, stop = 0.003", "'window_days' must be int"),
])
def test_a_pack_with_impossible_thresholds_is_refused(
    tmp_path: Path, params: str, problem: str
) -> None:
    pack = tmp_path / "site.toml"
    pack.write_text(
        '[[rule]]\nid = "sender.complaint_rate"\ncheck = "reputation.complaint_rate"\n'
        f'phase = "mail"\nparams = {{ {params} }}\nreply = "550 5.7.1 stop"\n', "utf-8")
    with pytest.raises(PackError, match=r"rule 'sender\.complaint_rate'") as raised:
        load_packs([str(pack)])
    assert problem in str(raised.value)
