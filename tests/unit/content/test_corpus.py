"""Every .eml in tests/data/mail gets the verdict cases.toml expects for the sample spec."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

import pytest

from gateway.content.footer import FooterSpec, check_message, check_parts, load_footer_words
from gateway.content.parts import readable_parts

ROOT = Path(__file__).resolve().parents[3]
MAIL = ROOT / "tests" / "data" / "mail"
CASES = tomllib.loads((MAIL / "cases.toml").read_text(encoding="utf-8"))
WORDS = load_footer_words(ROOT / "rules" / "footer_words.toml")
SPEC = FooterSpec(
    name=CASES["spec"]["name"],
    postal_address=CASES["spec"]["postal_address"],
    contacts=tuple(CASES["spec"]["contacts"]),
    optout=tuple(CASES["spec"]["optout"]),
    info_urls=tuple(CASES["spec"]["info_urls"]),
    law=CASES["spec"]["law"],
)


def _id(case: dict[str, Any]) -> str:
    return f"{case['file']}[{case.get('law', 'tokuden')}]"


@pytest.mark.parametrize("case", CASES["case"], ids=_id)
def test_case(case: dict[str, Any]) -> None:
    spec = dataclasses.replace(SPEC, law=case.get("law", SPEC.law))
    report = check_message((MAIL / case["file"]).read_bytes(), spec, WORDS)
    assert report.missing() == case["missing"], report.to_dict()
    assert report.malformed == case.get("malformed", False)
    for key, reason in case.get("reasons", {}).items():
        path, item = key.split(":")
        part = next(p for p in report.parts if p.path == path)
        assert part.item(item).reason.value == reason


def test_every_eml_has_a_case() -> None:
    listed = {c["file"] for c in CASES["case"]}
    on_disk = {p.name for p in MAIL.glob("*.eml")}
    assert listed == on_disk
    assert len(on_disk) >= 40


def test_corpus_is_reproducible(tmp_path: Path) -> None:
    # The committed .eml files must be exactly what make_corpus.py generates.
    sys.path.insert(0, str(MAIL))
    try:
        import make_corpus  # type: ignore[import-not-found]  # tests/data/mail is no package
    finally:
        sys.path.remove(str(MAIL))
    built = make_corpus.build()
    for name, data in built.items():
        assert (MAIL / name).read_bytes() == data, name


def test_corpus_script_runs_standalone(tmp_path: Path) -> None:
    # A syntax/import check of the generator as a script, without rewriting the committed files.
    code = f"import runpy; runpy.run_path({str(MAIL / 'make_corpus.py')!r}, run_name='x')"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


@pytest.mark.parametrize("law", ["tokuden", "tokusho"])
@pytest.mark.parametrize("name", sorted(p.name for p in MAIL.glob("*.eml")))
def test_compat32_parse_gives_the_same_parts_and_report(
    name: str, law: Literal["tokuden", "tokusho"]
) -> None:
    # The gateway parses with policy.compat32 (no header objects, ~7x faster); readable_parts
    # must not depend on the policy: same decoded parts, same problems, same report.
    raw = (MAIL / name).read_bytes()
    spec = dataclasses.replace(SPEC, law=law)
    fast = readable_parts(email.message_from_bytes(raw, policy=email.policy.compat32))
    full = readable_parts(email.message_from_bytes(raw, policy=email.policy.default))
    assert fast == full
    assert [(a.path, a.content_type, a.filename, a.charset) for a in fast.attachments] == [
        (a.path, a.content_type, a.filename, a.charset) for a in full.attachments]
    report = check_parts(fast, spec, WORDS)
    assert report.to_dict() == check_parts(full, spec, WORDS).to_dict()
    assert report.to_dict() == check_message(raw, spec, WORDS).to_dict()
