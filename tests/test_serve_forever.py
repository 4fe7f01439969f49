"""`serve_forever`, what the Procfile runs, in this process: the production wiring end to end, and the
stop path (SIGTERM → no new work, the calls in flight get their grace, then are cancelled) where coverage
sees it.

Only the edges are stand-ins: the model is FakeLLM behind a real HTTP server on 127.0.0.1 (the YAML's
base_url points there), the clock is a FakeClock inside the night window, and the grace is short.
The board is a real .xlsx, the state a real SQLite file, read here through a connection of its own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakellm import split_prompt
from harness import Shop, at
from loopback_llm import LoopbackLLM

from sheetbot.clock import FakeClock
from sheetbot.service.process_lock import board_lock
from sheetbot.service.serve import serve_forever

ROWS = 3
GRACE_S = 1.0


@pytest.fixture
def llm() -> Iterator[LoopbackLLM]:
    server = LoopbackLLM()
    yield server
    server.close()


@pytest.fixture
def shop(tmp_path: Path, llm: LoopbackLLM) -> Shop:
    """Three rows locked at the cutoff; the YAML sends OpenAI calls to the loopback model, /healthz on."""
    shop = Shop(tmp_path / "shop", concurrency=2)
    for n in range(ROWS):
        shop.add(type="listing", input=f"item-{n}", brand="Acme")
    shop.lock()
    config = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    config["providers"]["openai"]["base_url"] = llm.url
    config["serve"] = {"health_port": 0}
    shop.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return shop


def item(body: dict[str, Any]) -> str:
    """The row a model request is for: its prompt ends with the row's input."""
    return split_prompt(body)[1].rsplit("\n", 1)[-1]


