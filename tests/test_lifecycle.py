"""The row lifecycle over whole nights, on a real workbook and a real SQLite file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from harness import Shop, at
from openpyxl import load_workbook
from stored import rows_in_state
from xlsx_cache import save_as_excel_would

from sheetbot.boards.base import RowUpdate, WriteResult
from sheetbot.status import Status


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def prompts(shop: Shop) -> list[str]:
    from fakellm import split_prompt

    return [split_prompt(r.json)[1] for r in shop.fake.requests]


def test_two_nights_from_queue_to_approved_edited_and_rework(shop: Shop) -> None:
    shop.add(type="listing", input="Trail tent, 2 person, 1.9 kg", brand="Kestrel")
    shop.add(type="listing", input="Down jacket, 800 fill", brand="Kestrel", priority="P1")
    shop.add(type="blog", input="How to pitch a tent in the rain")

    report = shop.lock()
    assert report.locked.total() == 3
    rows = shop.rows()
    assert all(r["status"] == "locked" and r["night"] == "2026-11-23" for r in rows)
    assert len({r["id"] for r in rows}) == 3 and all(r["id"] for r in rows)

    shop.clock.set(at("2026-11-24T01:00"))
    ran = shop.run()
    assert ran.done.total() == 3 and ran.drained
    assert len(shop.fake.requests) == 3
    tent = shop.row(input="Trail tent, 2 person, 1.9 kg")
    jacket = shop.row(input="Down jacket, 800 fill")
    blog = shop.row(input="How to pitch a tent in the rain")
    assert tent["status"] == "review" and tent["output"].startswith("OUTPUT for: Rewrite this listing:")
    assert isinstance(tent["cost"], float) and tent["cost"] > 0
    # the system prompt carried the row's brand; the anthropic workflow went to /v1/messages
    paths = sorted(r.path for r in shop.fake.requests)
    assert paths == ["/v1/chat/completions", "/v1/chat/completions", "/v1/messages"]
    assert any("You write listings for Kestrel." in str(r.json) for r in shop.fake.requests)

    # the morning review
    shop.clock.set(at("2026-11-24T09:00"))
    shop.set(tent["id"], review="approve")
    shop.set(jacket["id"], review="edit", edited_output="My own jacket copy")
    shop.set(blog["id"], review="rework", notes="Shorter, and mention the footprint")
    harvested = shop.harvest()
    assert harvested.decisions == {"approve": 1, "edit": 1, "rework": 1}
    assert shop.row(id=tent["id"])["status"] == "approved"
    assert shop.row(id=jacket["id"])["status"] == "edited"
    assert shop.row(id=jacket["id"])["edited_output"] == "My own jacket copy"
    assert shop.row(id=blog["id"])["status"] == "rework"

    # the next night: only the rework row runs, with its previous output and the notes in the prompt
    shop.clock.set(at("2026-11-24T17:00"))
    assert shop.lock().locked.total() == 1
    shop.clock.set(at("2026-11-25T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 4
    last = prompts(shop)[-1]
    assert "Shorter, and mention the footprint" in last
    assert blog["output"] in last
    again = shop.row(id=blog["id"])
    assert again["status"] == "review" and again["night"] == "2026-11-24"
    assert again["review"] == ""  # yesterday's "rework" is not read as today's decision
    with shop.state() as state:
        task = state.task(blog["id"])
        assert task is not None and task.attempt == 2

    # approved and edited rows never run again, however often we lock and run
    shop.clock.set(at("2026-11-25T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-26T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 4


def test_running_twice_pays_once(shop: Shop) -> None:
    for n in range(5):
        shop.add(type="listing", input=f"item {n}")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    second = shop.run()
    assert len(shop.fake.requests) == 5
    assert second.done.total() == 0
    assert rows_in_state(shop, "SELECT COUNT(*) AS n FROM attempts WHERE ok = 1")[0]["n"] == 5


def test_a_failed_board_write_costs_no_second_call(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from sheetbot.boards.local import LocalBoard
    from sheetbot.errors import BoardWriteError

    shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    real_write = LocalBoard.write
    calls = {"n": 0}

    def flaky(self: LocalBoard, updates: Sequence[RowUpdate]) -> WriteResult:
        calls["n"] += 1
        if calls["n"] == 1:  # the run's one write, the one that carries the outputs
            raise BoardWriteError("queue.xlsx is open in Excel")
        return real_write(self, updates)

    monkeypatch.setattr(LocalBoard, "write", flaky)
    with pytest.raises(BoardWriteError):
        shop.run()
    assert shop.row(input="lamp")["status"] == "locked"  # the board is untouched; the output is in the state
    monkeypatch.setattr(LocalBoard, "write", real_write)
    report = shop.run()
    assert len(shop.fake.requests) == 1
    assert shop.row(input="lamp")["status"] == "review"
    assert report.done.total() == 0  # nothing new ran; the stored output was written


def test_caps_take_highest_priority_then_oldest_and_defer_the_rest(tmp_path: Path) -> None:
    workflows = {"listing": {**__import__("harness").WORKFLOWS["listing"], "nightly_rows": 2}}
    shop = Shop(tmp_path, workflows=workflows)
    shop.add(type="listing", input="old P2", priority="P2")
    shop.add(type="listing", input="P0 first", priority="P0")
    shop.add(type="listing", input="P3", priority="P3")
    shop.add(type="listing", input="P0 second", priority="P0")
    shop.add(type="listing", input="new P2")
    report = shop.lock()
    assert report.locked.total() == 2
    assert {r["input"] for r in shop.rows() if r["status"] == "locked"} == {"P0 first", "P0 second"}
    deferred = shop.row(input="old P2")
    assert deferred["status"] == "deferred" and "cap for listing (2 rows)" in deferred["error"]

    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()  # next night: the deferred rows, priority then age
    assert {r["input"] for r in shop.rows() if r["status"] == "locked"} == {"old P2", "new P2"}


def test_nightly_cap_across_workflows(tmp_path: Path) -> None:
    shop = Shop(tmp_path, limits={"nightly_rows": 3})
    for n in range(5):
        shop.add(type="listing" if n % 2 else "blog", input=f"row {n}")
    report = shop.lock()
    assert report.locked.total() == 3 and report.deferred.total() == 2
    assert "tonight's cap of 3 rows is full" in shop.row(input="row 4")["error"]
    # a second lock the same evening respects what the first one took
    shop.add(type="listing", input="late")
    assert shop.lock().locked.total() == 0


def test_unknown_type_and_empty_input_fail_with_words_a_reviewer_understands(shop: Shop) -> None:
    shop.add(type="listnig", input="a lamp")
    shop.add(type="blog", input="")
    shop.add(type="listing", input="ok", priority="urgent")
    report = shop.lock()
    assert report.locked.total() == 0
    typo = shop.row(input="a lamp")
    assert typo["status"] == "failed"
    assert "unknown type 'listnig'" in typo["error"] and "Did you mean listing?" in typo["error"]
    assert "blog, listing" in typo["error"]
    empty = shop.row(type="blog")
    assert empty["status"] == "failed" and "input is empty" in empty["error"]
    assert "'urgent' is not one of P0, P1, P2, P3" in shop.row(input="ok")["error"]

    # fixing the row is enough: the next lock checks it again
    shop.set(typo["id"], type="listing")
    assert shop.lock().locked.total() == 1
    assert shop.row(input="a lamp")["status"] == "locked"
    assert shop.row(input="a lamp")["error"] == ""


def test_rows_added_after_the_cutoff_wait_for_the_next_night(shop: Shop) -> None:
    shop.add(type="listing", input="early")
    shop.lock()
    shop.clock.set(at("2026-11-23T20:00"))
    shop.add(type="listing", input="late")
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    assert shop.row(input="early")["status"] == "review"
    assert shop.row(input="late")["status"] == ""
    assert len(shop.fake.requests) == 1


def test_the_lock_is_a_snapshot(shop: Shop) -> None:
    shop.add(type="listing", input="original text", brand="Kestrel")
    shop.lock()
    task_id = shop.row(input="original text")["id"]
    shop.set(task_id, input="changed at 23:00")
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    assert "original text" in prompts(shop)[0]
    assert "changed at 23:00" not in prompts(shop)[0]
    row = shop.row(id=task_id)
    assert row["status"] == "review"
    assert "input changed after the lock" in row["error"]


def test_people_sort_insert_delete_and_copy_rows_during_the_night(shop: Shop) -> None:
    for name in ("alpha", "bravo", "charlie", "delta"):
        shop.add(type="listing", input=name)
    shop.lock()
    ids = {r["input"]: r["id"] for r in shop.rows()}
    shop.sort_by("input", reverse=True)
    shop.insert_at_top(type="listing", input="new on top")
    shop.delete(ids["charlie"])
    shop.copy(ids["bravo"])

    shop.clock.set(at("2026-11-24T01:00"))
    report = shop.run()
    assert report.missing == [ids["charlie"]]  # reported, not lost
    for name in ("alpha", "bravo", "delta"):
        assert shop.row(id=ids[name])["output"] == f"OUTPUT for: Rewrite this listing: {name}"
    with shop.state() as state:
        kept = state.stored_output(ids["charlie"], 1, "final")
        assert kept is not None and kept.output is not None and "charlie" in kept.output

    # the run's own write already gives the copy its own id and clears what sheetbot wrote on it; so does
    # every later phase
    for phase in (lambda: None, shop.harvest):
        shop.clock.set(at("2026-11-24T09:00"))
        phase()
        bravos = [r for r in shop.rows() if r["input"] == "bravo"]
        assert len(bravos) == 2
        original = [r for r in bravos if r["id"] == ids["bravo"]]
        copy = [r for r in bravos if r["id"] != ids["bravo"]]
        assert len(original) == 1 and len(copy) == 1
        assert original[0]["status"] == "review" and original[0]["output"]
        assert copy[0]["status"] == "" and copy[0]["output"] == "" and copy[0]["id"]
    assert shop.row(input="new on top")["id"]


def test_a_workbook_saved_by_someone_mid_run_keeps_their_work(shop: Shop) -> None:
    shop.add(type="listing", input="one")
    shop.add(type="listing", input="two")
    shop.add(type="listing", input="typed before the night", brand="")
    shop.lock()
    before = {r["input"]: r["id"] for r in shop.rows()}
    shop.clock.set(at("2026-11-24T01:00"))

    def person_saves_during_the_call(body: dict[str, Any]) -> str:
        if len(shop.fake.requests) == 1:
            shop.add(type="blog", input="added at 1am")
            shop.set(before["typed before the night"], brand="Typed by Ana at 1am")
        return "done"

    shop.fake.reply_with(person_saves_during_the_call)
    shop.run()
    rows = shop.rows()
    assert shop.row(input="added at 1am")["type"] == "blog"
    assert shop.row(id=before["typed before the night"])["brand"] == "Typed by Ana at 1am"
    assert all(r["output"] == "done" for r in rows if r["id"] in before.values())
    assert len(rows) == 4


def test_outputs_are_never_formulas(shop: Shop) -> None:
    shop.add(type="listing", input='=UPPER("tent")')
    save_as_excel_would(shop.book, {"D2": "A TENT"})  # as Excel saves it: the formula and its value
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.fake.reply_with(lambda body: '=HYPERLINK("http://evil.test","click")')
    shop.run()
    ws = load_workbook(shop.book)["Queue"]
    header = [c.value for c in ws[1]]
    cell = ws.cell(row=2, column=header.index("output") + 1)
    assert cell.value == '=HYPERLINK("http://evil.test","click")'
    assert cell.data_type == "s"
    assert "A TENT" in prompts(shop)[0] and "UPPER" not in prompts(shop)[0]  # the value, as Google sends


def test_cells_are_data_never_templates(shop: Shop) -> None:
    shop.add(
        type="listing", input="Use {{brand}} and {% for x in y %}{{ x }}{% endfor %} {{input}}", brand="SECRET-BRAND"
    )
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    prompt = prompts(shop)[0]
    assert "Use {{brand}} and {% for x in y %}{{ x }}{% endfor %} {{input}}" in prompt
    assert prompt.count("SECRET-BRAND") == 0  # the brand only fills the system prompt's {{brand}}


def test_a_refused_key_defers_the_row_until_the_key_works(shop: Shop) -> None:
    shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.fake.fail_next(401, body="Incorrect API key provided")
    shop.run()
    row = shop.row(input="lamp")
    assert row["status"] == "deferred"  # the account's problem, not the row's: nobody has to send it back
    assert "OPENAI_API_KEY" in row["error"] and "sk-test-openai" not in row["error"]

    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    shop.clock.set(at("2026-11-24T17:00"))
    assert shop.lock().locked.total() == 1
    shop.clock.set(at("2026-11-25T01:00"))
    shop.run()
    assert shop.row(input="lamp")["status"] == "review"


def test_a_missing_key_defers_rows_without_calling(tmp_path: Path) -> None:
    shop = Shop(tmp_path, env={"OPENAI_API_KEY": "sk-x"})
    shop.add(type="blog", input="no anthropic key tonight")
    shop.add(type="listing", input="openai works")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    report = shop.run()
    row = shop.row(input="no anthropic key tonight")
    assert row["status"] == "deferred" and "ANTHROPIC_API_KEY" in row["error"]
    assert shop.row(input="openai works")["status"] == "review"
    assert not report.drained


def test_the_window_end_is_a_hard_stop(shop: Shop) -> None:
    for n in range(3):
        shop.add(type="listing", input=f"row {n}")
    shop.lock()
    shop.clock.set(at("2026-11-24T05:00"))
    report = shop.run(until=at("2026-11-24T05:00"))
    assert report.deferred.total() == 3 and not report.drained
    assert all(r["status"] == "deferred" and "window ended" in r["error"] for r in shop.rows())
    assert shop.fake.requests == []
    shop.clock.set(at("2026-11-24T17:00"))
    assert shop.lock().locked.total() == 3


def test_edit_without_text_and_unknown_choices_are_explained(shop: Shop) -> None:
    shop.add(type="listing", input="a")
    shop.add(type="listing", input="b")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    a, b = shop.row(input="a"), shop.row(input="b")
    shop.set(a["id"], review="edit")
    shop.set(b["id"], review="aprove")
    report = shop.harvest()
    assert len(report.problems) == 2
    assert shop.row(id=a["id"])["status"] == "review"
    assert "edited_output` is empty" in shop.row(id=a["id"])["error"]
    assert "'aprove' is not one of approve, edit, rework" in shop.row(id=b["id"])["error"]
    shop.set(b["id"], review="approve")
    shop.harvest()
    assert shop.row(id=b["id"])["status"] == "approved" and shop.row(id=b["id"])["error"] == ""


def test_a_cut_off_answer_is_flagged(shop: Shop) -> None:
    shop.add(type="listing", input="long")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.fake.truncate_next()
    shop.run()
    row = shop.row(input="long")
    assert row["status"] == "review" and "cut off at max_tokens" in row["error"]


def test_cost_is_priced_from_usage(shop: Shop) -> None:
    shop.add(type="listing", input="x" * 400)
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    body = shop.fake.requests[0]
    attempt = rows_in_state(shop, "SELECT input_tokens, output_tokens, cost_usd FROM attempts")[0]
    expected = (attempt["input_tokens"] * 0.4 + attempt["output_tokens"] * 1.6) / 1_000_000
    assert attempt["cost_usd"] == pytest.approx(expected)
    assert shop.row(input="x" * 400)["cost"] == pytest.approx(round(expected, 6))
    assert body.json["max_tokens"] == 400


def test_states_refuse_transitions_the_lifecycle_forbids(shop: Shop) -> None:
    from sheetbot.errors import TransitionError

    shop.add(type="listing", input="final")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    task_id = shop.row(input="final")["id"]
    shop.set(task_id, review="approve")
    shop.harvest()
    with shop.state() as state, pytest.raises(TransitionError):
        state.move(task_id, Status.LOCKED, now=shop.clock.now())


def test_an_old_copy_saved_over_the_board_is_repaired_at_the_next_phase(shop: Shop) -> None:
    import shutil

    shop.add(type="listing", input="lamp")
    shop.add(type="listing", input="chair")
    shop.lock()
    stale = shop.folder / "left-open-in-excel.xlsx"
    shutil.copy2(shop.book, stale)  # Ana's laptop keeps the 17:00 version open all night
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    assert all(r["status"] == "review" for r in shop.rows())

    shutil.copy(stale, shop.book)  # 08:00: Ana presses save; the night's outputs vanish from the board
    assert all(r["status"] == "locked" and r["output"] == "" for r in shop.rows())
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    rows = shop.rows()
    assert all(r["status"] == "review" and r["output"].startswith("OUTPUT for:") for r in rows)
    assert len(shop.fake.requests) == 2  # repaired from the state, not paid again


def test_a_harvest_writes_decisions_without_sending_the_outputs_again(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sheetbot.boards.local import LocalBoard

    shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.set(shop.row(input="lamp")["id"], review="approve")
    sent: list[dict[str, object]] = []
    real_write = LocalBoard.write

    def spy(self: LocalBoard, updates: Sequence[RowUpdate]) -> WriteResult:
        sent.extend(dict(u.values) for u in updates)
        return real_write(self, updates)

    monkeypatch.setattr(LocalBoard, "write", spy)
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    assert sent and all("output" not in cells for cells in sent)
    row = shop.row(input="lamp")
    assert row["status"] == "approved" and row["output"].startswith("OUTPUT for:")
