"""`sheetbot demo`: a sample shop's queue and a whole night in preview mode, offline, in one folder."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from sheetbot.boards.capabilities import AppendsRows
from sheetbot.config.example import example_config
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

#: The demo's YAML, as a person would write it: the ready workflows come in by `include:`.
DEMO_YAML = """\
# sheetbot demo: an outdoor-gear shop's queue. Every workflow runs in preview mode (no model is called).
# Check it: `sheetbot check --config sheetbot.yaml`. Every option, explained: @EXAMPLE@
timezone: Europe/Berlin           # the times below are local times in this zone

board: {kind: local, path: queue.xlsx, sheet: Queue}   # the queue and the review board: this workbook
state: sheetbot.db                # SQLite: what each night locked, ran and cost

schedule:                         # rows are locked at the cutoff and run inside the window
  cutoff: "17:00"
  window: {start: "01:00", end: "05:00"}
  summary: "09:00"                # the morning summary

limits: {nightly_rows: 200, nightly_usd: 25.0}   # the whole night, across every workflow

providers:                        # API keys come from environment variables, never from this file
  anthropic: {api_key_env: ANTHROPIC_API_KEY}
  openai: {api_key_env: OPENAI_API_KEY}
  # A local OpenAI-compatible server (Ollama, vLLM) is one more entry, its models priced at 0:
  # ollama: {kind: openai, base_url: "http://localhost:11434/v1", api_key_env: OLLAMA_API_KEY}

prices:                           # dollars per million tokens
  claude-sonnet-4-6: {input: 3.0, output: 15.0, cache_write: 3.75, cache_read: 0.30}
  claude-haiku-4-5: {input: 1.0, output: 5.0, cache_write: 1.25, cache_read: 0.10}
  gpt-4.1-mini: {input: 0.40, output: 1.60, cache_read: 0.10}

# The ten ready workflows, one file each: prompt, model, checklist. To go live with one, set
# `mode: live` in its file and export its provider's API key. Add your own under `workflows:`.
include: [workflows/*.yaml]
"""

#: The workflow the demo's "go live" advice names (its rows typed after the cutoff wait in the queue).
GO_LIVE = "listing_rewrite"


def recipes() -> dict[str, dict[str, Any]]:
    """The ready workflows shipped with sheetbot (config/workflows/ in the source tree)."""
    workflows: dict[str, dict[str, Any]] = {}
    for text in _recipe_files(preview=False).values():
        workflows.update(yaml.safe_load(text)["workflows"])
    return workflows


def _recipe_files(*, preview: bool) -> dict[str, str]:
    """Each recipe file's text by name; with preview, its `mode: live` set to preview (comments kept)."""
    texts = {}
    for entry in sorted(files("sheetbot.recipes").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            text = entry.read_text(encoding="utf-8")
            if preview:
                text = re.sub(r"^(\s+mode:) live\s*$", r"\1 preview   # live: call the model", text, flags=re.M)
            texts[entry.name] = text
    return texts


def _rows(name: str) -> list[dict[str, str]]:
    rows = yaml.safe_load(files("sheetbot.cli").joinpath(name).read_text(encoding="utf-8"))
    return [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]


def demo_rows() -> list[dict[str, str]]:
    """The team's queue on the demo's first day."""
    return _rows("demo_data.yaml")


def later_rows() -> list[dict[str, str]]:
    """Rows typed after the cutoff: they wait, queued, for the next `sheetbot lock`."""
    return _rows("demo_later.yaml")


def demo_config() -> dict[str, Any]:
    """The demo's YAML as one mapping, the workflows inlined (in preview): for benches that write their own."""
    config: dict[str, Any] = yaml.safe_load(DEMO_YAML)
    del config["include"]
    workflows = recipes()
    for workflow in workflows.values():
        workflow["mode"] = "preview"
    config["workflows"] = workflows
    return config


def sheetbot_command(*, argv0: str | None = None, executable: str | None = None, path: str | None = None) -> str:
    """The shell command that runs this sheetbot: `sheetbot` when PATH finds this very one, else its full path.

    A venv that is not activated (or a second install first on PATH) would make a bare `sheetbot` in the
    demo's advice fail or run another version; the printed commands must work as printed.
    """
    executable = executable or sys.executable
    running = _running_sheetbot(argv0 if argv0 is not None else sys.argv[0], executable)
    if running is None:  # run as `python -m sheetbot`
        return f"{shlex.quote(executable)} -m sheetbot"
    found = shutil.which("sheetbot", path=path)
    if found is not None and _same_file(found, running):
        return "sheetbot"
    return shlex.quote(str(running))


def _running_sheetbot(argv0: str, executable: str) -> Path | None:
    first = Path(argv0)
    if first.stem == "sheetbot" and first.is_file():
        return first.absolute()
    scripts = Path(executable).parent  # the venv's bin/ (Scripts on Windows) holds the console script
    return next((scripts / n for n in ("sheetbot", "sheetbot.exe") if (scripts / n).is_file()), None)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _activate_hint(command: str) -> str:
    """When the commands carry a full path: the line that makes a bare `sheetbot` work instead."""
    if command == "sheetbot":
        return ""
    activate = Path(shlex.split(command)[0]).parent / "activate"
    if not activate.is_file() or activate.parent.name != "bin":
        return ""
    plain = f"source {shlex.quote(str(activate))}"
    return f"\n  (the commands name this install's sheetbot in full; for a plain `sheetbot`: {plain})"


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
    config_path.write_text(modeline() + DEMO_YAML.replace("@EXAMPLE@", str(example_config())), encoding="utf-8")
    (folder / "workflows").mkdir()
    for name, text in _recipe_files(preview=True).items():
        (folder / "workflows" / name).write_text(text, encoding="utf-8")
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
        later = later_rows()
        ctx.board.append_rows([{columns.get(k, k): v for k, v in row.items() if v} for row in later])
        console.print(f"4. after the cutoff the team typed {len(later)} more rows: queued for the next lock")
    cmd = sheetbot_command()
    cfg = shlex.quote(str(config_path))
    console.print(
        f"""
Next:{_activate_hint(cmd)}
  • open {shlex.quote(str(folder / "queue.xlsx"))}: pick approve / edit / rework in the review column, then
      {cmd} harvest --config {cfg}
  • go live: set `mode: live` in {shlex.quote(str(folder / "workflows" / f"{GO_LIVE}.yaml"))}, then
      export ANTHROPIC_API_KEY=…   (or OPENAI_API_KEY=…)
      {cmd} lock --config {cfg} && {cmd} run --config {cfg}
    (lock takes the {len(later)} rows typed after the cutoff)
  • or use a local OpenAI-compatible server (Ollama, vLLM): see the comment under providers: in
      {cfg}""",
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
