"""Every board the contract suite runs against, each with a `person` who edits it the way people do.

A factory takes a folder, an ExitStack (for clean-up) and the team's header (None: the board does not
exist yet) and returns a BoardUnderTest. To add a backend, write a factory and register it in BOARDS.
`Night` runs sheetbot's phases on any board, with the model faked at the SDKs' HTTP transport.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

import yaml
from fake_airtable import ENDPOINT as AIRTABLE_ENDPOINT
from fake_airtable import TOKEN as AIRTABLE_TOKEN
from fake_airtable import AirtablePerson, FakeAirtable, FakeTime
from fake_google import FakeGoogleSheets
from fakellm import FakeLLM
from harness import ENV, WORKFLOWS, Phases, at
from openpyxl import Workbook, load_workbook

from sheetbot.batch.mode import Batches
from sheetbot.boards.airtable import AirtableBoard
from sheetbot.boards.base import Board
from sheetbot.boards.local import LocalBoard
from sheetbot.boards.memory import MemoryBoard
from sheetbot.clock import FakeClock
from sheetbot.config.load import load_config
from sheetbot.morning.dashboard import refresh_dashboard
from sheetbot.morning.steps import Morning
from sheetbot.night.context import NightContext
from sheetbot.providers.factory import make_provider
from sheetbot.state import State

TEAM_HEADER = ["id", "type", "priority", "input", "brand"]


class Person(Protocol):
    """Someone using the board between sheetbot's phases. Values are what a person sees, as text."""

    def add(self, **values: object) -> None: ...
    def rows(self) -> list[dict[str, str]]: ...
    def set(self, task_id: str, **values: object) -> None: ...
    def sort_by(self, column: str, *, reverse: bool = False) -> None: ...
    def insert_at_top(self, **values: object) -> None: ...
    def delete(self, task_id: str) -> None: ...
    def copy(self, task_id: str) -> None: ...
    def is_formula(self, task_id: str, column: str) -> bool: ...


@dataclass
class BoardUnderTest:
    name: str
    board: Board
    person: Person
    #: The write after ``skip`` successful ones fails the way this backend fails; later writes succeed.
    break_write: Callable[[int], None]
    #: API requests by kind so far (None for boards without an API: the file, memory).
    api_calls: Callable[[], Counter[str]] | None = None
    #: Whether row order means anything (record-based boards have no positions).
    positional: bool = True
    #: Moves the board's own clock on (a slow step between its read and its write); nothing for boards without one.
    pass_time: Callable[[float], None] = lambda seconds: None


Factory = Callable[[Path, ExitStack, Sequence[str] | None], BoardUnderTest]


