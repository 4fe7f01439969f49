"""A whole sheetbot on a real .xlsx and a real SQLite file, with the model faked at the SDK's transport.

`Shop` plays both sides: sheetbot's phases (lock, run, harvest) and the people who
use the workbook in between (typing rows, sorting, deleting, copying, reviewing),
who edit the file with openpyxl exactly as Excel would leave it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
import yaml
from fakellm import FakeLLM
from openpyxl import Workbook, load_workbook

from sheetbot.batch.mode import Batches
from sheetbot.boards.factory import open_board
from sheetbot.clock import FakeClock
from sheetbot.config.load import load_config
from sheetbot.config.models import Config
from sheetbot.morning.steps import Morning
from sheetbot.night.context import NightContext
from sheetbot.night.harvest import HarvestReport, harvest
from sheetbot.night.lock import LockReport, lock
from sheetbot.night.run import RunReport, run
from sheetbot.providers.base import EventHook, Provider
from sheetbot.providers.factory import make_provider
from sheetbot.state import Attempt, State

BERLIN = ZoneInfo("Europe/Berlin")
ENV = {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test"}
HEADER = ["id", "type", "priority", "input", "brand"]

WORKFLOWS: dict[str, dict[str, Any]] = {
    "listing": {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "max_tokens": 400,
        "system": "You write listings for {{brand}}.",
        "prompt": "Rewrite this listing:\n{{input}}",
        "checklist": ["Facts unchanged"],
    },
    "blog": {
        "provider": "anthropic",
        "model": "claude-sonnet-4-6",
        "max_tokens": 800,
        "system": "You write blog drafts.",
        "prompt": "Draft a post about: {{input}}",
    },
}


def shop_config(tmp_path: Path, **extra: Any) -> Path:
    """A Shop's valid YAML with ``extra`` top-level keys set (what a config test varies)."""
    shop = Shop(tmp_path)  # the workbook and a valid YAML
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data.update(extra)
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return shop.config_path


def stored_call(task_id: str, **fields: Any) -> Attempt:
    """A model call as the state stores it: a good answer to attempt 1's only step, unless ``fields`` differ."""
    values: dict[str, Any] = {
        "night": "2026-11-23",
        "attempt": 1,
        "step": "final",
        "workflow": "listing",
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "mode": "live",
        "system": "",
        "prompt": "p",
        "ok": True,
        "output": f"answer {task_id}",
    }
    return Attempt(task_id=task_id, **(values | fields))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def sent(request: requests.PreparedRequest) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a request `responses` caught, as a receiver gets them (bytes, text headers)."""
    body, headers = request.body, dict(request.headers)
    assert isinstance(body, bytes), f"the body was sent as {type(body).__name__}, not bytes"
    text = {name: value for name, value in headers.items() if isinstance(value, str)}
    assert text == headers, "a header was sent as bytes"
    return body, text


class Phases:
    """sheetbot's side of a test: each phase in a fresh context, as the CLI runs them."""

    config: Config

    def context(self) -> AbstractContextManager[NightContext]:
        raise NotImplementedError

    def lock(self) -> LockReport:
        with self.context() as ctx:
            return lock(ctx)

    def run(self, **kwargs: Any) -> RunReport:
        with self.context() as ctx:
            return run(ctx, **kwargs)

    def harvest(self) -> HarvestReport:
        with self.context() as ctx:
            return harvest(ctx)

    def state(self) -> State:
        return State(self.config.state_target)


