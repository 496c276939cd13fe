"""The web UI in headless Chromium (Debian's, driven by Playwright) against the real server.

With SCREENSHOTS_DIR set (`make screenshots`: docs/screenshots/) it also refreshes the
README's pictures; a plain test run writes them to a temporary folder and leaves the
checkout as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.consent import service, suppression
from gateway.store.consent_rows import consent_row
from gateway.web import HttpServer
from gateway.web.context import DISPLAY_TZ
from tests.integration.store.factories import consent
from tests.integration.web.support import CSV_GRANTS, Env, add_event, make_env

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="tokuden-shots-"))
SHOTS.mkdir(parents=True, exist_ok=True)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium not installed (scripts/install-system-deps.sh)")


async def _seed(env: Env) -> None:
    now = time.time()
    rules = ["optin.missing", "footer.postal_address", "optin.opted_out", "align.dkim",
             "footer.optout_notice"]
    seeded: list[dict[str, Any]] = []
    for day in range(10):
        for i in range(day % 4 + 2):
            rule = rules[(day + i) % len(rules)]
            seeded.append({"rules": (rule,), "recipient": f"user{day}{i}@example.jp",
                           "at": now - day * 86400 - i * 60,
                           "phase": "rcpt" if "optin" in rule else "data"})
        for i in range(day % 3 + 4):
            seeded.append({"verdict": "accepted", "recipient": f"ok{day}{i}@example.jp",
                           "at": now - day * 86400 - i * 90, "phase": "data"})
    # in the order they happened, as the gateway writes them: the log lists newest first
    for fields in sorted(seeded, key=lambda f: f["at"]):
        await add_event(env.store, **fields)
    await add_event(env.store, rules=("footer.postal_address", "footer.contact"),
                    recipient="taro.yamada@example.jp", phase="data", at=now - 30,
                    reply="550 5.7.1 [footer.postal_address] [footer.contact] 住所・連絡先の表示が"
                          "ありません / Postal address and contact missing")
    # 2 complaints for 1,500 recipients this week: over the warn rate (0.1 %), under the stop;
    # and a receiver refused a message today for failed authentication; 4,321 recipients at
    # Gmail today, near its bulk limit of 5,000
    for day, sent, complaints, refusals, gmail in ((1, 1500, 2, 0, 0), (0, 0, 0, 1, 4321)):
        await env.store.execute(
            "INSERT INTO sender_volume (sender_id, day, sent, complaints, auth_refusals, "
            "gmail_sent) VALUES (?, ?, ?, ?, ?, ?)",
            ("sample", int(now // 86400) - day, sent, complaints, refusals, gmail))
    path = env.tmp / "grants.csv"
    path.write_text(CSV_GRANTS, encoding="utf-8")
    sender = env.gateway.config.sender("sample")
    assert sender is not None
    await service.import_file(env.store, sender=sender, path=path, recorded_by="mk-sato")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Env, str]]:
    env = await make_env(tmp_path)
    await _seed(env)
    server = HttpServer()
    await server.start(env.app, "127.0.0.1:0")
    try:
        yield env, server.url
    finally:
        await server.stop()
        await env.store.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def _login(browser: Any, url: str, secret: str) -> Any:
    context = await browser.new_context(viewport={"width": 1366, "height": 860},
                                        locale="ja-JP")
    page = await context.new_page()
    await page.goto(f"{url}/ui/login")
    await page.fill("#token", secret)
    await page.click("button[type=submit]")
    await page.wait_for_load_state("networkidle")
    return page


async def _shot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_ops_filters_log_and_opens_event(served: tuple[Env, str], browser: Any) -> None:
    env, url = served
    page = await _login(browser, url, await env.token("ops", "ops-tanaka"))
    assert page.url.endswith("/ui/dashboard")
    assert await page.locator("svg.chart rect").count() > 10
    senders = page.locator("#reputation tbody tr")
    assert await senders.count() == 2  # one row per configured sender
    sample = [cell.strip() for cell in (await senders.first.inner_text()).split("\t")]
    assert sample[0] == "sample"
    assert sample[1].startswith("0.133% (2 / 1,500)") and "警告" in sample[1]  # complaints
    assert sample[2].startswith("0.000% (0 / 1,500)") and "正常" in sample[2]  # bounces
    assert sample[3].startswith("1") and "要確認" in sample[3]
    assert sample[4].startswith("4,321 / 5,000") and "上限間近" in sample[4]
    assert "要件未適用" not in sample[4]  # the loaded packs enforce every bulk requirement
    hint = await page.inner_text("#reputation")
    assert "0.10% で警告、0.30% で広告メールを停止" in hint
    assert "宛先不明率: 直近 2 日" in hint
    assert "1 日 5,000 件に達すると恒久的に大量送信者" in hint
    await _shot(page, "dashboard")

    await page.click("nav >> text=拒否ログ")
    await page.fill("#f-rule", "footer.postal_address")
    await page.select_option("#f-verdict", "rejected")
    await page.select_option("#f-phase", "data")
    await page.click("#f-submit")
    await page.wait_for_load_state("networkidle")
    assert "rule=footer.postal_address" in page.url and "phase=data" in page.url
    rows = page.locator("table.events tbody tr")
    count = await rows.count()
    assert count >= 2
    for i in range(count):
        row = await rows.nth(i).inner_text()
        assert "footer.postal_address" in row and "\tdata\t" in row
    times = [await link.inner_text() for link in await page.locator("a.event-link").all()]
    assert times == sorted(times, reverse=True)  # newest first
    assert "t***@example.jp" in await page.content()
    await _shot(page, "rejection-log")

    await page.locator("a.event-link").first.click()
    await page.wait_for_load_state("networkidle")
    reply = await page.inner_text("#smtp-reply")
    assert reply.startswith("550 5.7.1 [footer.postal_address] [footer.contact]")
    assert await page.inner_text("#recipient") == "t***@example.jp"
    await _shot(page, "event-detail")


async def test_marketer_looks_up_an_address(served: tuple[Env, str], browser: Any) -> None:
    env, url = served
    page = await _login(browser, url, await env.token("marketer", "mk-ito"))
    await page.goto(f"{url}/ui/consents")
    await page.fill("#l-address", "hanako@example.com")
    await page.fill("#l-reason", "問い合わせ #123")
    await page.click("#l-submit")
    await page.wait_for_load_state("networkidle")
    # imported but not yet approved: no effective consent
    assert await page.inner_text("#consent-status") == "missing"
    assert "承認待ち" in await page.content()
    await _shot(page, "consent-lookup")
    rows = await env.store.fetch("SELECT actor, action, reason FROM audit_log")
    assert {"actor": "mk-ito", "action": "consent.lookup", "reason": "問い合わせ #123"} in rows

    await suppression.suppress(env.store, "jiro@example.com", suppression.HARD_BOUNCE,
                               "550 5.1.1 user unknown", sender_id="sample")
    await page.fill("#l-address", "Jiro@Example.com")
    await page.click("#l-submit")
    await page.wait_for_load_state("networkidle")
    warning = await page.inner_text("#consent-suppressed")
    assert "宛先不明 (5.1.1)" in warning and "advertising mail is refused" in warning


async def test_ops_clear_a_wrong_suppression(served: tuple[Env, str], browser: Any) -> None:
    env, url = served
    await suppression.suppress(env.store, "saburo@example.com", suppression.HARD_BOUNCE,
                               "550 5.1.1 <saburo@example.com>: unknown", sender_id="sample")
    page = await _login(browser, url, await env.token("ops", "ops-suzuki"))
    await page.goto(f"{url}/ui/suppressions")
    table = await page.inner_text("table.suppressions")
    assert "s***@example.com" in table and "saburo" not in table  # masked, reply too
    await _shot(page, "suppressions")
    await page.fill("#s-address", "Saburo@Example.com")
    await page.fill("#s-reason", "上流の誤判定 #88")
    await page.click("#s-submit")
    await page.wait_for_load_state("networkidle")
    assert "saburo@example.com" in await page.inner_text("#s-message")
    assert "停止中の宛先はありません" in await page.inner_text("table.suppressions")
    await page.fill("#s-address", "saburo@example.com")  # again: nothing to clear, said so
    await page.fill("#s-reason", "もう一度")
    await page.click("#s-submit")
    await page.wait_for_load_state("networkidle")
    assert "No suppression in force" in await page.inner_text("#s-error")

    # An upstream that bounced good mailboxes: everything since a moment, in one go.
    for address in ("shiro@example.com", "goro@example.com"):
        await suppression.suppress(env.store, address, suppression.HARD_BOUNCE,
                                   "550 5.1.1 unknown", sender_id="sample")
    an_hour_ago = datetime.fromtimestamp(time.time() - 3600, DISPLAY_TZ)
    await page.fill("#b-since", an_hour_ago.strftime("%Y-%m-%dT%H:%M"))
    await page.fill("#b-reason", "上流の障害 #12")
    await page.click("#b-submit")
    await page.wait_for_load_state("networkidle")
    assert "Cleared 2 hard bounce(s)" in await page.inner_text("#s-message")
    assert "停止中の宛先はありません" in await page.inner_text("table.suppressions")
    rows = await env.store.fetch("SELECT actor, action, reason FROM audit_log")
    assert {"actor": "ops-suzuki", "action": "suppression.clear",
            "reason": "上流の誤判定 #88"} in rows


async def test_approver_approves_a_batch(served: tuple[Env, str], browser: Any) -> None:
    env, url = served
    page = await _login(browser, url, await env.token("approver", "ap-kato"))
    await page.goto(f"{url}/ui/batches")
    await _shot(page, "import-approvals")
    await page.locator("button.approve").first.click()
    await page.wait_for_load_state("networkidle")
    assert "承認しました" in await page.content()
    assert await page.locator("button.approve").count() == 0
    rows = await env.store.fetch("SELECT status, decided_by FROM import_batches")
    assert rows == [{"status": "approved", "decided_by": "ap-kato"}]


async def test_other_pages_screenshots(served: tuple[Env, str], browser: Any) -> None:
    env, url = served
    page = await _login(browser, url, await env.token("admin", "admin"))
    await page.goto(f"{url}/ui/report")
    assert "月次コンプライアンスレポート" in await page.content()
    await _shot(page, "monthly-report")
    await page.goto(f"{url}/ui/preflight")
    draft = env.tmp / "draft.eml"
    from tests.integration.web.support import eml

    draft.write_bytes(eml("配信停止は https://example.jp/unsubscribe から。\n株式会社サンプル\n"))
    await page.set_input_files("input[name=file]", str(draft))
    await page.click("#preflight button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert await page.inner_text("#preflight-result") == "NG"
    await _shot(page, "preflight")
    token = env.codec.encode("sample", "taro@example.com")
    unsub = await browser.new_page()
    await unsub.goto(f"{url}/u/{token}")
    await _shot(unsub, "unsubscribe-confirm")
    await unsub.click("#unsubscribe")
    await unsub.wait_for_load_state("networkidle")
    assert "配信を停止しました" in await unsub.content()
    rows = await env.store.fetch("SELECT method FROM consent_events WHERE status = 'opted_out'")
    assert rows == [{"method": "unsubscribe_page"}]


async def test_marketer_discards_an_import_that_died(served: tuple[Env, str], browser: Any) -> None:
    env, url = served
    # b-dead's import stopped beating an hour ago; b-live's is running (beat just now)
    for batch_id, beat in (("b-dead", time.time() - 3600), ("b-live", time.time())):
        await env.store.execute(
            "INSERT INTO import_batches (id, sender_id, created_at, created_by, source_name, "
            "grants, optouts, status, heartbeat_at) "
            "VALUES (?, 'sample', ?, 'mk-ito', 'big.csv', 0, 0, 'loading', ?)",
            (batch_id, beat - 10, beat))
    row = consent_row(consent("dead@example.com"), "dead@example.com", time.time(), False)
    await env.store.insert_consent_rows([(*row[:-2], "b-dead", 0)])
    page = await _login(browser, url, await env.token("marketer", "mk-ito"))
    await page.goto(f"{url}/ui/batches")
    assert await page.locator("button.discard").count() == 1  # only the dead import's batch
    assert "中断 / died" in await page.locator("#batch-b-dead").inner_text()
    assert "died" not in await page.locator("#batch-b-live").inner_text()
    await page.locator("#batch-b-dead button.discard").click()
    await page.wait_for_load_state("networkidle")
    assert "破棄しました / Discarded: b-dead (1 行 / rows)" in await page.content()
    assert await page.locator("button.discard").count() == 0
    assert await env.store.fetch("SELECT id FROM consent_events WHERE batch_id = 'b-dead'") == []
    [batch] = await env.store.fetch("SELECT status FROM import_batches WHERE id = 'b-dead'")
    assert batch["status"] == "failed"