# -- local: a real .xlsx on disk -------------------------------------------------------------------
class WorkbookPerson:
    """Edits the workbook with openpyxl and saves it, as Excel would leave it."""

    def __init__(self, path: Path, sheet: str = "Queue") -> None:
        self.path, self.sheet = path, sheet

    @contextmanager
    def _editing(self) -> Iterator[Any]:
        book = load_workbook(self.path)
        yield book[self.sheet]
        before = self.path.stat().st_mtime_ns
        book.save(self.path)
        after = self.path.stat()
        if after.st_mtime_ns <= before:  # coarse filesystem clocks: make the save visible
            os.utime(self.path, ns=(after.st_atime_ns, before + 1_000_000))

    @staticmethod
    def _header(ws: Any) -> list[Any]:
        return [c.value for c in ws[1]]

    def _line(self, ws: Any, task_id: str) -> int:
        col = self._header(ws).index("id")
        found = [r for r in range(2, ws.max_row + 1) if ws.cell(row=r, column=col + 1).value == task_id]
        if len(found) != 1:
            raise KeyError(f"{len(found)} rows with id {task_id!r}")
        return found[0]

    def _fill(self, ws: Any, row: int, values: dict[str, object]) -> None:
        header = self._header(ws)
        for key, value in values.items():
            if key not in header:
                header.append(key)
                ws.cell(row=1, column=len(header), value=key)
            cell = ws.cell(row=row, column=header.index(key) + 1, value=None if value is None else str(value))
            if value is not None:
                cell.data_type = "s"  # typed as text, never a formula (like pasting plain text)

    def add(self, **values: object) -> None:
        with self._editing() as ws:
            self._fill(ws, ws.max_row + 1, values)

    def rows(self) -> list[dict[str, str]]:
        from sheetbot.boards.values import as_text as _text

        ws = load_workbook(self.path)[self.sheet]
        header = self._header(ws)
        out = []
        for line in ws.iter_rows(min_row=2, values_only=True):
            values = {h: _text(v) for h, v in zip(header, line, strict=False) if h}
            if any(v.strip() for v in values.values()):
                out.append(values)
        return out

    def set(self, task_id: str, **values: object) -> None:
        with self._editing() as ws:
            self._fill(ws, self._line(ws, task_id), values)

    def sort_by(self, column: str, *, reverse: bool = False) -> None:
        with self._editing() as ws:
            col = self._header(ws).index(column)
            data = [list(r) for r in ws.iter_rows(min_row=2, values_only=True)]
            data.sort(key=lambda r: str(r[col] or ""), reverse=reverse)
            ws.delete_rows(2, ws.max_row)
            for line in data:
                ws.append(line)

    def insert_at_top(self, **values: object) -> None:
        with self._editing() as ws:
            ws.insert_rows(2)
            self._fill(ws, 2, values)

    def delete(self, task_id: str) -> None:
        with self._editing() as ws:
            ws.delete_rows(self._line(ws, task_id))

    def copy(self, task_id: str) -> None:
        with self._editing() as ws:
            ws.append([c.value for c in ws[self._line(ws, task_id)]])

    def is_formula(self, task_id: str, column: str) -> bool:
        ws = load_workbook(self.path)[self.sheet]
        cell = ws.cell(row=self._line(ws, task_id), column=self._header(ws).index(column) + 1)
        return bool(cell.data_type == "f")


def local_board(folder: Path, stack: ExitStack, header: Sequence[str] | None) -> BoardUnderTest:
    path = folder / "queue.xlsx"
    if header is not None:
        book = Workbook()
        ws = book.active
        assert ws is not None
        ws.title = "Queue"
        ws.append(list(header))
        book.save(path)
    real_replace, target = os.replace, path.resolve()

    def break_write(skip: int) -> None:
        """The save after ``skip`` good ones meets PermissionError, as on Windows with the file open in Excel."""
        left = [skip]

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if Path(dst).resolve() == target and left[0] >= 0:
                left[0] -= 1
                if left[0] < 0:
                    raise PermissionError(13, "Permission denied", str(dst))
            real_replace(src, dst, *args, **kwargs)

        stack.enter_context(mock.patch("os.replace", replace))

    return BoardUnderTest("local", LocalBoard(path, "Queue"), WorkbookPerson(path), break_write)


# -- memory ---------------------------------------------------------------------------------------
class MemoryPerson:
    def __init__(self, board: MemoryBoard) -> None:
        self.board = board

    def _values(self, values: dict[str, object]) -> dict[str, str]:
        for key in values:
            if key not in self.board.columns:
                self.board.columns.append(key)
        return {k: "" if v is None else str(v) for k, v in values.items()}

    def add(self, **values: object) -> None:
        self.board.rows.append(self._values(values))

    def rows(self) -> list[dict[str, str]]:
        return [{c: r.get(c, "") for c in self.board.columns} for r in self.board.rows]

    def set(self, task_id: str, **values: object) -> None:
        self.board.find(task_id).update(self._values(values))

    def sort_by(self, column: str, *, reverse: bool = False) -> None:
        self.board.sort_by(column, reverse=reverse)

    def insert_at_top(self, **values: object) -> None:
        self.board.rows.insert(0, self._values(values))

    def delete(self, task_id: str) -> None:
        self.board.rows.remove(self.board.find(task_id))

    def copy(self, task_id: str) -> None:
        self.board.rows.append(dict(self.board.find(task_id)))

    def is_formula(self, task_id: str, column: str) -> bool:
        return False  # the memory board holds text only


