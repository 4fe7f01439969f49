"""What every test starts from, whatever ran before it (the suite runs in random order: pytest-randomly).

The secret list of sheetbot.safety.secrets is process-wide on purpose (a secret is a fact of the process):
each test that reads an environment teaches it that environment's secrets. Forgotten after every test, so
no test masks, or passes, because of what another test taught it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from state_backends import state_backend  # noqa: F401  (SQLite and PostgreSQL: one state contract, issue 15)

from sheetbot.safety import secrets


@pytest.fixture(autouse=True)
def _no_secrets_from_other_tests() -> Iterator[None]:
    yield
    secrets.forget_all()


@pytest.fixture
def signals() -> Iterator[None]:
    """`serve` installs its SIGTERM/SIGINT handlers in this process: put pytest's back afterwards."""
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in before.items():
        signal.signal(number, handler)
