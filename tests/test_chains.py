"""Chained workflows (issue 14, item 2): an approval adds a row for the next workflow, exactly once.

Several simulated days on the real workbook with a fake clock; one run on the Google Sheets fake; and the
`check` errors for a chain to an unknown workflow and for cycles.
"""

from __future__ import annotations

import re
import textwrap
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from boards_under_test import BOARDS, Night
from harness import WORKFLOWS, Shop, at

from sheetbot.boards.local import LocalBoard
from sheetbot.config.load import inspect_config
from sheetbot.morning.chains import append_children
from sheetbot.state import State

SCAN = {
    "provider": "openai",
    "model": "gpt-4.1-mini",
    "max_tokens": 400,
    "prompt": "Scan the competitor {{input}}",
}
ADS = {"provider": "openai", "model": "gpt-4.1-mini", "max_tokens": 400, "prompt": "Write ads from: {{input}}"}


def chained(queue: Any) -> dict[str, Any]:
    return {"scan": {**SCAN, "on_approve": {"queue": queue}}, "ads": ADS, "blog": WORKFLOWS["blog"]}


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    queue = {"workflow": "ads", "input": "Brief {{input}} / {{output}}", "priority": "P2"}
    return Shop(tmp_path, workflows=chained(queue))


def reviewed(shop: Shop, day: str, text: str, **decision: str) -> str:
    """A `scan` row typed on ``day``, locked at 17:00, run at 01:00 and decided at 09:00 (harvested)."""
    shop.add(type="scan", input=text)
    night(shop, day)
    task = shop.row(input=text)["id"]
    shop.set(task, **decision)
    shop.harvest()
    return str(task)


def night(shop: Shop, day: str) -> None:
    """Lock at 17:00 on ``day``, run at 01:00 the next morning, then 09:00."""
    shop.clock.set(at(f"{day}T17:00"))
    shop.lock()
    next_day = f"{day[:-2]}{int(day[-2:]) + 1:02d}"
    shop.clock.set(at(f"{next_day}T01:00"))
    shop.run()
    shop.clock.set(at(f"{next_day}T09:00"))


def children(shop: Shop, parent: str) -> list[dict[str, Any]]:
    return [r for r in shop.rows() if r.get("parent") == parent]


def test_an_approval_adds_one_queued_child_that_runs_the_next_night(shop: Shop) -> None:
    scan = reviewed(shop, "2026-11-23", "Acme tents", review="approve")
    output = shop.row(id=scan)["output"]
    (child,) = children(shop, scan)
    assert child["id"] == f"{scan}.ads"
    assert child["type"] == "ads" and child["priority"] == "P2" and child["status"] == "queued"
    assert child["input"] == f"Brief Acme tents / {output}"
    assert shop.row(id=scan)["status"] == "approved"  # no webhook: the parent stays approved

    shop.harvest()  # a second look (serve harvests every tick) adds nothing
    assert len(children(shop, scan)) == 1

    night(shop, "2026-11-24")  # the child runs the next night like any row
    child = shop.row(id=f"{scan}.ads")
    assert child["status"] == "review" and child["night"] == "2026-11-24"
    assert child["output"].startswith("OUTPUT for: Write ads from: Brief Acme tents")
    shop.set(child["id"], review="approve")
    shop.harvest()  # `ads` chains nothing
    assert shop.row(id=child["id"])["status"] == "approved"
    assert len(shop.rows()) == 2
    with shop.state() as state:
        assert [e.task_id for e in state.audit_entries("chained")] == [child["id"]]


def test_an_edit_chains_the_reviewers_text(shop: Shop) -> None:
    scan = reviewed(shop, "2026-11-23", "Acme tents", review="edit", edited_output="My own scan")
    (child,) = children(shop, scan)
    assert child["input"] == "Brief Acme tents / My own scan"


def test_rework_adds_nothing_until_the_approval(shop: Shop) -> None:
    scan = reviewed(shop, "2026-11-23", "Acme tents", review="rework", notes="Shorter")
    assert children(shop, scan) == []
    night(shop, "2026-11-24")
    shop.set(scan, review="approve")
    shop.harvest()
    assert len(children(shop, scan)) == 1


