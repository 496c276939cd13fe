"""Generate the dummy Japanese marketing-mail corpus (*.eml) used by tests/unit/content.

Run from anywhere: `python tests/data/mail/make_corpus.py`. Output is deterministic, so a re-run
must leave `git status` clean. Everything here is fictional: 株式会社サンプル, example.jp/.com,
03-1234-5678. Bodies are built as bytes by hand because the stdlib email generator cannot write
Shift_JIS/EUC-JP (legal.md §4.1) and we want realistic, sometimes broken, wire formats.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

HERE = Path(__file__).resolve().parent
NL = b"\r\n"

NAME = "株式会社サンプル"
ADDRESS = "〒100-0005 東京都千代田区丸の内1-1-1"
PHONE = "03-1234-5678"
OPTOUT = "https://example.jp/unsubscribe?id=8f3a2c"
INFO = "https://example.jp/company"

BODY_TEXT = (
    "いつもご利用いただきありがとうございます。\n"
    "今月のおすすめ商品をご案内します。\n\n"
    "■ 春の新作コレクション 20%OFF\n"
    "  期間：4月1日～4月30日\n"
    "■ 送料無料キャンペーン実施中\n\n"
    "詳しくはこちら: https://example.jp/campaign/spring\n\n"
)
FOOTER_TEXT = (
    "────────────────────\n"
    "配信停止をご希望の方は、下記URLよりお手続きください。\n"
    f"{OPTOUT}\n"
    f"発行：{NAME}\n"
    f"住所：{ADDRESS}\n"
    f"お問い合わせ：{PHONE}（平日10時～18時）/ info@example.jp\n"
)
HTML_HEAD = (
    '<!DOCTYPE html>\n<html><head><meta charset="{cs}"><title>春のご案内</title>\n'
    "<style>.btn{{color:#fff;background:#c00}}</style></head>\n"
    '<body style="margin:0;background-color:#ffffff;">\n'
    '<table width="600" align="center"><tr><td style="font-family:sans-serif;">\n'
    "<h1>春の新作コレクション</h1>\n"
    "<p>いつもご利用いただきありがとうございます。<br>今月のおすすめ商品をご案内します。</p>\n"
    '<p><a class="btn" href="https://example.jp/campaign/spring">20%OFF セールを見る</a></p>\n'
    '<p><img src="cid:banner@example.jp" alt="春のセール"></p>\n'
)
HTML_FOOTER = (
    '<hr><div style="font-size:12px;color:#666666;">\n'
    f'<p>配信停止をご希望の方は<a href="{OPTOUT}">こちら</a>からお手続きください。</p>\n'
    f"<p>発行：{NAME}<br>\n住所：{ADDRESS}<br>\n"
    f'お問い合わせ：<a href="tel:0312345678">{PHONE}</a> / '
    '<a href="mailto:info@example.jp">info@example.jp</a></p>\n</div>\n'
)
HTML_TAIL = "</td></tr></table>\n</body></html>\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0"
       b"/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def html(body: str, footer: str = HTML_FOOTER, cs: str = "utf-8") -> str:
    return HTML_HEAD.format(cs=cs) + body + footer + HTML_TAIL


def jis_encode(text: str) -> bytes:
    """ISO-2022-JP as Windows writes it (CP50220): CP932 pairs, so NEC ① ㈱ survive."""
    out = bytearray()
    mode = "ascii"
    for ch in text:
        if ord(ch) < 0x80:
            if mode != "ascii":
                out += b"\x1b(B"
                mode = "ascii"
            out += ch.encode("ascii")
            continue
        s1, s2 = ch.encode("cp932")
        if mode != "kanji":
            out += b"\x1b$B"
            mode = "kanji"
        # Shift_JIS -> JIS X 0208 row/cell
        if s1 >= 0xE0:
            s1 -= 0x40
        j1 = (s1 - 0x70) * 2 - (1 if s2 < 0x9F else 0)
        j2 = s2 - (0x1F if s2 < 0x7F else 0x20 if s2 < 0x9F else 0x7E)
        out += bytes((j1, j2))
    if mode != "ascii":
        out += b"\x1b(B"
    return bytes(out)


def encode_charset(text: str, charset: str) -> bytes:
    text = text.replace("\n", "\r\n")
    if charset.lower() == "iso-2022-jp":
        return jis_encode(text)
    codec = {"shift_jis": "cp932", "euc-jp": "euc_jp", "x-foo-bar": "utf-8"}.get(
        charset.lower(), charset)
    if codec == "euc_jp":
        text = text.replace("～", "〜")  # EUC-JP writers use WAVE DASH, not FULLWIDTH TILDE
    return text.encode(codec)


def transfer(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        enc = base64.encodebytes(data).replace(b"\n", NL)
        return enc
    if cte == "quoted-printable":
        return binascii.b2a_qp(data, istext=True).replace(b"\r\n", b"\n").replace(b"\n", NL)
    return data if data.endswith(NL) else data + NL


def leaf(ctype: str, text: str, charset: str = "utf-8", cte: str = "base64",
         extra: str = "") -> bytes:
    head = f"Content-Type: {ctype}; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {cte}\r\n"
    return head.encode() + extra.encode() + NL + transfer(encode_charset(text, charset), cte)


def binary(ctype: str, data: bytes, filename: str, disposition: str = "attachment",
           cid: str | None = None) -> bytes:
    head = (f'Content-Type: {ctype}; name="{filename}"\r\nContent-Transfer-Encoding: base64\r\n'
            f'Content-Disposition: {disposition}; filename="{filename}"\r\n')
    if cid:
        head += f"Content-ID: <{cid}>\r\n"
    return head.encode() + NL + transfer(data, "base64")


def multipart(subtype: str, boundary: str, *parts: bytes, close: bool = True,
              extra: str = "") -> bytes:
    out = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{extra}\r\n\r\n'.encode()
    out += b"This is a multi-part message in MIME format.\r\n"
    for p in parts:
        out += b"\r\n--" + boundary.encode() + NL + p
    if close:
        out += b"\r\n--" + boundary.encode() + b"--\r\n"
    return out


def message(n: int, subject: str, body: bytes) -> bytes:
    subj = "=?ISO-2022-JP?B?" + base64.b64encode(jis_encode(subject)).decode() + "?="
    name = "=?ISO-2022-JP?B?" + base64.b64encode(jis_encode(NAME)).decode() + "?="
    head = (
        f"From: {name} <news@example.jp>\r\n"
        "To: taro.yamada@example.com\r\n"
        f"Subject: {subj}\r\n"
        f"Date: Tue, 01 Apr 2025 10:{n % 60:02d}:00 +0900\r\n"
        f"Message-ID: <corpus-{n:03d}@example.jp>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    return head.encode() + body


def std_text(footer: str = FOOTER_TEXT) -> str:
    return BODY_TEXT + footer


def alt(text: str, htm: str, tcs: str = "iso-2022-jp", tcte: str = "7bit",
        hcs: str = "utf-8", hcte: str = "base64", b: str = "alt-b0undary") -> bytes:
    return multipart("alternative", b, leaf("text/plain", text, tcs, tcte),
                     leaf("text/html", htm, hcs, hcte))


def build() -> dict[str, bytes]:
    m: dict[str, bytes] = {}
    n = iter(range(1, 1000))

    def add(name: str, subject: str, body: bytes) -> None:
        m[name] = message(next(n), subject, body)

    text = std_text()
    add("ok_iso2022jp_text.eml", "春のご案内", leaf("text/plain", text, "iso-2022-jp", "7bit"))
    add("ok_sjis_text.eml", "㈱サンプル通信①",
        leaf("text/plain", "①②③ 今月の特集 ㈱サンプル通信\n" + text, "shift_jis", "8bit"))
    add("ok_sjis_halfwidth_kana.eml", "セール",
        leaf("text/plain", BODY_TEXT + FOOTER_TEXT.replace("配信停止", "ｵﾌﾟﾄｱｳﾄ(ﾒｰﾙ ﾃｲｼ)").replace(
            "下記URLより", "ｶｷURLより"), "shift_jis", "base64"))
    add("ok_eucjp_text.eml", "春のご案内", leaf("text/plain", text, "euc-jp", "base64"))
    add("ok_utf8_html_only.eml", "春のご案内",
        leaf("text/html", html(""), "utf-8", "quoted-printable"))
    add("ok_alternative.eml", "春のご案内", alt(text, html("")))
    related = multipart("related", "rel-b0undary", leaf("text/html", html(""), "utf-8", "base64"),
                        binary("image/png", PNG, "banner.png", "inline", "banner@example.jp"),
                        extra='; type="text/html"')
    add("ok_related_inline_image.eml", "春のご案内",
        multipart("alternative", "alt-b0undary",
                  leaf("text/plain", text, "iso-2022-jp", "7bit"), related))
    add("ok_nested_mixed_pdf.eml", "春のご案内",
        multipart("mixed", "mix-b0undary",
                  multipart("alternative", "alt-b0undary",
                            leaf("text/plain", text, "iso-2022-jp", "7bit"), related),
                  binary("application/pdf", PDF, "catalog.pdf")))
    add("ok_text_attachment.eml", "春のご案内",
        multipart("mixed", "mix-b0undary", leaf("text/plain", text, "utf-8", "8bit"),
                  leaf("text/plain", "ご注文の控え\n注文番号 12345\n", "utf-8", "base64",
                       'Content-Disposition: attachment; filename="order.txt"\r\n')))

    # --- each item missing in turn (both alternatives lack it) -------------------------------
    no_name_t = text.replace(f"発行：{NAME}\n", "")
    no_name_h = HTML_FOOTER.replace(f"発行：{NAME}<br>\n", "")
    add("missing_name.eml", "春のご案内", alt(no_name_t, html("", no_name_h)))
    add("missing_optout_address.eml", "春のご案内",
        alt(text.replace(OPTOUT + "\n", ""),
            html("", HTML_FOOTER.replace(f'<a href="{OPTOUT}">こちら</a>', "お電話"))))
    add("missing_notice.eml", "春のご案内",
        alt(text.replace("配信停止をご希望の方は、下記URLよりお手続きください。", "各種お手続き:"),
            html("", HTML_FOOTER.replace("配信停止をご希望の方は", "各種お手続きは"))))
    add("missing_postal_address.eml", "春のご案内",
        alt(text.replace(f"住所：{ADDRESS}\n", ""),
            html("", HTML_FOOTER.replace(f"住所：{ADDRESS}<br>\n", ""))))
    no_contact_t = text.replace(f"お問い合わせ：{PHONE}（平日10時～18時）/ info@example.jp\n", "")
    no_contact_h = HTML_FOOTER.split("お問い合わせ：")[0] + "</p>\n</div>\n"
    add("missing_contact.eml", "春のご案内", alt(no_contact_t, html("", no_contact_h)))
    add("missing_everything.eml", "春のご案内",
        leaf("text/plain", BODY_TEXT, "iso-2022-jp", "7bit"))
    add("text_ok_html_missing_contact.eml", "春のご案内", alt(text, html("", no_contact_h)))

    # --- notice far away from the address ----------------------------------------------------
    far = ("配信停止をご希望の方は、ページ下部のURLからお手続きください。\n" + BODY_TEXT
           + "本メールに関するご案内は以上です。" * 4 + "\n"
           + FOOTER_TEXT.replace("配信停止をご希望の方は、下記URLよりお手続きください。\n", ""))
    add("notice_far_from_address.eml", "春のご案内", leaf("text/plain", far, "utf-8", "8bit"))

    # --- values split across lines and HTML tags ---------------------------------------------
    split_t = text.replace(f"住所：{ADDRESS}", "住所：〒100-0005 東京都千代田区\n  丸の内1-1-1").replace(
        PHONE, "03-1234-\n5678")
    split_h = (
        '<hr><div style="font-size:12px">\n<p><b>配信停止</b>をご希望の方は<a href="'
        f'{OPTOUT}"><span>こ</span>ち<b>ら</b></a>から。</p>\n'
        "<p>発行：<span>株式</span><span>会社</span><b>サンプル</b><br>"
        "住所：東京都<span>千代田区</span><br>丸の内<em>1</em>-1-<em>1</em><br>"
        "お問い合わせ：03<span>-</span>1234<span>-</span>5678</p></div>\n"
    )
    add("split_lines_and_tags.eml", "春のご案内", alt(split_t, html("", split_h)))

    # --- items only in hidden HTML -----------------------------------------------------------
    add("hidden_display_none_address.eml", "春のご案内", leaf("text/html", html("", HTML_FOOTER.replace(
        f"住所：{ADDRESS}<br>", f'<span style="display: none">住所：{ADDRESS}</span><br>')),
        "utf-8", "base64"))
    add("hidden_font_size0_name.eml", "春のご案内", leaf("text/html", html("", HTML_FOOTER.replace(
        f"発行：{NAME}<br>", f'<span style="font-size:0px;line-height:0">発行：{NAME}</span><br>')),
        "utf-8", "quoted-printable"))
    add("hidden_white_on_white_optout.eml", "春のご案内", leaf("text/html", html("", HTML_FOOTER.replace(
        f'<a href="{OPTOUT}">こちら</a>',
        f'<a href="{OPTOUT}" style="color:#FFFFFF;text-decoration:none">こちら</a>')),
        "utf-8", "base64"))

    # --- only in an attachment ---------------------------------------------------------------
    add("only_in_attachment.eml", "春のご案内",
        multipart("mixed", "mix-b0undary",
                  leaf("text/plain", text.replace(f"住所：{ADDRESS}\n", "").replace(
                      f"お問い合わせ：{PHONE}（平日10時～18時）/ info@example.jp\n", ""),
                      "iso-2022-jp", "7bit"),
                  leaf("text/plain", f"会社概要\n{NAME}\n{ADDRESS}\nTEL {PHONE}\n", "utf-8",
                       "base64", 'Content-Disposition: attachment; filename="company.txt"\r\n'),
                  binary("application/pdf", PDF, "catalog.pdf")))

    # --- wrong values ------------------------------------------------------------------------
    add("wrong_phone.eml", "春のご案内", leaf("text/plain", text.replace(PHONE, "03-9876-5432").replace(
        "/ info@example.jp", ""), "iso-2022-jp", "7bit"))
    add("wrong_address.eml", "春のご案内", leaf("text/plain", text.replace(
        "東京都千代田区丸の内1-1-1", "大阪府大阪市北区梅田9-9-9"), "iso-2022-jp", "7bit"))
    add("wrong_optout_url.eml", "春のご案内", leaf("text/plain", text.replace(
        OPTOUT, "https://example.com/stop-mail"), "iso-2022-jp", "7bit"))
    add("wrong_name.eml", "春のご案内", leaf("text/plain", text.replace(
        NAME, "株式会社テスト商事"), "iso-2022-jp", "7bit"))

    # --- normalisation: full-width digits, 丁目番号, (株) -----------------------------------
    fw = text.replace(PHONE, "０３－１２３４－５６７８").replace(
        "〒100-0005", "〒１００－０００５").replace("丸の内1-1-1", "丸の内１−１−１").replace(
        NAME, "㈱サンプル")
    add("fullwidth_digits.eml", "春のご案内", leaf("text/plain", fw, "iso-2022-jp", "7bit"))
    add("chome_banchi_address.eml", "春のご案内", alt(
        text.replace("丸の内1-1-1", "丸の内一丁目1番1号"),
        html("", HTML_FOOTER.replace("丸の内1-1-1", "丸の内1丁目1番地1号"))))
    add("phone_with_long_vowel_dash.eml", "春のご案内",
        leaf("text/plain", text.replace(PHONE, "03ー1234ー5678"), "shift_jis", "quoted-printable"))

    # --- links: info page, gateway prefix, mailto --------------------------------------------
    info_t = text.replace(f"住所：{ADDRESS}\n", "").replace(
        f"お問い合わせ：{PHONE}（平日10時～18時）/ info@example.jp\n",
        f"会社情報・お問い合わせ先：{INFO}\n")
    info_h = (f'<hr><p>配信停止をご希望の方は<a href="{OPTOUT}">こちら</a></p>'
              f'<p>発行：{NAME}（<a href="{INFO}">会社概要・お問い合わせ</a>）</p>\n')
    add("info_page_link.eml", "春のご案内", alt(info_t, html("", info_h)))
    gw = "https://gw.example.jp/u/Zx81kQ2v"
    add("gateway_unsubscribe_link.eml", "春のご案内", alt(
        text.replace(OPTOUT, gw), html("", HTML_FOOTER.replace(OPTOUT, gw))))
    mailto_h = HTML_FOOTER.replace(
        f'<a href="{OPTOUT}">こちら</a>',
        '<a href="mailto:unsubscribe@example.jp?subject=配信停止">こちらのアドレス</a>')
    add("mailto_optout.eml", "春のご案内", alt(
        text.replace(OPTOUT, "unsubscribe@example.jp（件名に「配信停止」とご記入ください）"),
        html("", mailto_h)))
    add("optout_anchor_text_notice.eml", "春のご案内", leaf("text/html", html("", HTML_FOOTER.replace(
        f'<p>配信停止をご希望の方は<a href="{OPTOUT}">こちら</a>からお手続きください。</p>',
        f'<p><a href="{OPTOUT}">メール配信停止はこちら</a></p>')), "utf-8", "base64"))

    # --- 特定商取引法: opt-out at top or end -------------------------------------------------
    long_body = BODY_TEXT + "".join(f"◆ 商品{i}: 春の新作アイテムのご紹介です。限定価格でご提供します。\n"
                                    for i in range(20))
    mid = (long_body[: len(long_body) // 2] + FOOTER_TEXT.split("発行")[0]
           + long_body[len(long_body) // 2:] + "発行" + FOOTER_TEXT.split("発行", 1)[1]
           + "".join(f"◇ おすすめ{i}: 在庫限りの特価品です。お早めにどうぞ。\n" for i in range(20)))
    add("tokusho_optout_middle.eml", "春のご案内", leaf("text/plain", mid, "utf-8", "base64"))
    add("tokusho_optout_end.eml", "春のご案内",
        leaf("text/plain", long_body + FOOTER_TEXT, "utf-8", "base64"))

    # --- charsets and malformed MIME ---------------------------------------------------------
    nec = "①限定 ㈱サンプル ＮＥＣ特殊文字 ㍻ Ⅱ ㎝\n" + text
    add("nec_chars_iso2022jp.eml", "①春のご案内", leaf("text/plain", nec, "iso-2022-jp", "7bit"))
    add("iso2022jp_label_utf8_body.eml", "春のご案内",
        b"Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + text.replace("\n", "\r\n").encode("utf-8"))
    add("unknown_charset.eml", "春のご案内", leaf("text/plain", text, "x-foo-bar", "8bit"))
    good_b64 = transfer(text.encode("utf-8"), "base64")
    add("truncated_base64.eml", "春のご案内",
        b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + good_b64[: len(good_b64) * 2 // 5 + 1])
    add("broken_boundary.eml", "春のご案内",
        multipart("alternative", "right-boundary", leaf("text/plain", text, "utf-8", "base64"),
                  leaf("text/html", html(""), "utf-8", "base64")).replace(
                      b"--right-boundary", b"--wrong-boundary"))
    add("missing_end_boundary.eml", "春のご案内", alt(text, html("")).replace(
        b"\r\n--alt-b0undary--\r\n", b"\r\n"))
    nested = leaf("text/plain", text, "utf-8", "8bit")
    for depth in range(20):
        nested = multipart("mixed", f"deep-{depth}", nested)
    add("deeply_nested.eml", "春のご案内", nested)

    # hidden as above, but by rules in the <style> element instead of inline style
    add("hidden_by_stylesheet_address.eml", "春のご案内", leaf("text/html", html("", HTML_FOOTER.replace(
        f"住所：{ADDRESS}<br>", f'<span class="addr">住所：{ADDRESS}</span><br>')).replace(
        "</style>", ".addr{display:none !important}</style>"),
        "utf-8", "base64"))
    add("hidden_by_stylesheet_optout.eml", "春のご案内", leaf("text/html", html("", HTML_FOOTER.replace(
        f'<a href="{OPTOUT}">こちら</a>', f'<a id="ft-optout" href="{OPTOUT}">こちら</a>')).replace(
        "</style>", "\ndiv #ft-optout { color: white; text-decoration: none }\n</style>"),
        "utf-8", "quoted-printable"))
    return m


def main() -> None:
    for old in HERE.glob("*.eml"):
        old.unlink()
    for name, data in build().items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(build())} messages to {HERE}")


if __name__ == "__main__":
    main()
