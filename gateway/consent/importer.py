"""Streaming parser/validator for bulk consent import files (CSV, JSON lines), and the exporter.

Column specification (see :data:`COLUMNS`; :func:`column_spec_markdown` renders it):

=================  ========  =====================================================
column             required  meaning
=================  ========  =====================================================
``email``          yes       recipient address; normalised like RCPT TO
``status``         yes       ``opted_in`` | ``opted_out`` | ``exempt`` (Japanese
                             aliases such as 同意 / 配信停止 / 適用除外 accepted)
``method``         yes       a :class:`ConsentMethod` value (web_form,
                             double_opt_in, paper_form, cmp, manual,
                             business_card, transaction, published_address,
                             one_click, unsubscribe_page, mailto, complaint,
                             import_optout) or a Japanese alias
``consented_at``   yes       ISO 8601 (``2026-11-22T10:00:00+09:00``, ``...Z``) or
                             Excel style ``2026/11/22 10:00``; naive = JST
``source_system``  no        system the record came from (MA tool, CMP)
``source_ref``     no        id of the form / record there (evidence pointer)
``topic``          no        list/topic; empty = all topics
``client_ip``      no        IP address the consent came from
``user_agent``     no        browser user agent at consent time
=================  ========  =====================================================

Decisions (and why):

* Unknown columns are an error naming them, unless ``ignore_unknown=True``: a misspelt
  ``topic`` silently ignored would turn a per-topic consent into an all-topics one, and
  extra personal data (names, phone numbers) should not flow into the consent store.
* Japanese status values are accepted because Japanese MA tools export them; ambiguous
  English values (yes/no/true/1) are refused rather than guessed.
* An opt-out must never be lost to a formatting problem: an ``opted_out`` row with an
  empty or unknown ``method`` is kept as ``import_optout``, and one with an empty or
  unparseable date is kept with the import time, each with a warning.
* Same address (+topic) twice with identical content: warning, second copy dropped.
  Same address (+topic) with different statuses: error on both lines (the earlier line
  may already have been yielded - see :class:`ImportReader`); the parsed rows travel in
  ``RowError.row`` so a caller can still apply the opt-out side (fail closed).
"""

from __future__ import annotations

import codecs
import csv
import io
import ipaddress
import json
import operator
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Literal, NamedTuple

from gateway.consent.address import (
    InvalidAddress,
    NormalizedAddress,
    address_key,
    normalize_address,
)
from gateway.consent.model import (
    ConsentEvent,
    ConsentMethod,
    ConsentStatus,
    status_method_problem,
)
from gateway.consent.retention import JST

__all__ = [
    "COLUMNS",
    "ColumnSpec",
    "ImportFormat",
    "ImportReader",
    "ImportReport",
    "ImportRow",
    "RowError",
    "RowWarning",
    "column_spec_markdown",
    "export_rows",
    "iter_import",
    "validate_file",
]

ImportFormat = Literal["csv", "jsonl"]
ProgressCallback = Callable[[int, int | None], None]

CHUNK_SIZE: Final = 1 << 20
MAX_LINE_CHARS: Final = 64 * 1024  # a real row is < 2 KiB; anything this long is junk
MAX_STORED_ISSUES: Final = 10_000  # counts stay exact; details beyond this are dropped
FUTURE_TOLERANCE: Final = timedelta(minutes=10)  # clock skew between exporter and us
EARLIEST_PLAUSIBLE: Final = datetime(2000, 1, 1, tzinfo=JST)  # Excel's 1900 "zero date" etc.


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    required: bool
    aliases: tuple[str, ...]
    description: str
    example: str


