"""Generate the consent import sample files (dummy data only) and the 1M-row benchmark file.

    .venv/bin/python tests/data/consent/make_files.py            # rewrite the small samples
    .venv/bin/python tests/data/consent/make_files.py --bench    # 1,000,000 rows -> rows/s

The small files are committed and the tests assert exact reports on them, so only
regenerate them on purpose. The big file goes to a temporary directory, never the repo.
All addresses use example.* / .test-style reserved domains and documentation IP ranges.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from faker import Faker

HERE = Path(__file__).resolve().parent
HEADER = "email,status,method,consented_at,source_system,source_ref,topic,client_ip,user_agent"


def _fake() -> Faker:
    fake = Faker("ja_JP")
    fake.seed_instance(20261122)
    return fake


def write_samples() -> None:
    fake = _fake()
    users = [fake.user_name() for _ in range(8)]
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
    valid = [
        f"{users[0]}@example.jp,opted_in,double_opt_in,2026-11-01T09:00:00+09:00,"
        f"hubspot,form-1,newsletter,203.0.113.7,{ua}",
        f"{users[1].capitalize()}@Example.CO.JP,opted_in,web_form,2026-11-02T00:00:00Z,,,,,",
        f"{users[2]}@example.jp,opted_out,one_click,2026-11-03 12:30,,,,,",
        f"{users[3]}@example.net,exempt,business_card,2026/11/4 9:05,,card-77,,,",
        # full-width address as typed on a Japanese keyboard
        "ｆｕｌｌ．ｗｉｄｔｈ＠ｅｘａｍｐｌｅ．ｊｐ,opted_in,paper_form,2026-11-05,,,,,",
        # IDN domain under the reserved .テスト TLD
        f"{users[4]}@例え.テスト,opted_in,cmp,2026-11-06T10:00:00+09:00,onetrust,,,2001:db8::1,",
    ]
    body = HEADER + "\n" + "\n".join(valid) + "\n"
    (HERE / "valid_utf8.csv").write_text(body, encoding="utf-8")
    (HERE / "valid_utf8_bom.csv").write_bytes(
        b"\xef\xbb\xbf" + body.replace("\n", "\r\n").encode("utf-8")
    )

    names = [fake.name() for _ in range(3)]  # realistic Japanese content, fake people
    cp932 = (
        "メールアドレス,状態,取得方法,同意日時,トピック,氏名\r\n"
        f"{users[5]}@example.jp,同意,Webフォーム,2026/11/22 10:00,,{names[0]}\r\n"
        f"{users[6]}@example.jp,配信停止,配信停止ページ,2026/11/22 11:15,セール情報,{names[1]}\r\n"
        f"{users[7]}@example.co.jp,適用除外,名刺,2026/11/20,,{names[2]}\r\n"
    )
    (HERE / "valid_cp932_ja.csv").write_bytes(cp932.encode("cp932"))

    jsonl_rows: list[dict[str, object]] = [
        {"email": f"{users[0]}@example.jp", "status": "opted_in", "method": "double_opt_in",
         "consented_at": "2026-11-01T09:00:00+09:00", "topic": "newsletter",
         "client_ip": "198.51.100.20", "source_ref": 4711},
        {"email": f"{users[1]}@example.jp", "status": "opted_out", "method": "mailto",
         "consented_at": "2026-11-02T09:00:00+09:00", "topic": None},
    ]
    jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in jsonl_rows)
    jsonl += "\n"  # blank lines are ignored
    jsonl += '{"email": "broken@example.jp", "status": "opted_in"\n'  # line 4: bad JSON
    jsonl += '["not", "an", "object"]\n'  # line 5
    jsonl += '{"email": "x@example.jp", "status": "opted_in"}\n'  # line 6: missing fields
    (HERE / "mixed.jsonl").write_text(jsonl, encoding="utf-8")

    (HERE / "missing_column.csv").write_text(
        "email,status,consented_at\nfoo@example.jp,opted_in,2026-11-01\n", encoding="utf-8"
    )
    (HERE / "unknown_column.csv").write_text(
        HEADER.replace("topic", "topc") + ",phone\n", encoding="utf-8"
    )
    # valid UTF-8 header, then a byte that is neither UTF-8 nor Shift_JIS (0x81 0x20)
    bad = (HEADER + "\n").encode() + b"a@example.jp,opted_in,web_form,2026-11-01,\x81 x,,,,\n"
    (HERE / "bad_encoding.csv").write_bytes(bad)

    dup = [
        HEADER,
        f"{users[0]}@example.jp,opted_in,web_form,2026-11-01T09:00:00+09:00,,,,,",
        f"{users[0]}@EXAMPLE.jp,opted_in,web_form,2026-11-01T09:00:00+09:00,,,,,",  # dup of 2
        f"{users[0]}@example.jp,opted_in,web_form,2026-11-01T09:00:00+09:00,,,news,,",  # topic
        f"{users[0]}@example.jp,opted_in,double_opt_in,2026-11-02T09:00:00+09:00,,,,,",  # event
        f"{users[1]}@example.jp,opted_in,web_form,2026-11-01T09:00:00+09:00,,,,,",
        f"{users[1]}@example.jp,opted_out,one_click,2026-11-05T09:00:00+09:00,,,,,",  # conflict
        f"{users[1]}@example.jp,opted_out,one_click,2026-11-05T09:00:00+09:00,,,,,",  # conflict
    ]
    (HERE / "duplicates_conflicts.csv").write_text("\n".join(dup) + "\n", encoding="utf-8")

    bad_values = [
        HEADER,
        "foo@,opted_in,web_form,2026-11-01,,,,,",  # 2
        "user%host@example.jp,opted_in,web_form,2026-11-01,,,,,",  # 3
        "a@example.jp,yes,web_form,2026-11-01,,,,,",  # 4
        "b@example.jp,opted_in,carrier_pigeon,2026-11-01,,,,,",  # 5
        "c@example.jp,exempt,web_form,2026-11-01,,,,,",  # 6
        "d@example.jp,opted_in,web_form,yesterday,,,,,",  # 7
        "e@example.jp,opted_in,web_form,2026/13/40 10:00,,,,,",  # 8
        "f@example.jp,opted_in,web_form,1900/01/00,,,,,",  # 9
        "g@example.jp,opted_in,web_form,2099-01-01T00:00:00+09:00,,,,,",  # 10
        "h@example.jp,opted_in,web_form,2026-11-01,,,,999.1.1.1,",  # 11
        "i@example.jp,opted_in,web_form,2026-11-01,,,",  # 12: too few fields
        "j@example.jp,opted_out,phone,not a date,,,,,",  # 13: kept (opt-out), 2 warnings
        '"k@example.jp,opted_in,web_form,2026-11-01,,,,,',  # 14: unterminated quote
    ]
    (HERE / "bad_values.csv").write_text("\n".join(bad_values) + "\n", encoding="utf-8")

    (HERE / "binary_junk.csv").write_bytes(bytes(range(256)) * 4)
    long_ua = "A" * 5000
    (HERE / "overlong_line.csv").write_text(
        HEADER + "\n"
        f"ok1@example.jp,opted_in,web_form,2026-11-01,,,,,{long_ua}\n"
        "ok2@example.jp,opted_in,web_form,2026-11-01,,,,,\n",
        encoding="utf-8",
    )


def write_big(path: Path, rows: int) -> None:
    """Plain ASCII CSV; 2% opt-outs; no duplicates, so the dedupe map holds every row."""
    methods = ("web_form", "double_opt_in", "paper_form")
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(HEADER + "\n")
        for i in range(rows):
            if i % 50 == 0:
                status, method = "opted_out", "one_click"
            else:
                status, method = "opted_in", methods[i % 3]
            fh.write(
                f"user{i}.test@example{i % 97}.co.jp,{status},{method},"
                f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00+09:00,"
                f"ma,ref{i},,203.0.113.{i % 256},\n"
            )


def bench(rows: int) -> None:
    sys.path.insert(0, str(HERE.parents[2]))
    import resource

    from gateway.consent.importer import ImportReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        write_big(path, rows)
        size = os.path.getsize(path)
        t0 = time.perf_counter()
        reader = ImportReader(path)
        n = sum(1 for _ in reader)
        dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rows} rows, {size / 1e6:.0f} MB: {dt:.2f} s = {rows / dt:,.0f} rows/s "
          f"({n} items, report ok={reader.report.ok}); peak RSS {rss:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--big", type=Path, help="write the big file here and exit")
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.big:
        write_big(args.big, args.rows)
    elif args.bench:
        bench(args.rows)
    else:
        write_samples()


if __name__ == "__main__":
    main()
