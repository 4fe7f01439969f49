"""Open the board the YAML names."""

from __future__ import annotations

from sheetbot.boards.base import Board
from sheetbot.config import Config
from sheetbot.errors import ConfigError


def open_board(config: Config) -> Board:
    kind = config.board.kind
    if kind == "local":
        from sheetbot.boards.local import LocalBoard

        return LocalBoard(config.resolve_path(config.board.path), config.board.sheet, id_column=config.columns.id)
    raise ConfigError(f"board.kind: {kind!r} is not available in this version yet; use `local`")
