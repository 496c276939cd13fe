"""`make demo` (and so the sandbox `make run` uses) works on this machine as the README says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.gateway import ROOT

pytestmark = pytest.mark.e2e


def test_demo_shows_accept_refusals_and_the_log() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/demo.py"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "=== compliant message, recipient with consent\n250 " in out
    assert "550 5.7.1 [footer.sender_name,footer.optout_address" in out
    assert "550 5.7.1 [optin.missing]" in out
    assert "DKIM-Signature: v=1; a=rsa-sha256" in out  # what the upstream received was signed
    assert "accepted" in out and "rejected" in out  # the event log table
