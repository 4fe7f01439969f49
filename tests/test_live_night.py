"""Live mode over a night: budgets, steps, structured answers, failures and the circuit breaker."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from fakellm import split_prompt
from harness import WORKFLOWS, Shop, at
from stored import rows_in_state

LISTING = WORKFLOWS["listing"]
MICRO = Decimal("0.000001")


def dollars(value: float) -> Decimal:
    """A float amount of dollars as the exact decimal it stands for (float arithmetic leaves ~1e-19 of noise)."""
    return Decimal(repr(value)).quantize(Decimal("1e-12"))


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
            shop.fake.fail_next(401)  # the polish call is refused: the row waits after two stored steps
        return text

    shop.fake.reply_with(answer)
    shop.run()
    tid = shop.row(input="tents")["id"]
    assert shop.row(id=tid)["status"] == "deferred"  # the key is the account's problem, not the row's
    assert len(shop.fake.requests) == 3

    # a person fixes the key; the next night takes the row up again by itself
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


def outage(tmp_path: Path, rows: int = 6, **workflow: Any) -> Shop:
    shop = Shop(
        tmp_path,
        concurrency=1,
        providers={"openai": {"breaker_failures": 3, "max_retries": 0, "breaker_cooldown_s": 900}},
        workflows={"listing": {**LISTING, **workflow}},
    )
    for n in range(rows):
        shop.add(type="listing", input=f"row {n}")
    shop.lock()
    return shop


def breaker_events(shop: Shop) -> list[str]:
    with shop.state() as state:
        return [e.event for e in state.audit_entries() if e.event.startswith("circuit")]


def test_an_open_circuit_without_a_deadline_defers_the_rest_of_the_providers_rows(tmp_path: Path) -> None:
    shop = outage(tmp_path, max_failed_calls=1)
    shop.clock.set(at("2026-11-24T10:00"))  # by hand, outside the window, no --until: nothing to wait within
    shop.fake.fail_next(503, times=100)
    report = shop.run()
    assert len(shop.fake.requests) == 3  # the breaker opened after three failures in a row: no more calls
    assert report.failed.total() == 3 and report.deferred.total() == 3
    deferred = [r for r in shop.rows() if r["status"] == "deferred"]
    assert all("circuit breaker" in r["error"] for r in deferred)
    assert breaker_events(shop) == ["circuit_open"]


@pytest.mark.parametrize("until", [None, "2026-11-24T11:00"])
def test_a_short_outage_is_waited_out_while_the_window_lasts(tmp_path: Path, until: str | None) -> None:
    shop = outage(tmp_path, max_failed_calls=4)
    start = at("2026-11-24T01:00") if until is None else at("2026-11-24T10:00")  # the window, or --until
    shop.clock.set(start)
    shop.fake.fail_next(503, times=3)  # two minutes of 503s: three calls, and the breaker opens
    report = shop.run(**({"until": at(until)} if until else {}))
    assert report.done.total() == 6 and report.deferred.total() == 0 and report.failed.total() == 0
    assert all(r["status"] == "review" for r in shop.rows())
    assert len(shop.fake.requests) == 3 + 6  # one trial call after the cool-down, then the rest
    assert breaker_events(shop) == ["circuit_open", "circuit_half_open", "circuit_closed"]
    assert (shop.clock.now() - start).total_seconds() >= 900  # waited out the cool-down, on the injected clock


def test_an_outage_that_outlasts_the_window_probes_once_per_cooldown_then_defers(tmp_path: Path) -> None:
    shop = outage(tmp_path, max_failed_calls=20)
    shop.clock.set(at("2026-11-24T01:00"))
    shop.fake.fail_next(503, times=1000)
    report = shop.run()
    calls = len(shop.fake.requests)
    assert 3 < calls <= 3 + 4 * 3600 / 900  # one trial call per cool-down, never a stampede
    assert report.deferred.total() == 6
    assert all("circuit breaker" in r["error"] or "window ended" in r["error"] for r in shop.rows())
    assert breaker_events(shop).count("circuit_half_open") == calls - 3


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_defers_every_row_and_they_run_once_the_key_works(tmp_path: Path, status: int) -> None:
    shop = Shop(tmp_path, concurrency=2)
    night(shop, *({"type": "listing", "input": f"row {n}"} for n in range(5)))
    shop.fake.fail_next(status, times=50)
    report = shop.run()
    assert report.deferred.total() == 5 and report.failed.total() == 0
    assert len(shop.fake.requests) <= 2  # the first refusals; the rest are held without a call
    for row in shop.rows():
        assert row["status"] == "deferred" and "OPENAI_API_KEY" in row["error"]
    # no row is blamed: not one failed call counts against max_failed_calls
    assert rows_in_state(shop, "SELECT COUNT(*) AS n FROM attempts WHERE ok = 0")[0]["n"] == 0
    shop.fake = type(shop.fake)()  # the key is fixed
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))
    report = shop.run()
    assert report.done.total() == 5 and all(r["status"] == "review" for r in shop.rows())


@pytest.mark.parametrize("workflow", ["listing", "blog"])
def test_cost_is_right_to_the_cent_for_both_providers(tmp_path: Path, workflow: str) -> None:
    shop = Shop(tmp_path)
    night(shop, {"type": workflow, "input": "x" * 4000})
    shop.fake.reply_with(lambda body: "y" * 1000)  # 250 output tokens
    report = shop.run()
    # The tokens as the fake billed them (ceil(characters / 4)), the price as the YAML states it: exact.
    (request,) = shop.fake.requests
    system, prompt = split_prompt(request.json)
    tokens_in, tokens_out = math.ceil(len(system + prompt) / 4), 250
    assert tokens_in >= 1000
    price_in, price_out = {"listing": ("0.4", "1.6"), "blog": ("3.0", "15.0")}[workflow]
    expected = (tokens_in * Decimal(price_in) + tokens_out * Decimal(price_out)) / 1_000_000  # dollars
    (a,) = rows_in_state(shop, "SELECT input_tokens, output_tokens, cost_usd FROM attempts")
    with shop.state() as state:
        spent = state.spent_usd(night="2026-11-23")
    assert (a["input_tokens"], a["output_tokens"]) == (tokens_in, tokens_out)
    assert dollars(a["cost_usd"]) == expected  # the state
    assert dollars(spent) == expected
    assert dollars(report.cost_usd) == expected  # the run's report
    # The board's cost cell: micro-dollars (round(cost, 6)).
    assert Decimal(str(shop.row(input="x" * 4000)["cost"])) == expected.quantize(MICRO, ROUND_HALF_EVEN)


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


def test_a_llama_cpp_server_refusing_json_schema_never_defers_the_providers_rows(tmp_path: Path) -> None:
    sentiment = {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "max_tokens": 200,
        "prompt": "Classify: {{input}}",
        "outputs": [{"name": "sentiment", "type": "choice", "choices": ["positive", "negative"]}],
    }
    shop = Shop(
        tmp_path,
        concurrency=1,
        providers={"openai": {"breaker_failures": 1, "max_retries": 3}},
        workflows={"sentiment": sentiment, "listing": LISTING},
    )
    night(
        shop,
        *({"type": "sentiment", "input": f"review {n}"} for n in range(3)),
        *({"type": "listing", "input": f"mug {n}"} for n in range(3)),
    )
    refusal = {
        "error": {
            "message": "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input should be "
            "'text' or 'json_object' [type=literal_error, input_value='json_schema', input_type=str]",
            "type": "internal_server_error",
            "param": None,
            "code": None,
        }
    }
    shop.fake.fail_next(500, body=refusal)
    report = shop.run()
    assert report.done.total() == 6 and report.deferred.total() == 0 and report.failed.total() == 0
    assert shop.row(input="review 0")["sentiment"] == "positive"
    assert len(shop.fake.requests) == 7  # one refusal, then JSON mode for every structured row: no retries
    assert any("refused response_format" in note and "JSON mode" in note for note in report.notes)
    with shop.state() as state:
        assert state.audit_entries("circuit_open") == []


def structured_shop(tmp_path: Path, **workflow: Any) -> Shop:
    sentiment = {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "max_tokens": 100,
        "prompt": "Classify: {{input}}",
        "outputs": [{"name": "summary", "type": "text"}],
        **workflow,
    }
    shop = Shop(tmp_path, workflows={"sentiment": sentiment})
    night(shop, {"type": "sentiment", "input": "long"})
    return shop


def test_a_structured_answer_cut_off_is_retried_once_with_twice_the_room(tmp_path: Path) -> None:
    shop = structured_shop(tmp_path)
    answers: Iterator[dict[str, Any] | str] = iter(['{"summary": "a very long ans', {"summary": "done"}])
    shop.fake.answer_with(lambda body: next(answers))
    shop.fake.truncate_next()
    shop.run()
    row = shop.row(input="long")
    assert row["status"] == "review" and row["summary"] == "done"
    assert [r.json["max_tokens"] for r in shop.fake.requests] == [100, 200]
    assert "Your previous answer" not in split_prompt(shop.fake.requests[1].json)[1]  # room, not a repair


def test_a_structured_answer_cut_off_twice_fails_with_the_advice(tmp_path: Path) -> None:
    shop = structured_shop(tmp_path)
    shop.fake.answer_with(lambda body: '{"summary": "never ends')
    shop.fake.truncate_next()
    shop.fake.truncate_next()
    shop.run()
    row = shop.row(input="long")
    assert row["status"] == "failed" and "not JSON" not in row["error"]
    assert "cut off at max_tokens (200)" in row["error"] and "raise max_tokens" in row["error"]
    assert len(shop.fake.requests) == 2


def test_no_room_to_retry_within_the_task_cap_fails_with_the_advice(tmp_path: Path) -> None:
    # the first call's worst case fits $0.0003 (100 output tokens at $1.6/M), twice the room does not
    shop = structured_shop(tmp_path, max_tokens=150, max_usd_per_task=0.0004)
    shop.fake.answer_with(lambda body: '{"summary": "cut')
    shop.fake.truncate_next()
    shop.run()
    row = shop.row(input="long")
    assert row["status"] == "failed" and "cut off at max_tokens (150)" in row["error"]
    assert "max_usd_per_task" in row["error"] and len(shop.fake.requests) == 1
