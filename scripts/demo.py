"""`make demo`: the whole flow in one minute, against the sandbox of `make run`.

A compliant message is accepted and relayed (signed, with List-Unsubscribe);
a message without the display items is refused naming every missing item; a
recipient without consent is refused at RCPT; then the event log is shown.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.sandbox import CONFIG, VAR, infrastructure  # noqa: E402

FOOTER = (
    "\n--\n発行者: 株式会社サンプル\n〒100-0005 東京都千代田区丸の内1-1-1\n"
    "お問い合わせ: 03-1234-5678\n"
    "配信停止をご希望の方はこちら: https://example.jp/unsubscribe\n"
)


def message(to: str, footer: bool) -> bytes:
    msg = EmailMessage()
    msg["From"] = "株式会社サンプル <news@example.jp>"
    msg["To"] = to
    msg["Subject"] = "【サンプル】冬のセールのお知らせ"
    msg["Message-ID"] = f"<demo-{time.time_ns()}@example.jp>"
    msg["Date"] = "Sun, 22 Nov 2026 10:00:00 +0900"
    msg.set_content("冬のセールを開催します。\n" + (FOOTER if footer else ""))
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def tokuden(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(CONFIG)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def step(title: str) -> None:
    print(f"\n=== {title}")


def main() -> int:
    store = VAR / "gateway.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)  # a fresh demo every time
    with infrastructure():
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(CONFIG)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert gateway.stdout is not None
            print(gateway.stdout.readline().strip())
            step("consent: import an opt-in, approved by a second person")
            csv = VAR / "demo-consent.csv"
            csv.write_text("email,status,method,consented_at\n"
                           "taro@example.com,opted_in,double_opt_in,2026-11-01T10:00:00+09:00\n")
            imported = tokuden("consent", "import", "--sender", "sample", str(csv), "--by", "alice")
            print(imported.stdout.strip())
            batch = imported.stdout.split("approve ")[-1].strip()
            print(tokuden("consent", "approve", batch, "--by", "bob").stdout.strip())
            with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
                client.ehlo("ma.example.jp")
                client.login("ma-tool", "example-password")
                for title, rcpt, footer in (
                    ("compliant message, recipient with consent", "taro@example.com", True),
                    ("message without the display items (第4条)", "taro@example.com", False),
                    ("recipient without consent (第3条)", "hanako@example.com", True),
                ):
                    step(title)
                    client.mail("news@bounce.example.jp")
                    code, reply = client.rcpt(rcpt)
                    if code == 250:
                        code, reply = client.data(message(rcpt, footer))
                    else:
                        client.rset()
                    print(f"{code} {reply.decode()}")
            step("what the upstream received (first lines)")
            received = sorted((VAR / "sink").rglob("*"), key=lambda p: p.stat().st_mtime)
            files = [p for p in received if p.is_file()]
            if files:
                print("\n".join(files[-1].read_text(errors="replace").splitlines()[:12]))
            step("the event log (tokuden log)")
            print(tokuden("log", "--limit", "10").stdout)
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
