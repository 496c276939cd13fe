"""Helpers for the HTTP tests: a real gateway on a real SQLite store, tokens, events, messages."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.access.throttle import FailureThrottle
from gateway.access.tokens import create_token
from gateway.app import Gateway, build
from gateway.config import from_dict
from gateway.model import Event, EventVerdict, Outcome, Phase, RuleResult
from gateway.store.base import Store
from gateway.unsubscribe.tokens import TokenCodec, generate_secret_file
from gateway.web import Metrics, create_app
from tests.support.gateway import base_config, free_port


@dataclass
class Env:
    gateway: Gateway
    app: Any
    codec: TokenCodec
    metrics: Metrics
    tmp: Path

    @property
    def store(self) -> Store:
        return self.gateway.store

    def client(self, base_url: str = "http://testserver", **kw: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(kw.pop("ip", "192.0.2.10"), 4321))
        return httpx.AsyncClient(transport=transport, base_url=base_url, **kw)

    async def token(self, role: str, name: str | None = None, **kw: Any) -> str:
        new = await create_token(self.store, role, name or f"{role}-person", **kw)
        return new.secret


async def make_env(tmp: Path, *, throttle: FailureThrottle | None = None,
                   erasure_key: bool = False, more_senders: tuple[dict[str, Any], ...] = ()
                   ) -> Env:
    raw = base_config(tmp, free_port())
    raw["senders"].extend(more_senders)
    secret = generate_secret_file(tmp / "secrets" / "unsubscribe.key")
    raw["policy"]["unsubscribe_secret_file"] = str(secret)
    if erasure_key:
        raw["policy"]["erasure_key_file"] = str(generate_secret_file(tmp / "secrets" / "erasure.key"))
    raw["http"] = {"listen": "127.0.0.1:0", "public_url": "https://gw.example.jp"}
    config = from_dict(raw, base_dir=tmp)
    gateway = build(config)
    await gateway.store.open()
    metrics = Metrics()
    app = create_app(gateway, metrics_=metrics, throttle=throttle)
    return Env(gateway, app, TokenCodec.from_file(secret), metrics, tmp)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def add_event(store: Store, *, verdict: str = "rejected", rules: tuple[str, ...] = (),
                    recipient: str = "taro@example.com", client: str = "ma-tool",
                    sender: str = "sample", at: float | None = None,
                    reply: str | None = None, phase: str = "rcpt") -> int:
    v = EventVerdict(verdict)
    text = reply or ("250 2.0.0 OK" if v is EventVerdict.ACCEPTED else
                     f"550 5.7.1 [{rules[0] if rules else 'x'}] refused <{recipient}>")
    results = (*tuple(RuleResult(r, Outcome.FAIL, f"no consent for {recipient}") for r in rules), RuleResult("address.invalid", Outcome.PASS))
    event = Event(verdict=v, phase=Phase(phase), reply=text, client=client,
                  client_class="advertising", client_ip="127.0.0.1", sender_id=sender,
                  mail_from="bounce@bounce.example.jp", recipient=recipient,
                  header_from="news@example.jp", rule_ids=rules, results=results,
                  event_id=f"ev{time.monotonic_ns()}", created_at=at or time.time(),
                  session_id="s1")
    await store.record_event(event)
    rows = await store.fetch("SELECT id FROM events WHERE event_id = ?", (event.event_id,))
    return int(rows[0]["id"])


FOOTER_OK = """\
配信停止をご希望の方は https://example.jp/unsubscribe からお手続きください。
発行者: 株式会社サンプル
住所: 東京都千代田区丸の内1-1-1
お問い合わせ: 03-1234-5678
"""


def eml(body: str = FOOTER_OK) -> bytes:
    text = (
        "From: news@example.jp\r\nTo: taro@example.com\r\nSubject: =?UTF-8?B?5paw5ZWG5ZOB?=\r\n"
        "Date: Mon, 04 May 2026 10:00:00 +0900\r\nMessage-ID: <m1@example.jp>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n新商品のお知らせです。\r\n\r\n"
        + body.replace("\n", "\r\n")
    )
    return text.encode("utf-8")


CSV_GRANTS = (
    "email,status,method,consented_at,source_system,source_ref\r\n"
    "hanako@example.com,opted_in,web_form,2026-01-10T10:00:00+09:00,cms,f-1\r\n"
    "jiro@example.com,opted_in,web_form,2026-01-11T10:00:00+09:00,cms,f-2\r\n"
)
