"""The listening socket: accepted connections get TCP_NODELAY (no 40 ms delayed-ACK stalls)."""

from __future__ import annotations

import asyncio
import socket

from gateway.smtp.server import make_socket


async def test_accepted_connections_have_nagle_off() -> None:
    sock = make_socket("127.0.0.1:0")
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(seen, 5) != 0
    writer.close()
    server.close()
    await server.wait_closed()
