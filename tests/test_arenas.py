"""Many boards in one process keep a few malloc arenas, not glibc's eight per core (sheetbot/service/arenas.py).

Each test runs a fresh interpreter: an arena, once made, stays for the life of the process, and glibc reads
``MALLOC_ARENA_MAX`` only when a process starts. The arenas are counted from glibc's own ``malloc_stats()``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")

ROOT = Path(__file__).resolve().parent.parent

#: 16 boards' threads, each allocating beside the others, then glibc's count of arenas.
BOARDS = """
import ctypes, sys, threading
from sheetbot.service import many
from sheetbot.service.many import work_all

many.bookkeeping_slots = lambda: 2
start = threading.Barrier(16)

class Board:
    def __init__(self, n):
        self.name = f"board-{n}"
    def work(self, until=None):
        start.wait()
        self.kept = [b"x" * 2000 for _ in range(200)]  # past pymalloc's small objects: glibc's malloc

for thread in work_all([Board(n) for n in range(16)]):
    thread.join()
sys.stderr.flush()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(env: dict[str, str], script: str = BOARDS) -> int:
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}


def test_the_boards_threads_share_as_many_arenas_as_bookkeeping_slots() -> None:
    assert arenas(clean_env()) <= 2


def test_the_admins_own_malloc_arena_max_wins() -> None:
    assert arenas(clean_env() | {"MALLOC_ARENA_MAX": "3"}) == 3


def test_without_a_limit_glibc_would_have_made_more() -> None:
    """The first test means something only if glibc, left alone, makes more arenas for these threads."""
    unlimited = BOARDS.replace("for thread in", "many.limit_malloc_arenas = lambda n: False\nfor thread in")
    assert arenas(clean_env(), unlimited) > 2
