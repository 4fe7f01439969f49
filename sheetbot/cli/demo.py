"""`sheetbot demo`: a sample shop's queue and a whole night in preview mode, offline, in one folder."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from sheetbot.boards.capabilities import AppendsRows
from sheetbot.config.load import load_config
from sheetbot.config.schema import modeline
from sheetbot.errors import SheetbotError
from sheetbot.morning.metrics import night_metrics
from sheetbot.morning.summary import describe_lock, describe_run, morning_summary
from sheetbot.night.harvest import harvest
from sheetbot.night.lock import lock
from sheetbot.night.run import run
from sheetbot.safety.private import open_private
from sheetbot.service.wiring import open_context

PRICES = {
    "claude-sonnet-4-6": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.30},
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.10},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60, "cache_read": 0.10},
}


def recipes() -> dict[str, dict[str, Any]]:
    """The ready workflows shipped with sheetbot (config/workflows/ in the source tree)."""
    workflows: dict[str, dict[str, Any]] = {}
    for entry in sorted(files("sheetbot.recipes").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            workflows.update(yaml.safe_load(entry.read_text(encoding="utf-8"))["workflows"])
    return workflows


def demo_rows() -> list[dict[str, str]]:
    rows = yaml.safe_load(files("sheetbot.cli").joinpath("demo_data.yaml").read_text(encoding="utf-8"))
    return [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]


def demo_config() -> dict[str, Any]:
    workflows = recipes()
    for workflow in workflows.values():
        workflow["mode"] = "preview"
    return {
        "timezone": "Europe/Berlin",
        "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue"},
        "state": "sheetbot.db",
        "schedule": {"cutoff": "17:00", "window": {"start": "01:00", "end": "05:00"}, "summary": "09:00"},
        "limits": {"nightly_rows": 200, "nightly_usd": 25.0},
        "providers": {
            "anthropic": {"api_key_env": "ANTHROPIC_API_KEY"},
            "openai": {"api_key_env": "OPENAI_API_KEY", "base_url": None},
        },
        "prices": PRICES,
        "workflows": workflows,
    }


def _board_table(rows: list[dict[str, str]], columns: dict[str, str]) -> Table:
    table = Table(title="the board after the night (queue.xlsx)", show_lines=False, expand=False)
    widths = {"id": 8, "type": 20, "status": 8, "output / error": 34}
    for name, width in widths.items():
        table.add_column(name, overflow="ellipsis", no_wrap=True, min_width=width, max_width=width)
    for row in rows:
        text = row.get(columns["error"]) or row.get(columns["output"], "")
        table.add_row(
            row.get(columns["id"], ""),
            row.get(columns["type"], ""),
            row.get(columns["status"], ""),
            text.replace("\n", " "),
        )
    return table


def run_demo(folder: Path, *, console: Console, force: bool = False) -> int:
    if folder.exists() and any(folder.iterdir()):
        if not force:
            raise SheetbotError(
                f"{folder} already exists: pass --force to start the demo over, or --dir for another folder"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "sheetbot.yaml"
    header = modeline() + (
        "# sheetbot demo: every workflow runs in preview mode (no model is called).\n"
        "# To go live: set a workflow's `mode: live` and export ANTHROPIC_API_KEY or OPENAI_API_KEY.\n"
    )
    config_path.write_text(
        header + yaml.safe_dump(demo_config(), sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    config = load_config(config_path)
    console.print(f"[bold]sheetbot demo[/] in {folder.resolve()}")
    with open_context(config_path, config=config, env={}) as ctx:
        columns = ctx.col
        rows = demo_rows()
        # A new board, made as `init` makes one (the reviewer's order, dropdowns, colours), then the team's rows.
        ctx.board.ensure_schema(ctx.schema(with_template_columns=True))
        typed = [{columns.get(k, k): v for k, v in row.items() if v} for row in rows]
        assert isinstance(ctx.board, AppendsRows)  # the demo's board is a workbook
        ctx.board.append_rows(typed)
        console.print(f"1. wrote {len(rows)} sample rows to {config.board.path} (an outdoor-gear shop's queue)")
        console.print("2. the cutoff: [bold]sheetbot lock[/]")
        console.print(describe_lock(lock(ctx)), markup=False)
        console.print(
            "3. the night window: [bold]sheetbot run[/] (preview mode: prompts and cost estimates, no model calls)"
        )
        console.print(describe_run(run(ctx)), markup=False)
        harvest(ctx)  # nothing decided yet: shows the morning's starting point
        sheet = ctx.board.read()
        console.print(_board_table([dict(r.values) for r in sheet.rows], dict(columns)))
        console.print(morning_summary(night_metrics(ctx.state, nights=1), board=ctx.board.describe()), markup=False)
    console.print(
        f"""
Next:
  • open {folder / "queue.xlsx"}: pick approve / edit / rework in the review column, then
      sheetbot harvest --config {config_path}
  • go live: set `mode: live` on a workflow in {config_path}, then
      export ANTHROPIC_API_KEY=…   (or OPENAI_API_KEY=…)
      sheetbot lock --config {config_path} && sheetbot run --config {config_path}
  • or use a local OpenAI-compatible server (Ollama, vLLM): under providers, set
      openai: {{base_url: "http://localhost:11434/v1"}}  and price its model at 0""",
        markup=False,
        highlight=False,
    )
    return 0


def write_sample_workbook(path: Path, sheet: str, rows: list[dict[str, str]], columns: dict[str, str]) -> None:
    """The team's side of a bench: a workbook with rows typed in, ids blank (sheetbot assigns them)."""
    from openpyxl import Workbook

    extra = sorted({k for row in rows for k in row} - set(columns) - set(columns.values()))
    header = [columns[c] for c in ("id", "type", "priority", "input")] + extra
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    ws.append(header)
    for row in rows:
        values = {columns.get(k, k): v for k, v in row.items()}
        ws.append([values.get(c, "") or None for c in header])
    for line in ws.iter_rows(min_row=2):
        for cell in line:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # a sample input that starts with "=" stays text
    with open_private(path, "wb") as handle:  # the board: owner only, like every workbook sheetbot makes
        book.save(handle)
