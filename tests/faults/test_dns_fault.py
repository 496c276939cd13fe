"""DNS server stopped: serve-stale within the window keeps mail flowing; after it 451 4.4.3;
restarted: the gateway recovers by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dns.server import KnotServer
from tests.faults.client import Outcome, message_id_of, send_message
from tests.faults.invariant import check_invariant, new_message, wait_recovered
from tests.support import authenv
from tests.support.authenv import AuthEnv
from tests.support.gateway import GatewayProcess, base_config
from tests.support.sink import RecordingSink

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

StartGateway = Callable[..., GatewayProcess]
# The gateway's DNS cache keeps an answer for at least 30 s (its min_ttl), whatever the
# record says; the zones here say 1 s, so every answer expires 30 s after it was fetched.
MIN_TTL = 30.0


def _private_dns(workdir: Path) -> AuthEnv:
    keys = workdir / "keys"
    keys.mkdir(parents=True)
    rsa_key, ed_key, rsa_record, ed_record = authenv.make_keys(keys)
    server = KnotServer(workdir / "knot", default_ttl=1, negative_ttl=1)
    server.start()
    authenv.publish(server, rsa_record, ed_record)
    return AuthEnv(server, rsa_key, ed_key, rsa_record, ed_record)


def test_dns_stopped_then_restarted(
    tmp_path: Path, sink: RecordingSink, start_gateway: StartGateway
) -> None:
    auth = _private_dns(tmp_path / "dns")
    try:
        # Two gateways on the same DNS server: a wide serve-stale window, and a narrow one.
        wide_dir, narrow_dir = tmp_path / "wide", tmp_path / "narrow"
        wide_dir.mkdir()
        narrow_dir.mkdir()
        wide_cfg = base_config(wide_dir, sink.port, auth)
        wide_cfg["dns"]["stale_ttl"] = 3600
        narrow_cfg = base_config(narrow_dir, sink.port, auth)
        narrow_cfg["dns"]["stale_ttl"] = 2
        wide = GatewayProcess(wide_dir, wide_cfg)
        narrow = GatewayProcess(narrow_dir, narrow_cfg)
        from tests.support.consent import grant_in_process

        try:
            for gw in (wide, narrow):
                gw.start()
                grant_in_process(gw.config_path, "sample", "taro@example.com")
            started = time.monotonic()  # both caches were warmed at start-up, just before

            async def scenario() -> dict[str, object]:
                seen: dict[str, list[Outcome]] = {"wide": [], "narrow": []}
                for name, gw in (("wide", wide), ("narrow", narrow)):
                    seen[name].append(await send_message(gw.port, new_message(f"{name}-up")))
                auth.dns.stop()
                stopped = time.monotonic()
                # Within the TTL and the stale window, both keep relaying.
                for name, gw in (("wide", wide), ("narrow", narrow)):
                    seen[name].append(await send_message(gw.port, new_message(f"{name}-down")))
                # Past min_ttl + the narrow window: the narrow gateway says 451 4.4.3,
                # the wide one serves stale and keeps relaying.
                first_tempfail: float | None = None
                deadline = started + MIN_TTL + 20
                while time.monotonic() < deadline:
                    n = await send_message(narrow.port, new_message("narrow-stale"))
                    seen["narrow"].append(n)
                    if n.code == 451:
                        first_tempfail = time.monotonic() - stopped
                        break
                    await asyncio.sleep(0.5)
                w = await send_message(wide.port, new_message("wide-stale"))
                seen["wide"].append(w)
                auth.dns.start()
                restarted = time.monotonic()
                narrow_back, ok = await wait_recovered(narrow.port, within=15)
                seen["narrow"].append(ok)
                return {"seen": seen, "first_tempfail": first_tempfail, "wide_stale": w,
                        "recovered": narrow_back, "restart_at": restarted - stopped}

            result = asyncio.run(scenario())
        finally:
            wide.stop()
            narrow.stop()
    finally:
        auth.dns.stop()
    seen = result["seen"]
    assert isinstance(seen, dict)
    narrow_seen: list[Outcome] = seen["narrow"]
    wide_seen: list[Outcome] = seen["wide"]
    assert all(o.accepted for o in wide_seen), wide_seen  # serve-stale: never a hiccup
    assert narrow_seen[0].accepted and narrow_seen[1].accepted
    assert result["first_tempfail"] is not None, narrow_seen[-3:]
    tempfails = [o for o in narrow_seen if not o.accepted]
    assert tempfails and all(o.code == 451 and "4.4.3" in o.reply for o in tempfails), tempfails
    assert narrow_seen[-1].accepted
    delivered = [r.data for r in sink.received]  # one upstream for both gateways
    wide_tally = check_invariant(
        wide_seen, [d for d in delivered if message_id_of(d).startswith("wide")],
        wide.config_path,
    )
    narrow_tally = check_invariant(
        narrow_seen, [d for d in delivered if not message_id_of(d).startswith("wide")],
        narrow.config_path,
    )
    recovered = result["recovered"]
    assert isinstance(recovered, float) and recovered < 5
    print(f"FIGURE dns: narrow 451 4.4.3 from {result['first_tempfail']:.1f}s after stop; "
          f"recovered {recovered:.2f}s after restart; wide {wide_tally}; narrow {narrow_tally}")