COLUMNS: Final[tuple[ColumnSpec, ...]] = (
    ColumnSpec(
        "email", True, ("メールアドレス", "メール", "eメール", "e_mail", "mail", "address"),
        "Recipient address. Normalised like RCPT TO (NFKC, IDNA domain, local part case kept).",
        "taro.yamada@example.jp",
    ),
    ColumnSpec(
        "status", True, ("状態", "ステータス", "配信状態", "同意状態"),
        "`opted_in`, `opted_out` or `exempt`. Also 同意/同意済み/オプトイン, "
        "配信停止/停止/配信解除/解除/受信拒否/オプトアウト, 適用除外/除外.",
        "opted_in",
    ),
    ColumnSpec(
        "method", True, ("取得方法", "同意方法", "方法", "経路"),
        "How it was obtained: web_form, double_opt_in, paper_form, cmp, manual (consent); "
        "business_card, transaction, published_address (exempt); one_click, "
        "unsubscribe_page, mailto, complaint, import_optout (opt-out; any method is "
        "accepted for opt-outs). Japanese aliases e.g. Webフォーム, ダブルオプトイン, 名刺.",
        "double_opt_in",
    ),
    ColumnSpec(
        "consented_at", True,
        ("同意日時", "取得日時", "日時", "登録日時", "停止日時", "occurred_at", "date"),
        "When it happened. ISO 8601 (`2026-11-22T10:00:00+09:00`, `...Z`) or Excel style "
        "`2026/11/22 10:00`; without an offset it is JST. Date only = 00:00 JST.",
        "2026-11-22T10:00:00+09:00",
    ),
    ColumnSpec(
        "source_system", False, ("取得元", "取得元システム", "システム"),
        "System the record came from (MA tool, CMP). Default: set by the importer.",
        "hubspot",
    ),
    ColumnSpec(
        "source_ref", False, ("参照", "参照id", "フォームid", "記録id"),
        "Identifier of the form/record there (pointer to the consent evidence).",
        "form-2026-11/req-8812",
    ),
    ColumnSpec(
        "topic", False, ("トピック", "配信種別", "リスト", "list"),
        "List/topic the record is about. Empty = all topics.",
        "newsletter",
    ),
    ColumnSpec(
        "client_ip", False, ("ipアドレス", "ip", "ip_address"),
        "IP address the consent was given from (IPv4 or IPv6).",
        "203.0.113.7",
    ),
    ColumnSpec(
        "user_agent", False, ("ユーザーエージェント", "ua"),
        "Browser user agent at consent time.",
        "Mozilla/5.0 (iPhone; ...)",
    ),
)
_REQUIRED: Final = tuple(c.name for c in COLUMNS if c.required)
_COLUMN_NAMES: Final = tuple(c.name for c in COLUMNS)


def norm_header(name: str) -> str:
    """A header cell as the column names and aliases are compared: NFKC, lower, snake_case."""
    name = unicodedata.normalize("NFKC", name).strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


_HEADER_ALIASES: Final[dict[str, str]] = {}
for _c in COLUMNS:
    _HEADER_ALIASES[_c.name] = _c.name
    for _a in _c.aliases:
        _HEADER_ALIASES[norm_header(_a)] = _c.name
# The header cells that name the address column (suppression imports read only it).
EMAIL_HEADERS: Final = frozenset(k for k, v in _HEADER_ALIASES.items() if v == "email")


def column_spec_markdown() -> str:
    """The column table in Markdown, for the README / CLI help."""
    lines = [
        "| Column | Required | Japanese header aliases | Meaning | Example |",
        "|---|---|---|---|---|",
    ]
    for c in COLUMNS:
        ja = ", ".join(a for a in c.aliases if not a.isascii()) or "—"
        req = "yes" if c.required else "no"
        lines.append(f"| `{c.name}` | {req} | {ja} | {c.description} | `{c.example}` |")
    return "\n".join(lines)


_STATUS_VALUES: Final[dict[str, ConsentStatus]] = {
    **{s.value: s for s in ConsentStatus},
    "同意": ConsentStatus.OPTED_IN,
    "同意済み": ConsentStatus.OPTED_IN,
    "同意済": ConsentStatus.OPTED_IN,
    "オプトイン": ConsentStatus.OPTED_IN,
    "配信停止": ConsentStatus.OPTED_OUT,
    "停止": ConsentStatus.OPTED_OUT,
    "配信解除": ConsentStatus.OPTED_OUT,
    "解除": ConsentStatus.OPTED_OUT,
    "受信拒否": ConsentStatus.OPTED_OUT,
    "オプトアウト": ConsentStatus.OPTED_OUT,
    "適用除外": ConsentStatus.EXEMPT,
    "除外": ConsentStatus.EXEMPT,
}
_METHOD_VALUES: Final[dict[str, ConsentMethod]] = {
    **{m.value: m for m in ConsentMethod},
    "webフォーム": ConsentMethod.WEB_FORM,
    "フォーム": ConsentMethod.WEB_FORM,
    "ダブルオプトイン": ConsentMethod.DOUBLE_OPT_IN,
    "紙": ConsentMethod.PAPER_FORM,
    "申込書": ConsentMethod.PAPER_FORM,
    "名刺": ConsentMethod.BUSINESS_CARD,
    "取引": ConsentMethod.TRANSACTION,
    "取引関係": ConsentMethod.TRANSACTION,
    "公開アドレス": ConsentMethod.PUBLISHED_ADDRESS,
    "ワンクリック": ConsentMethod.ONE_CLICK,
    "配信停止ページ": ConsentMethod.UNSUBSCRIBE_PAGE,
    "メール返信": ConsentMethod.MAILTO,
    "苦情": ConsentMethod.COMPLAINT,
    "手動": ConsentMethod.MANUAL,
}


