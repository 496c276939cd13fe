"""Footer facts for the DATA phase: the display-item report, and insert mode's repair.

Word lists and the insert template are loaded once at start-up (no file opens on
the hot path); each sender identity's FooterSpec is built once.
"""

from __future__ import annotations

import hashlib
from email.message import Message
from pathlib import Path

from gateway.config import Config, SenderConfig
from gateway.content.footer import (
    FooterReport,
    FooterSpec,
    FooterWords,
    check_parts,
    load_footer_words,
)
from gateway.content.insert import FooterTemplate, InsertError, insert_footer, load_footer_template
from gateway.content.mimetree import parse_message, plain_header_section
from gateway.content.parts import readable_parts
from gateway.errors import ConfigError
from gateway.lru import Lru

WORDS_FILE = "footer_words.toml"
TEMPLATE_FILE = "footer_template.toml"


def _next_to_packs(config: Config, name: str) -> Path:
    for pack in config.policy.rules:
        candidate = Path(pack).parent / name
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{name} not found next to the rule packs", "policy.rules")


def footer_spec(sender: SenderConfig, public_url: str) -> FooterSpec:
    """The display values a sender's mail must show, from its [[senders]] entry."""
    return FooterSpec(
        name=sender.name,
        postal_address=sender.postal_address,
        contacts=sender.contacts,
        # The gateway's own /u/ link counts as the sender's opt-out address (issue 6).
        optout=(*sender.optout, public_url.rstrip("/") + "/u/"),
        info_urls=sender.info_urls,
        law=sender.law,
        seller_name=sender.seller_name,
    )


class FooterPolicy:
    def __init__(self, config: Config) -> None:
        self.config = config
        words_path = config.policy.footer_words or str(_next_to_packs(config, WORDS_FILE))
        template_path = config.policy.footer_template or str(_next_to_packs(config, TEMPLATE_FILE))
        try:
            self.words: FooterWords = load_footer_words(words_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{words_path}: {exc}", "policy.footer_words") from None
        try:
            self.template: FooterTemplate = load_footer_template(template_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{template_path}: {exc}", "policy.footer_template") from None
        for i, sender in enumerate(config.senders):
            if sender.seller_name and sender.footer == "insert" and not self.template.shows_seller:
                raise ConfigError(
                    f"{template_path}: the insert template has no {{seller_line}}, so inserted "
                    "footers would lack this sender's seller name", f"senders[{i}].seller_name")
        self._specs = {s.id: footer_spec(s, config.http.public_url) for s in config.senders}
        self._reports: Lru[bytes, FooterReport] = Lru(config.server.body_cache)

    def spec(self, sender: SenderConfig) -> FooterSpec:
        return self._specs[sender.id]

    def report(self, sender: SenderConfig, message: Message) -> FooterReport:
        return check_parts(readable_parts(message, visibility=self.words.visibility),
                           self.spec(sender), self.words)

    def report_for(self, sender: SenderConfig, raw: bytes) -> FooterReport:
        """The report for raw message bytes, cached by what it depends on.

        A campaign sends one body to many recipients: the report depends only on the
        body and the top-level MIME headers, so it is computed once per campaign body
        (decoding and matching cost milliseconds; the key costs microseconds). That holds
        for a plainly well-formed header section only; any other is checked afresh.
        """
        end = raw.find(b"\r\n\r\n")
        header, body = (raw, b"") if end < 0 else (raw[:end], raw[end:])
        if not plain_header_section(header):
            # the header section's own defects: not determined by the key below
            return self.report(sender, parse_message(raw))
        key = hashlib.blake2b(body, digest_size=20, person=sender.id.encode()[:16])
        for name in (b"content-type:", b"content-transfer-encoding:", b"mime-version:"):
            key.update(_header_value(header, name))
        digest = key.digest()
        cached = self._reports.get(digest)
        if cached is not None:
            return cached
        report = self.report(sender, parse_message(raw))
        self._reports.put(digest, report)
        return report

    def repair(
        self, sender: SenderConfig, raw: bytes, report: FooterReport, optout_url: str | None
    ) -> bytes:
        """Insert mode: add the footer block to every part that lacks items.

        Raises InsertError when the message cannot be edited safely; the caller then
        checks the original, so the verdict says what is missing.
        """
        url = optout_url or next((o for o in sender.optout if o.startswith("http")), None)
        return insert_footer(raw, self.spec(sender), report, self.template, optout_url=url)


def _header_value(header: bytes, name: bytes) -> bytes:
    """The (unfolded enough) value of the first header `name` in a header section."""
    lowered = header.lower()
    start = lowered.find(b"\n" + name)
    if start < 0:
        start = 0 if lowered.startswith(name) else -1
    else:
        start += 1
    if start < 0:
        return b"\0"
    end = start
    while True:
        end = header.find(b"\r\n", end + 1)
        if end < 0 or header[end + 2 : end + 3] not in (b" ", b"\t"):
            break
    return header[start : end if end >= 0 else len(header)]


__all__ = ["FooterPolicy", "InsertError", "footer_spec"]
