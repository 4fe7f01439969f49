"""Mistakes people make are caught and explained, not swallowed (issue 13, item 6).

A rework without notes, a template with an unbalanced brace or an unknown name, a misspelt workflow on
the command line or key in the YAML, a badly indented YAML line: each gets one line that says what to fix.
A row that cannot run is reported once, and decisions are read however they are typed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Shop, at

from sheetbot.morning.summary import describe_lock
from sheetbot.status import Decision, Status, parse_decision, parse_status


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def _in_review(shop: Shop, *inputs: str) -> list[str]:
    for text in inputs:
        shop.add(type="listing", input=text)
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    return [shop.row(input=text)["id"] for text in inputs]


# -- (a) a rework needs notes -----------------------------------------------------------------------------------


def test_a_rework_without_notes_goes_back_to_review_with_an_error(shop: Shop) -> None:
    blank, spaces = _in_review(shop, "a", "b")
    shop.set(blank, review="rework")
    shop.set(spaces, review="rework", notes="   ")
    report = shop.harvest()
    assert sorted(task_id for task_id, _ in report.problems) == sorted([blank, spaces])
    assert report.decisions.total() == 0
    for task_id in (blank, spaces):
        row = shop.row(id=task_id)
        assert row["status"] == "review"
        assert "you chose rework, but `notes` is empty: say what to change there" in row["error"]
    assert len(shop.fake.requests) == 2  # nothing paid again
    # With notes, the same row goes to rework and the error is cleared.
    shop.set(blank, notes="Shorter, please")
    assert shop.harvest().decisions == {"rework": 1}
    assert shop.row(id=blank)["status"] == "rework" and shop.row(id=blank)["error"] == ""


# -- (f) a row that cannot run is reported once ------------------------------------------------------------------


def test_a_failed_row_is_reported_at_the_lock_that_finds_it_not_at_every_lock(shop: Shop) -> None:
    shop.add(type="lisitng", input="typo in the type")
    first = shop.lock()
    assert len(first.failed) == 1 and "Did you mean listing?" in first.failed[0][1]
    assert "failed " in describe_lock(first)
    shop.clock.set(at("2026-11-24T17:00"))
    second = shop.lock()
    assert second.failed == []
    assert second.still_failed == 1
    assert "failed " not in describe_lock(second)
    assert "1 row(s) still cannot run, as reported before" in describe_lock(second)
    # A different reason is news again.
    row = shop.row(input="typo in the type")
    shop.set(row["id"], type="")
    shop.clock.set(at("2026-11-25T17:00"))
    third = shop.lock()
    assert len(third.failed) == 1 and "no type" in third.failed[0][1]


# -- (g) decisions and statuses however they are typed -----------------------------------------------------------


@pytest.mark.parametrize("decision", list(Decision))
@pytest.mark.parametrize("shape", ["{}", "{} ", " {}", "{}\n", "\u00a0{}\u00a0", "{}\t"])
@pytest.mark.parametrize("case", [str.lower, str.upper, str.capitalize])
def test_every_decision_reads_in_any_case_with_stray_spaces(decision: Decision, shape: str, case: object) -> None:
    assert callable(case)
    assert parse_decision(shape.format(case(str(decision)))) == decision


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("typed", ["{} ", " {}", "{}\n"])
def test_every_status_reads_in_any_case_with_stray_spaces(status: Status, typed: str) -> None:
    assert parse_status(typed.format(str(status).capitalize())) == status
    assert parse_status(typed.format(str(status).upper())) == status


def test_approve_with_a_capital_and_a_trailing_space_still_approves(shop: Shop) -> None:
    approve, edit, rework = _in_review(shop, "a", "b", "c")
    shop.set(approve, review="Approve ")
    shop.set(edit, review=" EDIT", edited_output="My own text")
    shop.set(rework, review="Rework\n", notes="Shorter")
    report = shop.harvest()
    assert report.problems == []
    assert report.decisions == {"approve": 1, "edit": 1, "rework": 1}
    assert [shop.row(id=t)["status"] for t in (approve, edit, rework)] == ["approved", "edited", "rework"]


# -- (c) a misspelt workflow on the command line -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["feedback", "lisitng"],
        ["resume", "lisitng"],
        ["trial", "lisitng", "--sample", "1"],
        ["trial", "lisitng", "--harvest"],
    ],
)
def test_an_unknown_workflow_on_the_command_line_exits_1_with_a_did_you_mean(
    shop: Shop, command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sheetbot.service.wiring as app
    from sheetbot.cli.main import main

    monkeypatch.setattr(app, "open_context", lambda config_path, **kwargs: shop.context())
    shop.add(type="listing", input="a")
    shop.lock()  # the state file exists
    capsys.readouterr()
    assert main([*command, "--config", str(shop.config_path)]) == 1
    err = capsys.readouterr().err
    assert "no workflow 'lisitng' in the YAML. Did you mean listing? Known workflows: blog, listing" in err
    assert len(err.strip().splitlines()) == 1


def test_resume_still_takes_a_paused_workflow_the_yaml_no_longer_has(shop: Shop) -> None:
    from sheetbot.cli.main import main

    shop.lock()
    with shop.state() as state:
        state.pause("retired", reason="cost", now=at("2026-11-23T18:00"))
    assert main(["resume", "retired", "--config", str(shop.config_path)]) == 0


# -- (d) unknown YAML keys: the closest key of that part of the YAML ---------------------------------------------

MISSPELT = """\
timezone: UTC
board: {kind: local, path: q.xlsx, pathh: x}
providers:
  anthropic: {api_key_env: ANTHROPIC_API_KEY, concurency: 3}
