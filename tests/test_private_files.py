"""Private files and honest exports (issue 11 items 7-9, and a state file with a garbled schema version).

Real files on a real disk under the usual umask 022: every file sheetbot creates that holds prompts,
outputs or customer data is 0600; a CSV export never hands a spreadsheet a live formula; a deleted lock
file never lets a second sheetbot work the board.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Shop

from sheetbot.cli.main import main
from sheetbot.cli.trial import start_trial, trial_state_path
from sheetbot.errors import StateError
from sheetbot.safety.csvsafe import safe_cell
from sheetbot.service.process_lock import lock_path
from sheetbot.state import State


def test_a_schema_version_that_is_not_a_number_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sheetbot.db"
    State(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'seven' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StateError) as caught:
        State(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "'seven'" in message
    assert "backup" in message


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_the_csv_export_hands_no_spreadsheet_a_formula(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.add(id="+1", type="listing", input="Mug", brand="Acme")  # ids a person typed that read as formulas
    shop.add(id="@SUM(A1)", type="listing", input="Tent", brand="Kestrel")
    shop.add(id="-2+3", type="listing", input="Lamp", brand="Acme")
    shop.harvest()  # the day's harvest gives the rows ids of sheetbot's, and says why in their error cell
    ids = [r["id"] for r in shop.rows()]
    assert not any(str(i).startswith(FORMULA_STARTS) for i in ids), ids  # each got an id of sheetbot's
    notes = [r["error"] for r in shop.rows()]
    assert all("looked like a spreadsheet formula" in n for n in notes), notes
    assert "+1" in notes[0] and "@SUM(A1)" in notes[1]
    shop.lock()
    assert [r["id"] for r in shop.rows()] == ids and [r["status"] for r in shop.rows()] == ["locked"] * 3
    with shop.state() as state:
        state.audit(
            "action",
            now=shop.clock.now(),
            task_id='=HYPERLINK("http://evil.test","click")',
            detail={"note": "=1+1"},
        )
        state.audit("action", now=shop.clock.now(), task_id="\t=cmd|' /C calc'!A0", detail={})
        state.audit("action", now=shop.clock.now(), task_id="\r+1", detail={})
    out = tmp_path / "audit.csv"
    assert main(["audit", "--config", str(shop.config_path), "--since", "3650d", "--out", str(out)]) == 0
    cells = [cell for row in csv.reader(out.open(encoding="utf-8", newline="")) for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_STARTS)]
    assert '\'=HYPERLINK("http://evil.test","click")' in cells  # kept readable, behind a quote
    assert "'\t=cmd|' /C calc'!A0" in cells and "'\r+1" in cells


def test_safe_cell_leaves_plain_values_alone() -> None:
    assert [safe_cell(v) for v in (1, 2.5, "t3abc", "", "a=b", "'=x")] == [1, 2.5, "t3abc", "", "a=b", "'=x"]
    assert [safe_cell(v) for v in ("=1", "+1", "-1", "@a", "\tx", "\rx")] == [
        "'=1",
        "'+1",
        "'-1",
        "'@a",
        "'\tx",
        "'\rx",
    ]


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask: files are 0644 unless sheetbot asks for less."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_every_file_with_customer_data_is_private(tmp_path: Path, umask_022: None) -> None:
    shop = Shop(tmp_path / "shop")
    shop.book.unlink()  # `sheetbot init` makes the workbook: through the board's own save
    assert main(["init", "--config", str(shop.config_path)]) == 0
    assert mode(shop.book) == 0o600
    shop.add(type="listing", input="Mug", brand="Acme")
    assert main(["lock", "--config", str(shop.config_path)]) == 0
    state = shop.config.state_path
    with shop.state() as open_state:  # an open connection keeps the WAL and SHM files there
        open_state.audit("action", now=shop.clock.now(), task_id="t1", detail={})
        files = [state, Path(f"{state}-wal"), Path(f"{state}-shm"), lock_path(state)]
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    for name in ("audit.csv", "audit.jsonl"):
        out = tmp_path / "exports" / name
        assert main(["audit", "--config", str(shop.config_path), "--since", "3650d", "--out", str(out)]) == 0
        assert mode(out) == 0o600, name
    with shop.context() as ctx:
        start_trial(ctx, "listing", sample=1)
    trial = trial_state_path(shop.config, "listing")
    assert trial.exists() and mode(trial) == 0o600
    demo = tmp_path / "demo"
    assert main(["demo", "--dir", str(demo)]) == 0
    made = [p for p in demo.rglob("*") if p.is_file() and p.suffix in (".xlsx", ".db", ".csv", ".jsonl")]
    assert made and {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from sheetbot.service.process_lock import board_lock
with board_lock(Path(sys.argv[1]), "serve"):
    print("ready", flush=True)
    time.sleep(60)
"""

TRY_THE_LOCK = """
import sys
from pathlib import Path
from sheetbot.errors import LockedError
from sheetbot.service.process_lock import board_lock
try:
    with board_lock(Path(sys.argv[1]), "run"):
        print("GOT THE LOCK")
except LockedError as exc:
    print(exc)
"""


def test_deleting_the_lock_file_lets_no_second_sheetbot_in(tmp_path: Path) -> None:
    state = tmp_path / "sheetbot.db"
    first = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        lock_path(state).unlink()  # "a stale lock": what a hurried admin does
        second = subprocess.run(
            [sys.executable, "-c", TRY_THE_LOCK, str(state)], capture_output=True, text=True, timeout=60
        )
        assert "GOT THE LOCK" not in second.stdout, second.stdout + second.stderr
        assert f"another sheetbot (serve, pid {first.pid}, since" in second.stdout and "--wait" in second.stdout
    finally:
        first.kill()
        first.wait()
    again = subprocess.run([sys.executable, "-c", TRY_THE_LOCK, str(state)], capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "GOT THE LOCK", again.stdout + again.stderr  # a dead holder's record is ignored