def query(shop: Shop, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(shop.config.state_path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def statuses(shop: Shop) -> dict[str, str]:
    return {str(i): str(s) for i, s in query(shop, "SELECT task_id, status FROM tasks")}


def serve(shop: Shop, stop: threading.Event, control: Callable[[], None]) -> tuple[int, float]:
    """serve_forever in this (the main) thread at 01:00, ``control`` beside it; (exit code, time.monotonic()
    when it returned). ``control`` must set ``stop``; if it fails, the stop is set all the same."""
    failures: list[BaseException] = []

    def beside() -> None:
        try:
            control()
        except BaseException as exc:
            failures.append(exc)
        finally:
            stop.set()  # never leave serve_forever running after the test

    helper = threading.Thread(target=beside, daemon=True)
    helper.start()
    code = serve_forever(
        str(shop.config_path), env=shop.env, clock=FakeClock(at("2026-11-24T01:00")), stop=stop, grace_s=GRACE_S
    )
    returned = time.monotonic()
    helper.join(timeout=30)
    if failures:
        raise failures[0]
    return code, returned


def test_serve_forever_works_the_night_and_exits_0_when_stopped(
    shop: Shop, llm: LoopbackLLM, signals: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sheetbot")
    stop = threading.Event()
    seen: dict[str, Any] = {}

    def control() -> None:
        def night_finished() -> bool:
            return query(shop, "SELECT run_finished_at FROM nights WHERE night = '2026-11-23'") not in ([], [(None,)])

        assert llm.wait_until(night_finished), "the night did not finish"
        port = next(int(r.getMessage().split(":")[-1].split("/")[0]) for r in caplog.records if "healthz" in r.message)

        def run_on_healthz() -> bool:  # serve records the phase once run() returned
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                seen["health"] = (response.status, json.loads(response.read()))
            return "run" in seen["health"][1]

        assert llm.wait_until(run_on_healthz), seen
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # the same port
            seen["metrics"] = response.read().decode()
        stop.set()

    code = serve(shop, stop, control)[0]
    assert code == 0
    assert set(statuses(shop).values()) == {"review"}
    assert [r["status"] for r in shop.rows()] == ["review"] * ROWS
    assert all(r["output"] == f"OUTPUT for: Rewrite this listing: {r['input']}" for r in shop.rows())
    assert sorted(llm.arrived) == [f"item-{n}" for n in range(ROWS)]
    status, health = seen["health"]
    assert status == 200 and health["run"]["ok"] is True, health
    assert f'sheetbot_rows{{status="review",workflow="listing"}} {float(ROWS)}' in seen["metrics"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("schedule: lock daily at 17:00") for m in messages)  # the plan, as schedule reads it
    assert messages[-1] == "stopped"
    with board_lock(shop.config.state_path, "run"):  # serve let go of the board
        pass


def test_a_stop_gives_calls_in_flight_their_grace_then_cancels_them(
    shop: Shop, llm: LoopbackLLM, signals: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sheetbot")
    gates = {f"item-{n}": threading.Event() for n in range(ROWS)}
    llm.hold = lambda body: gates[item(body)]
    stop = threading.Event()
    stopped: list[float] = []

    def control() -> None:
        assert llm.wait_until(lambda: len(llm.arrived) == 2), "two calls never reached the model"
        os.kill(os.getpid(), signal.SIGTERM)  # what the platform sends; serve_forever's handler sets `stop`
        assert stop.wait(timeout=5), "SIGTERM did not reach serve's stop event"
        stopped.append(time.monotonic())
        time.sleep(GRACE_S / 4)  # the first answer arrives after the stop, well inside the grace
        gates["item-0"].set()  # item-1's answer never comes

    code, returned = serve(shop, stop, control)
    assert code == 0
    assert GRACE_S * 0.9 <= returned - stopped[0] < GRACE_S + 2.5  # the grace, then the cancel and the write-back
    assert sorted(llm.arrived) == ["item-0", "item-1"]  # nothing new started after the stop
    ids = {r["input"]: r["id"] for r in shop.rows()}
    # The answer that came within the grace is stored and written back.
    assert shop.row(input="item-0")["status"] == "review"
    assert shop.row(input="item-0")["output"] == "OUTPUT for: Rewrite this listing: item-0"
    # The cancelled call and the row that never started stay `running` (the state, and the board that mirrors
    # it) for a restart inside the window; neither is blamed with a failed attempt.
    state = statuses(shop)
    assert (state[ids["item-1"]], state[ids["item-2"]]) == ("running", "running")
    assert [shop.row(input=f"item-{n}")["status"] for n in (1, 2)] == ["running", "running"]
    assert query(shop, "SELECT task_id, ok FROM attempts") == [(ids["item-0"], 1)]
    (detail,) = query(shop, "SELECT detail FROM audit WHERE event = 'run'")
    assert json.loads(detail[0])["stopped"] is True
    assert query(shop, "SELECT run_finished_at FROM nights WHERE night = '2026-11-23'") == [(None,)]
    messages = [r.getMessage() for r in caplog.records]
    assert "received SIGTERM: finishing what is in flight, then stopping" in messages
    assert any("stopped early; 1 done, the rest stay locked" in m for m in messages)
    # A restart inside the window finishes the night; only the rows without an answer are called again.
    for gate in gates.values():
        gate.set()
    shop.clock.set(at("2026-11-24T02:30"))
    shop.run()
    assert set(statuses(shop).values()) == {"review"}
    assert sorted(item(r.json) for r in shop.fake.requests) == ["item-1", "item-2"]


def test_serve_takes_intake_posts_on_its_port_once_the_night_lets_go_of_the_board(
    shop: Shop, llm: LoopbackLLM, signals: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15: with `api:` the same port answers POST /tasks; the row is appended when no phase has the board."""
    caplog.set_level(logging.INFO, logger="sheetbot")
    token = "intake-token-for-serve-0123456789"
    config = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    config["api"] = {"token_env": "SHEETBOT_API_TOKEN"}
    shop.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shop.env["SHEETBOT_API_TOKEN"] = token
    stop = threading.Event()
    answers: list[tuple[int, dict[str, Any]]] = []

    def control() -> None:
        assert llm.wait_until(lambda: any("healthz" in r.message for r in caplog.records))
        port = next(int(r.getMessage().split(":")[-1].split("/")[0]) for r in caplog.records if "healthz" in r.message)

        def night_ran() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                return "run" in json.loads(response.read())

        assert llm.wait_until(night_ran)
        body = json.dumps({"type": "listing", "input": "item-new", "brand": "Acme"}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/tasks", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append((response.status, json.loads(response.read())))
        stop.set()

    assert serve(shop, stop, control)[0] == 0
    ((status, answer),) = answers
    assert status == 202 and shop.row(id=answer["id"])["status"] == "queued"
    assert shop.row(id=answer["id"])["input"] == "item-new"
    assert token not in caplog.text