def test_cell_contents_are_data_rendered_once_and_never_formulas(shop: Shop) -> None:
    shop.fake.reply_with(lambda body: '=HYPERLINK("http://evil.test") {{input}} {{output}}')
    scan = reviewed(shop, "2026-11-23", "{{output}} tents", review="approve")
    (child,) = children(shop, scan)
    assert child["input"] == 'Brief {{output}} tents / =HYPERLINK("http://evil.test") {{input}} {{output}}'
    cell = LocalBoard(shop.book, "Queue")
    assert cell.read()  # the workbook opens; the value is a plain string, not a formula
    from openpyxl import load_workbook

    ws = load_workbook(shop.book)["Queue"]
    header = [c.value for c in ws[1]]
    inputs = [r[header.index("input")] for r in ws.iter_rows(min_row=2)]
    assert all(c.data_type == "s" for c in inputs)


def test_fan_out_adds_one_row_per_queue_entry(tmp_path: Path) -> None:
    queue = [
        {"workflow": "ads", "input": "{{output}}", "priority": "P1"},
        {"workflow": "blog", "input": "Post about {{input}}"},
        {"workflow": "ads", "input": "Short: {{output}}"},
    ]
    shop = Shop(tmp_path, workflows=chained(queue))
    scan = reviewed(shop, "2026-11-23", "Acme tents", review="approve")
    rows = {r["id"]: r for r in children(shop, scan)}
    assert set(rows) == {f"{scan}.ads.0", f"{scan}.blog", f"{scan}.ads.2"}
    assert rows[f"{scan}.blog"]["input"] == "Post about Acme tents" and not rows[f"{scan}.blog"]["priority"]
    assert rows[f"{scan}.ads.2"]["input"].startswith("Short: OUTPUT for:")
    night(shop, "2026-11-24")
    assert {shop.row(id=i)["status"] for i in rows} == {"review"}


def test_a_structured_answers_fields_feed_the_child(tmp_path: Path) -> None:
    scan = {**SCAN, "outputs": [{"name": "headline"}, {"name": "score", "type": "number"}]}
    scan["on_approve"] = {"queue": {"workflow": "ads", "input": "{{headline}} ({{score}})"}}
    shop = Shop(tmp_path, workflows={"scan": scan, "ads": ADS})
    shop.fake.answer_with(lambda body: {"headline": "Tents for all", "score": 7})
    task = reviewed(shop, "2026-11-23", "Acme tents", review="approve")
    assert children(shop, task)[0]["input"] == "Tents for all (7)"


