"""Review gates between steps (issue 14, item 1): a step with `review: true` stops its row in `review`.

Whole days on a real workbook and a real SQLite file with a fake clock; the model is faked at the SDK's
transport, so `shop.fake.requests` counts every call paid for.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from boards_under_test import BOARDS, Night
from fakellm import split_prompt
from harness import Phases, Shop, at

from sheetbot.cli.main import main
from sheetbot.morning.metrics import night_metrics
from sheetbot.state import State

BLOG = {
    "provider": "openai",
    "model": "gpt-4.1-mini",
    "max_tokens": 300,
    "steps": [
        {"name": "outline", "prompt": "Outline a post about {{input}}", "review": True},
        {"name": "draft", "prompt": "Write the post from this outline:\n{{steps.outline}}"},
    ],
}
DAYS = ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]


def prompts(shop: Shop) -> list[str]:
    return [split_prompt(r.json)[1] for r in shop.fake.requests]


def night(phases: Phases, day: int) -> None:
    """Day ``day``'s cutoff at 17:00, its night's run at 01:00 and the reviewers' morning at 09:00 after."""
    clock: Any = phases.clock  # type: ignore[attr-defined]
    clock.set(at(f"{DAYS[day]}T17:00"))
    phases.lock()
    clock.set(at(f"{DAYS[day + 1]}T01:00"))
    phases.run()
    clock.set(at(f"{DAYS[day + 1]}T09:00"))


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    shop = Shop(tmp_path, workflows={"blog_draft": BLOG})
    shop.fake.reply_with(lambda body: "ANSWER to " + " ".join(split_prompt(body)[1].split())[:80])
    return shop


def test_approve_stops_after_the_gate_then_runs_the_next_step_the_next_night(shop: Shop) -> None:
    shop.add(type="blog_draft", input="tents")
    night(shop, 0)
    assert prompts(shop) == ["Outline a post about tents"]  # only the gated step ran
    row = shop.row(input="tents")
    assert row["status"] == "review"
    marker, _, outline = row["output"].partition("\n")
    assert marker == "[step 1/2 outline – approve to continue, edit or rework this step]"
    assert outline == "ANSWER to Outline a post about tents"
    assert "waiting at step 'outline': approve runs step 'draft' the next night" in row["error"]

    shop.set(row["id"], review="approve")
    harvested = shop.harvest()
    assert harvested.decisions.total() == 0 and harvested.gates == {"outline:approve": 1}  # not a final decision
    row = shop.row(id=row["id"])
    assert row["status"] == "queued" and row["review"] == ""
    assert "'draft' runs next night" in row["error"]

    night(shop, 1)
    assert len(shop.fake.requests) == 2  # the approved outline is not called again
    assert prompts(shop)[1] == "Write the post from this outline:\nANSWER to Outline a post about tents"
    row = shop.row(id=row["id"])
    assert row["status"] == "review" and row["error"] == ""
    assert row["output"].startswith("ANSWER to Write the post") and "[step" not in row["output"]

    shop.set(row["id"], review="approve")  # the final output is reviewed as usual
    assert shop.harvest().decisions == {"approve": 1}
    assert shop.row(id=row["id"])["status"] == "approved"


def test_resume_same_window_runs_the_next_step_tonight_when_decided_in_the_window(tmp_path: Path) -> None:
    steps = [{**BLOG["steps"][0], "resume": "same_window"}, BLOG["steps"][1]]  # type: ignore[index]
    shop = Shop(tmp_path, workflows={"blog_draft": {**BLOG, "steps": steps}})
    shop.add(type="blog_draft", input="tents")
    shop.add(type="blog_draft", input="stoves")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))  # the window is 01:00-05:00
    shop.run()
    tents, stoves = shop.row(input="tents"), shop.row(input="stoves")
    shop.clock.set(at("2026-11-24T02:00"))  # a reviewer on the night shift
    shop.set(tents["id"], review="approve")
    shop.harvest()
    assert shop.row(id=tents["id"])["status"] == "locked"
    assert "'draft' runs in tonight's window" in shop.row(id=tents["id"])["error"]
    shop.run()
    assert len(shop.fake.requests) == 3
    row = shop.row(id=tents["id"])
    assert row["status"] == "review" and row["night"] == "2026-11-23" and row["output"].startswith("OUTPUT for: Write")

    shop.clock.set(at("2026-11-24T09:00"))  # decided after the window: the next night, as usual
    shop.set(stoves["id"], review="approve")
    shop.harvest()
    assert shop.row(id=stoves["id"])["status"] == "queued"


