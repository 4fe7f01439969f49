"""The intake API (issue 15, item 4): `POST /tasks` adds a `queued` row, `GET /tasks/{id}` follows it, a callback
hears the decision. The app runs in-process (Starlette's TestClient, schemathesis' ASGI transport): no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import responses
import schemathesis
import yaml
from boards_under_test import BOARDS, TEAM_HEADER, Night
from harness import Shop, at, sent
from hypothesis import HealthCheck, given, settings
from openpyxl import load_workbook
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from sheetbot.cli.check import run_check
from sheetbot.config.load import inspect_config, load_config
from sheetbot.errors import SheetbotError
from sheetbot.morning import intake
from sheetbot.morning.intake import extra_columns
from sheetbot.service.health import Health
from sheetbot.service.http_app import Intake, build_app, start_http_server

TOKEN = "intake-token-for-tests-0123456789"
SECRET = "callback-secret-for-tests"
RECEIVER = "https://receiver.test/sheetbot"
ID = re.compile(r"^t[a-hjkmnp-z2-9]{7}$")  # sheetbot's own ids (sheetbot/night/identify.py)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def with_api(shop: Shop, **api: Any) -> Shop:
    """The shop's YAML with `api:` (and the port it is served on), reloaded."""
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["api"] = {"token_env": "SHEETBOT_API_TOKEN", "callback_secret_env": "SHEETBOT_CALLBACK_SECRET", **api}
    data["serve"] = {"health_port": 0}
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    shop.env.update(SHEETBOT_API_TOKEN=TOKEN, SHEETBOT_CALLBACK_SECRET=SECRET)
    return shop


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return with_api(Shop(tmp_path))


def client_for(shop: Shop, guard: threading.RLock | None = None) -> TestClient:
    api = Intake(shop.config, shop.context, TOKEN, guard or threading.RLock())
    return TestClient(build_app(Health(), api=api))


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with client_for(shop) as client:
        yield client