def test_a_crash_after_the_intent_before_the_append_adds_the_child_once(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.add(type="scan", input="Acme tents")
    night(shop, "2026-11-23")
    scan = shop.row(input="Acme tents")["id"]
    shop.set(scan, review="approve")

    def crash(self: Any, rows: Any) -> int:
        raise SystemExit("killed after the decision was committed, before the row was added")

    monkeypatch.setattr(LocalBoard, "append_rows", crash)
    with pytest.raises(SystemExit):
        shop.harvest()
    monkeypatch.undo()
    assert shop.row(id=scan)["status"] == "approved" and children(shop, scan) == []

    shop.harvest()
    shop.harvest()
    assert len(children(shop, scan)) == 1
    night(shop, "2026-11-24")
    assert shop.row(id=f"{scan}.ads")["status"] == "review"


def test_a_crash_after_the_append_before_done_adds_the_child_once(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.add(type="scan", input="Acme tents")
    night(shop, "2026-11-23")
    scan = shop.row(input="Acme tents")["id"]
    shop.set(scan, review="approve")

    def crash(self: Any, child_ids: Any, **kwargs: Any) -> None:
        raise SystemExit("killed after the row was added, before the intent was marked done")

    monkeypatch.setattr(State, "chain_intents_done", crash)
    with pytest.raises(SystemExit):
        shop.harvest()
    monkeypatch.undo()
    assert len(children(shop, scan)) == 1

    with shop.context() as ctx:  # the retry alone, before any phase took the row in: the board has it
        assert f"{scan}.ads" not in ctx.state.tasks()
        assert append_children(ctx) == ([f"{scan}.ads"], None)
    assert len(children(shop, scan)) == 1
    shop.harvest()
    shop.harvest()
    assert len(children(shop, scan)) == 1
    with shop.state() as state:
        assert state.chain_intents_pending() == []
    night(shop, "2026-11-24")
    assert shop.row(id=f"{scan}.ads")["status"] == "review"


#: The requests one append of a row makes that write: Google's one values:batchUpdate, Airtable's one create.
WRITES = {"google_sheets": "values.batchUpdate", "airtable": "create"}


@pytest.mark.parametrize("board", sorted(WRITES))
def test_on_google_sheets_and_airtable_the_child_is_added_in_one_call(tmp_path: Path, board: str) -> None:
    with ExitStack() as stack:
        under = BOARDS[board](tmp_path, stack, ["id", "type", "priority", "input"])
        sheets = Night(tmp_path, under.board, workflows=chained({"workflow": "ads", "priority": "P2"}))
        with sheets.context() as ctx:
            under.board.ensure_schema(ctx.schema())
        under.person.add(type="scan", input="Acme tents")
        sheets.lock()
        sheets.clock.set(at("2026-11-24T01:00"))
        sheets.run()
        sheets.clock.set(at("2026-11-24T09:00"))
        (row,) = under.person.rows()
        under.person.set(row["id"], review="approve")
        api_calls = under.api_calls
        assert api_calls is not None
        appends: list[Any] = []
        real = under.board.append_rows  # type: ignore[attr-defined]

        def append_rows(rows: Any) -> int:
            before = api_calls()
            added = int(real(rows))
            appends.append((len(rows), api_calls() - before))
            return added

        under.board.append_rows = append_rows  # type: ignore[attr-defined]
        report = sheets.harvest()
        assert report.actions is not None and report.actions.chained == [f"{row['id']}.ads"]
        child = next(r for r in under.person.rows() if r["parent"] == row["id"])
        assert child["type"] == "ads" and child["status"] == "queued" and child["priority"] == "P2"
        assert child["input"] == row["output"]
        sheets.harvest()
        assert len([r for r in under.person.rows() if r["parent"] == row["id"]]) == 1
        sheets.clock.set(at("2026-11-24T17:00"))
        sheets.lock()
        sheets.clock.set(at("2026-11-25T01:00"))
        sheets.run()
        child = next(r for r in under.person.rows() if r["parent"] == row["id"])
        assert child["status"] == "review"
    ((rows, calls),) = appends  # one append, in the first harvest only
    assert rows == 1 and calls[WRITES[board]] == 1, calls


# -- check ---------------------------------------------------------------------------------------
def problems_of(tmp_path: Path, workflows: str) -> list[str]:
    base = {
        "providers": {"openai": {"api_key_env": "OPENAI_API_KEY"}},
        "prices": {"gpt-4.1-mini": {"input": 0.4, "output": 1.6}},
    }
    path = tmp_path / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(base) + textwrap.dedent(workflows), encoding="utf-8")
    _, problems = inspect_config(path)
    return [str(p) for p in problems]


WF = "    provider: openai\n    model: gpt-4.1-mini\n    prompt: 'Do {{input}}'\n"


def test_check_names_a_chain_to_an_unknown_workflow(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, f"workflows:\n  scan:\n{WF}    on_approve: {{queue: {{workflow: adz}}}}\n")
    assert "workflows.scan.on_approve.queue.workflow" in line and re.search(r"sheetbot\.yaml:\d+\)", line)
    assert "'adz'" in line and "not defined" in line and "\n" not in line


def test_check_names_a_cycle(tmp_path: Path) -> None:
    text = (
        f"workflows:\n  a:\n{WF}    on_approve: {{queue: [{{workflow: b}}]}}\n"
        f"  b:\n{WF}    on_approve: {{queue: {{workflow: a}}}}\n"
    )
    (line,) = problems_of(tmp_path, text)
    assert "a → b → a is a cycle" in line and ".on_approve.queue" in line and "sheetbot.yaml:" in line


def test_check_names_a_workflow_that_chains_itself(tmp_path: Path) -> None:
    (line,) = problems_of(tmp_path, f"workflows:\n  a:\n{WF}    on_approve: {{queue: {{workflow: a}}}}\n")
    assert "workflows.a.on_approve.queue.workflow" in line and "a → a is a cycle" in line


def test_check_refuses_an_on_approve_with_nothing_to_do_and_an_unknown_placeholder(tmp_path: Path) -> None:
    text = f"workflows:\n  a:\n{WF}    on_approve: {{timeout_s: 5}}\n  b:\n{WF}"
    text += "    on_approve: {queue: {workflow: a, input: '{{outptu}}'}}\n"
    lines = problems_of(tmp_path, text)
    assert any("workflows.a.on_approve" in p and "`queue:`" in p for p in lines)
    assert any("workflows.b.on_approve.queue.input" in p and "{{outptu}}" in p for p in lines)


def test_a_chain_with_a_webhook_both_run_and_the_check_accepts_the_readme_example(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Chained workflows") :]
    example = section[section.index("```yaml") + len("```yaml") : section.index("```\n", section.index("```yaml"))]
    path = tmp_path / "sheetbot.yaml"
    path.write_text(example, encoding="utf-8")
    config, problems = inspect_config(path)
    assert problems == [] and config is not None
    action = config.workflows["competitor_scan"].on_approve
    assert action is not None and [q.workflow for q in action.queues] == ["ad_variants", "blog_post"]