def test_edit_continues_with_the_reviewer_s_text(shop: Shop) -> None:
    shop.add(type="blog_draft", input="tents")
    night(shop, 0)
    row = shop.row(input="tents")
    # the reviewer copied the whole cell, marker line included, and changed the outline
    mine = row["output"].split("\n")[0] + "\n1. Why\n2. How"
    shop.set(row["id"], review="edit", edited_output=mine)
    assert shop.harvest().gates == {"outline:edit": 1}
    assert shop.row(id=row["id"])["status"] == "queued"
    night(shop, 1)
    assert prompts(shop) == ["Outline a post about tents", "Write the post from this outline:\n1. Why\n2. How"]
    assert shop.row(id=row["id"])["status"] == "review"


def test_edit_without_text_asks_for_it_and_keeps_the_row_at_the_gate(shop: Shop) -> None:
    shop.add(type="blog_draft", input="tents")
    night(shop, 0)
    row = shop.row(input="tents")
    shop.set(row["id"], review="edit")
    harvested = shop.harvest()
    assert harvested.gates == {} and "paste your version of step 'outline'" in harvested.problems[0][1]
    row = shop.row(id=row["id"])
    assert row["status"] == "review" and row["output"].startswith("[step 1/2 outline")  # the output is kept


def test_rework_redoes_the_step_with_the_notes_then_a_final_rework_keeps_the_approved_outline(shop: Shop) -> None:
    shop.add(type="blog_draft", input="tents")
    night(shop, 0)
    row = shop.row(input="tents")
    shop.set(row["id"], review="rework", notes="Add a section on cost")
    assert shop.harvest().gates == {"outline:rework": 1}
    assert shop.row(id=row["id"])["status"] == "rework"

    night(shop, 1)  # the outline again, with the answer sent back and the notes
    assert len(shop.fake.requests) == 2
    redo = prompts(shop)[1]
    assert redo.startswith("Outline a post about tents")
    assert "Add a section on cost" in redo and "ANSWER to Outline a post about tents" in redo
    row = shop.row(id=row["id"])
    assert row["status"] == "review" and row["output"].startswith("[step 1/2 outline")
    second = row["output"].split("\n", 1)[1]
    assert (
        second.startswith("ANSWER to Outline a post about tents") and second != "ANSWER to Outline a post about tents"
    )

    shop.set(row["id"], review="approve")
    shop.harvest()
    night(shop, 2)
    assert prompts(shop)[2] == f"Write the post from this outline:\n{second}"  # the reworked outline

    shop.set(row["id"], review="rework", notes="Warmer tone")  # the final output goes back: only the draft runs
    assert shop.harvest().decisions == {"rework": 1}
    night(shop, 3)
    assert len(shop.fake.requests) == 4
    last = prompts(shop)[3]
    assert last.startswith(f"Write the post from this outline:\n{second}") and "Warmer tone" in last
    assert shop.row(id=row["id"])["status"] == "review"


class Killed(Exception):
    """The process dies right after a paid answer was stored, before the row's outcome is."""


def test_a_restart_never_calls_a_stored_or_approved_step_again(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.add(type="blog_draft", input="tents")
    real = State.settle_task

    def killed(self: State, *args: Any, **kwargs: Any) -> None:
        raise Killed

    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    monkeypatch.setattr(State, "settle_task", killed)
    with pytest.raises(Killed):
        shop.run()  # the outline was answered and stored; the kill came before the row moved on
    monkeypatch.setattr(State, "settle_task", real)
    shop.run()  # the restart inside the window
    assert len(shop.fake.requests) == 1
    row = shop.row(input="tents")
    assert row["status"] == "review" and row["output"].startswith("[step 1/2 outline")

    shop.clock.set(at("2026-11-24T09:00"))
    shop.set(row["id"], review="approve")
    shop.harvest()
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))
    monkeypatch.setattr(State, "settle_task", killed)
    with pytest.raises(Killed):
        shop.run()  # killed after the draft was paid for
    monkeypatch.setattr(State, "settle_task", real)
    shop.run()
    assert prompts(shop) == [
        "Outline a post about tents",
        "Write the post from this outline:\nANSWER to Outline a post about tents",
    ]
    assert shop.row(id=row["id"])["status"] == "review"


