"""The facts a check may read: gathered before the chain runs, so checks do no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from gateway.config import ClientConfig, Config, SenderConfig
from gateway.model import ClientClass, Phase


@dataclass(slots=True)
class Facts:
    """Everything known about the transaction at the moment a phase is evaluated.

    Fact gatherers fill the optional fields; a check whose fact is missing
    returns SKIP (not gathered for this client class) or ERROR (could not be
    gathered now) — never PASS.
    """

    config: Config
    client: ClientConfig
    client_ip: str
    phase: Phase = Phase.MAIL
    sender: SenderConfig | None = None
    mail_from: str = ""
    smtputf8: bool = False  # the transaction asked for SMTPUTF8 (RFC 6531)
    recipient: str = ""
    recipient_count: int = 0
    raw: bytes = b""
    message: Message | None = None  # the header section only (the body stays in raw)
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific facts by name
    errors: dict[str, str] = field(default_factory=dict)  # fact name -> why it is missing

    @property
    def client_class(self) -> ClientClass:
        return ClientClass(self.client.class_)
