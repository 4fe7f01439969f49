"""Batch mode over a night: both vendors' Batch APIs faked at the SDK transport, time on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fakebatch import FakeBatch
from harness import WORKFLOWS, Shop, at
from stored import rows_in_state

from sheetbot.batch.base import WIRE_ID, key_of, split, wire_ids
from sheetbot.batch.factory import make_batch_provider
from sheetbot.night.context import NightContext
from sheetbot.providers.base import CompletionRequest, Usage
from sheetbot.providers.pricing import cost_usd

BLOG = {**WORKFLOWS["blog"], "mode": "batch"}  # anthropic, shared system prompt
LISTING = {**WORKFLOWS["listing"], "mode": "batch"}  # openai, per-row system prompt ({{brand}})


class BatchShop(Shop):
    def __init__(self, folder: Path, **kwargs: Any) -> None:
        kwargs.setdefault("providers", {"openai": {"batch_poll_s": 30}, "anthropic": {"batch_poll_s": 30}})
        super().__init__(folder, **kwargs)
        self.batch = FakeBatch(lambda: self.clock.now().timestamp())

    @contextmanager
    def context(self) -> Iterator[NightContext]:
        with super().context() as ctx:
            ctx.batch_providers = lambda name: make_batch_provider(
                name, self.config.providers[name], env=self.env, http_client=self.batch.async_client()
            )
            yield ctx


def night(shop: Shop, *rows: dict[str, Any]) -> None:
    for row in rows:
        shop.add(**row)
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))


def custom_ids(shop: Shop, lines: list[dict[str, Any]]) -> set[str]:
    """The ``task:attempt:step`` of request lines as they went out, through the wire ids stored with each batch."""
    with shop.state() as state:
        by_wire = {r["wire"]: c for b in state.batches() for c, r in b["requests"].items()}
    return {by_wire[line["custom_id"]] for line in lines}


def attempts(shop: Shop) -> list[dict[str, Any]]:
    return [dict(r) for r in rows_in_state(shop, "SELECT * FROM attempts ORDER BY id")]


def test_a_whole_batch_night_goes_out_as_one_batch_per_provider_and_model(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG, "listing": LISTING})
    night(
        shop,
        *({"type": "blog", "input": f"post {i}"} for i in range(3)),
        *({"type": "listing", "input": f"item {i}", "brand": "Acme"} for i in range(2)),
    )
    report = shop.run()
    assert report.done.total() == 5 and report.drained
    assert len(shop.batch.creates) == 2 and shop.fake.requests == []  # no live call
    assert {r["status"] for r in shop.rows()} == {"review"}
    assert shop.row(input="post 1")["output"] == "OUTPUT for: Draft a post about: post 1"
    rows = attempts(shop)
    assert {r["mode"] for r in rows} == {"batch"}
    # custom_ids travel as wire ids, stored with the batch; each stands for the task, attempt and step.
    ids = custom_ids(shop, [line for line in shop.batch.lines if "params" in line])
    assert ids == {f"{r['id']}:1:final" for r in shop.rows() if r["type"] == "blog"}
    # Polled through the injected sleep at the configured interval, backing off; no real waiting.
    assert shop.slept[0] == 30 and shop.slept[1] == 45
    with shop.state() as state:
        assert {b["status"] for b in state.batches()} == {"collected"}


def test_costs_are_at_batch_price_and_the_shared_system_prompt_is_cached(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG})
    night(shop, *({"type": "blog", "input": f"post {i}"} for i in range(3)))
    shop.run()
    params = [line["params"] for line in shop.batch.lines]
    assert all(p["system"][0]["cache_control"] == {"type": "ephemeral"} for p in params)
    price = shop.config.prices["claude-sonnet-4-6"]
    rows = attempts(shop)
    assert sum(r["cache_write_tokens"] > 0 for r in rows) == 1 and sum(r["cache_read_tokens"] > 0 for r in rows) == 2
    for r in rows:
        usage = Usage(r["input_tokens"], r["output_tokens"], r["cache_write_tokens"], r["cache_read_tokens"])
        assert r["cost_usd"] == pytest.approx(cost_usd(price, usage) / 2)


def test_a_per_row_system_prompt_is_not_marked_for_caching(tmp_path: Path) -> None:
    shop = BatchShop(
        tmp_path, workflows={"listing": {**LISTING, "provider": "anthropic", "model": "claude-sonnet-4-6"}}
    )
    night(shop, {"type": "listing", "input": "x", "brand": "Acme"})
    shop.run()
    assert shop.batch.lines[0]["params"]["system"] == "You write listings for Acme."


def test_live_anthropic_calls_mark_the_shared_system_prompt_too(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows={"blog": WORKFLOWS["blog"]})
    night(shop, {"type": "blog", "input": "live"})
    shop.run()
    assert shop.fake.requests[0].json["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_a_restart_mid_batch_polls_the_open_batch_and_never_resubmits(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG})
    night(shop, {"type": "blog", "input": "a"}, {"type": "blog", "input": "b"})

    class Crash(Exception):
        pass

    async def crash(seconds: float) -> None:
        raise Crash

    shop.sleep = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        shop.run()
    with shop.state() as state:
        assert [b["status"] for b in state.batches()] == ["open"]  # the id was stored before any poll
    del shop.sleep  # the class's fake sleep again: a new process
    report = shop.run()
    assert shop.batch.creates == ["msgbatch_1"]
    assert report.done.total() == 2 and {r["status"] for r in shop.rows()} == {"review"}
    assert len(attempts(shop)) == 2


def test_the_window_end_cancels_a_running_batch_and_keeps_what_finished(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"listing": LISTING})
    shop.batch.duration_s = 10 * 3600  # longer than the window
    shop.batch.finish_before_cancel = 2
    night(shop, *({"type": "listing", "input": f"item {i}", "brand": "B"} for i in range(5)))
    report = shop.run()
    assert shop.batch.cancels == ["batch_1"]
    assert report.done.total() == 2 and report.deferred.total() == 3 and not report.drained
    deferred = [r for r in shop.rows() if r["status"] == "deferred"]
    assert {r["error"] for r in deferred} == {"deferred: the batch did not finish before the window ended"}
    assert len([r for r in shop.rows() if r["status"] == "review" and r["output"]]) == 2
    assert shop.clock.now() <= at("2026-11-24T05:01")
    with shop.state() as state:
        assert [b["status"] for b in state.batches()] == ["cancelled"]


@pytest.mark.parametrize("workflow", ["blog", "listing"])
@pytest.mark.parametrize("kind", ["errored", "expired"])
def test_an_errored_or_expired_request_is_retried_once_in_a_follow_up_batch(
    tmp_path: Path, workflow: str, kind: str
) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG, "listing": LISTING})
    night(shop, {"type": workflow, "input": "one", "brand": "B"}, {"type": workflow, "input": "two", "brand": "B"})
    shop.batch.script_next(kind)
    report = shop.run()
    assert len(shop.batch.creates) == 2 and report.done.total() == 2
    assert len(shop.batch.batches[shop.batch.creates[1]]["lines"]) == 1


def test_a_request_that_fails_twice_is_failed_or_deferred(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG})
    night(shop, {"type": "blog", "input": "bad"}, {"type": "blog", "input": "late"})
    shop.batch.script_next("errored")
    shop.batch.script_next("expired")
    shop.batch.script_next("errored")
    shop.batch.script_next("expired")
    shop.run()
    statuses = sorted(r["status"] for r in shop.rows())
    assert statuses == ["deferred", "failed"]
    assert "failed twice" in shop.row(status="failed")["error"]
    assert "expired twice" in shop.row(status="deferred")["error"]


def test_multi_step_runs_one_batch_round_per_step(tmp_path: Path) -> None:
    steps = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-6",
        "mode": "batch",
        "steps": [
            {"name": "research", "prompt": "Research {{input}}"},
            {"name": "draft", "prompt": "Draft from: {{steps.research}}"},
        ],
    }
    shop = BatchShop(tmp_path, workflows={"post": steps})
    night(shop, {"type": "post", "input": "a"}, {"type": "post", "input": "b"})
    report = shop.run()
    assert report.done.total() == 2 and len(shop.batch.creates) == 2
    first, second = (shop.batch.batches[b]["lines"] for b in shop.batch.creates)
    assert {c.split(":")[2] for c in custom_ids(shop, first)} == {"research"}
    assert {c.split(":")[2] for c in custom_ids(shop, second)} == {"draft"}
    assert shop.row(input="a")["output"].startswith("OUTPUT for: Draft from: OUTPUT for: Research a")


def test_structured_answers_are_validated_and_repaired_in_a_follow_up(tmp_path: Path) -> None:
    wf = {**BLOG, "outputs": [{"name": "score", "type": "integer"}]}
    shop = BatchShop(tmp_path, workflows={"blog": wf})
    night(shop, {"type": "blog", "input": "a"})
    answers: Iterator[dict[str, Any]] = iter([{"score": "not a number"}, {"score": 4}])
    shop.batch.llm.answer_with(lambda body: next(answers))
    report = shop.run()
    assert report.done.total() == 1 and len(shop.batch.creates) == 2
    assert shop.row(input="a")["score"] == 4


def test_a_server_without_a_batch_api_runs_the_rows_live_with_a_note(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"listing": LISTING})
    shop.batch.unsupported = True
    night(shop, {"type": "listing", "input": "x", "brand": "B"})
    report = shop.run()
    assert report.done.total() == 1 and len(shop.fake.requests) == 1
    assert any("has no Batch API" in n for n in report.notes)
    assert attempts(shop)[0]["mode"] == "live"


def test_split_at_the_limits_and_wire_ids_round_trip() -> None:
    requests = [CompletionRequest(f"t{i}:1:final", "m", "", "x" * 10, 10, 1.0) for i in range(5)]
    chunks = split(requests, max_requests=2, max_bytes=10**9, size=lambda r: 1)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [len(c) for c in split(requests, max_requests=10, max_bytes=25, size=lambda r: 10)] == [2, 2, 1]
    wires = wire_ids("sb0123456789abcd", ["ab_c:1:final", "Bestellung Müller #4711 / Rücksendung:1:final", "x" * 200])
    assert len(set(wires.values())) == 3 and all(WIRE_ID.fullmatch(w) for w in wires.values())
    assert {key_of(w) for w in wires.values()} == {"sb0123456789abcd"}


def test_a_big_night_is_split_at_the_providers_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sheetbot.batch.anthropic import AnthropicBatches

    monkeypatch.setattr(AnthropicBatches, "max_requests", 2)
    shop = BatchShop(tmp_path, workflows={"blog": BLOG})
    night(shop, *({"type": "blog", "input": f"post {i}"} for i in range(5)))
    report = shop.run()
    assert report.done.total() == 5 and len(shop.batch.creates) == 3
    with shop.state() as state:
        assert sorted(len(b["custom_ids"]) for b in state.batches()) == [1, 2, 2]