class ImportRow(NamedTuple):
    """One validated record. A NamedTuple because a frozen dataclass costs ~1 µs more per row."""

    line_number: int
    address: NormalizedAddress
    status: ConsentStatus
    method: ConsentMethod
    consented_at: datetime
    source_system: str | None
    source_ref: str | None
    topic: str | None
    client_ip: str | None
    user_agent: str | None

    @property
    def address_key(self) -> str:
        return address_key(self.address)

    def to_event(
        self, *, sender_id: str, batch_id: str, recorded_by: str, default_source_system: str = ""
    ) -> ConsentEvent:
        return ConsentEvent(
            sender_id=sender_id,
            address_key=self.address_key,
            status=self.status,
            method=self.method,
            occurred_at=self.consented_at,
            source_system=self.source_system or default_source_system,
            source_ref=self.source_ref,
            topic=self.topic,
            client_ip=self.client_ip,
            user_agent=self.user_agent,
            recorded_by=recorded_by,
            batch_id=batch_id,
        )


@dataclass(frozen=True, slots=True)
class RowError:
    """A problem with one line (or, with ``line_number=None``, with the whole file)."""

    line_number: int | None
    column: str | None
    reason: str
    excerpt: str = ""
    row: ImportRow | None = None  # set for conflicts: the row itself was valid

    def __str__(self) -> str:
        parts = []
        if self.line_number is not None:
            parts.append(f"line {self.line_number}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        parts.append(self.reason)
        return ": ".join(parts)


@dataclass(frozen=True, slots=True)
class RowWarning:
    line_number: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        parts = []
        if self.line_number is not None:
            parts.append(f"line {self.line_number}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        parts.append(self.reason)
        return ": ".join(parts)


@dataclass(slots=True)
class ImportReport:
    format: str = ""
    encoding: str = ""
    records: int = 0  # data records seen (header and blank lines excluded)
    valid: int = 0  # rows yielded as ImportRow (duplicates excluded, conflicts included)
    opted_in: int = 0
    exempt: int = 0
    opted_out: int = 0
    error_count: int = 0
    warning_count: int = 0
    errors: list[RowError] = field(default_factory=list)  # first MAX_STORED_ISSUES
    warnings: list[RowWarning] = field(default_factory=list)
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (line, first line)
    conflicts: list[tuple[int, int]] = field(default_factory=list)  # (line, other line)
    ignored_columns: list[str] = field(default_factory=list)
    fatal: RowError | None = None  # a file-level problem that stopped parsing
    _skipped: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.fatal is None and self.error_count == 0

    @property
    def grants(self) -> int:
        return self.opted_in + self.exempt

    @property
    def skipped_lines(self) -> list[int]:
        """Lines a ``--skip-invalid`` import leaves out (errors, conflicts)."""
        return sorted(self._skipped)

    def summary(self) -> str:
        head = (
            f"{self.records} records ({self.format}, {self.encoding}): {self.valid} valid "
            f"[{self.opted_in} opted_in, {self.exempt} exempt, {self.opted_out} opted_out], "
            f"{self.error_count} errors, {len(self.duplicates)} duplicates, "
            f"{len(self.conflicts)} conflicts"
        )
        if self.fatal is not None:
            head += f"; stopped: {self.fatal}"
        return head

    def _error(self, err: RowError) -> None:
        self.error_count += 1
        if err.line_number is not None:
            self._skipped.add(err.line_number)
        if len(self.errors) < MAX_STORED_ISSUES:
            self.errors.append(err)

    def _warn(self, w: RowWarning) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_STORED_ISSUES:
            self.warnings.append(w)


_Fields = tuple[str, str, str, str, str, str, str, str, str]


class _Fatal(Exception):
    def __init__(self, err: RowError) -> None:
        super().__init__(str(err))
        self.err = err


def _excerpt(text: str, limit: int = 80) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[:limit] + "..."


# Control characters other than TAB/LF/CR are never legitimate in these files.
_CTRL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CP932_JUNK_RE: Final = re.compile("[\x80\uf8f0-\uf8f3]")
_EXCEL_DT_RE: Final = re.compile(
    r"(\d{4})[/.-](\d{1,2})[/.-](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)
# Written by export_rows(excel_safe=True) to defuse spreadsheet formulas; undone here.
_FORMULA_PREFIXES: Final = ("'=", "'+", "'-", "'@", "'\t", "'\r")
_OVERLONG: Final = "\x00overlong\x00"  # sentinel line; real NULs are fatal before this


def _parse_datetime(text: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        m = _EXCEL_DT_RE.fullmatch(text)
        if m is None:
            return None
        y, mo, d, h, mi, s = m.groups()
        try:
            dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=JST)
    return dt


class ImportReader:
    """Iterate over a consent import file, yielding :class:`ImportRow` or :class:`RowError`.

    Memory stays flat apart from one small dict entry per distinct address (for duplicate
    and conflict detection). ``report`` is filled while iterating and final afterwards.

    Conflicts are found on the second line, so a RowError may name an EARLIER line that
    was already yielded as an ImportRow. Callers writing while iterating must either work
    all-or-nothing (one transaction, rolled back unless ``report.ok``) or do two passes:
    ``validate_file()`` first, then ``iter_import(..., skip_lines=report.skipped_lines)``.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        format: ImportFormat | None = None,
        encoding: str | None = None,
        ignore_unknown: bool = False,
        skip_lines: Iterable[int] = (),
        now: datetime | None = None,
        on_progress: ProgressCallback | None = None,
        max_line_chars: int = MAX_LINE_CHARS,
    ) -> None:
        self._source = source
        self._format = format
        self._encoding = encoding
        self._ignore_unknown = ignore_unknown
        self._skip = frozenset(skip_lines)
        self._now = now if now is not None else datetime.now(UTC)
        if self._now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        self._latest_ok = self._now + FUTURE_TOLERANCE
        self._now_ordinal = self._now.toordinal()
        self._on_progress = on_progress
        self._max_line = max_line_chars
        self._bad_chars: re.Pattern[str] | None = None
        self.report = ImportReport()
        # (address key, topic) -> packed (line, status, content fingerprint, retracted)
        self._seen: dict[str, int] = {}

    # --- public ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ImportRow | RowError]:
        if isinstance(self._source, (str, os.PathLike)):
            path = Path(self._source)
            with path.open("rb") as fh:
                yield from self._run(fh, path.name)
        else:
            yield from self._run(self._source, getattr(self._source, "name", ""))

    # --- byte -> text layer ---------------------------------------------------------------
    def _run(self, fh: IO[bytes], name: object) -> Iterator[ImportRow | RowError]:
        try:
            total: int | None = os.fstat(fh.fileno()).st_size
        except (OSError, AttributeError, io.UnsupportedOperation):
            total = None
        try:
            first = fh.read(CHUNK_SIZE)
            encoding = self._encoding or _detect_encoding(first)
            self.report.encoding = encoding
            fmt = self._format or _detect_format(str(name), first)
            self.report.format = fmt
            lines = self._lines(fh, first, encoding, total)
            if fmt == "csv":
                yield from self._csv(lines)
            else:
                yield from self._jsonl(lines)
        except _Fatal as f:
            self.report.fatal = f.err
            yield f.err

    def _lines(
        self, fh: IO[bytes], first: bytes, encoding: str, total: int | None
    ) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        # Python's cp932 maps the bytes 0x80, 0xA0 and 0xFD-0xFF to C1 controls / private-use
        # characters instead of failing; real Excel output never contains them, binary does.
        self._bad_chars = _CP932_JUNK_RE if encoding == "cp932" else None
        offset = 0  # bytes handed to the decoder before this chunk
        chunk = first
        buf = ""
        overlong = False  # inside a line already reported as too long: drop until newline
        limit = self._max_line
        while True:
            final = not chunk
            try:
                pending = len(decoder.getstate()[0])
                text = decoder.decode(chunk, final)
            except UnicodeDecodeError as e:
                pos = offset - pending + e.start
                raise _Fatal(RowError(None, None, _encoding_reason(encoding, pos))) from None
            if self._bad_chars is not None:
                m = self._bad_chars.search(text)
                if m is not None:
                    pos = offset - pending + len(text[: m.start()].encode(encoding, "replace"))
                    raise _Fatal(RowError(None, None, _encoding_reason(encoding, pos)))
            if "\x00" in text:
                pos = offset + chunk.find(b"\x00") if b"\x00" in chunk else offset
                raise _Fatal(
                    RowError(None, None, f"binary data (NUL byte) at byte {pos}: not a text file")
                )
            offset += len(chunk)
            if self._on_progress is not None and chunk:
                self._on_progress(offset, total)
            parts = (buf + text).split("\n") if buf else text.split("\n")
            buf = parts.pop()
            for part in parts:
                if overlong:
                    overlong = False
                    continue
                if len(part) > limit:
                    yield _OVERLONG + "\n"
                else:
                    yield part + "\n"
            if len(buf) > limit:
                if not overlong:
                    yield _OVERLONG + "\n"
                    overlong = True
                buf = ""
            if final:
                break
            chunk = fh.read(CHUNK_SIZE)
        if buf and not overlong:
            yield buf

    # --- CSV ------------------------------------------------------------------------------
    def _csv(self, lines: Iterator[str]) -> Iterator[ImportRow | RowError]:
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise _Fatal(RowError(None, None, "file is empty (no header line)")) from None
        except csv.Error as e:
            raise _Fatal(RowError(1, None, f"cannot parse header: {e}")) from None
        if header and header[0] == _OVERLONG:
            raise _Fatal(
                RowError(1, None, f"header line is longer than {self._max_line} characters")
            )
        index = self._map_header(header)
        width = len(header)
        # Absent optional columns read the "" appended to every row (index == width).
        pick = operator.itemgetter(*(index.get(c, width) for c in _COLUMN_NAMES))
        validate = self._validate
        dedupe = self._dedupe
        prev = reader.line_num
        skip = self._skip
        report = self.report
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                line = prev + 1
                prev = reader.line_num
                report.records += 1
                err = RowError(line, None, f"malformed CSV: {e}")
                report._error(err)
                yield err
                continue
            line = prev + 1
            prev = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            report.records += 1
            if line in skip:
                continue
            if row[0] == _OVERLONG:
                err = RowError(line, None, f"line is longer than {self._max_line} characters")
                report._error(err)
                yield err
                continue
            if len(row) != width:
                err = RowError(
                    line, None,
                    f"has {len(row)} fields, header has {width}",
                    _excerpt(",".join(row)),
                )
                report._error(err)
                yield err
                continue
            row.append("")  # absent optional columns point here
            fields: _Fields = pick(row)
            result = validate(line, *fields, row)
            if type(result) is ImportRow:
                out = dedupe(result)  # inlined _emit(): this is the per-row hot path
                if isinstance(out, list):
                    yield from out
                elif out is not None:
                    yield out
            else:
                yield from self._emit(result)

    def _map_header(self, header: list[str]) -> dict[str, int]:
        index: dict[str, int] = {}
        unknown: list[str] = []
        for i, raw in enumerate(header):
            name = _HEADER_ALIASES.get(norm_header(raw.lstrip("\ufeff")))
            if name is None:
                if raw.strip():
                    unknown.append(raw.strip())
                continue
            if name in index:
                raise _Fatal(
                    RowError(1, None, f"column {name} appears twice (as {header[index[name]]!r} "
                             f"and {raw!r})")
                )
            index[name] = i
        missing = [c for c in _REQUIRED if c not in index]
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ("\t", ";")):
            hint = " (the file must be comma-separated)"
        if missing:
            raise _Fatal(
                RowError(1, None, f"missing required column(s): {', '.join(missing)}{hint}")
            )
        if unknown:
            if not self._ignore_unknown:
                raise _Fatal(RowError(1, None, f"unknown column(s): {', '.join(unknown)}"))
            self.report.ignored_columns = unknown
            self.report._warn(RowWarning(1, None, f"ignored column(s): {', '.join(unknown)}"))
        return index

    # --- JSON lines -----------------------------------------------------------------------
    def _jsonl(self, lines: Iterator[str]) -> Iterator[ImportRow | RowError]:
        report = self.report
        err: RowError | None
        for line, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            report.records += 1
            if line in self._skip:
                continue
            if text.startswith(_OVERLONG):
                err = RowError(line, None, f"line is longer than {self._max_line} characters")
                report._error(err)
                yield err
                continue
            err = None
            try:
                obj = json.loads(text)
            except ValueError as e:
                err = RowError(line, None, f"invalid JSON: {e}", _excerpt(text))
            else:
                if not isinstance(obj, dict):
                    err = RowError(line, None, "not a JSON object", _excerpt(text))
            if err is not None:
                report._error(err)
                yield err
                continue
            fields, err = self._json_fields(line, obj, text)
            if fields is None or err is not None:
                assert err is not None
                report._error(err)
                yield err
                continue
            yield from self._emit(self._validate(line, *fields, text))

    def _json_fields(
        self, line: int, obj: dict[str, Any], text: str
    ) -> tuple[_Fields | None, RowError | None]:
        values: dict[str, str] = {}
        unknown: list[str] = []
        for key, value in obj.items():
            name = _HEADER_ALIASES.get(norm_header(str(key)))
            if name is None:
                unknown.append(str(key))
                continue
            if value is None:
                value = ""
            elif isinstance(value, bool) or not isinstance(value, (str, int)):
                return None, RowError(line, name, f"must be a string, not {type(value).__name__}")
            values[name] = str(value)
        if unknown and not self._ignore_unknown:
            return None, RowError(
                line, None, f"unknown field(s): {', '.join(unknown)}", _excerpt(text)
            )
        missing = [c for c in _REQUIRED if c not in values]
        if missing:
            return None, RowError(
                line, None, f"missing required field(s): {', '.join(missing)}", _excerpt(text)
            )
        g = values.get
        return (
            g("email", ""), g("status", ""), g("method", ""), g("consented_at", ""),
            g("source_system", ""), g("source_ref", ""), g("topic", ""), g("client_ip", ""),
            g("user_agent", ""),
        ), None

    # --- row validation -------------------------------------------------------------------
    def _emit(self, result: ImportRow | RowError) -> Iterator[ImportRow | RowError]:
        """Count a validation error, or deduplicate a valid row, and yield the outcome."""
        if type(result) is not ImportRow:
            assert isinstance(result, RowError)
            self.report._error(result)
            yield result
            return
        out = self._dedupe(result)
        if out is None:
            return
        if isinstance(out, list):
            yield from out
        else:
            yield out

    def _validate(
        self,
        line: int,
        email: str,
        status_s: str,
        method_s: str,
        at_s: str,
        source_system: str,
        source_ref: str,
        topic: str,
        client_ip: str,
        user_agent: str,
        raw: object,
    ) -> ImportRow | RowError:
        # Not a generator and no closures: this runs a million times per import.
        if "'" in (email[:1], source_ref[:1], user_agent[:1], source_system[:1], topic[:1]):
            email, source_ref, user_agent, source_system, topic = (
                v[1:] if v[:2] in _FORMULA_PREFIXES else v
                for v in (email, source_ref, user_agent, source_system, topic)
            )
        try:
            addr = normalize_address(email)
        except InvalidAddress as e:
            return _fail(line, "email", str(e) if email.strip() else "empty", raw)

        status = _STATUS_VALUES.get(status_s)
        if status is None:
            status = _STATUS_VALUES.get(unicodedata.normalize("NFKC", status_s).strip().lower())
            if status is None:
                what = f"unknown value {status_s!r}" if status_s.strip() else "empty"
                return _fail(
                    line, "status", f"{what} (expected opted_in, opted_out or exempt)", raw
                )
        is_optout = status is _OPTED_OUT

        method = _METHOD_VALUES.get(method_s)
        if method is None:
            method = _METHOD_VALUES.get(norm_header(method_s))
            if method is None:
                if not is_optout:
                    what = f"unknown value {method_s!r}" if method_s.strip() else "empty"
                    return _fail(line, "method", f"{what} (expected one of {_METHOD_LIST})", raw)
                # Never drop a refusal over a bad method (施行規則5条: any method counts).
                method = ConsentMethod.IMPORT_OPTOUT
                self.report._warn(
                    RowWarning(
                        line,
                        "method",
                        f"{method_s!r} not recognised; opt-out kept as import_optout",
                    )
                )
        problem = (
            None if (status, method) in _CONSISTENT else status_method_problem(status, method)
        )
        if problem is not None:
            return _fail(line, "method", f"{problem}, for status {status.value}", raw)

        at = _parse_datetime(at_s) if at_s else None
        if at is None:
            if not is_optout:
                what = f"cannot parse {at_s!r}" if at_s.strip() else "empty"
                return _fail(
                    line,
                    "consented_at",
                    f"{what} (expected ISO 8601 like 2026-11-22T10:00:00+09:00 "
                    "or 2026/11/22 10:00)",
                    raw,
                )
            at = self._now
            self.report._warn(
                RowWarning(
                    line,
                    "consented_at",
                    f"{at_s!r} is not a date; opt-out kept with the import time",
                )
            )
        # Comparing aware datetimes with different tzinfo objects costs ~2 µs on CPython;
        # the ordinal of the local date is a cheap pre-filter (offsets are < 1 day).
        elif at.toordinal() >= self._now_ordinal - 1 and at > self._latest_ok:
            return _fail(line, "consented_at", f"{at_s!r} is in the future", raw)
        elif at.year < EARLIEST_PLAUSIBLE.year:
            return _fail(line, "consented_at", f"{at_s!r} is before 2000 (empty Excel date?)", raw)

        if _CTRL_RE.search(source_system + source_ref + topic + client_ip + user_agent):
            return _fail(line, None, "contains control characters", raw)
        topic_v = topic.strip() or None
        if topic_v is not None and len(topic_v) > 100:
            return _fail(line, "topic", "longer than 100 characters", raw)
        ip_v: str | None = None
        if client_ip:
            if _IPV4_RE.fullmatch(client_ip):
                ip_v = client_ip  # already canonical; ipaddress costs ~1 µs per row
            else:
                try:
                    ip_v = str(ipaddress.ip_address(client_ip.strip()))
                except ValueError:
                    return _fail(
                        line, "client_ip", f"not an IP address: {_excerpt(client_ip, 40)!r}", raw
                    )
        if len(source_ref) > 200:
            return _fail(line, "source_ref", "longer than 200 characters", raw)
        if len(source_system) > 200:
            return _fail(line, "source_system", "longer than 200 characters", raw)
        if len(user_agent) > 1000:
            return _fail(line, "user_agent", "longer than 1000 characters", raw)

        if status is _EXEMPT and method in _EVIDENCE and not source_ref.strip():
            # only for a row that passed every check: a refused row has its error instead
            self.report._warn(RowWarning(line, "source_ref", _EVIDENCE[method]))
        return _new_row(
            ImportRow,
            (
                line, addr, status, method, at,
                source_system.strip() or None, source_ref.strip() or None, topic_v, ip_v,
                user_agent.strip() or None,
            ),
        )

    def _dedupe(self, row: ImportRow) -> ImportRow | RowError | list[RowError] | None:
        report = self.report
        key = f"{row.address.local}@{row.address.domain}\x1f{row.topic or ''}"
        status_i = _STATUS_INDEX[row.status]
        fp = hash(row[2:]) & _FP_MASK  # everything but line number and address
        packed = self._seen.get(key)
        if packed is None:
            self._seen[key] = (row.line_number << 70) | (status_i << 64) | fp
            report.valid += 1
            _count(report, row.status, 1)
            return row
        first_line = packed >> 70
        first_status = _STATUSES[(packed >> 64) & 3]
        if first_status is row.status:
            if packed & _FP_MASK == fp:
                report.duplicates.append((row.line_number, first_line))
                report._warn(
                    RowWarning(row.line_number, None, f"duplicate of line {first_line}; skipped")
                )
                return None
            # Same status, different details (time, method, ref): two separate events.
            report.valid += 1
            _count(report, row.status, 1)
            return row
        report.conflicts.append((row.line_number, first_line))
        err = RowError(
            row.line_number, "status",
            f"conflicts with line {first_line}: {row.status.value} here, "
            f"{first_status.value} there (same address{' and topic' if row.topic else ''})",
            row.address.address, row,
        )
        report._error(err)
        if packed & _RETRACTED:
            return err
        # Retract the earlier line, which was already yielded as valid.
        self._seen[key] = packed | _RETRACTED
        report.valid -= 1
        _count(report, first_status, -1)
        retraction = RowError(
            first_line, "status",
            f"conflicts with line {row.line_number}: "
            f"{first_status.value} here, {row.status.value} there",
            row.address.address,
        )
        report._error(retraction)
        return [err, retraction]


def _fail(line: int, column: str | None, reason: str, raw: object) -> RowError:
    text = ",".join(raw) if isinstance(raw, list) else str(raw)
    return RowError(line, column, reason, _excerpt(text))


_new_row = tuple.__new__  # skips the NamedTuple __new__ wrapper on the hot path
_OCTET: Final = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_RE: Final = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
# Enum members bound to module names: ``ConsentStatus.OPTED_IN`` is a slow class-attribute
# lookup in CPython 3.11 (~0.2 µs), which adds up on the per-row path.
_OPTED_IN: Final = ConsentStatus.OPTED_IN
_EXEMPT: Final = ConsentStatus.EXEMPT
# Exemptions whose basis is a document the sender must be able to show (legal.md §5.2): a row
# without a reference to it is kept, with a warning naming what to keep.
_EVIDENCE: Final = {
    ConsentMethod.BUSINESS_CARD: "business_card exemption without source_ref: keep a reference "
    "to the card received in writing (a scan or form id) / 名刺の控えの参照を記録してください",
    ConsentMethod.PUBLISHED_ADDRESS: "published_address exemption without source_ref: keep the "
    "URL where the address is published, and a copy of the page / "
    "公表アドレスのURLを記録してください",
}
_OPTED_OUT: Final = ConsentStatus.OPTED_OUT
_STATUSES: Final = (_OPTED_IN, _EXEMPT, _OPTED_OUT)
_STATUS_INDEX: Final = {s: i for i, s in enumerate(_STATUSES)}
_FP_MASK: Final = (1 << 64) - 1
_RETRACTED: Final = 1 << 66
_CONSISTENT: Final = frozenset(
    (st, m) for st in ConsentStatus for m in ConsentMethod if status_method_problem(st, m) is None
)
_METHOD_LIST: Final = ", ".join(m.value for m in ConsentMethod)


def _count(report: ImportReport, status: ConsentStatus, delta: int) -> None:
    if status is _OPTED_IN:
        report.opted_in += delta
    elif status is _EXEMPT:
        report.exempt += delta
    else:
        report.opted_out += delta


def _encoding_reason(encoding: str, pos: int) -> str:
    if encoding in ("utf-8", "utf-8-sig"):
        return f"file is not valid UTF-8 at byte {pos}"
    if encoding == "cp932":
        return f"file is not valid UTF-8 or Shift_JIS at byte {pos}"
    return f"file is not valid {encoding} at byte {pos}"


def text_encoding(head: bytes) -> str:
    """The encoding a file whose first bytes are `head` is read with (as for a consent
    import); ValueError names a file that is no text file."""
    try:
        return _detect_encoding(head)
    except _Fatal as exc:
        raise ValueError(exc.err.reason) from None


def _detect_encoding(head: bytes) -> str:
    """BOM -> utf-8-sig; valid UTF-8 -> utf-8; else cp932 (what Excel writes in Japan).

    Only the first chunk is inspected so the file is read once; a later invalid byte
    is still caught by the strict decoder and reported with its offset.
    """
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        pos = head.index(b"\x00")
        raise _Fatal(RowError(None, None, f"binary data (NUL byte) at byte {pos}: not a text file"))
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _Fatal(
            RowError(None, None, "file is UTF-16; save it as CSV UTF-8 or CSV (Shift_JIS)")
        )
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, False)
    except UnicodeDecodeError as utf8_err:
        try:
            codecs.getincrementaldecoder("cp932")("strict").decode(head, False)
        except UnicodeDecodeError as sjis_err:
            pos = max(utf8_err.start, sjis_err.start)
            raise _Fatal(
                RowError(None, None, f"file is not valid UTF-8 or Shift_JIS at byte {pos}")
            ) from None
        return "cp932"
    return "utf-8"


def _detect_format(name: str, head: bytes) -> ImportFormat:
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith((".csv", ".txt")):
        return "csv"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def iter_import(
    source: str | os.PathLike[str] | IO[bytes], **options: Any
) -> Iterator[ImportRow | RowError]:
    """Shorthand for ``iter(ImportReader(source, **options))`` when the report is not needed."""
    return iter(ImportReader(source, **options))


def validate_file(source: str | os.PathLike[str] | IO[bytes], **options: Any) -> ImportReport:
    """Read the whole file and return the report (the validation pass of a two-pass import)."""
    reader = ImportReader(source, **options)
    for _ in reader:
        pass
    return reader.report


# --- export -----------------------------------------------------------------------------
EXPORT_COLUMNS: Final = _COLUMN_NAMES


def _record_dict(rec: Mapping[str, object] | ImportRow | ConsentEvent) -> Mapping[str, object]:
    if isinstance(rec, ImportRow):
        d = rec._asdict()
        d["email"] = rec.address.address
        return d
    if isinstance(rec, ConsentEvent):
        return {
            "email": rec.address_key, "status": rec.status, "method": rec.method,
            "consented_at": rec.occurred_at, "source_system": rec.source_system,
            "source_ref": rec.source_ref, "topic": rec.topic, "client_ip": rec.client_ip,
            "user_agent": rec.user_agent,
        }
    return rec


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, NormalizedAddress):
        return value.address
    return str(value)  # StrEnum -> its value


def export_rows(
    records: Iterable[Mapping[str, object] | ImportRow | ConsentEvent],
    fmt: ImportFormat = "csv",
    *,
    columns: tuple[str, ...] = EXPORT_COLUMNS,
    excel_safe: bool = True,
    batch: int = 1000,
) -> Iterator[bytes]:
    """Format consent records as CSV (UTF-8 with BOM, CRLF, for Excel) or JSON lines.

    ``excel_safe`` prefixes "'" to CSV cells starting with = + - @ TAB CR, because
    ``user_agent`` / ``source_ref`` come from web forms and would otherwise run as
    spreadsheet formulas when opened in Excel; the importer strips the prefix again.
    Output is produced in chunks of *batch* records, so it streams.
    """
    if fmt == "jsonl":
        out: list[str] = []
        for rec in records:
            d = _record_dict(rec)
            out.append(json.dumps({c: (_cell(d.get(c)) or None) for c in columns},
                                  ensure_ascii=False) + "\n")
            if len(out) >= batch:
                yield "".join(out).encode("utf-8")
                out.clear()
        if out:
            yield "".join(out).encode("utf-8")
        return
    sio = io.StringIO()
    writer = csv.writer(sio, lineterminator="\r\n")
    writer.writerow(columns)
    n = 0
    first = True
    for rec in records:
        d = _record_dict(rec)
        cells = [_cell(d.get(c)) for c in columns]
        if excel_safe:
            cells = ["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells]
        writer.writerow(cells)
        n += 1
        if n % batch == 0:
            yield (codecs.BOM_UTF8 if first else b"") + sio.getvalue().encode("utf-8")
            first = False
            sio.seek(0)
            sio.truncate()
    if first or sio.tell():
        yield (codecs.BOM_UTF8 if first else b"") + sio.getvalue().encode("utf-8")
