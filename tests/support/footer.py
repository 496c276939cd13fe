"""What the content tests share: the sample sender's display items, the rule files, tree shapes."""

from __future__ import annotations

from email.message import Message
from pathlib import Path
from typing import Any

from gateway.content.footer import FooterSpec, load_footer_words
from gateway.content.insert import load_footer_template

ROOT = Path(__file__).resolve().parents[2]
WORDS = load_footer_words(ROOT / "rules" / "footer_words.toml")
TEMPLATE = load_footer_template(ROOT / "rules" / "footer_template.toml")
SPEC = FooterSpec(
    name="株式会社サンプル",
    postal_address="〒100-0005 東京都千代田区丸の内1-1-1",
    contacts=("03-1234-5678", "info@example.jp"),
    optout=("https://example.jp/unsubscribe", "https://gw.example.jp/u/", "unsubscribe@example.jp"),
    info_urls=("https://example.jp/company",),
)


def tree_shape(msg: Message) -> Any:
    """Everything of a tree that readable_parts() and the footer check can read."""
    try:
        payload = msg.get_payload()
    except (ValueError, LookupError) as exc:  # compat32 decodes 8-bit text with the charset
        payload = type(exc).__name__  # parameter's codec, e.g. a name with a NUL in it
    return (
        list(msg.raw_items()),
        msg.get_default_type(),
        [type(d).__name__ for d in msg.defects],
        [tree_shape(p) for p in payload] if msg.is_multipart() else payload,
    )
