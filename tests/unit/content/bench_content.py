"""Micro-benchmark of the content layer: ms of CPU per message for each hot-path step.

Run: `.venv/bin/python tests/unit/content/bench_content.py [--rounds N] [--policy default]`.
Not a test module (pytest only collects test_*.py): timings on a shared machine are noisy, so
they are printed, never asserted. Each step is timed on its own over already prepared inputs
(parse over raw bytes, readable_parts over parsed messages, check_parts over decoded parts) and
the median of several rounds is reported, with the realistic message and the whole corpus.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import statistics
import sys
import time
import tomllib
from collections.abc import Callable
from email.message import Message
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from gateway.content.footer import (  # noqa: E402
    FooterSpec,
    FooterWords,
    check_parts,
    load_footer_words,
)
from gateway.content.html import html_to_text  # noqa: E402
from gateway.content.parts import MessageParts, readable_parts  # noqa: E402

MAIL = ROOT / "tests" / "data" / "mail"

NAME = "株式会社サンプル"
ADDRESS = "〒100-0005 東京都千代田区丸の内1-1-1"
OPTOUT = "https://gw.example.jp/u/Zx81kQp2"


def _jis(text: str) -> bytes:
    # Python's iso2022_jp codec writes what most Japanese senders put on the wire (so the text
    # uses 〜 U+301C, which JIS X 0208 has, not the full-width tilde U+FF5E, which it lacks).
    return text.encode("iso2022_jp")


def _wrap(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def realistic_message() -> bytes:
    """~10 KB multipart/alternative: ISO-2022-JP text/plain + base64 UTF-8 HTML, 25 products."""
    rows_text = []
    rows_html = []
    for i in range(1, 26):
        url = f"https://shop.example.jp/i/{1000 + i}?c=spring"
        price = f"{980 + i * 120:,}円"
        rows_text.append(f"■ 春の新作アイテム No.{i} {price}（税込）\n  {url}\n")
        rows_html.append(
            f'<tr><td style="font-size:14px"><a href="{url}">春の新作アイテム '
            f'No.{i}</a><br><span style="color:#c00">{price}</span>（税込）</td></tr>\n'
        )
    text = (
        "いつもご利用いただきありがとうございます。\n今月のおすすめ商品をご案内します。\n\n"
        + "".join(rows_text)
        + "\n────────────────────\n"
        "配信停止をご希望の方は、下記URLよりお手続きください。\n"
        f"{OPTOUT}\n発行：{NAME}\n住所：{ADDRESS}\n"
        "お問い合わせ：03-1234-5678（平日10時〜18時）/ info@example.jp\n"
    )
    html = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>春のご案内</title>\n'
        "<style>.btn{color:#fff;background:#c00}</style></head>\n"
        '<body style="margin:0;background-color:#ffffff;">\n'
        '<div style="display:none;max-height:0;overflow:hidden">春の新作を最大20%OFFで</div>\n'
        '<table width="600" align="center" cellpadding="0" cellspacing="0">\n'
        "<tr><td><h1>春の新作コレクション</h1>\n"
        "<p>いつもご利用いただきありがとうございます。<br>今月のおすすめ商品をご案内します。</p>"
        "<p><b>セール開催中</b></p></td></tr>\n"
        + "".join(rows_html)
        + '<tr><td><hr><div style="font-size:12px;color:#666666;">\n'
        f'<p>配信停止をご希望の方は<a href="{OPTOUT}">こちら</a>からお手続きください。</p>\n'
        f"<p>発行：{NAME}<br>\n住所：{ADDRESS}<br>\n"
        'お問い合わせ：03-1234-5678 / '
        '<a href="mailto:info@example.jp">info@example.jp</a></p>\n</div></td></tr>\n'
        "</table>\n</body></html>\n"
    )
    head = (
        b"From: =?ISO-2022-JP?B?GyRCM3Q8MDJxPFIlNSVzJVcldRsoQg==?= <news@example.jp>\r\n"
        b"To: taro@example.com\r\nSubject: =?UTF-8?B?5pil44Gu5paw5L2c44Kz44Os44Kv44K344On44Oz?=\r\n"
        b"Date: Tue, 01 Apr 2025 10:00:00 +0900\r\nMessage-ID: <bench-1@example.jp>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="==alt=="\r\n\r\n'
    )
    body = (
        b'--==alt==\r\nContent-Type: text/plain; charset="ISO-2022-JP"\r\n'
        b"Content-Transfer-Encoding: 7bit\r\n\r\n"
        + _jis(text).replace(b"\n", b"\r\n")
        + b'\r\n--==alt==\r\nContent-Type: text/html; charset="UTF-8"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + _wrap(html.encode())
        + b"--==alt==--\r\n"
    )
    return head + body


def corpus() -> tuple[list[bytes], FooterSpec]:
    cases = tomllib.loads((MAIL / "cases.toml").read_text(encoding="utf-8"))
    s = cases["spec"]
    spec = FooterSpec(s["name"], s["postal_address"], tuple(s["contacts"]), tuple(s["optout"]),
                      tuple(s["info_urls"]), s["law"])
    return [(MAIL / c["file"]).read_bytes() for c in cases["case"]], spec


def _median_ms(fn: Callable[[], object], per: int, rounds: int, loops: int) -> float:
    fn()  # warm caches (compiled matchers, regexes) as the running gateway would have them
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(loops):
            fn()
        times.append((time.process_time() - t0) / loops / per * 1000)
    return statistics.median(times)


def bench(label: str, raws: list[bytes], spec: FooterSpec, words: FooterWords,
          policy: email.policy.Policy, rounds: int, loops: int) -> None:
    parser = email.parser.BytesParser(policy=policy)
    msgs: list[Message] = [parser.parsebytes(r) for r in raws]
    parts: list[MessageParts] = [readable_parts(m) for m in msgs]
    n = len(raws)
    html = [p.text for mp in parts for p in mp.readable if p.content_type == "text/html"]
    steps: list[tuple[str, Callable[[], object]]] = [
        ("parse", lambda: [parser.parsebytes(r) for r in raws]),
        ("readable_parts", lambda: [readable_parts(m) for m in msgs]),
        ("check_parts", lambda: [check_parts(p, spec, words) for p in parts]),
        ("readable+check", lambda: [check_parts(readable_parts(m), spec, words) for m in msgs]),
    ]
    size = sum(len(r) for r in raws) / n
    print(f"{label}: {n} message(s), {size / 1024:.1f} KB avg, {len(html)} HTML part(s)")
    for name, fn in steps:
        print(f"  {name:<16} {_median_ms(fn, n, rounds, loops):8.3f} ms/message")
    if html:
        # Rendering cost alone, over the decoded markup of the HTML parts.
        sources = [_html_source(m) for m in msgs]
        src = [s for s in sources if s]
        ms = _median_ms(lambda: [html_to_text(h) for h in src], n, rounds, loops)
        print(f"  {'(html_to_text)':<16} {ms:8.3f} ms/message")


def _html_source(msg: Message) -> str | None:
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--policy", choices=("compat32", "default"), default="compat32")
    args = ap.parse_args()
    policy = email.policy.compat32 if args.policy == "compat32" else email.policy.default
    words = load_footer_words(ROOT / "rules" / "footer_words.toml")
    raws, spec = corpus()
    real = realistic_message()
    print(f"policy={args.policy}, median of {args.rounds} rounds, CPU time (process_time)")
    bench("realistic 10 KB", [real], spec, words, policy, args.rounds, 200)
    bench("corpus", raws, spec, words, policy, args.rounds, 5)


if __name__ == "__main__":
    main()
