"""What every HTTP handler shares: config, store, metrics, token codec, throttle, templates."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import jinja2
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from gateway.access.audit import mask_address
from gateway.access.throttle import FailureThrottle
from gateway.config import Config, SenderConfig
from gateway.content.footer import FooterWords, check_message, load_footer_words
from gateway.footer_policy import footer_spec
from gateway.store.base import Store
from gateway.unsubscribe.tokens import TokenCodec
from gateway.web.metrics import Metrics

if TYPE_CHECKING:
    from gateway.app import Gateway

PreflightFn = Callable[[SenderConfig, bytes], dict[str, Any]]
ROOT = Path(__file__).resolve().parents[2]
DISPLAY_TZ = ZoneInfo("Asia/Tokyo")


@dataclass(slots=True)
class WebContext:
    gateway: Gateway
    config: Config
    store: Store
    metrics: Metrics
    codec: TokenCodec | None
    throttle: FailureThrottle
    templates: Jinja2Templates
    preflight_fn: PreflightFn | None = None
    _words: FooterWords | None = field(default=None)

    def sender(self, sender_id: str) -> SenderConfig | None:
        return self.config.sender(sender_id)

    def footer_words(self) -> FooterWords:
        if self._words is None:
            self._words = load_footer_words(_footer_words_path(self.config))
        return self._words

    def preflight(self, sender: SenderConfig, raw: bytes) -> dict[str, Any]:
        """The content report of a draft (the lead's full preflight when injected)."""
        if self.preflight_fn is not None:
            return self.preflight_fn(sender, raw)
        spec = footer_spec(sender, self.config.http.public_url)
        report = check_message(raw, spec, self.footer_words())
        return {"sender": sender.id, "ok": report.ok and not report.malformed,
                "footer": report.to_dict()}


def _footer_words_path(config: Config) -> Path:
    configured = getattr(config.policy, "footer_words", None)
    if configured:
        return Path(configured)
    for pack in config.policy.rules:
        candidate = Path(pack).parent / "footer_words.toml"
        if candidate.is_file():
            return candidate
    return ROOT / "rules" / "footer_words.toml"


def ctx_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def fmt_time(ts: float | str | None) -> str:
    if ts is None or ts == "":
        return "-"
    return datetime.fromtimestamp(float(ts), DISPLAY_TZ).strftime("%Y-%m-%d %H:%M:%S")


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
    )
    env.filters["ts"] = fmt_time
    env.filters["mask"] = mask_address
    env.globals["now"] = time.time
    return Jinja2Templates(env=env)
