"""Content layer: decode readable MIME parts and find the 特定電子メール法 Art. 4 display items."""

from gateway.content.footer import (
    FooterReport,
    FooterSpec,
    FooterWords,
    check_message,
    check_parts,
    load_footer_words,
)
from gateway.content.parts import readable_parts

__all__ = [
    "FooterReport",
    "FooterSpec",
    "FooterWords",
    "check_message",
    "check_parts",
    "load_footer_words",
    "readable_parts",
]