def memory_board(folder: Path, stack: ExitStack, header: Sequence[str] | None) -> BoardUnderTest:
    board = MemoryBoard(list(header) if header is not None else None)

    def break_write(skip: int) -> None:
        real, left = board.write, [skip]

        def write(updates: Any) -> Any:
            if left[0] > 0:
                left[0] -= 1
                return real(updates)
            board.write = real  # type: ignore[method-assign]
            board.fail_writes = True
            try:
                return real(updates)
            finally:
                board.fail_writes = False

        board.write = write  # type: ignore[method-assign]

    return BoardUnderTest("memory", board, MemoryPerson(board), break_write)


# -- Google Sheets, faked at HTTP -------------------------------------------------------------------
def google_board(folder: Path, stack: ExitStack, header: Sequence[str] | None) -> BoardUnderTest:
    google = stack.enter_context(FakeGoogleSheets(folder, {"Queue": [list(header)]} if header is not None else {}))
    if header is None:
        google.add_sheet("Sheet1")  # a new spreadsheet has one empty sheet
    board = google.board("Queue")

    def break_write(skip: int) -> None:
        """Google answers 503 to that write until the board gives up (every retry of it)."""
        google.fail_next(503, times=board.attempts, kind="values.batchUpdate", skip=skip)

    def pass_time(seconds: float) -> None:
        google.seconds += seconds

    person = google.person("Queue") if header is not None else _LazyPerson(lambda: google.person("Queue"))
    return BoardUnderTest("google_sheets", board, person, break_write, api_calls=google.api_calls, pass_time=pass_time)


class _LazyPerson:
    """A person for a worksheet that `init` creates later."""

    def __init__(self, make: Callable[[], Person]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)


# -- Airtable, faked at HTTP ----------------------------------------------------------------------
def airtable_board(folder: Path, stack: ExitStack, header: Sequence[str] | None) -> BoardUnderTest:
    """A table in a base (None: the base has no such table yet); pacing and retries sleep on a fake clock."""
    time = FakeTime()
    fake = stack.enter_context(FakeAirtable(time=time, fields=list(header) if header is not None else None))
    env = {"AIRTABLE_TOKEN": AIRTABLE_TOKEN}
    board = AirtableBoard(
        base="Shop", table="Queue", env=env, endpoint_url=AIRTABLE_ENDPOINT, monotonic=time.monotonic, sleep=time.sleep
    )

    def break_write(skip: int) -> None:
        """Airtable answers 503 to every try of that write's first PATCH, until the board gives up (a write
        through write() or read_then_write(): both go through _write_kept)."""
        real, left = board._write_kept, [skip]

        def write(updates: Any, ids: Any) -> Any:
            if not updates:
                return real(updates, ids)
            if left[0] > 0:
                left[0] -= 1
                return real(updates, ids)
            board._write_kept = real  # type: ignore[method-assign]
            fake.fail_next(503, times=board.attempts, kind="update")
            try:
                return real(updates, ids)
            finally:
                fake.failures.clear()

        board._write_kept = write  # type: ignore[method-assign]

    person = AirtablePerson(fake)
    return BoardUnderTest(
        "airtable", board, person, break_write, api_calls=person.api_calls, positional=False, pass_time=time.sleep
    )


BOARDS: dict[str, Factory] = {
    "local": local_board,
    "memory": memory_board,
    "google_sheets": google_board,
    "airtable": airtable_board,
}


