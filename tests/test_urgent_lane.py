"""The urgent daytime lane (issue 14, item 3) under `sheetbot serve` on a fake clock, over several days.

A P0 row of a workflow with ``urgent:`` typed at 11:00 has its output by 11:15 while a P1 row waits for the
night; the lane's own cap and the night's money defer the rest to the night; the day's spend counts against
the coming night's budget; `report` keeps the lane's rows apart; a crash mid-run pays nothing twice.
"""

from __future__ import annotations

import copy
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from boards_under_test import Night, google_board
from harness import WORKFLOWS, Shop, at
from test_cli import models_server  # noqa: F401  (a fixture: the vendors' model lists on loopback)

from sheetbot.cli.main import main
from sheetbot.morning.metrics import night_metrics
from sheetbot.morning.urgent import with_urgent
from sheetbot.notify.base import MemoryNotifier
from sheetbot.service.serve import Server
from sheetbot.status import Status


def urgent_workflows(**urgent: Any) -> dict[str, Any]:
    workflows = copy.deepcopy(WORKFLOWS)
    workflows["listing"]["urgent"] = {"priority": "P0", "within_min": 15, "nightly_rows": 20, **urgent}
    return workflows


def server(phases: Any) -> Server:
    return Server(
        config=phases.config,
        open_context=phases.context,
        clock=phases.clock,
        sleep=lambda s: phases.clock.advance(seconds=s),
        notifier=MemoryNotifier(),
        max_sleep_s=86_400,
    )


def row(shop: Shop, text: str) -> dict[str, Any]:
    return shop.row(input=text)


def test_a_p0_row_typed_at_11_has_its_output_by_11_15_while_p1_waits_for_the_night(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows=urgent_workflows())
    shop.clock.set(at("2026-11-23T09:30"))
    serve = server(shop)
    serve.loop(until=at("2026-11-23T11:00"))
    shop.add(type="listing", priority="P0", input="Return: broken mug", brand="Acme")
    shop.add(type="listing", priority="P1", input="Mug listing", brand="Acme")
    shop.add(type="blog", priority="P0", input="No urgent lane here")
    serve.loop(until=at("2026-11-23T11:15"))
    urgent = row(shop, "Return: broken mug")
    assert urgent["status"] == "review" and urgent["output"].startswith("OUTPUT for:")
    assert urgent["night"] == "2026-11-23"  # the coming night's label: its budget counts this spend
    assert row(shop, "Mug listing")["output"] == "" and row(shop, "No urgent lane here")["output"] == ""
    assert ("urgent", at("2026-11-23T11:05")) in serve.done

    serve.loop(until=at("2026-11-24T09:30"))  # the night takes the rest; the urgent row is not run again
    assert row(shop, "Mug listing")["status"] == "review"
    assert row(shop, "No urgent lane here")["status"] == "review"
    assert len(shop.fake.requests) == 3
    # Day two: the lane works again, on its own.
    shop.add(type="listing", priority="P0", input="Return: cracked lid", brand="Acme")
    serve.loop(until=at("2026-11-24T09:45"))
    assert row(shop, "Return: cracked lid")["status"] == "review"
    assert row(shop, "Return: cracked lid")["night"] == "2026-11-24"


def test_the_lanes_cap_defers_the_rest_to_the_night_with_a_note(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows=urgent_workflows(nightly_rows=1))
    shop.clock.set(at("2026-11-23T10:00"))
    shop.add(type="listing", priority="P0", input="First return", brand="Acme")
    shop.add(type="listing", priority="P0", input="Second return", brand="Acme")
    serve = server(shop)
    serve.loop(until=at("2026-11-23T16:00"))
    assert row(shop, "First return")["status"] == "review"
    second = row(shop, "Second return")
    assert second["status"] == "deferred" and second["output"] == ""
    assert "today's urgent cap for listing (1 rows, urgent.nightly_rows) is full" in second["error"]
    assert len(shop.fake.requests) == 1  # looked at once: not locked again at each later tick
    serve.loop(until=at("2026-11-24T09:30"))
    assert row(shop, "Second return")["status"] == "review"  # the night ran it, not as failed
    shop.add(type="listing", priority="P0", input="Third return", brand="Acme")
    serve.loop(until=at("2026-11-24T10:00"))
    assert row(shop, "Third return")["status"] == "review"  # a new day, a new cap


