"""The benchmark message: ~10 KB Japanese marketing mail, multipart/alternative, every Art. 4 item.

ISO-2022-JP text/plain plus base64 UTF-8 HTML with 25 product rows (like
tests/unit/content/bench_content.py), From news@example.jp, footer values matching the
`sample` sender of the generated config. Written with LF line ends for `smtp-source -F`,
which sends each line with CRLF and dot-stuffs it.
"""

from __future__ import annotations

import base64
from pathlib import Path

NAME = "株式会社サンプル"
ADDRESS = "〒100-0005 東京都千代田区丸の内1-1-1"
PHONE = "03-1234-5678"
OPTOUT = "https://example.jp/unsubscribe"

SENDER = {
    "id": "sample",
    "domains": ["example.jp"],
    "envelope_domains": ["bounce.example.jp"],
    "name": NAME,
    "postal_address": "東京都千代田区丸の内1-1-1",
    "contacts": [PHONE],
    "optout": [OPTOUT],
    "law": "tokuden",
}
ENVELOPE_FROM = "news@bounce.example.jp"
HEADER_FROM = "news@example.jp"


def _products() -> tuple[str, str]:
    rows_text, rows_html = [], []
    for i in range(1, 26):
        url = f"https://shop.example.jp/i/{1000 + i}?c=spring"
        price = f"{980 + i * 120:,}円"
        rows_text.append(f"■ 春の新作アイテム No.{i} {price}（税込）\n  {url}\n")
        rows_html.append(
            f'<tr><td style="font-size:14px"><a href="{url}">春の新作アイテム '
            f'No.{i}</a><br><span style="color:#c00">{price}</span>（税込）</td></tr>\n'
        )
    return "".join(rows_text), "".join(rows_html)


def message(to: str = "taro@example.com") -> bytes:
    """The message with CRLF line ends (as it is on the wire after unstuffing)."""
    rows_text, rows_html = _products()
    text = (
        "いつもご利用いただきありがとうございます。\n今月のおすすめ商品をご案内します。\n\n"
        + rows_text
        + "\n────────────────────\n"
        "配信停止をご希望の方は、下記URLよりお手続きください。\n"
        f"{OPTOUT}\n発行：{NAME}\n住所：{ADDRESS}\n"
        f"お問い合わせ：{PHONE}（平日10時〜18時）/ info@example.jp\n"
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
        + rows_html
        + '<tr><td><hr><div style="font-size:12px;color:#666666;">\n'
        f'<p>配信停止をご希望の方は<a href="{OPTOUT}">こちら</a>からお手続きください。</p>\n'
        f"<p>発行：{NAME}<br>\n住所：{ADDRESS}<br>\n"
        f"お問い合わせ：{PHONE} / "
        '<a href="mailto:info@example.jp">info@example.jp</a></p>\n</div></td></tr>\n'
        "</table>\n</body></html>\n"
    )
    head = (
        f"From: =?ISO-2022-JP?B?GyRCM3Q8MDJxPFIlNSVzJVclaxsoQg==?= <{HEADER_FROM}>\r\n"
        f"To: {to}\r\nSubject: =?UTF-8?B?5pil44Gu5paw5L2c44Kz44Os44Kv44K344On44Oz?=\r\n"
        "Date: Tue, 01 Apr 2025 10:00:00 +0900\r\nMessage-ID: <bench-1@example.jp>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="==alt=="\r\n\r\n'
    ).encode("ascii")
    body = (
        b'--==alt==\r\nContent-Type: text/plain; charset="ISO-2022-JP"\r\n'
        b"Content-Transfer-Encoding: 7bit\r\n\r\n"
        + text.encode("iso2022_jp").replace(b"\n", b"\r\n")
        + b'\r\n--==alt==\r\nContent-Type: text/html; charset="UTF-8"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(html.encode()).replace(b"\n", b"\r\n")
        + b"--==alt==--\r\n"
    )
    return head + body


def write_for_smtp_source(path: Path) -> int:
    """Write the message with LF line ends (smtp-source -F adds CR); returns its wire size."""
    raw = message()
    path.write_bytes(raw.replace(b"\r\n", b"\n"))
    return len(raw)
