"""Batch mode against real faults (issue 10, items 1, 2, 3 and 15): a kill at every step of sending a
batch, a create the server performed but answered with a 502 or a dropped connection, a call that never
answers, task ids no vendor accepts as they are, and a batch the vendor refuses as a whole.

Whatever happens, the fake server creates each batch once and every row is billed once.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fakebatch import Killed
from harness import at
from test_batch import BLOG, LISTING, BatchShop, attempts, night

from sheetbot.batch.base import legacy_wire_id
from sheetbot.night.run import RunReport

WORKFLOW = {"anthropic": "blog", "openai": "listing"}
ROWS = 3
#: Every step of sending a batch where a process can die: before the upload reaches the server, after
#: the server stored it, before the create reaches it, after it created the batch (the id never stored),
#: and after the id was stored (at the first poll).
KILLS = [
    ("anthropic", "create", "kill"),
    ("anthropic", "create", "kill_after"),
    ("anthropic", "poll", "kill"),
    ("openai", "upload", "kill"),
    ("openai", "upload", "kill_after"),
    ("openai", "create", "kill"),
    ("openai", "create", "kill_after"),
    ("openai", "poll", "kill"),
]


def shop_for(tmp_path: Path, provider: str, **providers: Any) -> BatchShop:
    settings = {"batch_poll_s": 30, **providers}
    shop = BatchShop(
        tmp_path,
        workflows={"blog": BLOG, "listing": LISTING},
        providers={"openai": dict(settings), "anthropic": dict(settings)},
    )
    night(shop, *({"type": WORKFLOW[provider], "input": f"item {i}", "brand": "B"} for i in range(ROWS)))
    return shop


def assert_billed_once(shop: BatchShop, provider: str, rows: int = ROWS) -> None:
    """One batch created, each row's request in it once, one stored answer per row, every row done."""
    created = shop.batch.created(provider)
    assert len(created) == 1, f"{provider} created {created}"
    assert len(shop.batch.batches[created[0]]["lines"]) == rows
    ok = [a for a in attempts(shop) if a["ok"]]
    assert sorted(a["task_id"] for a in ok) == sorted({a["task_id"] for a in ok}) and len(ok) == rows
    assert {r["status"] for r in shop.rows()} == {"review"}


