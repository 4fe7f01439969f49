"""The composition root hands the night the layers above it: batch mode and the harvest's morning steps.

The night declares these seams (sheetbot/night/context.py) and imports neither sheetbot.batch nor
sheetbot.morning; sheetbot/service/wiring.py fills them for the CLI and `serve`. These tests run the
phases in the context the CLI uses, so a seam left empty there shows as a changed night.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import responses
from harness import ENV, WORKFLOWS, Shop, at

from sheetbot.night.harvest import harvest
from sheetbot.night.run import NO_BATCH_MODE, run
from sheetbot.service.wiring import open_context

HOOK = "https://hooks.shop.test/publish"


def test_the_clis_context_sends_batch_rows_to_batch_mode(tmp_path: Path) -> None:
    """Batch mode makes the workflow's Batch API client, which asks for the key: the row fails on the key.
    A context without batch mode would leave the row deferred, sending nothing."""
    shop = Shop(tmp_path, workflows={"blog": {**WORKFLOWS["blog"], "mode": "batch"}}, env={})
    shop.add(type="blog", input="Tents in winter")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    with open_context(shop.config_path, clock=shop.clock, env={}) as ctx:
        report = run(ctx)
    assert report.failed == {"blog": 1} and NO_BATCH_MODE not in report.reasons
    assert "ANTHROPIC_API_KEY" in next(iter(report.reasons))


def test_a_context_without_batch_mode_defers_batch_rows_and_sends_nothing(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows={"blog": {**WORKFLOWS["blog"], "mode": "batch"}})
    shop.add(type="blog", input="Tents in winter")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    with shop.context() as ctx:
        report = run(replace(ctx, batch_mode=None))
    assert report.deferred == {"blog": 1} and report.reasons == {NO_BATCH_MODE: 1}
    assert shop.fake.requests == []
    assert shop.row(input="Tents in winter")["status"] == "deferred"


def test_the_clis_context_shows_the_preview_estimate_of_batch_mode(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows={"blog": {**WORKFLOWS["blog"], "mode": "preview"}})
    shop.add(type="blog", input="Tents in winter")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    with open_context(shop.config_path, clock=shop.clock, env=ENV) as ctx:
        report = run(ctx)
    assert any(n.startswith("preview blog: 1 row(s)") and "batch" in n for n in report.notes)


@responses.activate
def test_the_clis_harvest_delivers_approved_actions_and_a_context_without_the_morning_does_not(
    tmp_path: Path,
) -> None:
    responses.post(HOOK, status=200)
    listing = {**WORKFLOWS["listing"], "on_approve": {"webhook": HOOK, "secret_env": "PUBLISH_SECRET"}}
    env = {**ENV, "PUBLISH_SECRET": "s3cret-for-tests"}
    shop = Shop(tmp_path, workflows={"listing": listing}, env=env)
    for text in ("Trail tent", "Down jacket"):
        shop.add(type="listing", input=text, brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    tent, jacket = shop.row(input="Trail tent")["id"], shop.row(input="Down jacket")["id"]

    shop.set(jacket, review="approve")
    with open_context(shop.config_path, clock=shop.clock, env=env) as ctx:
        bare = harvest(replace(ctx, morning=None))  # the decision is recorded; no action is queued or sent
    assert bare.decisions == {"approve": 1} and bare.actions is not None and bare.actions.published == []
    assert bare.dashboard is not None and bare.dashboard.skipped and not bare.dashboard.written
    assert shop.row(id=jacket)["status"] == "approved" and len(responses.calls) == 0

    shop.set(tent, review="approve")
    with open_context(shop.config_path, clock=shop.clock, env=env) as ctx:
        report = harvest(ctx)
    assert report.actions is not None and report.actions.published == [tent]
    assert shop.row(id=tent)["status"] == "published" and len(responses.calls) == 1
    assert report.dashboard is not None and report.dashboard.written  # the workbook's Dashboard sheet
