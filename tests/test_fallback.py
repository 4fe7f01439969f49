"""Graceful degradation (issue 14 item 4): a workflow's `fallback:` runs the row when the primary cannot serve.

Whole nights on the local board (a real .xlsx, a real SQLite state, a fake clock), the models faked at the
SDKs' HTTP transport: an open breaker, a refused key and a budget that fits only the fallback switch; a
refusal of the request's shape does not; the next healthy night runs on the primary again; `report`
prices each model apart. One night on the Google Sheets fake; the `check` errors of a bad `fallback:`.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from boards_under_test import Night, google_board
from harness import Shop, at
from loopback_llm import LoopbackLLM
from openpyxl import load_workbook
from prometheus_client import generate_latest
from test_batch import BLOG as BATCH_BLOG
from test_batch import BatchShop
from test_batch import night as batch_night

from sheetbot.cli.main import main
from sheetbot.config.load import load_config
from sheetbot.morning.metrics import night_metrics
from sheetbot.service.prometheus import metrics_registry
from sheetbot.state import Attempt

SONNET, HAIKU, MINI = "claude-sonnet-4-6", "claude-haiku-4-5", "gpt-4.1-mini"
LISTING: dict[str, Any] = {
    "provider": "anthropic",
    "model": SONNET,
    "max_tokens": 400,
    "prompt": "Rewrite this listing:\n{{input}}",
    "fallback": {"provider": "openai", "model": MINI},
}


def shop_with(tmp_path: Path, *, fallback: dict[str, Any] | None = None, **keys: Any) -> Shop:
    """The Shop harness with a listing workflow on Sonnet, its fallback, and Haiku priced too."""
    shop = Shop(tmp_path, workflows={"listing": LISTING}, concurrency=1, **keys)
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["prices"][HAIKU] = {"input": 1.0, "output": 5.0}
    data["workflows"]["listing"]["fallback"] = fallback or LISTING["fallback"]
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    return shop


def night(shop: Shop, day: str, *inputs: str) -> None:
    """Rows added and locked at 17:00 on ``day``; the clock at 01:00 the next morning, in the window."""
    for text in inputs:
        shop.add(type="listing", input=text)
    shop.clock.set(at(f"{day}T17:00"))
    shop.lock()
    shop.clock.set(at(f"{date.fromisoformat(day) + timedelta(days=1)}T01:00"))


def models_asked(shop: Shop) -> list[str]:
    return [r.json["model"] for r in shop.fake.requests if r.json]


def test_an_open_breaker_sends_the_rows_to_the_fallback_and_the_next_night_is_the_primary_s(tmp_path: Path) -> None:
    shop = shop_with(tmp_path, providers={"anthropic": {"breaker_failures": 1, "breaker_cooldown_s": 900}})
    night(shop, "2026-11-23", "Trail tent", "Rain jacket")
    shop.fake.fail_next(529)  # Anthropic is overloaded: one failure opens its breaker
    report = shop.run()
    assert report.done.total() == 2
    assert models_asked(shop) == [SONNET, MINI, MINI]  # the second row never asks the open breaker
    assert not [s for s in shop.slept if s >= 60]  # no waiting out the cool-down: the fallback serves now
    for row in shop.rows():
        assert row["status"] == "review" and row["model"] == MINI
        assert row["error"] == f"made by {MINI} (fallback: primary circuit open)"
    with shop.state() as state:
        calls = state.calls_of_night("2026-11-23", "listing")
    assert [c.model for c in calls] == [SONNET, MINI, MINI]

    # The next night Anthropic is healthy: the new rows run on the primary again, without a note.
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    night(shop, "2026-11-24", "Camp stove")
    shop.run()
    stove = shop.row(input="Camp stove")
    assert stove["status"] == "review" and stove["model"] == SONNET and stove["error"] == ""
    assert models_asked(shop)[-1] == SONNET


def test_a_refused_key_sends_the_rows_to_the_fallback(tmp_path: Path) -> None:
    shop = shop_with(tmp_path)
    night(shop, "2026-11-23", "Trail tent", "Rain jacket")
    shop.fake.fail_next(401)
    assert shop.run().done.total() == 2
    assert models_asked(shop) == [SONNET, MINI, MINI]  # the refused key opened the breaker: asked once
    assert {r["error"] for r in shop.rows()} == {f"made by {MINI} (fallback: primary refused credentials)"}
    assert {r["model"] for r in shop.rows()} == {MINI}


def test_a_missing_key_for_the_primary_sends_the_rows_to_the_fallback(tmp_path: Path) -> None:
    shop = shop_with(tmp_path, env={"OPENAI_API_KEY": "sk-test-openai"})
    night(shop, "2026-11-23", "Trail tent")
    assert shop.run().done.total() == 1
    row = shop.row(input="Trail tent")
    assert row["model"] == MINI and "fallback: primary unavailable" in row["error"]
    assert "ANTHROPIC_API_KEY" in row["error"]


def test_a_budget_that_fits_only_the_fallback_runs_the_rows_on_it(tmp_path: Path) -> None:
    # Sonnet's worst case is 400 output tokens × $15/M = $0.006 (more than the night's $0.004);
    # Haiku's is 400 × $5/M = $0.002 plus a little input: it fits.
    shop = shop_with(tmp_path, fallback={"model": HAIKU}, limits={"nightly_usd": 0.004})
    night(shop, "2026-11-23", "Trail tent")
    assert shop.run().done.total() == 1
    assert models_asked(shop) == [HAIKU]
    row = shop.row(input="Trail tent")
    assert row["model"] == HAIKU and row["error"] == f"made by {HAIKU} (fallback: budget left fits only the fallback)"


def test_a_budget_that_fits_neither_defers_the_row(tmp_path: Path) -> None:
    shop = shop_with(tmp_path, fallback={"model": HAIKU}, limits={"nightly_usd": 0.001})
    night(shop, "2026-11-23", "Trail tent")
    shop.run()
    row = shop.row(input="Trail tent")
    assert row["status"] == "deferred" and "tonight's budget" in row["error"]
    assert shop.fake.requests == []


def test_a_refused_request_shape_is_not_an_outage_and_does_not_fall_back(tmp_path: Path) -> None:
    shop = shop_with(tmp_path)
    night(shop, "2026-11-23", "Trail tent")
    shop.fake.fail_next(400, body="temperature: 'temperature' is deprecated for this model.")
    shop.run()
    row = shop.row(input="Trail tent")
    assert row["status"] == "failed" and "temperature" in row["error"]
    assert models_asked(shop) == [SONNET]  # never the fallback
    assert row["model"] == ""


def test_a_step_stored_on_the_primary_is_not_asked_again_of_the_fallback(tmp_path: Path) -> None:
    steps = [
        {"name": "outline", "prompt": "Outline {{input}}"},
        {"name": "draft", "prompt": "Write from {{steps.outline}}"},
    ]
    shop = shop_with(tmp_path)
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    wf = data["workflows"]["listing"]
    del wf["prompt"]
    wf["steps"] = steps
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    night(shop, "2026-11-23", "Trail tent")
    replies = iter(["an outline", "a draft"])

    def answer(body: dict[str, Any]) -> str:
        text = next(replies)
        if text == "an outline":
            shop.fake.fail_next(401)  # the key is revoked after the outline was paid for
        return text

    shop.fake.reply_with(answer)
    assert shop.run().done.total() == 1
    assert models_asked(shop) == [SONNET, SONNET, MINI]  # outline (Sonnet), draft refused, draft (fallback)
    row = shop.row(input="Trail tent")
    assert row["output"] == "a draft" and row["model"] == MINI
    assert row["error"] == f"step draft made by {MINI} (fallback: primary refused credentials)"
    with shop.state() as state:
        outline = state.stored_output(row["id"], 1, "outline")
    assert isinstance(outline, Attempt) and outline.model == SONNET and outline.output == "an outline"


def test_a_row_deferred_after_a_paid_step_resumes_on_the_other_model_without_paying_it_again(tmp_path: Path) -> None:
    steps = [
        {"name": "outline", "prompt": "Outline {{input}}"},
        {"name": "draft", "prompt": "Write from {{steps.outline}}"},
    ]
    shop = shop_with(tmp_path, providers={"anthropic": {"breaker_failures": 1}})
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    wf = data["workflows"]["listing"]
    del wf["prompt"]
    wf["steps"] = steps
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    night(shop, "2026-11-23", "Trail tent")
    shop.fake.fail_next(529)  # Anthropic down: the outline is made by the fallback…
    replies = iter(["an outline"])

    def answer(body: dict[str, Any]) -> str:
        shop.fake.fail_next(401)  # …whose key is then revoked: the draft has no model tonight
        return next(replies)

    shop.fake.reply_with(answer)
    shop.run()
    row = shop.row(input="Trail tent")
    assert row["status"] == "deferred" and models_asked(shop) == [SONNET, MINI, MINI]

    # The next night Anthropic is back: only the draft is asked, of Sonnet; the outline is not paid twice.
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    night(shop, "2026-11-24")
    shop.fake.reply_with(lambda body: "a draft")
    before = len(shop.fake.requests)
    shop.run()
    assert models_asked(shop)[before:] == [SONNET]
    assert "Write from an outline" in str(shop.fake.requests[-1].json)
    row = shop.row(input="Trail tent")
    assert row["status"] == "review" and row["output"] == "a draft" and row["model"] == SONNET


def test_a_batch_workflow_whose_key_is_refused_at_submit_runs_live_on_the_fallback(tmp_path: Path) -> None:
    blog = {**BATCH_BLOG, "fallback": {"provider": "openai", "model": MINI}}
    shop = BatchShop(tmp_path, workflows={"blog": blog})
    refuse = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    shop.batch.transport = httpx2.MockTransport(lambda request: httpx2.Response(401, json=refuse))
    batch_night(shop, *({"type": "blog", "input": f"row {n}", "brand": "B"} for n in range(3)))
    report = shop.run()
    assert report.done.total() == 3
    assert models_asked(shop) == [MINI] * 3  # live, on the fallback; the refused primary is not asked again
    assert any("rows with a fallback ran live on it" in note for note in report.notes)
    for row in shop.rows():
        assert row["status"] == "review" and row["model"] == MINI
        assert row["error"] == f"made by {MINI} (fallback: primary refused credentials)"


def test_report_prices_each_model_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = shop_with(tmp_path, providers={"anthropic": {"breaker_failures": 1}})
    night(shop, "2026-11-23", "Trail tent", "Rain jacket")
    shop.fake.reply_with(lambda body: "x" * 400)
    shop.fake.fail_next(529)
    shop.run()
    with shop.state() as state:
        [metrics] = night_metrics(state, prices=shop.config.prices)
    assert set(metrics.by_model) == {SONNET, MINI}
    assert metrics.by_model[SONNET] == {"calls": 1, "cost_usd": 0.0}  # the failed call cost nothing
    assert metrics.by_model[MINI]["calls"] == 2 and metrics.by_model[MINI]["cost_usd"] > 0
    assert metrics.by_model[MINI]["cost_usd"] == pytest.approx(metrics.cost_usd)

    assert main(["report", "--config", str(shop.config_path), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["by_model"][MINI]["calls"] == 2 and entry["cost_usd"] == metrics.cost_usd  # old keys kept
    assert main(["report", "--config", str(shop.config_path)]) == 0
    text = capsys.readouterr().out
    assert "cost per model" in text and MINI in text and SONNET in text
    table = text.split("cost per model", 1)[1].splitlines()
    assert any(MINI in line and "$" in line and "100%" in line for line in table)  # Sonnet's refusal cost $0
    assert max(len(line) for line in table) <= 100  # the new table fits a narrow terminal as it is

    scraped = generate_latest(metrics_registry(shop.config)).decode()
    assert f'sheetbot_model_cost_usd_total{{model="{MINI}",workflow="listing"}} {metrics.cost_usd}' in scraped
    assert f'sheetbot_model_cost_usd_total{{model="{SONNET}",workflow="listing"}} 0.0' in scraped


def test_a_google_sheet_shows_the_fallback_model(tmp_path: Path) -> None:
    with ExitStack() as stack:
        under = google_board(tmp_path, stack, ["id", "type", "priority", "input", "brand"])
        night_ = Night(tmp_path, under.board, workflows={"listing": LISTING})
        under.person.add(type="listing", input="Trail tent", brand="Kestrel")
        night_.lock()
        night_.clock.set(at("2026-11-24T01:00"))
        night_.fake.fail_next(401)
        assert night_.run().done.total() == 1
        [row] = under.person.rows()
        assert row["status"] == "review" and row["model"] == MINI
        assert row["error"] == f"made by {MINI} (fallback: primary refused credentials)"


# -- bad input: one line each, naming the key and the line ----------------------------------------------------
def check_lines(tmp_path: Path, fallback: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> list[str]:
    shop = shop_with(tmp_path)
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["workflows"]["listing"]["fallback"] = fallback
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    main(["check", "--config", str(shop.config_path)])
    out = capsys.readouterr()
    return [line for line in (out.out + out.err).splitlines() if "workflows.listing.fallback" in line]


def yaml_line(path: Path, key: str) -> int:
    """The line of ``fallback:`` or of the key under it (the file as yaml.safe_dump wrote it)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines, 1) if line.strip() == "fallback:")
    return (
        start
        if key == "fallback:"
        else next(i for i in range(start, len(lines) + 1) if lines[i - 1].strip().startswith(key))
    )


