"""Open the board the YAML names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sheetbot.boards.base import Board
from sheetbot.config.models import Config
from sheetbot.errors import BoardError, ConfigError, Problem


def open_board(config: Config, *, env: Mapping[str, str] | None = None) -> Board:
    """``env`` holds the credentials' environment variables; None means this process's environment."""
    kind = config.board.kind
    if kind == "airtable":
        from sheetbot.boards.airtable import AirtableBoard

        return AirtableBoard.from_config(
            config.board,
            env=dict(os.environ) if env is None else env,
            id_column=config.columns.id,
            cost_column=config.columns.cost,
        )
    if kind == "google_sheets":
        from sheetbot.boards.google_sheets import GoogleSheetsBoard

        return GoogleSheetsBoard.connect(
            _required(config.board.spreadsheet, "spreadsheet", "the spreadsheet's key or its URL"),
            config.board.sheet,
            credentials=_google_credentials(config, dict(os.environ) if env is None else env),
            id_column=config.columns.id,
        )
    if kind == "local":
        from sheetbot.boards.local import LocalBoard

        return LocalBoard(config.resolve_path(config.board.path), config.board.sheet, id_column=config.columns.id)
    raise ConfigError(f"board.kind: {kind!r} is not a board kind: use local, google_sheets or airtable")


def _required(value: str | None, key: str, what: str) -> str:
    if not (value or "").strip():
        raise ConfigError([Problem(f"board.{key}", f"board.kind google_sheets needs board.{key}: set it to {what}")])
    return str(value).strip()


def _google_credentials(config: Config, env: Mapping[str, str]) -> Path:
    """The service-account key: board.credentials (relative to the YAML file), else GOOGLE_APPLICATION_CREDENTIALS."""
    if config.board.credentials:
        return config.resolve_path(config.board.credentials)
    from_env = (env.get("GOOGLE_APPLICATION_CREDENTIALS") or "").strip()
    if from_env:
        return Path(from_env).expanduser()
    raise BoardError(
        "no Google credentials: set board.credentials in the YAML to the service account's JSON key file, "
        "or the environment variable GOOGLE_APPLICATION_CREDENTIALS to its path"
    )