# -- a whole night on any board --------------------------------------------------------------------
class Night(Phases):
    """sheetbot's phases on ``board`` with a real SQLite state, a fake clock and the model faked at HTTP."""

    def __init__(
        self, folder: Path, board: Board, *, workflows: dict[str, Any] | None = None, **board_keys: Any
    ) -> None:
        self.board = board
        self.fake = FakeLLM()
        self.clock = FakeClock(at("2026-11-23T17:00"))
        path = folder / "sheetbot.yaml"
        config = {
            "timezone": "Europe/Berlin",
            "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue", **board_keys},
            "state": "sheetbot.db",
            "limits": {"nightly_rows": 100_000, "nightly_usd": 1_000.0},
            "providers": {
                "openai": {"api_key_env": "OPENAI_API_KEY", "base_url": "https://llm.test/v1", "max_retries": 0},
                "anthropic": {"api_key_env": "ANTHROPIC_API_KEY", "max_retries": 0},
            },
            "prices": {
                "gpt-4.1-mini": {"input": 0.4, "output": 1.6},
                "claude-sonnet-4-6": {"input": 3.0, "output": 15.0},
            },
            "workflows": workflows or WORKFLOWS,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.config = load_config(path)

    @contextmanager
    def context(self) -> Iterator[NightContext]:
        state = State(self.config.state_path)

        def providers(name: str, on_event: Any) -> Any:
            return make_provider(
                name, self.config.providers[name], env=ENV, http_client=self.fake.async_client(), on_event=on_event
            )

        try:
            yield NightContext(
                config=self.config,
                board=self.board,
                state=state,
                clock=self.clock,
                providers=providers,
                env=ENV,
                batch_mode=Batches(),
                morning=Morning(),
            )
        finally:
            state.close()


class Metered:
    """A board that notes the API requests each of its calls made, under the phase the test names."""

    def __init__(self, board: Board, api_calls: Callable[[], Counter[str]]) -> None:
        self.inner, self._api_calls = board, api_calls
        self.phase = ""
        #: (phase, board method, API requests it made)
        self.calls: list[tuple[str, str, int]] = []
        # The board's methods are bound here, not only found through __getattr__: from Python 3.12,
        # isinstance(metered, DrawsDashboard) looks attributes up statically (sheetbot/boards/capabilities.py).
        for name in dir(board):
            if not name.startswith("_") and callable(getattr(board, name)):
                setattr(self, name, self.__getattr__(name))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name.startswith("_") or name == "describe" or not callable(attr):
            return attr

        def metered(*args: Any, **kwargs: Any) -> Any:
            before = self._api_calls().total()
            try:
                return attr(*args, **kwargs)
            finally:
                self.calls.append((self.phase, name, self._api_calls().total() - before))

        return metered

    def per_phase(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for phase, _, n in self.calls:
            totals[phase] += n
        return dict(totals)

    def most_in_one_call(self) -> int:
        return max((n for _, _, n in self.calls), default=0)


#: A workflow that calls no model (the rendered prompt is the output): for counting board requests at scale.
PREVIEW = {
    "listing": {"provider": "openai", "model": "gpt-4.1-mini", "mode": "preview", "prompt": "Rewrite:\n{{input}}"}
}
PHASES = ("init", "lock", "run", "run write-back", "harvest")


def measure_phases(factory: Factory, folder: Path, rows: int) -> dict[str, int]:
    """API requests per phase of one night of ``rows`` typed rows: `init` (columns missing, no dashboard yet), the
    lock, the run (its final write-back also on its own) and the harvest after a reviewer approved every row."""
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        under = factory(folder, stack, ["type", "priority", "input", "brand"])
        if under.api_calls is None:
            raise LookupError(f"the {under.name} board has no API whose requests could be counted")
        for n in range(rows):
            under.person.add(type="listing", input=f"item {n}", brand="Kestrel")
        metered = Metered(under.board, under.api_calls)
        night = Night(folder, metered, workflows=PREVIEW)
        with night.context() as ctx:
            spec = ctx.schema()
        metered.phase = "init"  # what `sheetbot init` does: the columns, then the dashboard
        metered.ensure_schema(spec)
        with night.context() as ctx:
            refresh_dashboard(ctx, force=True)
        metered.phase = "lock"
        night.lock()
        night.clock.set(at("2026-11-24T01:00"))
        metered.phase = "run"
        night.run()
        writes = ("write", "read_then_write")  # the run's last read and write are one call where the board can
        write_back = [n for phase, name, n in metered.calls if phase == "run" and name in writes][-1]
        for row in under.person.rows():
            under.person.set(row["id"], review="approve")
        night.clock.set(at("2026-11-24T09:00"))
        metered.phase = "harvest"
        night.harvest()
    return {**metered.per_phase(), "run write-back": write_back}