def test_gate_decisions_are_counted_apart_from_the_final_output(shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
    for topic in ("tents", "stoves", "boots"):
        shop.add(type="blog_draft", input=topic)
    night(shop, 0)
    ids = {t: shop.row(input=t)["id"] for t in ("tents", "stoves", "boots")}
    shop.set(ids["tents"], review="approve")
    shop.set(ids["stoves"], review="edit", edited_output="my outline")
    shop.set(ids["boots"], review="rework", notes="more on weight")
    shop.harvest()
    night(shop, 1)  # tents and stoves draft; boots' outline again
    shop.set(ids["tents"], review="approve")
    shop.set(ids["stoves"], review="rework", notes="shorter")
    shop.harvest()

    with shop.state() as state:
        first, second = sorted(night_metrics(state), key=lambda m: m.night)
    assert first.gates == {
        "outline": {
            "approved": 1,
            "edited": 1,
            "rework": 1,
            "waiting": 0,
            "approval_rate": 0.3333,
            "rework_rate": 0.3333,
        }
    }
    assert (first.locked, first.done, first.approved, first.waiting) == (0, 0, 0, 0)  # no final output that night
    assert second.gates == {
        "outline": {"approved": 0, "edited": 0, "rework": 0, "waiting": 1, "approval_rate": None, "rework_rate": None}
    }
    assert (second.locked, second.done, second.approved, second.rework, second.waiting) == (2, 2, 1, 1, 0)
    assert second.approval_rate == 0.5 and second.completion_rate == 1.0

    assert main(["report", "--config", str(shop.config_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [m["gates"]["outline"]["rework"] for m in shown] == [0, 1]  # newest night first
    assert {"approved", "edited", "rework", "waiting", "approval_rate"} <= set(shown[0])  # the keys as before
    assert main(["report", "--config", str(shop.config_path)]) == 0
    text = capsys.readouterr().out
    assert "review gates between steps" in text
    gates = text[text.index("review gates between steps") :].splitlines()
    assert max(len(line) for line in gates) <= 100  # fits a 100-column terminal as it is
    assert any(line.split()[:8] == [DAYS[0], "blog_draft", "outline", "1", "1", "1", "0", "33%"] for line in gates)


def test_a_gate_on_the_airtable_fake(tmp_path: Path) -> None:
    with ExitStack() as stack:
        under = BOARDS["airtable"](tmp_path, stack, ["id", "type", "priority", "input", "brand"])
        phases = Night(tmp_path, under.board, workflows={"blog_draft": BLOG})
        under.person.add(type="blog_draft", input="tents")
        night(phases, 0)
        (row,) = under.person.rows()
        assert row["status"] == "review" and row["output"].startswith("[step 1/2 outline")
        under.person.set(row["id"], review="edit", edited_output="1. Why")
        phases.harvest()
        assert under.person.rows()[0]["status"] == "queued"
        night(phases, 1)
        (row,) = under.person.rows()
        assert row["status"] == "review" and row["output"].startswith(
            "OUTPUT for: Write the post from this outline: 1. Why"
        )
        assert len(phases.fake.requests) == 2


def _check_with(tmp_path: Path, change: Any) -> tuple[list[str], list[str]]:
    """`sheetbot check` on a YAML that ``change`` broke after the board was set up; and the YAML's lines."""
    import yaml
    from fakellm import FakeLLM

    from sheetbot.cli.check import run_check

    shop = Shop(tmp_path, workflows={"blog_draft": BLOG})
    shop.lock()  # the board gets sheetbot's columns
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    change(data["workflows"]["blog_draft"])
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    problems = run_check(shop.config_path, env=shop.env, http_client=FakeLLM().async_client())
    return problems, shop.config_path.read_text(encoding="utf-8").splitlines()


def _line_of(problem: str) -> int:
    match = re.search(r"sheetbot\.yaml:(\d+)\)", problem)
    assert match, problem
    return int(match.group(1))


def test_a_gate_on_the_last_step_is_a_check_error_naming_the_key_and_line(tmp_path: Path) -> None:
    def last_gated(wf: dict[str, Any]) -> None:
        wf["steps"][0]["review"], wf["steps"][1]["review"] = False, True

    (problem,), lines = _check_with(tmp_path, last_gated)
    assert problem.startswith("workflows.blog_draft.steps[1].review (")
    assert (
        "step 'draft' is the last step: its answer goes to review anyway; put `review: true` on an earlier" in problem
    )
    assert "\n" not in problem
    assert lines[_line_of(problem) - 1].strip() == "review: true"  # the line named is the key's


def test_a_gate_in_batch_mode_is_a_check_error(tmp_path: Path) -> None:
    (problem,), lines = _check_with(tmp_path, lambda wf: wf.update(mode="batch"))
    assert problem.startswith("workflows.blog_draft.steps[0].review (")
    assert "batch mode does not stop between steps" in problem
    assert lines[_line_of(problem) - 1].strip() == "review: true"


def test_the_readme_s_gate_example_passes_the_check(tmp_path: Path) -> None:
    import yaml

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Review gates between steps") :]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])["blog_draft"]
    assert example["steps"][0]["review"] is True
    problems, _ = _check_with(tmp_path, lambda wf: wf.clear() or wf.update(example))
    assert problems == []
