"""The event row's JSON columns and the log lines: orjson's text, json's meaning."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.logs import JsonFormatter
from gateway.model import Event, EventVerdict, Outcome, Phase, RuleResult
from gateway.store.events import EVENT_COLUMNS, event_row, row_dict

RESULTS = (
    RuleResult("optin.missing", Outcome.PASS, "opted_in via double_opt_in at 2026-01-10"),
    RuleResult("footer.sender_name", Outcome.FAIL, "送信者の氏名がありません", {"parts": ["text/html"]}),
    RuleResult("align.client_dkim", Outcome.SKIP, "", {"signatures": [{"d": "example.jp", 1: None}]}),
)


def _event(**changes: object) -> Event:
    event = Event(EventVerdict.REJECTED, Phase.DATA, "550 5.7.1 footer", results=RESULTS,
                  timings={"data_rules": 0.000303, "prepare": 0.000448}, event_id="e1",
                  created_at=1_790_000_000.0)
    for name, value in changes.items():
        setattr(event, name, value)
    return event


def test_an_event_row_reads_back_as_json_dumps_wrote_it() -> None:
    row = dict(zip(EVENT_COLUMNS, event_row(_event()), strict=True))
    as_before = json.dumps([r.to_dict() for r in RESULTS], ensure_ascii=False)
    # the objects json.dumps stored before, now read back from arrays (int keys become "1")
    assert row_dict(row)["results"] == json.loads(as_before)
    assert "送信者の氏名" in row["results"]  # UTF-8 as is, not \\u escapes
    assert row_dict(row)["results"][1] == {"rule": "footer.sender_name", "outcome": "fail",
                                           "detail": "送信者の氏名がありません",
                                           "data": {"parts": ["text/html"]}}
    assert row_dict(row)["timings"] == {"data_rules": 0.000303, "prepare": 0.000448}


def test_text_orjson_refuses_is_written_as_json_did() -> None:
    # a lone surrogate: what surrogateescape makes of undecodable header bytes
    odd = (RuleResult("message.malformed", Outcome.FAIL, "Subject: \udcff\udcfe"),)
    row = dict(zip(EVENT_COLUMNS, event_row(_event(results=odd)), strict=True))
    assert row["results"] == json.dumps([["message.malformed", "fail", "Subject: \udcff\udcfe"]],
                                        ensure_ascii=False)
    assert row_dict(row)["results"] == [odd[0].to_dict()]


@pytest.mark.parametrize("arg", ["taro@example.com 冬のセール", "\udcff"])
def test_a_log_line_is_one_json_object(arg: str) -> None:
    record = logging.LogRecord("gateway.decision", logging.INFO, __file__, 1, "decision %s",
                               (arg,), None)
    record.fields = {"verdict": "accepted", "rules": ["optin.missing"], "at": object()}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["msg"] == f"decision {arg}"
    assert out["level"] == "info" and out["verdict"] == "accepted"
    assert out["at"].startswith("<object object at")  # str() of what JSON cannot hold
