"""The Google Sheets board against the Sheets API faked at HTTP: quotas, RAW writes, retries, errors, init, protection.

The board-independent promises (ids, formulas, the lifecycle) are in test_board_contract.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from boards_under_test import BOARDS, PREVIEW, Night, measure_phases
from fake_google import ACCOUNT, KEY, FakeGoogleSheets, Formula
from harness import at

from sheetbot.boards.base import RowUpdate, SchemaSpec, Sheet
from sheetbot.boards.factory import open_board
from sheetbot.boards.google_sheets import PLACE_BY_READ_S, PROTECTION, GoogleSheetsBoard, value_bodies
from sheetbot.config.load import load_config
from sheetbot.errors import BoardError, BoardNotFound, BoardWriteError, ConfigError
from sheetbot.status import Decision, Status

HEADER = ["id", "type", "priority", "input", "brand", "status", "night", "output", "review", "notes",
          "edited_output", "error", "cost"]  # fmt: skip
SPEC = SchemaSpec(
    columns=["id", "type", "input", "priority", *HEADER[5:]],
    review_column="review",
    review_choices=[str(d) for d in Decision],
    status_column="status",
    status_choices=[str(s) for s in Status],
    wide_columns=["input", "output"],
)


@pytest.fixture
def google(tmp_path: Path) -> Iterator[FakeGoogleSheets]:
    with FakeGoogleSheets(tmp_path, {"Queue": [HEADER], "Notes": [["anything"]]}) as fake:
        yield fake


def typed(google: FakeGoogleSheets, n: int) -> None:
    for i in range(n):
        google.person("Queue").add(id=f"t{i}", type="listing", input=f"item {i}")


# -- quotas: the same few requests per phase, whatever the number of rows ------------------------------
def test_requests_per_phase_do_not_grow_with_the_rows(tmp_path: Path) -> None:
    small = measure_phases(BOARDS["google_sheets"], tmp_path / "small", 10)
    large = measure_phases(BOARDS["google_sheets"], tmp_path / "large", 1_000)
    assert small == large
    # init: 2 for the columns, 1 to draw the Dashboard tab (a new tab: sheetbot/boards/dashboard_google.py);
    # the run: a read before any call (rows the state file does not know stop it: night/repair.py), a re-read
    # at the end (edits and copies made during the night) that places its write-back (read_then_write);
    # the harvest: 2 for the decisions (a read that places its write: read_then_write), then 1 for the
    # Dashboard (its layout kept in the state since init)
    assert large == {"init": 2 + 1, "lock": 3, "run": 1 + 2, "run write-back": 2, "harvest": 2 + 1}
    assert max(large.values()) <= 3  # the aim: a 10,000-row night stays far from 60 requests a minute


def test_read_is_one_request_and_write_two(google: FakeGoogleSheets) -> None:
    typed(google, 50)
    board = google.board("Queue")
    board.read()
    assert google.api_calls() == {"values.get": 1}
    updates = [RowUpdate(f"t{i}", {"status": "review", "output": f"out {i}"}) for i in range(50)]
    board.write(updates)
    assert google.api_calls() == {"values.get": 2, "values.batchUpdate": 1}


def test_a_write_sends_only_cells_that_differ_from_the_sheet(google: FakeGoogleSheets) -> None:
    typed(google, 3)
    board = google.board("Queue")
    board.write([RowUpdate(f"t{i}", {"status": "review", "output": "x" * 1_000, "cost": 0.5}) for i in range(3)])
    board.write(
        [RowUpdate(f"t{i}", {"status": "approved" if i == 1 else "review", "output": "x" * 1_000}) for i in range(3)]
    )
    last = google.requests[-1]
    assert last.kind == "values.batchUpdate" and last.size < 300
    assert last.body["data"] == [{"range": "'Queue'!F3:F3", "majorDimension": "ROWS", "values": [["approved"]]}]
    calls = google.api_calls()
    assert board.write([RowUpdate("t1", {"status": "approved"})]).written == 1
    assert google.api_calls() - calls == {"values.get": 1}  # nothing to change: no write request at all


def test_every_values_write_is_raw_and_formula_text_is_stored_as_a_string(google: FakeGoogleSheets) -> None:
    typed(google, 3)
    board = google.board("Queue")
    board.read()
    board.write(
        [RowUpdate("t0", {"output": "=1+1"}), RowUpdate("t1", {"output": "@me +1 -1"}), RowUpdate("t2", {"x": "=A1"})]
    )
    writes = [r for r in google.requests if r.kind == "values.batchUpdate"]
    assert writes and all(r.body["valueInputOption"] == "RAW" for r in writes)
    person = google.person("Queue")
    assert person.cell("t0", "output") == "=1+1" and not isinstance(person.cell("t0", "output"), Formula)
    assert person.cell("t2", "x") == "=A1" and not person.is_formula("t2", "x")
    cell = board._http.fetch_sheet_metadata(KEY, params={"ranges": "'Queue'!H2", "includeGridData": "true"})
    assert cell["sheets"][0]["data"][0]["rowData"][0]["values"][0]["userEnteredValue"] == {"stringValue": "=1+1"}


def test_columns_the_header_lacks_are_added_in_the_same_write(google: FakeGoogleSheets) -> None:
    typed(google, 2)
    board = google.board("Queue")
    board.read()
    board.write([RowUpdate("t1", {"summary": "short"})])
    assert google.counts["values.batchUpdate"] == 1
    assert google.person("Queue").header()[-1] == "summary"
    assert google.person("Queue").cell("t1", "summary") == "short"


def test_a_moved_id_column_is_found_again(google: FakeGoogleSheets) -> None:
    typed(google, 2)
    board = google.board("Queue")
    board.read()
    for line in google.grid("Queue").cells:  # a person inserts a column left of `id`
        line.insert(0, None)
    google.grid("Queue").cells[0][0] = "added by Ana"
    assert board.write([RowUpdate("t1", {"status": "review"})]).missing == []
    assert google.person("Queue").cell("t1", "status") == "review"


# -- request size ------------------------------------------------------------------------------------
def test_a_big_write_is_split_to_stay_under_the_request_limit(google: FakeGoogleSheets) -> None:
    typed(google, 60)
    board = google.board("Queue", max_request_bytes=4_000)
    board.read()
    board.write([RowUpdate(f"t{i}", {"output": f"{i}: " + "x" * 300}) for i in range(60)])
    writes = [r for r in google.requests if r.kind == "values.batchUpdate"]
    assert len(writes) > 4 and all(r.size <= 4_000 for r in writes)
    assert all(google.person("Queue").cell(f"t{i}", "output").startswith(f"{i}: x") for i in range(60))


def test_value_bodies_group_consecutive_rows_and_skip_cells_with_null() -> None:
    (body,) = value_bodies("'Queue'", {2: {1: "a", 3: "b"}, 3: {2: 1.5}, 7: {0: ""}}, 2_000_000)
    assert body["valueInputOption"] == "RAW"
    assert body["data"] == [
        {"range": "'Queue'!B2:D3", "majorDimension": "ROWS", "values": [["a", None, "b"], [None, 1.5, None]]},
        {"range": "'Queue'!A7:A7", "majorDimension": "ROWS", "values": [[""]]},
    ]
    bodies = value_bodies("'Queue'", {r: {0: "y" * 500} for r in range(2, 40)}, 2_000)
    assert len(bodies) > 1 and all(len(json.dumps(b)) <= 2_000 for b in bodies)
    assert sum(len(d["values"]) for b in bodies for d in b["data"]) == 38


# -- retries -----------------------------------------------------------------------------------------
def test_429_then_success_is_retried_with_backoff_and_no_real_sleep(google: FakeGoogleSheets) -> None:
    typed(google, 1)
    board = google.board("Queue")
    google.fail_next(429, times=2, kind="values.get")
    started = time.monotonic()
    assert [r.get("id") for r in board.read().rows] == ["t0"]
    assert time.monotonic() - started < 1
    assert google.counts["values.get"] == 3
    assert len(google.sleeps) == 2 and 1 <= google.sleeps[0] <= 2 and 2 <= google.sleeps[1] <= 3


def test_a_write_retried_after_429_finds_its_rows_again(google: FakeGoogleSheets) -> None:
    typed(google, 3)
    board = google.board("Queue")
    board.read()
    person = google.person("Queue")
    google.fail_next(429, kind="values.batchUpdate", then=lambda: person.sort_by("input", reverse=True))
    board.write([RowUpdate("t2", {"status": "review"})])
    assert [r.kind for r in google.requests[1:]] == ["values.get", "values.batchUpdate"] * 2
    assert [r["status"] for r in person.rows()] == ["review", "", ""]  # t2 was sorted to the top meanwhile
    assert person.cell("t2", "status") == "review"


def test_a_write_planned_from_its_read_places_by_that_read_and_reads_again_only_when_it_must(
    google: FakeGoogleSheets,
) -> None:
    """read_then_write: one values.get fewer than read() then write(), unless the plan took longer than
    PLACE_BY_READ_S (a person may have sorted meanwhile), names a column the read lacked, or meets a 429."""
    typed(google, 3)
    board = google.board("Queue")
    person = google.person("Queue")
    out = [RowUpdate(f"t{i}", {"status": "review", "output": f"out {i}"}) for i in range(3)]
    board.read_then_write(lambda sheet: out)
    assert google.api_calls() == {"values.get": 1, "values.batchUpdate": 1}
    assert [person.cell(f"t{i}", "output") for i in range(3)] == ["out 0", "out 1", "out 2"]

    def slow(sheet: Sheet) -> list[RowUpdate]:
        person.sort_by("input", reverse=True)
        google.seconds += PLACE_BY_READ_S + 0.5
        return [RowUpdate(f"t{i}", {"output": f"later {i}"}) for i in range(3)]

    google.counts.clear()
    board.read_then_write(slow)
    assert google.api_calls() == {"values.get": 2, "values.batchUpdate": 1}
    assert [person.cell(f"t{i}", "output") for i in range(3)] == ["later 0", "later 1", "later 2"]

    def new_column(sheet: Sheet) -> list[RowUpdate]:
        person.set("t1", owner="Ana")  # a person's new column, typed in meanwhile: its header is not sheetbot's
        return [RowUpdate("t1", {"checklist": "☐ a"})]  # a column the read did not have

    google.counts.clear()
    board.read_then_write(new_column)
    assert google.api_calls()["values.get"] == 2
    assert person.header()[-2:] == ["owner", "checklist"]
    assert person.cell("t1", "checklist") == "☐ a" and person.cell("t1", "owner") == "Ana"

    google.counts.clear()
    google.fail_next(429, kind="values.batchUpdate", then=lambda: person.sort_by("input"))
    board.read_then_write(lambda sheet: [RowUpdate("t2", {"status": "approved"})])
    assert google.api_calls() == {"values.get": 2, "values.batchUpdate": 2}  # the retry read the ids again
    assert person.cell("t2", "status") == "approved" and person.cell("t0", "status") == "review"


def test_server_errors_give_up_after_the_last_try_with_a_write_error(google: FakeGoogleSheets) -> None:
    typed(google, 1)
    board = google.board("Queue")
    board.read()
    google.fail_next(503, times=100)
    with pytest.raises(BoardWriteError, match=r"HTTP 503 .* written on the next run") as err:
        board.write([RowUpdate("t0", {"status": "review"})])
    assert "\n" not in str(err.value)
    assert len(google.sleeps) == board.attempts - 1 and max(google.sleeps) <= 65


# -- errors people can fix ---------------------------------------------------------------------------
def test_a_sheet_not_shared_with_the_service_account_names_its_email(google: FakeGoogleSheets) -> None:
    google.shared = False
    board = google.board("Queue")
    with pytest.raises(BoardNotFound) as err:
        board.read()
    message = str(err.value)
    assert ACCOUNT in message and "Share" in message and "\n" not in message
    with pytest.raises(BoardWriteError, match=ACCOUNT):
        board.write([RowUpdate("t0", {"status": "review"})])


def test_an_unknown_spreadsheet_says_to_check_the_key(google: FakeGoogleSheets) -> None:
    with pytest.raises(BoardNotFound, match=r"spreadsheet 1nope was not found: check board\.spreadsheet"):
        google.board("Queue", spreadsheet="1nope").read()


def test_a_missing_worksheet_lists_the_ones_that_exist(google: FakeGoogleSheets) -> None:
    with pytest.raises(BoardNotFound, match=r"has no worksheet 'Queu' \(it has 'Queue', 'Notes'\)"):
        google.board("Queu").read()


def test_a_refused_key_names_the_service_account(google: FakeGoogleSheets) -> None:
    google._public = _other_public_key()  # Google no longer knows the key in the file
    with pytest.raises(BoardError, match=f"Google refused the service account {ACCOUNT}"):
        google.board("Queue").read()


def _other_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


def test_the_spreadsheet_by_url_or_by_key(google: FakeGoogleSheets) -> None:
    typed(google, 1)
    url = f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid=0"
    assert google.board("Queue", spreadsheet=url).key == KEY
    assert [r.get("id") for r in google.board("Queue", spreadsheet=url).read().rows] == ["t0"]
    with pytest.raises(BoardError, match="is not a Google Sheets URL"):
        google.board("Queue", spreadsheet="https://example.com/sheet")


# -- credentials through the factory -----------------------------------------------------------------
def _config(folder: Path, **board: str) -> Path:
    path = folder / "sheetbot.yaml"
    config = {
        "board": {"kind": "google_sheets", "sheet": "Queue", **board},
        "providers": {"openai": {}},
        "prices": {"gpt-4.1-mini": {"input": 0.4, "output": 1.6}},
        "workflows": PREVIEW,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_factory_takes_the_key_file_from_the_yaml_or_the_environment(
    google: FakeGoogleSheets, tmp_path: Path
) -> None:
    typed(google, 1)
    from_yaml = load_config(_config(tmp_path, spreadsheet=KEY, credentials="service-account.json"))
    board = open_board(from_yaml, env={})
    assert isinstance(board, GoogleSheetsBoard) and board.account_email == ACCOUNT
    assert len(board.read().rows) == 1
    from_env = load_config(_config(tmp_path, spreadsheet=KEY))
    assert isinstance(
        open_board(from_env, env={"GOOGLE_APPLICATION_CREDENTIALS": str(google.credentials)}), GoogleSheetsBoard
    )

    with pytest.raises(BoardError, match="or the environment variable GOOGLE_APPLICATION_CREDENTIALS"):
        open_board(from_env, env={})
    missing = load_config(_config(tmp_path, spreadsheet=KEY, credentials="keys/none.json"))
    with pytest.raises(BoardError, match=r"keys/none.json not found: .*GOOGLE_APPLICATION_CREDENTIALS"):
        open_board(missing, env={})
    with pytest.raises(ConfigError, match=r"board\.spreadsheet"):
        open_board(load_config(_config(tmp_path, credentials="service-account.json")), env={})
    (tmp_path / "oauth.json").write_text(json.dumps({"installed": {"client_id": "x"}}), encoding="utf-8")
    with pytest.raises(BoardError, match=r"oauth\.json is not a service-account key"):
        open_board(load_config(_config(tmp_path, spreadsheet=KEY, credentials="oauth.json")), env={})


# -- init --------------------------------------------------------------------------------------------
def test_init_adds_the_dropdown_colours_and_frozen_header_once(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["type", "input"], ["listing", "tent"]]}) as google:
        board = google.board("Queue")
        assert board.ensure_schema(SPEC)[0] == "id"
        grid = google.grid("Queue")
        header = google.person("Queue").header()
        review = header.index("review")
        (dropdown,) = grid.validations
        assert dropdown["range"]["startColumnIndex"] == review and dropdown["range"]["startRowIndex"] == 1
        rule = dropdown["rule"]
        assert rule["condition"]["type"] == "ONE_OF_LIST" and rule["strict"] and rule["showCustomUi"]
        assert [v["userEnteredValue"] for v in rule["condition"]["values"]] == ["approve", "edit", "rework"]
        colours = {r["booleanRule"]["condition"]["values"][0]["userEnteredValue"] for r in grid.conditional_formats}
        assert {"review", "approved", "failed", "deferred"} <= colours
        assert all(r["ranges"][0]["startColumnIndex"] == header.index("status") for r in grid.conditional_formats)
        assert grid.frozen_rows == 1
        assert google.api_calls() == {"spreadsheets.get": 1, "spreadsheets.batchUpdate": 1}

        rules = len(grid.conditional_formats)
        assert board.ensure_schema(SPEC) == []
        assert google.api_calls() == {"spreadsheets.get": 2, "spreadsheets.batchUpdate": 1}
        assert len(grid.conditional_formats) == rules and len(grid.validations) == 1
        assert google.person("Queue").rows()[0]["input"] == "tent"


def test_init_keeps_a_dropdown_people_made_and_grows_a_narrow_grid(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["type", "input", "review"]]}) as google:
        grid = google.grid("Queue")
        grid.column_count = 4
        theirs = {"condition": {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": "ok"}]}}
        grid.validations.append(
            {"range": {"sheetId": 0, "startRowIndex": 1, "startColumnIndex": 2, "endColumnIndex": 3}, "rule": theirs}
        )
        google.board("Queue").ensure_schema(SPEC)
        assert [v["rule"] for v in grid.validations] == [theirs]
        assert grid.column_count == 12 and google.person("Queue").header()[3:5] == ["id", "priority"]


def test_init_creates_a_missing_worksheet(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Sheet1": []}) as google:
        assert google.board("Queue").ensure_schema(SPEC) == list(SPEC.columns)
        assert [g.title for g in google.grids] == ["Sheet1", "Queue"]
        assert google.grid("Queue").sheet_id == 1 and google.grid("Queue").frozen_rows == 1


def test_a_board_that_cannot_be_read_after_the_run_still_gets_its_outputs_and_the_night_says_what_it_skipped(
    tmp_path: Path,
) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "priority", "input", "brand"]]}) as google:
        person = google.person("Queue")
        for name in ("alpha", "bravo"):
            person.add(type="listing", input=name)
        night = Night(tmp_path, google.board("Queue"), workflows=PREVIEW)
        night.lock()
        night.clock.set(at("2026-11-24T01:00"))
        board = google.board("Queue")
        # the run's first read passes; its last one fails every try; the write's own read of the ids passes
        google.fail_next(503, times=board.attempts, kind="values.get", skip=1)
        report = night.run()
        (note,) = [n for n in report.notes if "could not be read after the run" in n]
        assert "rows edited after the lock were not checked" in note and "\n" not in note
        assert [r["status"] for r in person.rows()] == ["review", "review"]
        assert all(r["output"] for r in person.rows())


# -- optional protection of locked rows --------------------------------------------------------------
def test_locked_inputs_are_protected_at_the_lock_and_released_at_the_harvest(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "priority", "input", "brand"]]}) as google:
        person = google.person("Queue")
        for name in ("alpha", "bravo", "charlie"):
            person.add(type="listing", input=name)
        person.add(type="nonsense", input="never locked")
        night = Night(tmp_path, google.board("Queue"), protect_locked=True)
        night.lock()
        grid = google.grid("Queue")
        (protected,) = grid.protected  # rows 2-4, columns type..brand: one range
        assert protected["description"] == PROTECTION and protected["warningOnly"] is True
        span = protected["range"]
        assert (span["startRowIndex"], span["endRowIndex"]) == (1, 4)
        assert (span["startColumnIndex"], span["endColumnIndex"]) == (1, 5)

        night.lock()  # a second lock the same evening replaces sheetbot's ranges, never stacks them
        assert len(grid.protected) == 1

        night.clock.set(at("2026-11-24T01:00"))
        night.run()
        assert len(grid.protected) == 1
        night.clock.set(at("2026-11-24T09:00"))
        night.harvest()
        assert grid.protected == []


def test_protection_is_off_unless_the_yaml_asks(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "priority", "input"]]}) as google:
        google.person("Queue").add(type="listing", input="alpha")
        Night(tmp_path, google.board("Queue")).lock()
        assert google.grid("Queue").protected == []