class Shop(Phases):
    def __init__(
        self,
        folder: Path,
        *,
        workflows: dict[str, dict[str, Any]] | None = None,
        limits: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        concurrency: int = 4,
        create: bool = True,
        providers: dict[str, dict[str, Any]] | None = None,
        state: str = "sheetbot.db",
        state_schema: str | None = None,
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.book = folder / "queue.xlsx"
        self.config_path = folder / "sheetbot.yaml"
        self.env = dict(ENV if env is None else env)
        self.fake = FakeLLM()
        self.clock = FakeClock(at("2026-11-23T17:00"))
        config: dict[str, Any] = {
            "timezone": "Europe/Berlin",
            "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue"},
            "state": state,
            **({"state_schema": state_schema} if state_schema else {}),
            "limits": {"nightly_rows": 200, "nightly_usd": 25.0, **(limits or {})},
            "providers": {
                "openai": {
                    "api_key_env": "OPENAI_API_KEY",
                    "base_url": "https://llm.test/v1",
                    "max_retries": 0,
                    "concurrency": concurrency,
                },
                "anthropic": {"api_key_env": "ANTHROPIC_API_KEY", "max_retries": 0, "concurrency": concurrency},
            },
            "prices": {
                "gpt-4.1-mini": {"input": 0.4, "output": 1.6},
                "claude-sonnet-4-6": {"input": 3.0, "output": 15.0},
            },
            "workflows": workflows or WORKFLOWS,
        }
        for name, overrides in (providers or {}).items():
            config["providers"][name].update(overrides)
        self.slept: list[float] = []
        if create:
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.config = load_config(self.config_path)
        if create:
            self._new_workbook()

    def _new_workbook(self) -> None:
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "Queue"
        ws.append(HEADER)
        wb.save(self.book)

    # -- sheetbot's side -----------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        """Waiting takes no real time: the fake clock moves instead."""
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)

    def monotonic(self) -> float:
        return self.clock.now().timestamp()

    @contextmanager
    def context(self) -> Iterator[NightContext]:
        state = State(self.config.state_target, busy_timeout_s=self.config.limits.state_wait_s)

        def providers(name: str, on_event: EventHook | None) -> Provider:
            return make_provider(
                name,
                self.config.providers[name],
                env=self.env,
                http_client=self.fake.async_client(),
                monotonic=self.monotonic,
                sleep=self.sleep,
                on_event=on_event,
            )

        try:
            yield NightContext(
                config=self.config,
                board=open_board(self.config),
                state=state,
                clock=self.clock,
                providers=providers,
                env=self.env,
                sleep=self.sleep,
                batch_mode=Batches(),  # the layers above the night, as sheetbot/service/wiring.py hands them
                morning=Morning(),
            )
        finally:
            state.close()

    # -- the people's side ---------------------------------------------------------
    def _edit(self) -> Any:
        return _Editing(self.book)

    def add(self, **values: Any) -> None:
        with self._edit() as ws:
            header = [c.value for c in ws[1]]
            for key in values:
                if key not in header:
                    header.append(key)
                    ws.cell(row=1, column=len(header), value=key)
            ws.append([values.get(h) for h in header])

    def rows(self, sheet: str = "Queue") -> list[dict[str, Any]]:
        ws = load_workbook(self.book)[sheet]
        header = [c.value for c in ws[1]]
        out = []
        for line in ws.iter_rows(min_row=2, values_only=True):
            if any(v is not None for v in line):
                out.append({h: ("" if v is None else v) for h, v in zip(header, line, strict=False) if h})
        return out

    def row(self, **match: Any) -> dict[str, Any]:
        found = [r for r in self.rows() if all(r.get(k) == v for k, v in match.items())]
        assert len(found) == 1, f"{len(found)} rows match {match}: {self.rows()}"
        return found[0]

    def set(self, task_id: str, **values: Any) -> None:
        with self._edit() as ws:
            header = [c.value for c in ws[1]]
            for line in ws.iter_rows(min_row=2):
                if line[header.index("id")].value == task_id:
                    for key, value in values.items():
                        line[header.index(key)].value = value
                    return
            raise KeyError(task_id)

    def sort_by(self, column: str, *, reverse: bool = False) -> None:
        with self._edit() as ws:
            header = [c.value for c in ws[1]]
            data = [list(r) for r in ws.iter_rows(min_row=2, values_only=True)]
            data.sort(key=lambda r: str(r[header.index(column)] or ""), reverse=reverse)
            ws.delete_rows(2, ws.max_row)
            for line in data:
                ws.append(line)

    def insert_at_top(self, **values: Any) -> None:
        with self._edit() as ws:
            header = [c.value for c in ws[1]]
            ws.insert_rows(2)
            for key, value in values.items():
                ws.cell(row=2, column=header.index(key) + 1, value=value)

    def delete(self, task_id: str) -> None:
        with self._edit() as ws:
            header = [c.value for c in ws[1]]
            for index, line in enumerate(ws.iter_rows(min_row=2), start=2):
                if line[header.index("id")].value == task_id:
                    ws.delete_rows(index)
                    return
            raise KeyError(task_id)

    def copy(self, task_id: str) -> None:
        """Copy a whole row, id included, to the bottom (what Ctrl-C, Ctrl-V does)."""
        with self._edit() as ws:
            header = [c.value for c in ws[1]]
            for line in ws.iter_rows(min_row=2, values_only=True):
                if line[header.index("id")] == task_id:
                    ws.append(list(line))
                    return
            raise KeyError(task_id)


class _Editing:
    """Open the workbook, let the test change it, save it as a person would (new mtime)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Any:
        self.wb = load_workbook(self.path)
        return self.wb["Queue"]

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            before = self.path.stat().st_mtime_ns
            self.wb.save(self.path)
            after = self.path.stat()
            if after.st_mtime_ns <= before:  # coarse filesystem clocks: make the save visible
                os.utime(self.path, ns=(after.st_atime_ns, before + 1_000_000))