def test_the_lane_does_not_take_the_nights_row_cap(tmp_path: Path) -> None:
    workflows = urgent_workflows()
    workflows["listing"]["nightly_rows"] = 1
    shop = Shop(tmp_path, workflows=workflows)
    shop.clock.set(at("2026-11-23T10:00"))
    shop.add(type="listing", priority="P0", input="Urgent return", brand="Acme")
    serve = server(shop)
    serve.loop(until=at("2026-11-23T12:00"))
    shop.add(type="listing", priority="P1", input="Tonight's row", brand="Acme")
    serve.loop(until=at("2026-11-24T09:30"))
    assert row(shop, "Tonight's row")["status"] == "review"


def long_answers(shop: Shop) -> None:
    """Answers of ~375 output tokens: one row spends most of what its worst case (400 tokens) holds."""
    shop.fake.reply_with(lambda body: "x" * 1500)


def test_the_days_spend_counts_against_the_nights_budget(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows=urgent_workflows(), limits={"nightly_usd": 0.001})
    long_answers(shop)
    shop.clock.set(at("2026-11-23T10:00"))
    shop.add(type="listing", priority="P0", input="Urgent return", brand="Acme")
    serve = server(shop)
    serve.loop(until=at("2026-11-23T12:00"))
    assert row(shop, "Urgent return")["status"] == "review"
    # A second urgent row the same day: the money left cannot hold its worst case, so it waits for the night.
    shop.add(type="listing", priority="P0", input="Later return", brand="Acme")
    shop.add(type="listing", priority="P1", input="Tonight's row", brand="Acme")
    serve.loop(until=at("2026-11-23T14:00"))
    later = row(shop, "Later return")
    assert later["status"] == "deferred" and "limits.nightly_usd" in later["error"]
    serve.loop(until=at("2026-11-24T04:59"))
    # The night started with the day's spend in its budget: neither fits the $0.001 left over 24 hours.
    assert row(shop, "Tonight's row")["status"] == "deferred"
    assert "limits.nightly_usd" in row(shop, "Tonight's row")["error"]
    assert len(shop.fake.requests) == 1
    # The next day is the next night's: its budget is fresh, and the lane takes the urgent row first.
    serve.loop(until=at("2026-11-24T05:30"))
    assert row(shop, "Later return")["status"] == "review" and row(shop, "Later return")["night"] == "2026-11-24"
    with shop.state() as state:
        assert state.spent_usd(night="2026-11-23") <= 0.001
        assert state.spent_usd(night="2026-11-24") <= 0.001


class Crash(BaseException):
    """The process dies mid-call (what `kill -9` leaves: the answers stored so far, nothing else)."""


def test_a_crash_mid_urgent_run_pays_only_for_what_is_missing(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows=urgent_workflows(), concurrency=1)
    shop.clock.set(at("2026-11-23T10:00"))
    for n in range(3):
        shop.add(type="listing", priority="P0", input=f"Return {n}", brand="Acme")

    def answer(body: dict[str, Any]) -> str:
        if len(shop.fake.requests) == 2:
            raise Crash
        return "stored before the crash"

    shop.fake.reply_with(answer)
    with pytest.raises(Crash):
        server(shop).loop(until=at("2026-11-23T10:30"))
    shop.fake.reply_with(lambda body: "after the restart")
    server(shop).loop(until=at("2026-11-23T10:30"))
    outputs = sorted(row(shop, f"Return {n}")["output"] for n in range(3))
    assert outputs == ["after the restart", "after the restart", "stored before the crash"]
    assert len(shop.fake.requests) == 4  # one answered, one lost in the crash, two after: none paid twice


