"""`sheetbot check`: every problem with the YAML, the board and the credentials, at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sheetbot.boards.factory import open_board
from sheetbot.configfile import inspect_config
from sheetbot.errors import ConfigError, SheetbotError
from sheetbot.night.prompts import missing_columns
from sheetbot.providers.factory import make_provider


def run_check(path: str | Path, *, env: Mapping[str, str] | None = None) -> list[str]:
    env = dict(os.environ) if env is None else env
    try:
        config, problems = inspect_config(path)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    found = [str(p) for p in problems]
    if config is None:
        return found
    columns = config.columns.logical()
    try:
        sheet = open_board(config).read()
    except SheetbotError as exc:
        found.append(f"board: {exc}")
    else:
        header = set(sheet.columns)
        absent = [c for c in columns.values() if c not in header]
        if absent:
            found.append(f"board: {', '.join(absent)} missing: run `sheetbot init` to add them")
        for name, wf in config.workflows.items():
            for column in missing_columns(wf, header, columns):
                found.append(
                    f"workflows.{name}: the template uses {{{{{column}}}}}, but the board has no column "
                    f"{column!r}: add it to the board or fix the template"
                )
    used = {wf.provider for wf in config.workflows.values() if wf.mode != "preview"}
    for name in sorted(used):
        if name not in config.providers:
            continue
        try:
            make_provider(name, config.providers[name], env=env)
        except SheetbotError as exc:
            found.append(f"providers.{name}: {exc}")
    return found
