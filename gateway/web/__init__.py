"""The HTTP side: Starlette app (health, metrics, /u/ unsubscribe, /api/v1, /ui/) and its server."""

from __future__ import annotations

from gateway.web.app import create_app
from gateway.web.metrics import Metrics
from gateway.web.server import HttpServer

__all__ = ["HttpServer", "Metrics", "create_app"]
