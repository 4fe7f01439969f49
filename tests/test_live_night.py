"""Live mode over a night: budgets, steps, structured answers, failures and the circuit breaker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakellm import split_prompt
from harness import WORKFLOWS, Shop, at

LISTING = WORKFLOWS["listing"]


def night(shop: Shop, *rows: dict[str, Any]) -> None:
    for row in rows:
        shop.add(**row)
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))


def test_the_nightly_budget_stops_new_tasks_highest_priority_first(tmp_path: Path) -> None:
    # Each call costs its 400 output tokens × $1.6/M ≈ $0.00064 plus input: the budget fits two.
    shop = Shop(tmp_path, limits={"nightly_usd": 0.0015}, concurrency=1)
    night(
        shop,
        {"type": "listing", "input": "low", "priority": "P3"},
        {"type": "listing", "input": "top", "priority": "P0"},
        {"type": "listing", "input": "mid", "priority": "P1"},
    )
    shop.fake.reply_with(lambda body: "x" * 1600)  # every answer uses its 400 tokens: ≈ $0.00064 a row
    report = shop.run()
    assert report.done.total() == 2 and report.deferred.total() == 1
    assert shop.row(input="low")["status"] == "deferred"
    assert "tonight's budget of $0.00 (limits.nightly_usd) would be exceeded" in shop.row(input="low")["error"]
    assert {shop.row(input="top")["status"], shop.row(input="mid")["status"]} == {"review"}
    with shop.state() as state:
        assert state.spent_usd(night="2026-11-23") <= 0.0015


def test_a_workflow_budget_defers_only_that_workflow(tmp_path: Path) -> None:
    workflows = {"listing": {**LISTING, "nightly_usd": 0.0001}, "blog": WORKFLOWS["blog"]}
    shop = Shop(tmp_path, workflows=workflows)
    night(shop, {"type": "listing", "input": "a"}, {"type": "blog", "input": "b"})
    shop.run()
    assert shop.row(input="a")["status"] == "deferred"
    assert "budget for listing of $0.00 (nightly_usd) would be exceeded" in shop.row(input="a")["error"]
    assert shop.row(input="b")["status"] == "review"


def test_a_row_over_the_per_task_cap_fails_before_any_call(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows={"listing": {**LISTING, "max_usd_per_task": 0.0001}})
    night(shop, {"type": "listing", "input": "expensive"})
    shop.run()
    row = shop.row(input="expensive")
    assert row["status"] == "failed" and "max_usd_per_task" in row["error"]
    assert shop.fake.requests == []


def test_retryable_failures_are_retried_then_the_row_is_dead_lettered(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows={"listing": {**LISTING, "max_failed_calls": 3}})
    night(shop, {"type": "listing", "input": "flaky"}, {"type": "listing", "input": "hopeless"})
    shop.fake.fail_next(500, times=1)  # the first call fails once, then works
    report = shop.run()
    assert report.done.total() == 2
    assert all(r["status"] == "review" for r in shop.rows())

    shop2 = Shop(tmp_path / "second", workflows={"listing": {**LISTING, "max_failed_calls": 2}})
    night(shop2, {"type": "listing", "input": "hopeless"})
    shop2.fake.fail_next(503, times=50)
    shop2.run()
    row = shop2.row(input="hopeless")
    assert row["status"] == "failed" and "gave up after 2 failed calls tonight" in row["error"]
    assert "set status to queued" in row["error"]


def test_multi_step_resume_pays_for_each_step_once(tmp_path: Path) -> None:
    steps = {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "max_tokens": 300,
        "steps": [
            {"name": "research", "prompt": "Research {{input}}"},
            {"name": "draft", "prompt": "Draft using {{steps.research}}"},
            {"name": "polish", "prompt": "Polish {{steps.draft}}"},
        ],
    }
    shop = Shop(tmp_path, workflows={"post": steps})
    night(shop, {"type": "post", "input": "tents"})
    replies = iter(["facts about tents", "a draft"])

    def answer(body: dict[str, Any]) -> str:
        text = next(replies)
        if text == "a draft":
            shop.fake.fail_next(401)  # the polish call is refused: the row fails after two stored steps
        return text

    shop.fake.reply_with(answer)
    shop.run()
    tid = shop.row(input="tents")["id"]
    assert shop.row(id=tid)["status"] == "failed"
    assert len(shop.fake.requests) == 3

    shop.set(tid, status="queued")  # a person fixed the key and sends it back
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))
    shop.fake.reply_with(lambda body: "polished")
    shop.run()
    assert len(shop.fake.requests) == 4  # only the polish step was called again
    last = split_prompt(shop.fake.requests[-1].json)[1]
    assert last == "Polish a draft"
    assert "Draft using facts about tents" in split_prompt(shop.fake.requests[1].json)[1]
    row = shop.row(id=tid)
    assert row["status"] == "review" and row["output"] == "polished"


def test_structured_answers_fill_their_own_columns(tmp_path: Path) -> None:
    sentiment = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-6",
        "max_tokens": 200,
        "prompt": "Classify this review: {{input}}",
        "outputs": [
            {"name": "sentiment", "type": "choice", "choices": ["positive", "neutral", "negative"]},
            {"name": "score", "type": "integer"},
            {"name": "themes", "type": "list"},
        ],
    }
    shop = Shop(tmp_path, workflows={"sentiment": sentiment})
    night(shop, {"type": "sentiment", "input": "Warm, but the zip broke"})
    shop.fake.answer_with(lambda body: {"sentiment": "negative", "score": 2, "themes": ["warmth", "zip"]})
    shop.run()
    row = shop.row(input="Warm, but the zip broke")
    assert row["status"] == "review"
    assert row["sentiment"] == "negative" and row["score"] == 2 and row["themes"] == "warmth, zip"
    assert "sentiment: negative" in row["output"]
    body = shop.fake.requests[0].json
    assert body["tool_choice"]["type"] == "tool" and body["tools"][0]["input_schema"]["properties"]["sentiment"]


def test_an_invalid_structured_answer_is_retried_once_with_the_error_then_failed(tmp_path: Path) -> None:
    sentiment = {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "max_tokens": 200,
        "prompt": "Classify: {{input}}",
        "outputs": [{"name": "sentiment", "type": "choice", "choices": ["positive", "negative"]}],
    }
    shop = Shop(tmp_path, workflows={"sentiment": sentiment})
    night(shop, {"type": "sentiment", "input": "fixed on retry"}, {"type": "sentiment", "input": "never right"})
    seen: dict[str, int] = {}

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        prompt = split_prompt(body)[1]
        key = "fixed" if "fixed on retry" in prompt else "never"
        seen[key] = seen.get(key, 0) + 1
        if key == "fixed" and seen[key] == 2:
            return {"sentiment": "positive"}
        return {"sentiment": "meh"}

    shop.fake.answer_with(answer)
    shop.run()
    assert shop.row(input="fixed on retry")["status"] == "review"
    assert shop.row(input="fixed on retry")["sentiment"] == "positive"
    never = shop.row(input="never right")
    assert never["status"] == "failed" and "did not fit the workflow's outputs" in never["error"]
    retry_prompts = [split_prompt(r.json)[1] for r in shop.fake.requests if "fixed on retry" in str(r.json)]
    assert len(retry_prompts) == 2 and "meh" in retry_prompts[1]


def test_an_open_circuit_defers_the_rest_of_the_providers_rows(tmp_path: Path) -> None:
    shop = Shop(
        tmp_path,
        concurrency=1,
        providers={"openai": {"breaker_failures": 3, "max_retries": 0}},
        workflows={"listing": {**LISTING, "max_failed_calls": 1}},
    )
    night(shop, *({"type": "listing", "input": f"row {n}"} for n in range(6)))
    shop.fake.fail_next(503, times=100)
    report = shop.run()
    calls = len(shop.fake.requests)
    assert calls == 3  # the breaker opened after three failures in a row: no more calls tonight
    assert report.failed.total() == 3 and report.deferred.total() == 3
    deferred = [r for r in shop.rows() if r["status"] == "deferred"]
    assert all("circuit breaker" in r["error"] for r in deferred)
    with shop.state() as state:
        events = state.query("SELECT event FROM audit WHERE event = 'circuit_open'")
    assert len(events) == 1


@pytest.mark.parametrize("workflow", ["listing", "blog"])
def test_cost_is_right_to_the_cent_for_both_providers(tmp_path: Path, workflow: str) -> None:
    shop = Shop(tmp_path)
    night(shop, {"type": workflow, "input": "x" * 4000})
    shop.run()
    with shop.state() as state:
        a = state.query("SELECT input_tokens, output_tokens, cost_usd FROM attempts")[0]
    price = {"listing": (0.4, 1.6), "blog": (3.0, 15.0)}[workflow]
    expected = (a["input_tokens"] * price[0] + a["output_tokens"] * price[1]) / 1e6
    assert a["input_tokens"] >= 1000
    assert shop.row(input="x" * 4000)["cost"] == pytest.approx(expected, abs=0.005)
    assert json.dumps(shop.fake.requests[0].json)  # the body was JSON


def test_a_budget_that_fits_the_night_defers_nothing_however_many_rows_wait(tmp_path: Path) -> None:
    # 60 rows of worst case ≈ $0.00065 each ($0.039) but a real cost far lower: a $0.03 budget must not defer
    # rows just because they all queued at once (each reserves its worst case only when admitted).
    shop = Shop(tmp_path, limits={"nightly_usd": 0.03}, concurrency=4)
    night(shop, *({"type": "listing", "input": f"row {n}"} for n in range(60)))
    report = shop.run()
    assert report.deferred.total() == 0 and report.done.total() == 60
    with shop.state() as state:
        assert state.spent_usd(night="2026-11-23") < 0.03


def test_a_row_that_outlives_its_task_timeout_fails_with_the_reason(tmp_path: Path) -> None:
    import asyncio

    import httpx2

    shop = Shop(tmp_path, workflows={"listing": {**LISTING, "task_timeout_s": 0.05}})
    night(shop, {"type": "listing", "input": "slow"})
    handle = shop.fake._handle

    async def slow(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(0.5)  # real time, but short: the model answers after the task's time is up
        return handle(request)

    shop.fake.transport = httpx2.MockTransport(slow)
    shop.run()
    row = shop.row(input="slow")
    assert row["status"] == "failed" and "task_timeout_s (0.05 s)" in row["error"]