@pytest.mark.parametrize(
    ("fallback", "key", "says"),
    [
        ({"model": SONNET}, "workflows.listing.fallback", "the fallback is the primary itself"),
        ({"provider": "anthropic", "model": SONNET}, "workflows.listing.fallback", "the primary itself"),
        ({"provider": "mistral", "model": MINI}, "workflows.listing.fallback.provider", "'mistral' is not configured"),
        ({"model": "gpt-9"}, "workflows.listing.fallback.model", "model 'gpt-9' has no price"),
    ],
)
def test_a_bad_fallback_is_a_one_line_check_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fallback: dict[str, Any], key: str, says: str
) -> None:
    [line] = check_lines(tmp_path, fallback, capsys)
    where = yaml_line(tmp_path / "sheetbot.yaml", key.rsplit(".", 1)[1] + ":")
    assert line.lstrip("✗ ").startswith(f"{key} (") and f"sheetbot.yaml:{where})" in line and says in line


def test_the_readme_example_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### When the primary model cannot serve", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "sheetbot.yaml"
    path.write_text(example, encoding="utf-8")
    llm = LoopbackLLM()  # where `check` asks each provider for its models (it lists none)
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": llm.url.removesuffix("/v1"),
        "OPENAI_BASE_URL": llm.url,
    }
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            assert main(["init", "--config", str(path)]) == 0
            assert load_workbook(tmp_path / "queue.xlsx")["Queue"][1][-1].value == "model"
            capsys.readouterr()
            assert main(["check", "--config", str(path)]) == 0, capsys.readouterr().out
    finally:
        llm.close()
