"""The YAML's JSON Schema (issue 13 item 10): generated from the models, shipped, in sync, and never stricter
than the loader: every config `sheetbot check` accepts, the schema accepts too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from sheetbot.cli.main import main
from sheetbot.config.load import inspect
from sheetbot.config.schema import REGENERATE, SCHEMA_FILE, config_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent


def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(data: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(data)]


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        f"{SCHEMA_FILE} is out of date with the models: regenerate it with `{REGENERATE}`"
    )


def test_sheetbot_schema_prints_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SCHEMA_FILE.read_text(encoding="utf-8")


def test_editors_get_descriptions_from_the_models_comments() -> None:
    defs = config_schema()["$defs"]
    assert "Airtable allows 5" in defs["BoardConfig"]["properties"]["requests_per_s"]["description"]
    assert "Calls in flight" in defs["ProviderConfig"]["properties"]["concurrency"]["description"]
    assert defs["PriceConfig"]["description"] == "Dollars per million tokens."  # a class docstring
    assert defs["ScheduleConfig"]["properties"]["cutoff"]["default"] == "17:00"  # as the YAML writes it


def test_the_demo_config_names_the_schema_and_validates(tmp_path: Path) -> None:
    assert main(["demo", "--dir", str(tmp_path / "d")]) == 0
    written = tmp_path / "d" / "sheetbot.yaml"
    first = written.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA_FILE.resolve().as_uri()}"
    assert SCHEMA_FILE.is_file()
    assert errors(yaml.safe_load(written.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    "path",
    [ROOT / "config" / "sheetbot.yaml", *sorted((ROOT / "config" / "workflows").glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_the_shipped_configs_and_included_workflow_files_validate(path: Path) -> None:
    # An included file holds `workflows:` only; every other key is optional, so it is a config by itself.
    assert errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


VALID = """
timezone: Europe/Berlin
include: [workflows/*.yaml]
schedule: {cutoff: "7:05", window: {start: "23:00", end: "05:00"}, harvest_every_min: 0}
providers:
  ollama: {kind: openai, base_url: "http://localhost:11434/v1", api_key_env: OLLAMA_API_KEY}
  anthropic: {api_key_env: ANTHROPIC_API_KEY}
prices:
  llama3.1:8b: {input: 0, output: 0}
  claude-sonnet-4-6: {input: 3.0, output: 15.0}
escalation:
  sla: {P0: 2h, P1: 90m, P2: 3, P3: " 1.5d "}
  queue_depth: {over: 10, for_min: 30, route: null}
workflows:
  mine:
    provider: ollama
    model: llama3.1:8b
    mode: batch
    steps: [{name: draft, prompt: "Write {{input}}"}]
    outputs: [{name: tone, type: choice, choices: [warm, plain]}]
    on_approve: {webhook: "https://example.com/hook", secret_env: HOOK_SECRET}
"""


def test_what_the_loader_accepts_the_schema_accepts(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "x.yaml").write_text(
        (ROOT / "config" / "workflows" / "blog_draft.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    path = tmp_path / "sheetbot.yaml"
    path.write_text(VALID, encoding="utf-8")
    found = inspect(path)
    assert found.problems == [] and found.config is not None
    assert errors(yaml.safe_load(VALID)) == []


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ({"bord": {}}, ""),  # a typo
        ({"schedule": {"cutoff": "17:00:00"}}, "schedule.cutoff"),  # seconds: clock_time refuses them
        ({"schedule": {"cutoff": 1020}}, "schedule.cutoff"),  # YAML's reading of an unquoted 17:00
        ({"limits": {"nightly_usd": -1}}, "limits.nightly_usd"),
        ({"board": {"kind": "excel"}}, "board.kind"),
        ({"escalation": {"sla": {"P9": "2h"}}}, "escalation.sla"),
        ({"escalation": {"sla": {"P0": "soon"}}}, "escalation.sla.P0"),
    ],
)
def test_the_schema_catches_what_editors_should_flag(snippet: dict[str, Any], where: str) -> None:
    found = errors(snippet)
    assert found and any(e.startswith(f"{where}:") for e in found), found