def post(client: TestClient, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.post("/tasks", json=body, headers=headers)


def test_a_post_adds_one_queued_row_that_the_next_lock_takes(shop: Shop, client: TestClient) -> None:
    answer = post(client, {"type": "listing", "input": '=HYPERLINK("https://x.test")', "brand": "Kestrel"})
    assert answer.status_code == 202
    task_id = answer.json()["id"]
    assert answer.json() == {"id": task_id, "status": "queued"} and ID.match(task_id)
    row = shop.row(id=task_id)
    assert row["status"] == "queued" and row["type"] == "listing" and row["brand"] == "Kestrel"
    assert row["input"] == '=HYPERLINK("https://x.test")'  # written as text: data, never a formula
    ws = load_workbook(shop.book)["Queue"]
    assert all(cell.data_type != "f" for line in ws.iter_rows(min_row=2) for cell in line)
    assert client.get(f"/tasks/{task_id}", headers=AUTH).json()["status"] == "queued"
    assert shop.lock().locked.total() == 1  # a row a person could have typed: the lock takes it


def test_a_retried_post_with_its_key_gets_the_same_id_and_never_a_second_row(shop: Shop, client: TestClient) -> None:
    body = {"type": "listing", "input": "Trail tent", "brand": "Kestrel", "priority": "P1"}
    first = post(client, body, key="order-1001")
    again = post(client, body, key="order-1001")
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert len(shop.rows()) == 1 and shop.rows()[0]["priority"] == "P1"
    other = post(client, {**body, "input": "Down jacket"}, key="order-1001")
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    assert post(client, body).json()["id"] != first.json()["id"]  # without a key: a new task each time
    assert len(shop.rows()) == 2


def test_a_crash_between_the_record_and_the_append_is_completed_once(
    shop: Shop, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed before the append: the retry appends it. Killed after the append, before `done`: the retry (or
    the harvest) finds it on the board. Exactly one row each time."""
    body = {"type": "listing", "input": "Trail tent", "brand": "Kestrel"}

    def killed(*args: Any, **kwargs: Any) -> None:
        raise SheetbotError("killed")

    with monkeypatch.context() as patch:
        patch.setattr("sheetbot.boards.local.LocalBoard.append_rows", killed)
        first = post(client, body, key="k-1")
    assert first.status_code == 202 and shop.rows() == []  # recorded, not on the board yet
    assert post(client, body, key="k-1").json() == first.json()
    assert [r["id"] for r in shop.rows()] == [first.json()["id"]]

    with monkeypatch.context() as patch:
        patch.setattr("sheetbot.state.intake.IntakeMixin.intake_done", killed)
        with pytest.raises(SheetbotError):
            post(client, body, key="k-2")  # appended, then killed before the record says so
    with shop.context() as ctx:
        assert [t.task_id for t in ctx.state.intake_pending()] == [shop.rows()[1]["id"]]
    shop.harvest()  # the next harvest finds it on the board: marks it done, appends nothing
    assert len(shop.rows()) == 2 and post(client, body, key="k-2").json()["id"] == shop.rows()[1]["id"]
    assert len(shop.rows()) == 2


def test_a_phase_holding_the_board_leaves_the_row_to_the_harvest(shop: Shop) -> None:
    guard = threading.RLock()
    holder = threading.Thread(target=guard.acquire)  # a phase of serve has the board (the run: hours)
    holder.start()
    holder.join()
    with shop.context() as ctx:
        record = intake.submit(ctx, intake.Submission("listing", "Trail tent"), guard=guard, wait_s=0.01)
    assert shop.rows() == []
    shop.harvest()
    assert [r["id"] for r in shop.rows()] == [record.task_id]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "listng", "input": "x"}, "type 'listng' is not a workflow of this board. Did you mean listing?"),
        ({"type": "listing", "input": "   "}, "input is empty"),
        ({"type": "listing", "input": "x", "brnd": "K"}, "field 'brnd' is not a column the workflows read."),
        ({"type": "listing", "input": "x", "status": "approved"}, "field 'status' is not a column"),
        ({"type": "listing", "input": "x", "priority": "P9"}, "priority: Input should be"),
        ({"type": "listing"}, "input: Field required"),
        ({"type": "listing", "input": "x", "callback_url": "http://10.0.0.5/hook"}, "callback_url uses plain http"),
        ({"type": "listing", "input": "x", "callback_url": "https://10.0.0.5/h"}, "private or loopback address"),
    ],
)
def test_a_bad_request_is_a_422_that_says_what_to_fix(
    shop: Shop, client: TestClient, body: dict[str, Any], message: str
) -> None:
    answer = post(client, body)
    assert answer.status_code == 422 and message in answer.json()["detail"], answer.json()
    assert shop.rows() == []


def test_an_oversize_body_is_a_413_and_never_read(shop: Shop, client: TestClient) -> None:
    answer = post(client, {"type": "listing", "input": "x" * 70_000})
    assert answer.status_code == 413 and shop.rows() == []
    chunks = (b'{"type": "listing", "input": "' + b"x" * 40_000 for _ in range(2))  # no Content-Length
    answer = client.post("/tasks", content=chunks, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 413


def test_without_the_token_a_401_and_nothing_added(shop: Shop, client: TestClient) -> None:
    body = {"type": "listing", "input": "Trail tent"}
    assert client.post("/tasks", json=body).status_code == 401
    wrong = client.post("/tasks", json=body, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert TOKEN not in wrong.text
    assert client.get("/tasks/tabcdefg").status_code == 401
    assert shop.rows() == []
    assert client.get("/healthz").status_code == 200  # the health check needs no token


def test_get_follows_the_task_through_a_night_and_its_review(shop: Shop, client: TestClient) -> None:
    task_id = post(client, {"type": "listing", "input": "Trail tent", "brand": "Kestrel"}).json()["id"]
    assert client.get("/tasks/tnotmine2", headers=AUTH).status_code == 404
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    view = client.get(f"/tasks/{task_id}", headers=AUTH).json()
    assert view["status"] == "review" and view["output"] == shop.row(id=task_id)["output"] and view["output"]
    assert view["cost_usd"] > 0 and view["decision"] is None and view["attempt"] == 1
    shop.clock.set(at("2026-11-24T09:00"))
    shop.set(task_id, review="edit", edited_output="My own tent copy")
    shop.harvest()
    view = client.get(f"/tasks/{task_id}", headers=AUTH).json()
    assert view["status"] == "edited" and view["decision"] == "edit" and view["output"] == "My own tent copy"


@responses.activate
def test_the_callback_gets_a_signed_post_once_after_the_approval(tmp_path: Path) -> None:
    shop = with_api(Shop(tmp_path))
    responses.post(RECEIVER, status=204)
    with client_for(shop) as client:
        task = {"type": "listing", "input": "Trail tent", "brand": "Kestrel", "callback_url": RECEIVER}
        task_id = post(client, task).json()["id"]
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    assert not responses.calls  # not decided yet
    output = shop.row(id=task_id)["output"]
    shop.set(task_id, review="approve")
    shop.harvest()
    shop.harvest()
    (call,) = responses.calls
    raw, headers = sent(call.request)
    body = raw.decode()
    payload = json.loads(body)
    assert payload["task_id"] == task_id and payload["decision"] == "approve" and payload["text"] == output
    ts = headers["webhook-timestamp"]
    assert headers["webhook-id"] == f"{task_id}:1" == headers["Idempotency-Key"]
    signed = f"{task_id}:1.{ts}.{body}".encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"  # Standard Webhooks, like on_approve


@responses.activate
def test_a_redirecting_receiver_is_not_followed_and_tried_again_later(tmp_path: Path) -> None:
    shop = with_api(Shop(tmp_path))
    responses.post(RECEIVER, status=302, headers={"Location": "http://169.254.169.254/"})
    with client_for(shop) as client:
        body = {"type": "listing", "input": "Trail tent", "callback_url": RECEIVER}
        task_id = post(client, body).json()["id"]
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    shop.set(task_id, review="approve")
    shop.harvest()
    assert len(responses.calls) == 1  # a redirect is not retried, and never followed
    with shop.context() as ctx:
        record = ctx.state.intake(task_id)
        assert record is not None and record.callback_delivered == 0 and "redirect" in (record.callback_error or "")


def test_on_the_google_sheets_fake_the_row_arrives_and_is_locked(tmp_path: Path) -> None:
    with ExitStack() as stack:
        under = BOARDS["google_sheets"](tmp_path, stack, TEAM_HEADER)
        night = Night(tmp_path, under.board)
        data = yaml.safe_load((tmp_path / "sheetbot.yaml").read_text(encoding="utf-8"))
        data["api"] = {"token_env": "SHEETBOT_API_TOKEN"}
        (tmp_path / "sheetbot.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        night.config = load_config(tmp_path / "sheetbot.yaml")
        api = Intake(night.config, night.context, TOKEN)
        with TestClient(build_app(Health(), api=api)) as client:
            body = {"type": "blog", "input": "+SUM(A1:A9)", "priority": "P0"}
            task_id = post(client, body, key="form-7").json()["id"]
            assert post(client, body, key="form-7").json()["id"] == task_id
        (row,) = under.person.rows()
        assert row["id"] == task_id and row["status"] == "queued" and row["input"] == "+SUM(A1:A9)"
        assert not under.person.is_formula(task_id, "input")
        assert night.lock().locked.total() == 1


def test_check_requires_the_tokens_variable(shop: Shop) -> None:
    env = {k: v for k, v in shop.env.items() if k != "SHEETBOT_API_TOKEN"}
    lines = run_check(shop.config_path, env=env, http_client=shop.fake.async_client())
    assert any(line.startswith("api.token_env (") and "SHEETBOT_API_TOKEN is not set" in line for line in lines)
    lines = run_check(shop.config_path, env=shop.env, http_client=shop.fake.async_client())
    assert not [line for line in lines if line.startswith("api")]


def test_the_openapi_document_holds_for_whatever_a_caller_sends(tmp_path: Path) -> None:
    """schemathesis against the app in-process: no 5xx, and every answer (status, content type, body) is what
    /openapi.json promises, whatever the generated requests hold."""
    shop = with_api(Shop(tmp_path))
    schema = schemathesis.openapi.from_asgi("/openapi.json", client_for(shop).app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} == {"POST /tasks", "GET /tasks/{task_id}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def holds(case: Any) -> None:
            case.call_and_validate(headers=AUTH, checks=checks)

        holds()


def test_over_loopback_on_uvicorn_as_serve_runs_it(shop: Shop) -> None:
    """The same app as `serve` starts it: a real socket, uvicorn in a thread, the head and body caps."""
    api = Intake(shop.config, shop.context, TOKEN)
    server = start_http_server(Health(), port=0, api=api)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        body = json.dumps({"type": "listing", "input": "Trail tent", "brand": "Kestrel"}).encode()
        request = urllib.request.Request(f"{url}/tasks", data=body, headers={**AUTH, "Idempotency-Key": "a-1"})
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 202
            task_id = json.loads(answer.read())["id"]
        assert [r["id"] for r in shop.rows()] == [task_id]
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=5) as answer:
            assert "/tasks" in json.loads(answer.read())["paths"]
        huge = urllib.request.Request(f"{url}/healthz", headers={"X-Filler": "x" * 200_000})
        with pytest.raises((urllib.error.URLError, ConnectionError)) as refused:  # h11's cap on a request's head
            urllib.request.urlopen(huge, timeout=5)
        if isinstance(refused.value, urllib.error.HTTPError):  # else the connection was cut mid-send
            assert refused.value.code in (400, 431)
    finally:
        server.shutdown()
        server.server_close()


def test_the_readme_example_passes_check(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Intake API") :]
    example = section[section.index("```yaml") + len("```yaml") : section.index("```\n", section.index("```yaml"))]
    path = tmp_path / "sheetbot.yaml"
    path.write_text(example, encoding="utf-8")
    config, problems = inspect_config(path)
    assert problems == [] and config is not None and config.api is not None
    assert config.api.token_env == "SHEETBOT_API_TOKEN" and extra_columns(config) == ["brand"]


def test_a_standby_refuses_a_post_with_a_503_and_adds_nothing(shop: Shop) -> None:
    """With a standby (issue 15), only the leader appends: the standby's 503 sends the caller to the leader."""
    health = Health()
    health.lead("standby", leader="serve pid 1 on host-a")
    api = Intake(shop.config, shop.context, TOKEN, threading.RLock(), leading=lambda: health.role != "standby")
    client = TestClient(build_app(health, api=api))
    answer = post(client, {"type": "listing", "input": "Trail tent"}, key="k-1")
    assert answer.status_code == 503 and "standby" in answer.json()["detail"]
    assert shop.rows() == []
    health.lead("leader")
    assert post(client, {"type": "listing", "input": "Trail tent"}, key="k-1").status_code == 202
    assert len(shop.rows()) == 1