def test_report_keeps_the_daytime_rows_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = Shop(tmp_path, workflows=urgent_workflows(nightly_rows=1))
    shop.clock.set(at("2026-11-23T11:00"))
    shop.add(type="listing", priority="P0", input="Urgent return", brand="Acme")
    shop.add(type="listing", priority="P0", input="Over the cap", brand="Acme")
    shop.add(type="listing", priority="P1", input="Tonight's row", brand="Acme")
    serve = server(shop)
    serve.loop(until=at("2026-11-24T09:30"))
    with shop.state() as state:
        metrics = with_urgent(night_metrics(state), state, shop.config)
    (listing,) = [m for m in metrics if m.night == "2026-11-23" and m.workflow == "listing"]
    assert listing.done == 3  # the night's figures keep their meaning: every row of the night's label
    urgent = listing.urgent
    assert urgent is not None
    assert (urgent.rows, urgent.done, urgent.deferred, urgent.within_min, urgent.on_time) == (1, 1, 1, 15, 1)
    assert urgent.max_latency_min is not None and urgent.max_latency_min <= 15
    assert urgent.cost_usd > 0
    assert main(["report", "--json", "--config", str(shop.config_path)]) == 0
    (entry,) = [e for e in json.loads(capsys.readouterr().out) if e["night"] == "2026-11-23"]
    assert entry["urgent"]["rows"] == 1 and entry["done"] == 3
    assert main(["report", "--config", str(shop.config_path)]) == 0
    text = capsys.readouterr().out
    assert "urgent lane (daytime)" in text and "1/1 ≤15m" in text
    lane = text.split("urgent lane (daytime)", 1)[1].split("\n\n", 1)[0]
    assert max(len(line) for line in lane.splitlines()) <= 100


def test_a_p0_row_on_google_sheets_runs_in_the_day(tmp_path: Path) -> None:
    with ExitStack() as stack:
        under = google_board(tmp_path, stack, ["type", "priority", "input", "brand"])
        night = Night(tmp_path, under.board, workflows=urgent_workflows())
        night.clock.set(at("2026-11-23T11:00"))
        under.person.add(type="listing", priority="P0", input="Return on Google", brand="Acme")
        under.person.add(type="listing", priority="P1", input="Night on Google", brand="Acme")
        server(night).loop(until=at("2026-11-23T11:15"))
        rows = {r["input"]: r for r in under.person.rows()}
        assert rows["Return on Google"]["status"] == "review"
        assert rows["Return on Google"]["output"].startswith("OUTPUT for:")
        assert rows["Night on Google"]["output"] == ""
        with night.state() as state:
            assert {t.status for t in state.tasks().values()} == {Status.REVIEW, Status.QUEUED}


def test_an_urgent_lane_on_a_batch_workflow_is_a_check_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = Shop(tmp_path, workflows=urgent_workflows())
    text = shop.config_path.read_text(encoding="utf-8")
    text = text.replace("    model: gpt-4.1-mini\n", "    model: gpt-4.1-mini\n    mode: batch\n", 1)
    shop.config_path.write_text(text, encoding="utf-8")
    assert main(["check", "--config", str(shop.config_path)]) != 0
    out = capsys.readouterr()
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.strip().startswith("urgent:"))
    (said,) = [s for s in (out.out + out.err).splitlines() if "workflows.listing.urgent" in s]
    assert f"sheetbot.yaml:{line})" in said and "mode: batch" in said


@pytest.mark.usefixtures("models_server")
def test_the_readme_example_passes_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The urgent lane", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "sheetbot.yaml"
    head = "timezone: Europe/Berlin\nboard: {kind: local, path: queue.xlsx, sheet: Queue}\nstate: sheetbot.db\n"
    head += "providers:\n  anthropic: {api_key_env: ANTHROPIC_API_KEY}\n"
    head += "prices:\n  claude-sonnet-4-6: {input: 3.0, output: 15.0}\n"
    path.write_text(head + example, encoding="utf-8")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert main(["init", "--config", str(path)]) == 0
    capsys.readouterr()
    assert main(["check", "--config", str(path)]) == 0, capsys.readouterr().out