def run_within(shop: BatchShop, seconds: float, **kwargs: Any) -> RunReport:
    """The run, which must end within ``seconds`` of real time (a hang fails the test instead of the suite)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["report"] = shop.run(**kwargs)
        except BaseException as exc:
            out["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"the run was still going after {seconds}s of real time"
    if "error" in out:
        raise out["error"]
    report: RunReport = out["report"]
    return report


# -- items 1 and 2: nothing paid twice ------------------------------------------------------------------
@pytest.mark.parametrize(("provider", "op", "how"), KILLS)
def test_a_kill_at_any_step_of_sending_a_batch_never_pays_twice(
    tmp_path: Path, provider: str, op: str, how: str
) -> None:
    shop = shop_for(tmp_path, provider)
    shop.batch.fault(op, how)
    with pytest.raises(Killed):
        shop.run()
    report = shop.run()  # the restart, a new process on the same state file
    assert report.done.total() == ROWS
    assert_billed_once(shop, provider)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize("how", ["502_after", "drop_after", "502", "hang"])
def test_a_create_with_an_unclear_outcome_is_looked_up_before_another_is_sent(
    tmp_path: Path, provider: str, how: str
) -> None:
    """The server may or may not have made the batch: sheetbot finds it by its key, or knows it is not there."""
    shop = shop_for(tmp_path, provider, timeout_s=0.2, max_retries=2)  # the SDK may retry others, never a create
    shop.batch.fault("create", how)
    report = run_within(shop, 20)
    assert report.done.total() == ROWS
    assert shop.batch.calls.count("create") == (1 if how.endswith("_after") else 2)
    assert_billed_once(shop, provider)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_an_unclear_create_then_a_kill_is_found_by_the_restart(tmp_path: Path, provider: str) -> None:
    shop = shop_for(tmp_path, provider)
    shop.batch.fault("create", "502_after")
    shop.batch.fault("list", "kill")  # the process dies when it looks the batch up
    with pytest.raises(Killed):
        shop.run()
    assert shop.run().done.total() == ROWS
    assert_billed_once(shop, provider)


def test_openai_batches_carry_sheetbots_key(tmp_path: Path) -> None:
    shop = shop_for(tmp_path, "openai")
    shop.run()
    (batch,) = shop.batch.batches.values()
    key = batch["metadata"]["sheetbot_key"]
    assert {line["custom_id"].rsplit("-", 1)[0] for line in batch["lines"]} == {key}


def test_a_batch_someone_else_made_meanwhile_is_not_taken_for_ours(tmp_path: Path) -> None:
    """Anthropic batches carry no metadata: a candidate found by listing is only ours if its results say so."""
    shop = shop_for(tmp_path, "anthropic")
    shop.batch.fault("create", "502")  # nothing was created; meanwhile another program sends 3 requests
    other = [{"custom_id": f"theirs-{i}", "params": {"model": "m", "max_tokens": 5, "messages": []}} for i in range(3)]
    shop.batch._create(other, kind="anthropic")
    report = shop.run()
    assert report.done.total() == ROWS
    assert shop.batch.cancels == []  # never cancel a batch that may not be ours
    ours = [b for b in shop.batch.created("anthropic") if b != "msgbatch_1"]
    assert len(ours) == 1 and len(shop.batch.batches[ours[0]]["lines"]) == ROWS
    assert len(attempts(shop)) == ROWS


# -- item 3: the deadline wins ---------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_batch_calls_that_never_answer_cannot_hold_the_night(tmp_path: Path, provider: str) -> None:
    shop = shop_for(tmp_path, provider, timeout_s=0.05, batch_poll_s=600)
    for op in ("poll", "cancel", "list", "results"):
        shop.batch.fault(op, "hang", times=10_000)
    report = run_within(shop, 10)
    assert report.deferred.total() == ROWS and not report.drained
    assert shop.clock.now() <= at("2026-11-24T05:01")
    with shop.state() as state:
        assert [b["status"] for b in state.batches()] == ["open"]  # the next run polls it: paid once
    assert len(shop.batch.created(provider)) == 1


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_the_deadline_cuts_a_hanging_poll_short_of_the_calls_own_timeout(tmp_path: Path, provider: str) -> None:
    shop = shop_for(tmp_path, provider, timeout_s=600)
    shop.batch.fault("poll", "hang")
    started = time.monotonic()
    report = run_within(shop, 10, until=shop.clock.now() + timedelta(seconds=0.3))
    assert time.monotonic() - started < 5
    assert report.deferred.total() == ROWS
    assert shop.batch.cancels == shop.batch.created(provider)  # then cancelled, as at any window end


# -- item 15: custom_ids the vendors accept, and their reasons when they refuse -------------------------
ODD_IDS = ["Bestellung Müller #4711 / Rücksendung", "x" * 200, "ab_c:1:final", "Ø", "a-b"]


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_any_task_id_travels_as_a_custom_id_the_vendor_accepts(tmp_path: Path, provider: str) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG, "listing": LISTING})
    rows = ({"id": i, "type": WORKFLOW[provider], "input": f"row {n}", "brand": "B"} for n, i in enumerate(ODD_IDS))
    night(shop, *rows)
    report = shop.run()
    assert report.done.total() == len(ODD_IDS)
    wire = [line["custom_id"] for line in shop.batch.lines]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", w) for w in wire) and len(set(wire)) == len(ODD_IDS)
    for n, task_id in enumerate(ODD_IDS):  # results come back in reverse order: matched by the stored mapping
        assert shop.row(id=task_id)["output"].endswith(f"row {n}")


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_refused_batch_names_the_vendors_reason(tmp_path: Path, provider: str) -> None:
    shop = shop_for(tmp_path, provider)
    reason = "requests.1.params.system.0.text: text content blocks must be non-empty"
    shop.batch.refuse("create", reason)
    shop.run()
    errors = {r["error"] for r in shop.rows()}
    assert len(errors) == 1
    (error,) = errors
    assert reason in error and "max_tokens" not in error and provider in error
    assert shop.batch.created(provider) == []


# -- an upgrade: the previous version's state file and its batch still open ------------------------------
def test_a_batch_the_previous_version_left_open_is_collected_after_the_upgrade(tmp_path: Path) -> None:
    shop = shop_for(tmp_path, "anthropic")
    shop.batch.fault("poll", "kill")
    with pytest.raises(Killed):
        shop.run()
    # Make it what the previous version left: no found_by column, no wire ids stored, escaped custom_ids sent.
    (batch,) = shop.batch.batches.values()
    with shop.state() as state:
        (stored,) = state.batches()
        by_wire = {r["wire"]: c for c, r in stored["requests"].items()}
    for line in batch["lines"]:
        line["custom_id"] = legacy_wire_id(by_wire[line["custom_id"]])
    legacy = {c: {k: v for k, v in r.items() if k != "wire"} for c, r in stored["requests"].items()}
    with sqlite3.connect(shop.config.state_path) as db:
        db.execute("UPDATE batches SET requests = ?", (json.dumps(legacy),))
        db.execute("ALTER TABLE batches DROP COLUMN found_by")
        db.execute("DROP TABLE batch_sends")
    report = shop.run()
    assert report.done.total() == ROWS
    assert_billed_once(shop, "anthropic")
    with shop.state() as state:
        assert [b["found_by"] for b in state.batches()] == [""]
