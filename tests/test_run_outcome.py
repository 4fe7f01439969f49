"""A run that defers rows because a provider failed says which, why and how many, and exits 3; caps and
budgets are a normal night (exit 0). A model priced at 0 shows cost 0, not a blank cell."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import WORKFLOWS, Shop, at
from openpyxl import load_workbook

from sheetbot.cli.main import main
from sheetbot.config.load import load_config
from sheetbot.morning.metrics import night_metrics
from sheetbot.morning.summary import describe_run, metrics_table
from sheetbot.night.outcomes import EXIT_PROVIDER_FAILED, exit_code, provider_failures

LISTING = WORKFLOWS["listing"]


def night(shop: Shop, rows: int) -> None:
    for n in range(rows):
        shop.add(type="listing", input=f"row {n}")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))


def test_an_outage_names_the_provider_why_and_how_many(tmp_path: Path) -> None:
    shop = Shop(
        tmp_path,
        concurrency=1,
        providers={"openai": {"breaker_failures": 3, "max_retries": 0}},
        workflows={"listing": {**LISTING, "max_failed_calls": 1}},
    )
    night(shop, 7)
    shop.clock.set(at("2026-11-24T10:00"))  # by hand, no deadline: an open breaker defers (no waiting it out)
    shop.fake.fail_next(503, times=100)
    report = shop.run()
    assert report.deferred.total() == 4
    summary = describe_run(report)
    assert "provider openai failed: 4 row(s) deferred" in summary
    assert "circuit breaker" in summary.split("provider openai failed")[1]
    assert exit_code(report.deferred_by) == EXIT_PROVIDER_FAILED == 3


def test_rows_over_the_budget_are_a_normal_night(tmp_path: Path) -> None:
    shop = Shop(tmp_path, limits={"nightly_usd": 0.0015}, concurrency=1)
    night(shop, 3)
    shop.fake.reply_with(lambda body: "x" * 1600)  # ≈ $0.00064 a row: the budget fits two
    report = shop.run()
    assert report.deferred.total() == 1
    assert exit_code(report.deferred_by) == 0
    assert "provider" not in describe_run(report)


def test_rows_left_when_the_window_ends_are_a_normal_night(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    night(shop, 2)
    report = shop.run(until=at("2026-11-24T00:30"))  # already over
    assert report.deferred.total() == 2 and exit_code(report.deferred_by) == 0


@pytest.mark.parametrize(
    ("reason", "failed"),
    [
        ("deferred: the night window ended before this row started", False),
        ("deferred: the night window ended while this row was running", False),
        ("deferred: the batch did not finish before the window ended", False),
        ("deferred: tonight's budget of $5.00 (limits.nightly_usd) would be exceeded: $4.99 spent", False),
        ("running live", False),
        ("deferred: openai failed 5 calls in a row; the circuit breaker holds further calls", True),
        ("deferred: the batch could not be sent (the provider answered 502)", True),
        ("deferred: the API key in OPENAI_API_KEY was refused (401): fix it, the rows run then", True),
        ("deferred: OPENAI_API_KEY is not set", True),
        ("deferred: something no one has seen yet", True),  # unknown: reported, never taken for normal
    ],
)
def test_which_deferrals_are_a_providers_failure(reason: str, failed: bool) -> None:
    assert bool(provider_failures(Counter({("openai", reason): 2}))) is failed


def test_reasons_are_grouped_per_provider_commonest_first() -> None:
    deferred = Counter(
        {
            ("openai", "deferred: the circuit breaker holds further calls for another 14 min"): 3,
            ("openai", "deferred: the circuit breaker holds further calls for another 13 min"): 5,
            ("anthropic", "deferred: ANTHROPIC_API_KEY is not set"): 1,
            ("openai", "deferred: the night window ended before this row started"): 9,
        }
    )
    found = provider_failures(deferred)
    assert [(f.provider, f.rows) for f in found] == [("openai", 8), ("anthropic", 1)]
    assert found[0].reasons[0].endswith("13 min")


# -- through the command line ----------------------------------------------------------------------------
CONFIG = """\
timezone: Europe/Berlin
board: {kind: local, path: queue.xlsx, sheet: Queue}
state: sheetbot.db
providers:
  openai: {api_key_env: SHEETBOT_TEST_UNSET_KEY}
prices:
  gpt-4.1-mini: {input: 0.4, output: 1.6}
workflows:
  listing: {provider: openai, model: gpt-4.1-mini, mode: MODE, prompt: "Rewrite {{input}}"}
"""


def _cli_night(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SHEETBOT_TEST_UNSET_KEY", raising=False)
    path = tmp_path / "sheetbot.yaml"
    path.write_text(CONFIG.replace("MODE", mode), encoding="utf-8")
    assert main(["init", "--config", str(path)]) == 0
    book = load_workbook(tmp_path / "queue.xlsx")
    ws = book["Queue"]
    header = [c.value for c in ws[1]]
    for n in range(3):
        ws.append([{"type": "listing", "input": f"tent {n}"}.get(str(h)) for h in header])
    book.save(tmp_path / "queue.xlsx")
    assert main(["lock", "--config", str(path)]) == 0
    return path


def test_run_exits_3_and_names_the_missing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _cli_night(tmp_path, "live", monkeypatch)
    capsys.readouterr()
    assert main(["run", "--config", str(path)]) == 3
    out = capsys.readouterr().out
    assert "provider openai failed: 3 row(s) deferred" in out and "SHEETBOT_TEST_UNSET_KEY" in out


def test_run_of_a_normal_night_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _cli_night(tmp_path, "preview", monkeypatch)
    assert main(["run", "--config", str(path)]) == 0
    assert "provider" not in capsys.readouterr().out


# -- a free model costs 0 ---------------------------------------------------------------------------------
def test_a_model_priced_at_zero_shows_cost_0_on_the_board_and_in_report(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    config: dict[str, Any] = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    config["prices"]["gpt-4.1-mini"] = {"input": 0, "output": 0}  # a local model
    shop.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    night(shop, 2)
    report = shop.run()
    assert report.done.total() == 2
    ws = load_workbook(shop.book)["Queue"]
    header = [c.value for c in ws[1]]
    costs = [line[header.index("cost")] for line in ws.iter_rows(min_row=2, values_only=True)]
    assert costs == [0, 0]  # a number 0, not an empty cell
    with shop.state() as state:
        metrics = night_metrics(state, nights=1, prices=shop.config.prices)
    table = metrics_table(metrics)
    cost_column = next(c for c in table.columns if c.header == "cost")
    assert list(cost_column.cells) == ["$0.0000"]


def test_rows_without_an_answer_keep_an_empty_cost(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    night(shop, 1)
    ws = load_workbook(shop.book)["Queue"]
    header = [c.value for c in ws[1]]
    assert [line[header.index("cost")] for line in ws.iter_rows(min_row=2, values_only=True)] == [None]
