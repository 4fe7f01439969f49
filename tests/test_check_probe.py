"""`sheetbot check` asks each provider what it offers, for free, instead of only looking for the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import yaml
from fakellm import FakeLLM

from sheetbot.boards.local import LocalBoard
from sheetbot.cli.check import run_check
from sheetbot.config.load import load_config
from sheetbot.night.context import schema_for

ENV = {"OPENAI_API_KEY": "sk-test", "LOCAL_KEY": "x"}


def setup(folder: Path, *, provider: str = "openai", model: str = "gpt-4.1-mini", mode: str = "live") -> Path:
    data: dict[str, Any] = {
        "timezone": "UTC",
        "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue"},
        "providers": {
            "openai": {"api_key_env": "OPENAI_API_KEY"},
            "local": {"kind": "openai", "base_url": "https://llm.internal/v1", "api_key_env": "LOCAL_KEY"},
        },
        "prices": {model: {"input": 1.0, "output": 2.0}},
        "workflows": {"blog": {"provider": provider, "model": model, "mode": mode, "prompt": "Write {{input}}"}},
    }
    path = folder / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    LocalBoard(folder / "queue.xlsx", "Queue").ensure_schema(schema_for(load_config(path)))
    return path


def test_a_server_that_does_not_answer_is_reported_not_passed(tmp_path: Path) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(refuse))
    [line] = run_check(setup(tmp_path, provider="local"), env=ENV, http_client=client)
    assert line.startswith("providers.local (") and "could not be reached at https://llm.internal/v1" in line


def test_a_refused_key_is_reported_by_check(tmp_path: Path) -> None:
    fake = FakeLLM()
    fake.fail_next(401, body="Incorrect API key provided: sk-test")
    [line] = run_check(setup(tmp_path), env=ENV, http_client=fake.async_client())
    assert "refused the API key (HTTP 401): check the environment variable OPENAI_API_KEY" in line
    assert "sk-test" not in line.replace("OPENAI_API_KEY", "")
    assert fake.requests[0].method == "GET" and fake.requests[0].path.endswith("/models")  # nothing paid


def test_a_model_the_vendor_does_not_list_is_named(tmp_path: Path) -> None:
    fake = FakeLLM()
    fake.models = ["gpt-4.1", "o3-mini"]
    [line] = run_check(setup(tmp_path, model="gpt-4.1-mnii"), env=ENV, http_client=fake.async_client())
    assert line.startswith("workflows.blog.model (") and "does not offer model 'gpt-4.1-mnii'" in line
    fake.models.append("gpt-4.1-mnii")
    assert run_check(setup(tmp_path, model="gpt-4.1-mnii"), env=ENV, http_client=fake.async_client()) == []


def test_a_batch_workflow_on_a_server_without_a_batch_api_is_named(tmp_path: Path) -> None:
    fake = FakeLLM()
    fake.batch_api = False
    path = setup(tmp_path, provider="local", model="llama-3.2-3b", mode="batch")
    [line] = run_check(path, env=ENV, http_client=fake.async_client())
    assert line.startswith("workflows.blog.mode (") and "has no Batch API" in line and "set mode: live" in line
    assert all(r.method == "GET" for r in fake.requests)
