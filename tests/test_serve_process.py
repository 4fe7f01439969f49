"""Real processes: SIGTERM in the middle of a run loses nothing; two sheetbots never work one board at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from harness import Shop, at
from stored import rows_in_state

from sheetbot.cli.main import main
from sheetbot.errors import LockedError
from sheetbot.service.process_lock import board_lock, lock_path

TESTS = Path(__file__).parent

SERVE_ON_A_SLOW_MODEL = """
import sys, threading, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from harness import Shop, at
from sheetbot.notify.base import MemoryNotifier
from sheetbot.service.process_lock import board_lock, install_stop_handlers
from sheetbot.service.serve import Server

shop = Shop(Path({folder!r}), create=False)

def slow(body):
    time.sleep(0.15)
    return "slow answer"

shop.fake.reply_with(slow)
shop.clock.set(at("2026-11-24T02:00"))
stop = install_stop_handlers(threading.Event())
with board_lock(shop.config.state_path, "serve"):
    print("ready", flush=True)
    Server(config=shop.config, open_context=shop.context, clock=shop.clock, sleep=stop.wait,
           notifier=MemoryNotifier(), stop=stop).loop()
"""


def _count(shop: Shop, status: str) -> int:
    with shop.state() as state:
        return sum(1 for t in state.tasks().values() if t.status == status)


def _start(script: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def test_sigterm_mid_run_exits_0_and_loses_nothing(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop", concurrency=1)
    for n in range(30):
        shop.add(type="listing", input=f"Mug {n}", brand="Acme")
    shop.lock()
    proc = _start(textwrap.dedent(SERVE_ON_A_SLOW_MODEL).format(tests=str(TESTS), folder=str(shop.folder)))
    deadline = time.monotonic() + 20
    while _count(shop, "review") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = proc.wait(timeout=15)
    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert time.monotonic() - sent < 10
    done, left = _count(shop, "review"), _count(shop, "running")
    assert done >= 3 and left > 0 and done + left == 30
    stored = {r["task_id"] for r in rows_in_state(shop, "SELECT task_id FROM attempts WHERE ok = 1")}
    in_review = {r["id"] for r in shop.rows() if r["status"] == "review"}
    assert stored == in_review  # every output that arrived was stored and written back
    assert all(r["output"] == "slow answer" for r in shop.rows() if r["id"] in in_review)
    shop.clock.set(at("2026-11-24T02:30"))  # the restart finishes the night, paying only for the rest
    shop.run()
    assert _count(shop, "review") == 30
    assert len(shop.fake.requests) == 30 - len(stored)


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from sheetbot.service.process_lock import board_lock
with board_lock(Path({state!r}), "serve"):
    print("ready", flush=True)
    time.sleep(30)
"""


def test_a_second_sheetbot_is_told_who_works_the_board(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = Shop(tmp_path / "shop")
    shop.add(type="listing", input="Mug", brand="Acme")
    proc = _start(textwrap.dedent(HOLD_THE_LOCK).format(state=str(shop.config.state_path)))
    try:
        assert main(["lock", "--config", str(shop.config_path)]) == 1
        message = capsys.readouterr().err
        assert f"another sheetbot (serve, pid {proc.pid}, since" in message and "--wait" in message
        with pytest.raises(LockedError), board_lock(shop.config.state_path, "run"):
            pass
    finally:
        proc.kill()
        proc.wait()
    assert main(["lock", "--config", str(shop.config_path)]) == 0  # the kernel dropped the dead holder's lock


def test_wait_waits_for_the_first_to_finish(tmp_path: Path) -> None:
    state = tmp_path / "sheetbot.db"
    first = board_lock(state, "serve")
    assert first.__enter__() == lock_path(state)
    naps: list[float] = []

    def nap_then_release(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            first.__exit__(None, None, None)  # the first sheetbot finishes while the second waits

    with board_lock(state, "run", wait=True, poll_s=0.01, sleep=nap_then_release):
        assert lock_path(state).read_text().startswith('{"pid": ')
    assert naps == [0.01, 0.01]
