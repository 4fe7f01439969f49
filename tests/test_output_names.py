"""Structured-output field names that collide in the schema, and the one table of prompt-caching minimums."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sheetbot.batch.estimate import estimate
from sheetbot.config.load import inspect_config
from sheetbot.providers.pricing import cache_minimum


def config_with(
    folder: Path, outputs: list[dict[str, str]], *, model: str = "claude-haiku-4-5", system: str = ""
) -> Path:
    data = {
        "timezone": "UTC",
        "providers": {"anthropic": {"api_key_env": "ANTHROPIC_API_KEY"}},
        "prices": {model: {"input": 1.0, "output": 5.0}},
        "workflows": {
            "triage": {
                "provider": "anthropic",
                "model": model,
                "system": system,
                "prompt": "Triage {{input}}",
                **({"outputs": outputs} if outputs else {}),
            }
        },
    }
    path = folder / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("names", "clash"),
    [
        (["a_b", "a b"], "'a_b' and 'a b'"),
        (["a b", "x", "a_b"], "'a b' and 'a_b'"),
        (["first name", "first_name", "a_b_3"], "'first name' and 'first_name'"),
        (["n" * 64 + "1", "n" * 64 + "2"], "would share one name"),
        (["same", "same"], "'same' and 'same'"),
    ],
)
def test_output_names_that_collide_in_the_schema_are_a_config_error(
    tmp_path: Path, names: list[str], clash: str
) -> None:
    config, problems = inspect_config(config_with(tmp_path, [{"name": n} for n in names]))
    assert config is None
    [problem] = problems
    assert problem.where.startswith("workflows.triage.outputs") and problem.line is not None
    assert clash in problem.message and "rename one of them" in problem.message


def test_distinct_output_names_pass(tmp_path: Path) -> None:
    config, problems = inspect_config(config_with(tmp_path, [{"name": "a_b"}, {"name": "a_b_3"}, {"name": "a c"}]))
    assert problems == [] and config is not None


@pytest.mark.parametrize(
    ("model", "tokens"),
    [
        ("claude-haiku-4-5", 4096),
        ("claude-haiku-4-5-20251001", 4096),
        ("claude-opus-4-5", 4096),
        ("claude-3-5-haiku-20241022", 2048),
        ("claude-3-haiku-20240307", 2048),
        ("claude-sonnet-4-5", 1024),
        ("claude-opus-4-1", 1024),
        ("gpt-4.1-mini", 1024),
    ],
)
def test_prompt_caching_minimums_come_from_one_table(model: str, tokens: int) -> None:
    assert cache_minimum(model) == tokens


@pytest.mark.parametrize(("model", "cached"), [("claude-haiku-4-5", False), ("claude-sonnet-4-5", True)])
def test_a_3000_token_system_prompt_is_cached_by_sonnet_but_not_by_haiku_4_5(
    tmp_path: Path, model: str, cached: bool
) -> None:
    config, problems = inspect_config(config_with(tmp_path, [], model=model, system="rule " * 2400))
    assert config is not None, problems
    rows = [{"input": f"row {n}"} for n in range(20)]
    found = estimate(config, "triage", rows)
    assert (found.cached_usd < found.batch_usd) is cached
