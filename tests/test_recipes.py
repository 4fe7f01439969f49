"""The ready workflows in config/workflows/, the example config and the demo rows fit together."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import sheetbot
from sheetbot.config.load import load_config
from sheetbot.config.models import Config, WorkflowConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "config" / "sheetbot.yaml"
RECIPES_DIR = ROOT / "config" / "workflows"
DEMO_DATA = Path(sheetbot.__file__).resolve().parent / "cli" / "demo_data.yaml"

WORKFLOWS = {
    "blog_draft",
    "listing_rewrite",
    "product_page_update",
    "ad_variants",
    "email_sms",
    "competitor_scan",
    "review_sentiment",
    "returns_reason",
    "ai_search_visibility",
    "demand_signals",
}
#: Named columns every workflow may use besides `input`, so that one sheet can hold them all.
VOCABULARY = {"brand", "audience", "product", "channel", "keywords", "url", "competitor", "context"}
PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(EXAMPLE_CONFIG)


@pytest.fixture(scope="module")
def demo_rows() -> list[dict[str, Any]]:
    rows = yaml.safe_load(DEMO_DATA.read_text(encoding="utf-8"))
    assert isinstance(rows, list)
    return rows


def placeholders(workflow: WorkflowConfig) -> set[str]:
    return set(PLACEHOLDER.findall(workflow.system)) | set(PLACEHOLDER.findall(workflow.prompt))


def named_columns(workflow: WorkflowConfig) -> set[str]:
    return placeholders(workflow) - {"input"}


# -- the example config ------------------------------------------------------------------------------


def test_example_config_loads_with_all_ten_workflows(config: Config) -> None:
    assert set(config.workflows) == WORKFLOWS
    assert config.include == ["workflows/*.yaml"]
    assert config.timezone == "Europe/Berlin"
    assert config.board.kind == "local"
    assert config.limits.nightly_rows == 200


def test_every_model_has_a_price_and_every_provider_is_configured(config: Config) -> None:
    for name, workflow in config.workflows.items():
        assert workflow.model in config.prices, f"{name}: no price for {workflow.model}"
        assert workflow.provider in config.providers, f"{name}: provider {workflow.provider} not configured"


def test_both_providers_are_used(config: Config) -> None:
    providers = {workflow.provider for workflow in config.workflows.values()}
    assert providers == {"anthropic", "openai"}


# -- each workflow ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_recipe_file_holds_exactly_its_workflow(name: str) -> None:
    data = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert list(data) == ["workflows"]
    assert list(data["workflows"]) == [name]


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_prompt_uses_input(config: Config, name: str) -> None:
    assert "{{input}}" in config.workflows[name].prompt


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_placeholders_come_from_the_shared_vocabulary(config: Config, name: str) -> None:
    columns = named_columns(config.workflows[name])
    assert columns <= VOCABULARY, f"{name} uses columns outside the vocabulary: {columns - VOCABULARY}"
    assert len(columns) <= 2, f"{name} uses more than two named columns: {sorted(columns)}"


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_checklist_caps_and_description(config: Config, name: str) -> None:
    workflow = config.workflows[name]
    assert 4 <= len(workflow.checklist) <= 6
    assert all(item.strip() for item in workflow.checklist)
    assert workflow.nightly_rows is not None and workflow.nightly_rows > 0
    assert workflow.description.strip() and "\n" not in workflow.description.strip()
    assert workflow.system.strip(), f"{name} has no system prompt"


# -- the demo rows ------------------------------------------------------------------------------------


def test_demo_has_thirty_rows_over_at_least_six_workflows(demo_rows: list[dict[str, Any]]) -> None:
    assert len(demo_rows) == 30
    used = {row.get("type") for row in demo_rows} & WORKFLOWS
    assert len(used) >= 6
    for row in demo_rows:
        assert row.get("type"), row
        assert "input" in row, row
        assert row.get("priority") in {"P0", "P1", "P2", "P3"}, row
        assert len(str(row["input"])) < 600, row["input"][:60]


def test_demo_rows_carry_the_columns_their_workflow_uses(config: Config, demo_rows: list[dict[str, Any]]) -> None:
    for row in demo_rows:
        workflow = config.workflows.get(row["type"])
        if workflow is None:
            continue  # the deliberately misspelled type
        missing = named_columns(workflow) - set(row)
        assert not missing, f"{row['type']} row {str(row['input'])[:40]!r} lacks columns {sorted(missing)}"


def test_demo_has_the_deliberate_bad_rows(demo_rows: list[dict[str, Any]]) -> None:
    unknown = [row for row in demo_rows if row["type"] not in WORKFLOWS]
    assert len(unknown) == 1 and unknown[0]["type"] == "blog_drafts"
    inputs = [str(row["input"] or "") for row in demo_rows]
    assert sum(1 for text in inputs if not text.strip()) == 1
    assert sum(1 for text in inputs if text.startswith("=")) == 1
    assert sum(1 for text in inputs if "{{brand}}" in text) == 1
