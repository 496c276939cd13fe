"""Dummy Japanese marketing messages (fictional sender, reserved domains)."""

from __future__ import annotations

import email.utils
import uuid
from email.message import EmailMessage

FOOTER = (
    "\n--\n"
    "発行者: 株式会社サンプル\n"
    "〒100-0005 東京都千代田区丸の内1-1-1\n"
    "お問い合わせ: 03-1234-5678\n"
    "配信停止をご希望の方は、こちらからお手続きください: https://example.jp/unsubscribe\n"
)


def marketing(
    *,
    from_addr: str = "news@example.jp",
    to: str = "taro@example.com",
    subject: str = "【サンプル】冬のセールのお知らせ",
    body: str = "いつもご利用ありがとうございます。冬のセールを開催します。\n",
    footer: bool = True,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"株式会社サンプル <{from_addr}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.jp>"
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(body + (FOOTER if footer else ""), charset="utf-8")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def unsigned(raw: bytes) -> tuple[bytes, list[bytes]]:
    """Split the DKIM-Signature fields the gateway prepends from the message it relayed."""
    signatures: list[bytes] = []
    rest = raw
    while rest.lower().startswith(b"dkim-signature:"):
        end = rest.index(b"\r\n")
        while rest[end + 2 : end + 3] in (b" ", b"\t"):
            end = rest.index(b"\r\n", end + 2)
        signatures.append(rest[: end + 2])
        rest = rest[end + 2 :]
    return rest, signatures
