"""A whole night with the state in PostgreSQL (issue 15, item 1): the YAML names the server, the password comes
from the environment, and lock, run and harvest keep their promises there as they do in a SQLite file.

Runs against the server in ``SHEETBOT_TEST_POSTGRES`` (skipped, saying how to run it, without one); the board's
schema is fresh for the test and dropped after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness import Shop, at
from state_backends import fresh_schema, read_back, without_password

from sheetbot.config.state_target import PostgresTarget


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    for target in fresh_schema(tmp_path):
        url, password = without_password(target.url)
        if password:
            monkeypatch.setenv("PGPASSWORD", password)
        yield Shop(tmp_path / "board", state=url, state_schema=target.schema)


def test_a_whole_night_keeps_its_state_in_postgresql(shop: Shop) -> None:
    target = shop.config.state_target
    assert isinstance(target, PostgresTarget) and ":" not in (urlsplit(target.url).netloc.rpartition("@")[0])
    shop.add(type="listing", input="Trail tent, 2 person, 1.9 kg", brand="Kestrel")
    shop.add(type="blog", input="How to pitch a tent in the rain")

    assert shop.lock().locked.total() == 2
    shop.clock.set(at("2026-11-24T01:00"))
    ran = shop.run()
    assert ran.done.total() == 2 and ran.drained
    assert shop.run().done.total() == 0 and len(shop.fake.requests) == 2  # running twice pays once

    shop.clock.set(at("2026-11-24T09:00"))
    tent = shop.row(input="Trail tent, 2 person, 1.9 kg")
    shop.set(tent["id"], review="approve")
    assert shop.harvest().decisions == {"approve": 1}
    assert shop.row(id=tent["id"])["status"] == "approved"

    # everything is in the board's schema, nothing in a SQLite file beside the config
    assert not (shop.folder / "sheetbot.db").exists()
    assert read_back(target, "SELECT COUNT(*) FROM attempts WHERE ok = 1") == [(2,)]
    assert read_back(target, f"SELECT status FROM tasks WHERE task_id = '{tent['id']}'") == [("approved",)]
    events = {str(row[0]) for row in read_back(target, "SELECT event FROM audit")}
    assert "model_call" in events
    with shop.state() as state:
        assert [n["night"] for n in state.nights()] == ["2026-11-23"]
