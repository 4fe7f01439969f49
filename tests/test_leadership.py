"""Who works a board in PostgreSQL (issue 15): one leader holds the advisory lock, others are refused or wait as
standbys, and a leader whose lock session ends writes nothing more (fencing) and is told to stop at once.

Against a real server (SHEETBOT_TEST_POSTGRES), each test on a schema of its own; skipped, saying how to run
them, without one. The lock's session is ended from outside with ``pg_terminate_backend``, as the server does
for a lost client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from harness import Shop
from state_backends import fresh_schema, without_password

from sheetbot.config.state_target import PostgresTarget
from sheetbot.errors import LeadershipLostError, LockedError
from sheetbot.service.health import Health
from sheetbot.service.leader import PostgresLease, leadership
from sheetbot.state import State
from sheetbot.state.leader_lock import LeaderLock

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    for target in fresh_schema(tmp_path):
        url, password = without_password(target.url)
        if password:
            monkeypatch.setenv("PGPASSWORD", password)
        yield Shop(tmp_path / "board", state=url, state_schema=target.schema)


def _terminate(shop: Shop, pid: int) -> None:
    url = str(shop.config.state)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_second_process_is_refused_naming_the_leader_then_leads_once_it_is_gone(shop: Shop) -> None:
    with leadership(shop.config, "serve", wait=False, sleep=time.sleep) as first:
        assert isinstance(first, PostgresLease)
        with (
            pytest.raises(LockedError, match=r"another sheetbot \(serve pid \d+ on .*, since \d\d:\d\d\).*--wait"),
            leadership(shop.config, "run", wait=False, sleep=time.sleep),
        ):
            pass
    with leadership(shop.config, "run", wait=False, sleep=time.sleep) as second:
        assert second is not None and not second.lost()


def test_a_standby_says_so_polls_and_takes_over_when_the_leader_goes(shop: Shop) -> None:
    first = leadership(shop.config, "serve", wait=False, sleep=time.sleep)
    assert first.__enter__() is not None
    told: list[str] = []
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            first.__exit__(None, None, None)  # the leader goes while the standby polls

    with leadership(shop.config, "serve", wait=True, sleep=nap, poll_s=5.0, on_standby=told.append) as lease:
        assert lease is not None
    assert naps == [5.0, 5.0]
    assert len(told) == 1 and told[0].startswith("serve pid ")


def test_a_standby_stopped_while_waiting_leads_nothing(shop: Shop) -> None:
    stop = threading.Event()
    with leadership(shop.config, "serve", wait=False, sleep=time.sleep):

        def nap(seconds: float) -> None:
            stop.set()  # SIGTERM while a standby

        with leadership(shop.config, "serve", wait=True, sleep=nap, cancelled=stop.is_set) as lease:
            assert lease is None


def test_a_leader_whose_lock_session_ends_writes_nothing_more_and_is_told_to_stop(shop: Shop) -> None:
    lost = threading.Event()
    with leadership(shop.config, "serve", wait=False, sleep=time.sleep, on_lost=lost.set, watch_s=0.05) as lease:
        assert isinstance(lease, PostgresLease)
        target = shop.config.state_target
        assert isinstance(target, PostgresTarget)
        state = State(target)
        try:
            state.add_task("written-while-leading", now=NOW)
            _terminate(shop, lease.pid)  # the server ends the leader's session: its lock is free
            other = LeaderLock(target, "serve")  # another process's session may lead now (once the server
            try:  # has ended ours: a moment)
                deadline = time.monotonic() + 10
                while not other.try_take() and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert other.held
                with pytest.raises(LeadershipLostError, match="lost the leadership"):
                    state.add_task("written-after-the-loss", now=NOW)
            finally:
                other.close()
            assert lost.wait(timeout=5)  # the watchdog noticed: serve's stop event is set
            assert lease.lost()
        finally:
            state.close()
    reader = State(shop.config.state_target)
    try:
        assert set(reader.tasks()) == {"written-while-leading"}
    finally:
        reader.close()


def test_sqlite_keeps_the_lock_file(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "board")
    with leadership(shop.config, "serve", wait=False, sleep=time.sleep) as lease:
        assert lease is not None and not lease.lost()
        with pytest.raises(LockedError, match="--wait"), leadership(shop.config, "run", wait=False, sleep=time.sleep):
            pass


def test_healthz_says_leader_or_standby_and_names_the_leader() -> None:
    health = Health()
    assert "role" not in health.snapshot()[1]
    health.lead("standby", "serve pid 12 on host-a, since 01:00")
    code, body = health.snapshot()
    assert code == 200 and body["role"] == "standby" and body["leader"] == "serve pid 12 on host-a, since 01:00"
    health.lead("leader")
    assert health.snapshot()[1]["role"] == "leader" and "leader" not in health.snapshot()[1]
