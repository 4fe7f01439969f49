"""Wire a NightContext from a config file: the real board, state, clock and providers.

The CLI and `serve` use this; tests build NightContext themselves with fakes at the edges. Here the layers
above the night are handed to it: batch mode (sheetbot.batch) and the harvest's morning steps
(sheetbot.morning), which the night declares (sheetbot/night/context.py) and never imports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from sheetbot.batch.mode import Batches
from sheetbot.boards.factory import open_board
from sheetbot.clock import Clock, SystemClock
from sheetbot.config.load import load_config
from sheetbot.config.models import Config
from sheetbot.morning.steps import Morning
from sheetbot.night.context import EventHook, NightContext, Progress, ProviderFactory, no_progress
from sheetbot.providers.base import Provider
from sheetbot.providers.factory import make_provider
from sheetbot.providers.shared import Accounts
from sheetbot.safety import secrets
from sheetbot.state import State


def provider_factory(
    config: Config, env: Mapping[str, str], *, accounts: Accounts | None = None, board: str = ""
) -> ProviderFactory:
    """``accounts``: when `serve` works many boards, the accounts they share (rate limits, breaker)."""

    def make(name: str, on_event: EventHook) -> Provider:
        entry = config.providers[name]
        account = None if accounts is None else accounts.account(board, name, entry, env)
        return make_provider(name, entry, env=env, on_event=on_event, account=account)

    return make


@contextmanager
def open_context(
    config_path: str | Path,
    *,
    clock: Clock | None = None,
    progress: Progress = no_progress,
    env: Mapping[str, str] | None = None,
    config: Config | None = None,
    accounts: Accounts | None = None,
    board: str = "",
) -> Iterator[NightContext]:
    config = config or load_config(config_path)
    env = dict(os.environ) if env is None else env
    secrets.learn_config(config, env)  # from here on every exit masks the values the YAML names
    state = State(config.state_target, busy_timeout_s=config.limits.state_wait_s)
    try:
        yield NightContext(
            config=config,
            board=open_board(config, env=env),
            state=state,
            clock=clock or SystemClock(),
            providers=provider_factory(config, env, accounts=accounts, board=board),
            progress=progress,
            env=env,
            batch_mode=Batches(),
            morning=Morning(),
        )
    finally:
        state.close()
