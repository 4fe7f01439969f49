"""The self-check (issue 13, item 4): a cheap model grades each output against the checklist, the same night."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from fakebatch import Killed
from fakellm import FakeLLM, split_prompt
from harness import WORKFLOWS, Shop, at

from sheetbot.cli.check import run_check
from sheetbot.config.load import load_config
from sheetbot.night.self_check import SELF_CHECK_STEP, checks_cell
from sheetbot.night.task import FINAL_STEP

CHECKLIST = ["Facts unchanged", "Title under 200 chars"]
GRADER = "gpt-4.1-nano"
S = TypeVar("S", bound=Shop)
LISTING: dict[str, Any] = {
    **WORKFLOWS["listing"],
    "checklist": CHECKLIST,
    "self_check": {"model": GRADER},
}


def with_grader(shop: S, workflows: dict[str, Any]) -> S:
    """The shop's YAML with the grader's price and these workflows (the Shop writes its own prices)."""
    from sheetbot.config.load import load_config

    config = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    config["prices"][GRADER] = {"input": 0.1, "output": 0.4}
    config["workflows"] = workflows
    shop.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    return shop


def shop_with(tmp_path: Path, **overrides: Any) -> Shop:
    return with_grader(Shop(tmp_path), {"listing": {**LISTING, **overrides}})


def grading(body: dict[str, Any]) -> bool:
    return body.get("model") == GRADER


def verdict(title_ok: bool = False) -> dict[str, Any]:
    return {
        "item_1": {"pass": True, "reason": ""},
        "item_2": {"pass": title_ok, "reason": "" if title_ok else "title 212 > 200 chars"},
    }


def night(shop: Shop, *inputs: str) -> None:
    for text in inputs:
        shop.add(type="listing", input=text)
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))


def calls(shop: Shop, *, graded: bool) -> int:
    return sum(1 for r in shop.fake.requests if r.json and grading(r.json) == graded)


def test_the_cell_sorts_failures_together_and_names_items_from_the_yaml() -> None:
    failed = checks_cell(CHECKLIST, [(True, ""), (False, "title 212 > 200 chars")])
    assert failed == "✘ 1/2 · ✔ Facts unchanged · ✘ Title under 200 chars: title 212 > 200 chars"
    passed = checks_cell(CHECKLIST, [(True, "fine"), (True, "")])
    assert passed == "✔ all 2 · ✔ Facts unchanged · ✔ Title under 200 chars"
    assert sorted([failed, passed, "self-check failed: x"])[1:] == [passed, failed]
    odd = checks_cell(["A"], [(False, '=HYPERLINK("x")\nnext line ' + "y" * 300)])
    assert "\n" not in odd and len(odd) < 160 and odd.startswith("✘ 1/1")


def test_a_live_night_writes_the_checks_column_and_its_cost_is_in_the_row(tmp_path: Path) -> None:
    shop = shop_with(tmp_path)
    shop.fake.answer_with(lambda body: verdict(title_ok=False))
    night(shop, "old lamp")
    report = shop.run()
    row = shop.row(input="old lamp")
    assert row["status"] == "review"
    assert row["checks"] == "✘ 1/2 · ✔ Facts unchanged · ✘ Title under 200 chars: title 212 > 200 chars"
    grader = [r.json for r in shop.fake.requests if r.json and grading(r.json)]
    assert len(grader) == 1 and "OUTPUT for:" in split_prompt(grader[0])[1]
    with shop.state() as state:
        calls_ = state.latest_attempt(row["id"])
        check = [a for a in calls_ if a.step == SELF_CHECK_STEP]
        assert len(check) == 1 and check[0].cost_usd > 0 and not check[0].final
        total = sum(a.cost_usd for a in calls_)
        assert state.spent_usd(night="2026-11-23") == total
    assert round(float(row["cost"]), 6) == round(total, 6)
    assert round(report.cost_usd, 9) == round(total, 9)
    header = list(row)
    assert header.index("checks") == header.index("checklist") + 1


def test_a_failed_grading_keeps_the_output_in_review(tmp_path: Path) -> None:
    shop = shop_with(tmp_path)
    shop.fake.answer_with(lambda body: {"item_1": {"pass": "yes"}} if grading(body) else {})
    night(shop, "old lamp")
    shop.run()
    row = shop.row(input="old lamp")
    assert row["status"] == "review" and row["output"].startswith("OUTPUT for:")
    assert row["checks"].startswith("self-check failed: ")
    assert "\n" not in row["checks"]


def test_a_grading_call_that_errors_keeps_the_output_in_review(tmp_path: Path) -> None:
    shop = shop_with(tmp_path, max_failed_calls=1)
    night(shop, "old lamp")
    original = shop.fake._handle

    def handle(request: Any) -> Any:
        if b'"gpt-4.1-nano"' in request.content:
            shop.fake.fail_next(400, body="bad request")
        return original(request)

    shop.fake.transport = type(shop.fake.transport)(handle)
    shop.run()
    row = shop.row(input="old lamp")
    assert row["status"] == "review" and row["checks"].startswith("self-check failed: ")


def test_a_budget_too_small_for_the_grading_skips_it(tmp_path: Path) -> None:
    # The listing call fits ($0.00064 worst case + input); the grading's worst case (600 × $0.4/M) does not.
    shop = shop_with(tmp_path, self_check={"model": GRADER, "max_tokens": 8000})
    config = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    config["limits"]["nightly_usd"] = 0.0025
    shop.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    night(shop, "old lamp")
    shop.run()
    row = shop.row(input="old lamp")
    assert row["status"] == "review" and row["checks"] == "self-check skipped: budget"
    assert calls(shop, graded=True) == 0
    with shop.state() as state:
        assert state.spent_usd(night="2026-11-23") <= 0.0025


def test_a_row_cap_too_small_for_the_grading_skips_it(tmp_path: Path) -> None:
    shop = shop_with(tmp_path, max_usd_per_task=0.0012, self_check={"model": GRADER, "max_tokens": 8000})
    night(shop, "old lamp")
    shop.run()
    row = shop.row(input="old lamp")
    assert row["status"] == "review" and row["checks"] == "self-check skipped: budget"
    assert calls(shop, graded=True) == 0


def test_a_restart_after_the_verdict_is_recorded_grades_nothing_again(tmp_path: Path) -> None:
    shop = shop_with(tmp_path)
    shop.fake.answer_with(lambda body: verdict(title_ok=True))
    night(shop, "old lamp")
    # A crash right after the verdict is stored: the row is still `running`, the board not written.
    from sheetbot.night import keep as keep_module

    real = keep_module.Keeper.settle

    async def crash_settle(self: Any, change: Any) -> None:
        raise Killed

    keep_module.Keeper.settle = crash_settle  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            shop.run()
    finally:
        keep_module.Keeper.settle = real  # type: ignore[method-assign]
    assert calls(shop, graded=True) == 1
    shop.run()
    assert calls(shop, graded=True) == 1 and calls(shop, graded=False) == 1
    row = shop.row(input="old lamp")
    assert row["status"] == "review" and row["checks"].startswith("✔ all 2")


def test_a_rework_is_graded_again(tmp_path: Path) -> None:
    shop = shop_with(tmp_path)
    shop.fake.answer_with(lambda body: verdict(title_ok=False))
    night(shop, "old lamp")
    shop.run()
    task_id = shop.row(input="old lamp")["id"]
    shop.set(task_id, review="rework", notes="shorter title")
    shop.clock.set(at("2026-11-24T10:00"))
    shop.harvest()
    shop.fake.answer_with(lambda body: verdict(title_ok=True))
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))
    shop.run()
    assert calls(shop, graded=True) == 2
    assert shop.row(input="old lamp")["checks"].startswith("✔ all 2")


# -- batch mode: the gradings go as a batch of their own ---------------------------------------------------------
def test_a_batch_workflow_is_graded_in_a_second_batch(tmp_path: Path) -> None:
    from test_batch import BatchShop

    shop = with_grader(BatchShop(tmp_path / "b"), {"listing": {**LISTING, "mode": "batch"}})
    shop.batch.llm.answer_with(lambda body: verdict(title_ok=False))
    for text in ("old lamp", "new chair"):
        shop.add(type="listing", input=text, brand="Acme")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    report = shop.run()
    assert report.done.total() == 2 and shop.fake.requests == []  # no live call: the grading went in batch
    assert len(shop.batch.creates) == 2
    models = [line.get("body", line.get("params", {})).get("model") for line in shop.batch.lines]
    assert models.count(GRADER) == 2 and models.count("gpt-4.1-mini") == 2
    for text in ("old lamp", "new chair"):
        row = shop.row(input=text)
        assert row["status"] == "review" and row["checks"].startswith("✘ 1/2 · ✔ Facts unchanged")
    with shop.state() as state:
        graded = [a for a in state.latest_attempt(shop.row(input="old lamp")["id"]) if a.step == SELF_CHECK_STEP]
        assert len(graded) == 1 and graded[0].mode == "batch" and graded[0].cost_usd > 0
        assert round(float(shop.row(input="old lamp")["cost"]), 6) == round(
            sum(a.cost_usd for a in state.latest_attempt(shop.row(input="old lamp")["id"])), 6
        )
    shop.run()  # nothing left: no third batch
    assert len(shop.batch.creates) == 2


# -- every board -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["local", "google_sheets", "airtable"])
def test_the_checks_column_on_every_board(kind: str, tmp_path: Path) -> None:
    from contextlib import ExitStack

    from boards_under_test import BOARDS, TEAM_HEADER
    from boards_under_test import Night as BoardNight

    with ExitStack() as stack:
        under = BOARDS[kind](tmp_path, stack, TEAM_HEADER)
        grader = {"model": "claude-sonnet-4-6", "provider": "anthropic", "max_tokens": 200}
        workflows = {
            **WORKFLOWS,
            "listing": {**WORKFLOWS["listing"], "checklist": ["=1+1 facts"], "self_check": grader},
        }
        night = BoardNight(tmp_path, under.board, workflows=workflows)
        night.fake.answer_with(lambda body: {"item_1": {"pass": False, "reason": '=HYPERLINK("http://x")'}})
        under.person.add(type="listing", input="Trail tent", brand="Kestrel")
        under.person.add(type="blog", input="Rain")
        night.lock()
        night.clock.set(at("2026-11-24T01:00"))
        assert night.run().done.total() == 2
        rows = {r["input"]: r for r in under.person.rows()}
        tent, rain = rows["Trail tent"], rows["Rain"]
        assert tent["checks"] == '✘ 1/1 · ✘ =1+1 facts: =HYPERLINK("http://x")'
        assert not under.person.is_formula(tent["id"], "checks")
        assert rain["checks"] == ""  # its workflow has no self-check


# -- report: may the team trust it? ----------------------------------------------------------------------------
def test_report_splits_approval_by_the_self_check_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from sheetbot.cli.main import main

    shop = shop_with(tmp_path)
    shop.fake.answer_with(lambda body: verdict(title_ok="bad" not in split_prompt(body)[1]))
    night(shop, "good one", "good two", "bad one")
    shop.run()
    ids = {text: shop.row(input=text)["id"] for text in ("good one", "good two", "bad one")}
    assert shop.row(input="bad one")["checks"].startswith("✘ 1/2")
    shop.set(ids["good one"], review="approve")
    shop.set(ids["good two"], review="rework", notes="warmer")
    shop.set(ids["bad one"], review="rework", notes="shorter title")
    shop.clock.set(at("2026-11-24T10:00"))
    shop.harvest()
    capsys.readouterr()
    assert main(["report", "--config", str(shop.config_path), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["self_check"] == {
        "passed": {"decided": 2, "approved": 1, "approval_rate": 0.5},
        "failed": {"decided": 1, "approved": 0, "approval_rate": 0.0},
    }
    assert {"approval_rate", "reviewers", "cost_usd"} <= set(entries[0])  # the other keys as before
    assert main(["report", "--config", str(shop.config_path)]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("self-check listing"))
    assert line == "self-check listing: approved as-is when it passed all 1/2 (50%) · failed one 0/1 (0%)"
    assert len(line) <= 100  # the table is `report`'s (full width when piped); this line fits 100 columns


# -- check ---------------------------------------------------------------------------------------------------
def test_check_names_each_self_check_mistake_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sheetbot.cli.main import main

    shop = shop_with(tmp_path)
    text = shop.config_path.read_text(encoding="utf-8")
    text = text.replace(
        "workflows:\n",
        "workflows:\n"
        "  bare:\n    provider: openai\n    model: gpt-4.1-mini\n    prompt: '{{input}}'\n"
        "    self_check: {model: gpt-4.1-mini}\n"
        "  unpriced:\n    provider: openai\n    model: gpt-4.1-mini\n    prompt: '{{input}}'\n"
        "    checklist: [Short]\n    self_check: {model: tiny-unknown, provider: mistral}\n",
        1,
    )
    shop.config_path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert main(["check", "--config", str(shop.config_path)]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗ ")]
    by_key = {line[2:].split(" ", 1)[0]: line for line in problems}
    assert set(by_key) == {
        "workflows.bare.self_check",
        "workflows.unpriced.self_check.model",
        "workflows.unpriced.self_check.provider",
    }
    assert "checklist" in by_key["workflows.bare.self_check"]
    assert "no price" in by_key["workflows.unpriced.self_check.model"]
    assert "'mistral' is not configured" in by_key["workflows.unpriced.self_check.provider"]
    lines = text.splitlines()
    for line in problems:
        found = re.search(r"sheetbot\.yaml:(\d+)\)", line)
        assert found is not None, line
        number = int(found.group(1))
        assert "self_check" in lines[number - 1] or "model" in lines[number - 1] or "provider" in lines[number - 1]


def test_the_readme_example_passes_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sheetbot.cli.main import main

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("**A first pass against the checklist.**", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example is not None
    path = tmp_path / "sheetbot.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    assert main(["init", "--config", str(path)]) == 0, capsys.readouterr().out
    fake = FakeLLM()  # `check` probes the provider: here, at the SDK's transport
    assert run_check(path, env={"OPENAI_API_KEY": "sk-test-openai"}, http_client=fake.async_client()) == []


def test_the_verdict_is_parsed_strictly_and_bounded() -> None:
    from sheetbot.night.self_check import VerdictError, parse_verdict

    good = verdict(title_ok=True)
    assert parse_verdict(CHECKLIST, good, "").passed is True
    for bad in (
        {"item_1": good["item_1"]},  # an item missing
        {**good, "item_3": {"pass": True, "reason": ""}},  # one the checklist does not have
        {**good, "item_2": {"pass": "yes", "reason": ""}},
        {**good, "item_2": {"pass": False, "reason": 3}},
        ["item_1"],
    ):
        with pytest.raises(VerdictError):
            parse_verdict(CHECKLIST, bad, "")
    with pytest.raises(VerdictError, match="not JSON"):
        parse_verdict(CHECKLIST, None, "Sure! Both pass.")
    with pytest.raises(VerdictError, match="longer than"):
        parse_verdict(CHECKLIST, None, " " * 20_001)
    assert parse_verdict(
        CHECKLIST, None, '{"item_1": {"pass": true, "reason": ""}, "item_2": {"pass": true, "reason": ""}}'
    ).cell.startswith("✔ all 2")


def test_a_batch_grading_the_budget_cannot_hold_is_skipped(tmp_path: Path) -> None:
    from test_batch import BatchShop

    workflow = {
        **LISTING,
        "mode": "batch",
        "max_usd_per_task": 0.0012,
        "self_check": {"model": GRADER, "max_tokens": 8000},
    }
    shop = with_grader(BatchShop(tmp_path / "b"), {"listing": workflow})
    shop.add(type="listing", input="old lamp", brand="Acme")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    row = shop.row(input="old lamp")
    assert row["status"] == "review" and row["checks"] == "self-check skipped: budget"
    assert len(shop.batch.creates) == 1


def test_a_preview_night_calls_no_grader_and_says_what_would_be_graded(tmp_path: Path) -> None:
    """Preview promises that no model is called: the grader included (the demo's workflows have one)."""
    shop = shop_with(tmp_path, mode="preview")
    night(shop, "old lamp")
    shop.run()
    row = shop.row(input="old lamp")
    assert shop.fake.requests == []
    assert row["status"] == "review" and row["output"].startswith("PREVIEW")
    assert row["checks"].startswith("PREVIEW") and GRADER in row["checks"] and "2 items" in row["checks"]
    with shop.state() as state:  # its worst case is in the night's preview estimate, at no cost
        (graded,) = [a for a in state.latest_attempt(row["id"]) if a.step == SELF_CHECK_STEP]
        assert graded.cost_usd == 0 and graded.estimated_usd is not None and graded.estimated_usd > 0
        assert f"${graded.estimated_usd:.4f}" in row["checks"]


def test_a_preview_groups_calls_and_gradings_are_stored_in_the_order_each_row_made_them(tmp_path: Path) -> None:
    """A preview group holds its rows' writes until it ends (sheetbot/night/keep.py); each row's own answer
    still comes before its grading, in the attempts and in the audit."""
    shop = shop_with(tmp_path, mode="preview")
    for name in ("old lamp", "brass kettle", "oak stool"):
        shop.add(type="listing", input=name, brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    with shop.state() as state:
        for row in shop.rows():
            assert row["status"] == "review" and row["checks"].startswith("PREVIEW")
            assert [a.step for a in state.latest_attempt(row["id"])] == [FINAL_STEP, SELF_CHECK_STEP]
            audited = [
                json.loads(e.detail)["step"] for e in state.audit_entries("model_call") if e.task_id == row["id"]
            ]
            assert audited == [FINAL_STEP, SELF_CHECK_STEP]


def test_the_report_line_of_a_long_workflow_name_keeps_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sheetbot.cli.main import main

    name = "listing_rewrite_for_the_amazon_marketplace"
    shop = with_grader(Shop(tmp_path), {name: LISTING})
    shop.fake.answer_with(lambda body: verdict(title_ok=True))
    shop.add(type=name, input="old lamp")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    capsys.readouterr()
    assert main(["report", "--config", str(shop.config_path)]) == 0
    text = capsys.readouterr().out
    assert "\u2026" not in text  # nothing cut off
    at_ = text.index(f"self-check {name}")
    lines = text[at_:].splitlines()[:2]
    assert all(len(line) <= 100 for line in lines)
    assert "passed all 0/0" in lines[1] and "failed one 0/0" in lines[1]
