"""The feedback loop: recurring rework notes and typical edits, and `guidelines:` in the system prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fakellm import split_prompt
from harness import WORKFLOWS, Shop
from nightly import night

from sheetbot.cli.main import main
from sheetbot.morning.feedback import feedback, normalise, note_parts
from sheetbot.night.prompts import guidelines_section


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def test_notes_are_normalised_and_split() -> None:
    assert normalise("  Shorter.  ") == normalise("shorter") == "shorter"
    assert note_parts("Shorter, and mention the footprint.") == ["shorter", "mention the footprint"]
    assert note_parts("Too long. Mention the warranty!\n- no emojis") == [
        "too long",
        "mention the warranty",
        "no emojis",
    ]


def test_feedback_counts_notes_and_sums_up_edits(shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
    shop.fake.reply_with(lambda body: "Amazing tent!!! Buy now. Weighs 1.9 kg.")
    night(
        shop,
        "2026-11-23",
        ["rework", "rework", "edit"],
        notes="Shorter. Mention the footprint",
        edited="Weighs 1.9 kg.",
    )
    night(shop, "2026-11-24", ["rework", "edit", "approve"], new=1, notes="shorter!", edited="A tent. Weighs 1.9 kg.")
    with shop.state() as state:
        report = feedback(state, "listing")
    assert report.nights == ["2026-11-24", "2026-11-23"]
    assert (report.decided, report.reworked, report.edited) == (6, 3, 2)
    assert report.notes[0] == ("shorter", 5)  # every rework and edit note saying it, across both nights
    assert ("mention the footprint", 3) in report.notes
    assert report.mean_length_change is not None and report.mean_length_change < 0
    assert report.mean_length_change_pct is not None and -1 < report.mean_length_change_pct < 0
    assert any("buy now" in phrase for phrase, _ in report.removed)
    assert any("a tent" in phrase for phrase, _ in report.added)

    capsys.readouterr()
    assert main(["feedback", "listing", "--config", str(shop.config_path)]) == 0
    out = capsys.readouterr().out
    assert "5 × shorter" in out and "Most often removed" in out and "guidelines:" in out
    assert main(["feedback", "listing", "--config", str(shop.config_path), "--json", "--nights", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nights"] == ["2026-11-24"] and data["decided"] == 3
    assert main(["feedback", "blog", "--config", str(shop.config_path)]) == 0
    assert "no review decisions recorded yet" in capsys.readouterr().out


def test_guidelines_go_into_the_system_prompt(tmp_path: Path) -> None:
    workflows = {name: dict(body) for name, body in WORKFLOWS.items()}
    workflows["listing"]["guidelines"] = ["Keep it under 80 words.", "  ", "Mention the footprint."]
    shop = Shop(tmp_path, workflows=workflows)
    assert yaml.safe_load(shop.config_path.read_text())["workflows"]["listing"]["guidelines"]
    night(shop, "2026-11-23", ["approve"])
    night(shop, "2026-11-23", ["approve"], workflow="blog")
    listing, blog = (split_prompt(r.json)[0] for r in shop.fake.requests)
    assert listing == (
        "You write listings for Kestrel.\n\nGuidelines from reviewers:\n"
        "- Keep it under 80 words.\n- Mention the footprint."
    )
    assert "Guidelines" not in blog
    assert guidelines_section([]) == ""