prices: {m: {input: 1, output: 1}}
alerts: {rework_maxx: 0.2}
escalation: {waiting: {factr: 2}}
workflows:
  blog:
    provider: anthropic
    model: m
    max_token: 10
    prompt: x
    outputs: [{name: a, typ: text}]
    zzzzzz: 1
"""


def test_an_unknown_yaml_key_is_answered_with_the_closest_key_of_its_model(tmp_path: Path) -> None:
    from sheetbot.config.load import inspect_config

    path = tmp_path / "sheetbot.yaml"
    path.write_text(MISSPELT, encoding="utf-8")
    _, problems = inspect_config(path)
    said = {p.where: p.message for p in problems}
    assert said["board.pathh"].startswith("unknown key 'pathh': did you mean `path`?")
    assert said["providers.anthropic.concurency"].startswith("unknown key 'concurency': did you mean `concurrency`?")
    assert said["alerts.rework_maxx"].startswith("unknown key 'rework_maxx': did you mean `rework_max`?")
    assert said["escalation.waiting.factr"].startswith("unknown key 'factr': did you mean `factor`?")
    assert said["workflows.blog.max_token"].startswith("unknown key 'max_token': did you mean `max_tokens`?")
    assert said["workflows.blog.outputs[0].typ"].startswith("unknown key 'typ': did you mean `type`?")
    assert said["workflows.blog.zzzzzz"].startswith("unknown key 'zzzzzz': check its spelling")
    assert {p.line for p in problems if p.where == "workflows.blog.max_token"} == {12}


# -- (e) YAML indentation mistakes name the line to fix ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "advice"),
    [
        ("timezone: UTC\nboard:\n  kind: local\n   path: q.xlsx\n", 4, "check the indentation of line 4"),
        ("timezone: UTC\nboard:\n  kind: local\n path: q.xlsx\n", 4, "check the indentation of line 4"),
        ("timezone: UTC\nworkflows:\n  a:\n    prompt: hi\n  - b\n", 5, "check the indentation of line 5"),
        ("board:\n  kind: local\n\tpath: q.xlsx\n", 3, "line 3 is indented with a tab: indent with spaces"),
        ("workflows:\n  a:\n    prompt: Title: the product\n", 3, "put a value that holds ': ' in quotes"),
    ],
)
def test_a_yaml_indentation_error_names_the_line_and_says_what_to_check(
    tmp_path: Path, text: str, line: int, advice: str
) -> None:
    from sheetbot.config.load import load_config
    from sheetbot.errors import ConfigError

    path = tmp_path / "sheetbot.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.line == line
    assert advice in problem.message
    assert "\n" not in str(caught.value)


# -- (b) templates: braces that open nothing, names that are nothing ---------------------------------------------


def _check(shop: Shop) -> list[str]:
    from fakellm import FakeLLM

    from sheetbot.cli.check import run_check

    shop.lock()  # the board gets sheetbot's columns
    return run_check(shop.config_path, env=shop.env, http_client=FakeLLM().async_client())


def _workflow(**templates: object) -> dict[str, dict[str, object]]:
    return {"listing": {"provider": "openai", "model": "gpt-4.1-mini", **templates}}


@pytest.mark.parametrize(
    ("templates", "said"),
    [
        ({"prompt": "Rewrite {{input}"}, "workflows.listing.prompt ("),
        ({"prompt": "Rewrite {{input}}", "system": "You write for {brand}}."}, "workflows.listing.system ("),
        ({"prompt": "Rewrite {{input}} {{"}, "workflows.listing.prompt ("),
    ],
)
def test_an_unbalanced_placeholder_is_a_check_error(tmp_path: Path, templates: dict[str, str], said: str) -> None:
    shop = Shop(tmp_path, workflows=_workflow(**templates))
    problems = _check(shop)
    assert len(problems) == 1, problems
    assert said in problems[0]
    assert "is not closed" in problems[0] or "opens with one brace" in problems[0]


def test_the_fix_for_an_unclosed_placeholder_is_spelt_out(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows=_workflow(prompt="Rewrite {{input}"))
    (problem,) = _check(shop)
    assert problem.endswith("workflow listing: `{{input}` is not closed: write {{input}}")


def test_json_in_a_prompt_is_not_taken_for_a_placeholder(tmp_path: Path) -> None:
    prompt = 'Rewrite {{input}} and answer like {"title": "…", "specs": {"weight": 1}}'
    shop = Shop(tmp_path, workflows=_workflow(prompt=prompt, system="You write for {{brand}}."))
    assert _check(shop) == []


def test_a_step_reading_a_step_that_is_not_before_it_is_a_check_error(tmp_path: Path) -> None:
    steps = [
        {"name": "outline", "prompt": "Outline {{input}}, after {{steps.draft}}"},
        {"name": "draft", "prompt": "Write from {{steps.outlin}}"},
    ]
    shop = Shop(tmp_path, workflows=_workflow(steps=steps))
    problems = _check(shop)
    assert len(problems) == 2, problems
    first, second = sorted(problems)
    assert "workflows.listing.steps[0].prompt (" in first
    assert "{{steps.draft}} names no earlier step. A template reads only the steps before it (here: none here)" in first
    assert "workflows.listing.steps[1].prompt (" in second
    assert "{{steps.outlin}} names no earlier step. Did you mean outline?" in second


def test_an_unknown_name_is_a_check_error_with_the_column_meant(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows=_workflow(prompt="Rewrite {{input}} for {{brnd}}"))
    (problem,) = _check(shop)
    assert "workflows.listing.prompt (" in problem
    assert "workflow listing uses {{brnd}}, but the board has no column 'brnd'. Did you mean brand?" in problem


def test_known_names_pass_the_check(tmp_path: Path) -> None:
    steps = [
        {"name": "outline", "prompt": "Outline {{ input }} for {{brand}} ({{priority}}, {{type}})"},
        {"name": "draft", "system": "Notes so far: {{notes}}", "prompt": "Write from {{steps.outline}}"},
    ]
    shop = Shop(tmp_path, workflows=_workflow(steps=steps))
    assert _check(shop) == []
