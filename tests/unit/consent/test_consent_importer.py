"""Import files: exact reports on the committed samples, streaming limits, export round trip."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.consent.importer import (
    ImportReader,
    ImportRow,
    RowError,
    column_spec_markdown,
    export_rows,
    validate_file,
)
from gateway.consent.model import ConsentMethod, ConsentStatus

DATA = Path(__file__).resolve().parents[2] / "data" / "consent"
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def read(name: str, **kw: object) -> tuple[list[ImportRow | RowError], ImportReader]:
    reader = ImportReader(DATA / name, now=NOW, **kw)  # type: ignore[arg-type]
    return list(reader), reader


def errors(items: list[ImportRow | RowError]) -> list[str]:
    return [str(i) for i in items if isinstance(i, RowError)]


@pytest.mark.parametrize(("name", "encoding"), [("valid_utf8.csv", "utf-8"),
                                                ("valid_utf8_bom.csv", "utf-8-sig")])
def test_valid_csv(name: str, encoding: str) -> None:
    items, r = read(name)
    rows = [i for i in items if isinstance(i, ImportRow)]
    assert r.report.ok and r.report.encoding == encoding and r.report.format == "csv"
    assert (r.report.records, r.report.valid, r.report.opted_in, r.report.exempt,
            r.report.opted_out, r.report.grants) == (6, 6, 4, 1, 1, 5)
    assert [row.line_number for row in rows] == [2, 3, 4, 5, 6, 7]
    first = rows[0]
    assert first.status is ConsentStatus.OPTED_IN and first.method is ConsentMethod.DOUBLE_OPT_IN
    assert first.consented_at == datetime(2026, 11, 1, 0, tzinfo=UTC)
    assert (first.topic, first.client_ip, first.source_ref) == ("newsletter", "203.0.113.7",
                                                                "form-1")
    assert rows[1].address.domain == "example.co.jp" and rows[1].address.local[0].isupper()
    assert rows[3].consented_at.isoformat() == "2026-11-04T09:05:00+09:00"  # Excel, JST
    assert rows[4].address.address == "full.width@example.jp"
    assert rows[5].address.domain == "xn--r8jz45g.xn--zckzah" and rows[5].client_ip == "2001:db8::1"
    ev = first.to_event(sender_id="s1", batch_id="b1", recorded_by="ops",
                        default_source_system="csv")
    assert ev.is_import and not ev.lifts_opt_out and ev.source_system == "hubspot"


def test_cp932_japanese_headers_and_values() -> None:
    items, r = read("valid_cp932_ja.csv")
    assert errors(items) == ["line 1: unknown column(s): 氏名"] and r.report.fatal is not None
    items, r = read("valid_cp932_ja.csv", ignore_unknown=True)
    rows = [i for i in items if isinstance(i, ImportRow)]
    assert r.report.ok and r.report.encoding == "cp932"
    assert r.report.ignored_columns == ["氏名"]
    assert [(x.status, x.method, x.topic) for x in rows] == [
        (ConsentStatus.OPTED_IN, ConsentMethod.WEB_FORM, None),
        (ConsentStatus.OPTED_OUT, ConsentMethod.UNSUBSCRIBE_PAGE, "セール情報"),
        (ConsentStatus.EXEMPT, ConsentMethod.BUSINESS_CARD, None),
    ]
    assert rows[0].consented_at.isoformat() == "2026-11-22T10:00:00+09:00"


def test_jsonl() -> None:
    items, r = read("mixed.jsonl")
    assert r.report.format == "jsonl" and (r.report.records, r.report.valid) == (5, 2)
    assert errors(items) == [
        "line 4: invalid JSON: Expecting ',' delimiter: line 2 column 1 (char 52)",
        "line 5: not a JSON object",
        "line 6: missing required field(s): method, consented_at",
    ]
    rows = [i for i in items if isinstance(i, ImportRow)]
    assert rows[0].source_ref == "4711" and rows[1].topic is None
    assert r.report.skipped_lines == [4, 5, 6]


def test_bad_values_exact_report() -> None:
    items, r = read("bad_values.csv")
    assert errors(items) == [
        "line 2: column email: invalid address 'foo@' (no domain)",
        "line 3: column email: invalid address 'user%host@example.jp' "
        "(percent-hack relay form (user%host@domain) is not accepted)",
        "line 4: column status: unknown value 'yes' (expected opted_in, opted_out or exempt)",
        "line 5: column method: unknown value 'carrier_pigeon' (expected one of web_form, "
        "double_opt_in, paper_form, cmp, manual, business_card, transaction, "
        "published_address, one_click, unsubscribe_page, mailto, complaint, import_optout)",
        "line 6: column method: method web_form is not an exemption basis (expected "
        "business_card, published_address or transaction), for status exempt",
        "line 7: column consented_at: cannot parse 'yesterday' (expected ISO 8601 like "
        "2026-11-22T10:00:00+09:00 or 2026/11/22 10:00)",
        "line 8: column consented_at: cannot parse '2026/13/40 10:00' (expected ISO 8601 like "
        "2026-11-22T10:00:00+09:00 or 2026/11/22 10:00)",
        "line 9: column consented_at: cannot parse '1900/01/00' (expected ISO 8601 like "
        "2026-11-22T10:00:00+09:00 or 2026/11/22 10:00)",
        "line 10: column consented_at: '2099-01-01T00:00:00+09:00' is in the future",
        "line 11: column client_ip: not an IP address: '999.1.1.1'",
        "line 12: has 7 fields, header has 9",
        "line 14: malformed CSV: unexpected end of data",
    ]
    assert r.report.error_count == 12 and not r.report.ok
    assert r.report.skipped_lines == [*list(range(2, 13)), 14]
    # the opt-out on line 13 survives a bad method and a bad date
    (row,) = [i for i in items if isinstance(i, ImportRow)]
    assert (row.line_number, row.status, row.method, row.consented_at) == (
        13, ConsentStatus.OPTED_OUT, ConsentMethod.IMPORT_OPTOUT, NOW)
    assert [str(w) for w in r.report.warnings] == [
        "line 13: column method: 'phone' not recognised; opt-out kept as import_optout",
        "line 13: column consented_at: 'not a date' is not a date; opt-out kept with the "
        "import time",
    ]


def test_duplicates_and_conflicts() -> None:
    items, r = read("duplicates_conflicts.csv")
    rep = r.report
    assert rep.duplicates == [(3, 2)]
    assert rep.conflicts == [(7, 6), (8, 6)]
    assert errors(items) == [
        "line 7: column status: conflicts with line 6: opted_out here, opted_in there "
        "(same address)",
        "line 6: column status: conflicts with line 7: opted_in here, opted_out there",
        "line 8: column status: conflicts with line 6: opted_out here, opted_in there "
        "(same address)",
    ]
    conflict = next(i for i in items if isinstance(i, RowError) and i.line_number == 7)
    assert conflict.row is not None and conflict.row.status is ConsentStatus.OPTED_OUT
    # lines 2, 4 (other topic) and 5 (same status, different event) stay; 6 was retracted
    assert (rep.valid, rep.opted_in, rep.opted_out) == (3, 3, 0)
    assert rep.skipped_lines == [6, 7, 8]
    assert [str(w) for w in rep.warnings] == ["line 3: duplicate of line 2; skipped"]
    # second pass of a --skip-invalid import
    rows = [i for i in ImportReader(DATA / "duplicates_conflicts.csv", now=NOW,
                                    skip_lines=rep.skipped_lines)]
    assert [x.line_number for x in rows if isinstance(x, ImportRow)] == [2, 4, 5]
    assert not [x for x in rows if isinstance(x, RowError)]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing_column.csv", "line 1: missing required column(s): method"),
        ("unknown_column.csv", "line 1: unknown column(s): topc, phone"),
        ("bad_encoding.csv", "file is not valid UTF-8 or Shift_JIS at byte "
         + str((DATA / "bad_encoding.csv").read_bytes().index(b"\x81"))),
        ("binary_junk.csv", "binary data (NUL byte) at byte 0: not a text file"),
    ],
)
def test_fatal_file_errors(name: str, message: str) -> None:
    items, r = read(name)
    assert errors(items) == [message]
    assert r.report.fatal is not None and str(r.report.fatal) == message and not r.report.ok


def test_overlong_line_is_skipped_not_fatal() -> None:
    items, _r = read("overlong_line.csv", max_line_chars=1000)
    assert errors(items) == ["line 2: line is longer than 1000 characters"]
    assert [i.line_number for i in items if isinstance(i, ImportRow)] == [3]


def test_huge_line_without_newline_does_not_blow_up() -> None:
    header = b"email,status,method,consented_at\n"
    blob = io.BytesIO(header + b"x" * (5 << 20))  # 5 MB, no newline, no quotes
    items = list(ImportReader(blob, format="csv", now=NOW))
    assert [str(i) for i in items] == ["line 2: line is longer than 65536 characters"]


def test_unterminated_quote_consumes_bounded_input() -> None:
    body = b"email,status,method,consented_at\n\"" + b"a,b\n" * 100_000
    r = ImportReader(io.BytesIO(body), format="csv", now=NOW)
    items = list(r)
    assert r.report.error_count >= 1 and all(isinstance(i, RowError) for i in items)


def test_cp932_junk_bytes_rejected() -> None:
    body = b"email,status,method,consented_at\n" + b"\x82\xa0\xfd\n"
    items = list(ImportReader(io.BytesIO(body), format="csv", now=NOW))
    assert [str(i) for i in items] == ["file is not valid UTF-8 or Shift_JIS at byte 35"]


def test_utf16_and_empty() -> None:
    assert [str(i) for i in ImportReader(io.BytesIO(b"\xff\xfee\x00"), now=NOW)] == [
        "file is UTF-16; save it as CSV UTF-8 or CSV (Shift_JIS)"]
    assert [str(i) for i in ImportReader(io.BytesIO(b""), format="csv", now=NOW)] == [
        "file is empty (no header line)"]


def test_progress_callback() -> None:
    seen: list[tuple[int, int | None]] = []
    validate_file(DATA / "valid_utf8.csv", now=NOW, on_progress=lambda a, b: seen.append((a, b)))
    size = (DATA / "valid_utf8.csv").stat().st_size
    assert seen == [(size, size)]


def test_export_round_trip_csv_and_jsonl(tmp_path: Path) -> None:
    items, _ = read("valid_utf8.csv")
    rows = [i for i in items if isinstance(i, ImportRow)]
    csv_bytes = b"".join(export_rows(rows, "csv", batch=2))
    assert csv_bytes.startswith(b"\xef\xbb\xbf" + b"email,status,method,consented_at")
    assert b"\r\n" in csv_bytes
    for fmt, data in (("csv", csv_bytes), ("jsonl", b"".join(export_rows(rows, "jsonl")))):
        p = tmp_path / f"out.{fmt}"
        p.write_bytes(data)
        again = [i for i in ImportReader(p, now=NOW) if isinstance(i, ImportRow)]
        strip = [r[1:] for r in rows]
        assert [r[1:] for r in again] == strip


def test_export_defuses_formulas() -> None:
    rec = {"email": "-x@example.jp", "status": "opted_in", "method": "web_form",
           "consented_at": "2026-11-01", "user_agent": "=HYPERLINK(\"http://x\")"}
    text = b"".join(export_rows([rec])).decode("utf-8-sig")
    assert "'-x@example.jp" in text and "'=HYPERLINK" in text
    items = list(ImportReader(io.BytesIO(text.encode()), format="csv", now=NOW))
    assert isinstance(items[0], ImportRow)
    assert items[0].address.local == "-x" and items[0].user_agent == '=HYPERLINK("http://x")'
    line = b"".join(export_rows([rec], "jsonl"))
    assert json.loads(line)["user_agent"] == '=HYPERLINK("http://x")'


def test_column_spec_markdown() -> None:
    md = column_spec_markdown()
    assert md.splitlines()[0].startswith("| Column | Required")
    assert "| `email` | yes | メールアドレス, メール, eメール |" in md


def test_an_exemption_without_its_evidence_is_kept_with_a_warning() -> None:
    """legal.md §5.2: a business-card or published-address exemption should carry a reference
    to its evidence; a row without one is imported, and the report says what to keep."""
    data = (
        b"email,status,method,consented_at,source_system,source_ref,topic,client_ip,user_agent\n"
        b"a@example.net,exempt,business_card,2026/11/4 9:05,,card-77,,,\n"
        b"b@example.net,exempt,business_card,2026/11/4 9:05,,,,,\n"
        b"c@example.net,exempt,published_address,2026/11/4 9:05,, ,,,\n"
        b"d@example.net,exempt,transaction,2026/11/4 9:05,,,,,\n"
    )
    report = validate_file(io.BytesIO(data), format="csv", now=NOW)
    assert report.ok and report.valid == 4
    assert [(w.line_number, w.column) for w in report.warnings] == [(3, "source_ref"),
                                                                     (4, "source_ref")]
    assert str(report.warnings[0]).startswith(
        "line 3: column source_ref: business_card exemption without source_ref: keep a "
        "reference to the card received in writing")
    assert "keep the URL where the address is published" in str(report.warnings[1])
    # a row refused for another reason gets its error, not this warning as well
    refused = validate_file(io.BytesIO(data[: data.index(b"\n") + 1] + b"e@example.net,exempt,"
                                       b"business_card,2026/11/4 9:05," + b"s" * 201 + b",,,,\n"),
                            format="csv", now=NOW)
    assert [e.column for e in refused.errors] == ["source_system"] and refused.warnings == []
