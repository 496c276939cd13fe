"""HttpServer: uvicorn serving an ASGI app as a task in the caller's event loop (no signals)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

__all__ = ["HttpServer", "parse_listen"]


def parse_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:8025', '[::1]:8025', ':8025' -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


class HttpServer:
    """Start/stop uvicorn inside a running loop; the process's signal handling stays the caller's.

    uvicorn's `serve()` installs SIGINT/SIGTERM handlers of its own; the gateway owns
    signals (SIGTERM drains SMTP first), so this drives `startup` / `main_loop` /
    `shutdown` directly on a socket it binds itself (port 0 gives a free port, see `.port`).
    """

    def __init__(self, *, graceful_timeout: float = 5.0, proxy_headers: bool = False) -> None:
        self.graceful_timeout = graceful_timeout
        self.proxy_headers = proxy_headers
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.host = ""
        self.port = 0

    async def start(self, app: ASGIApp, listen: str) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(512)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", access_log=False, log_config=None,
            proxy_headers=self.proxy_headers, server_header=False,
            timeout_graceful_shutdown=int(self.graceful_timeout) or 1,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server, self._sock = server, sock
        self.host, self.port = host, int(sock.getsockname()[1])
        self._task = asyncio.create_task(server.main_loop(), name="http-server")
        log.info("http listening", extra={"fields": {"http": f"{host}:{self.port}"}})

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.shutdown(sockets=[self._sock] if self._sock else None)
        self._server = self._task = self._sock = None
