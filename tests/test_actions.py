"""Approval-gated actions on the local board: a signed POST once a person approves or edits, never twice."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
import responses
from harness import ENV, WORKFLOWS, Shop, at

from sheetbot.errors import TransitionError
from sheetbot.morning import on_approve as actions
from sheetbot.state import State
from sheetbot.status import Status

HOOK = "https://hooks.shop.test/publish"
SECRET = "s3cret-for-tests"


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    listing = {**WORKFLOWS["listing"], "on_approve": {"webhook": HOOK, "secret_env": "PUBLISH_SECRET"}}
    return Shop(tmp_path, workflows={"listing": listing}, env={**ENV, "PUBLISH_SECRET": SECRET})


def in_review(shop: Shop, *inputs: str) -> list[str]:
    for text in inputs:
        shop.add(type="listing", input=text, brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    return [shop.row(input=text)["id"] for text in inputs]


def posts(mock: responses.RequestsMock) -> list[Any]:
    return [c.request for c in mock.calls if c.request.url == HOOK]


@responses.activate
def test_an_approval_is_posted_once_signed_and_the_row_becomes_published(shop: Shop) -> None:
    responses.post(HOOK, status=200)
    (tent,) = in_review(shop, "Trail tent, 2 person")
    output = shop.row(id=tent)["output"]
    shop.set(tent, review="approve")
    report = shop.harvest()

    assert report.actions is not None and report.actions.published == [tent]
    assert shop.row(id=tent)["status"] == "published"
    (request,) = posts(responses.mock)
    body = request.body.decode()
    payload = json.loads(body)
    assert payload["text"] == output and payload["decision"] == "approve"
    assert payload["idempotency_key"] == f"{tent}:1" == request.headers["Idempotency-Key"]
    ts = request.headers["webhook-timestamp"]
    assert ts == str(int(at("2026-11-24T09:00").timestamp())) and request.headers["webhook-id"] == f"{tent}:1"
    key = f"{tent}:1.{ts}.{body}".encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), key, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"  # Standard Webhooks, key = the secret's bytes

    shop.harvest()
    shop.harvest()
    assert len(posts(responses.mock)) == 1  # never sent again


@responses.activate
def test_an_edit_posts_the_reviewers_text_and_rework_posts_nothing(shop: Shop) -> None:
    responses.post(HOOK, status=201)
    tent, jacket = in_review(shop, "Trail tent", "Down jacket")
    shop.set(tent, review="edit", edited_output="My own tent copy")
    shop.set(jacket, review="rework", notes="shorter")
    shop.harvest()
    (request,) = posts(responses.mock)
    assert json.loads(request.body)["text"] == "My own tent copy"
    assert json.loads(request.body)["decision"] == "edit"
    assert shop.row(id=tent)["status"] == "published"
    assert shop.row(id=jacket)["status"] == "rework"


@responses.activate
def test_a_workflow_without_on_approve_stays_approved(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    (tent,) = in_review(shop, "Trail tent")
    shop.set(tent, review="approve")
    shop.harvest()
    assert shop.row(id=tent)["status"] == "approved"
    assert not responses.mock.calls


@responses.activate
def test_failures_are_retried_then_left_for_the_next_harvest(shop: Shop) -> None:
    responses.post(HOOK, status=503)
    (tent,) = in_review(shop, "Trail tent")
    shop.set(tent, review="approve")
    report = shop.harvest()
    assert len(posts(responses.mock)) == 3  # max_tries within the harvest
    assert shop.slept, "the retries waited (on the fake clock)"
    assert report.actions is not None and report.actions.pending[0][0] == tent
    row = shop.row(id=tent)
    assert row["status"] == "approved"
    assert "HTTP 503 from hooks.shop.test" in row["error"] and "next harvest" in row["error"]

    responses.replace(responses.POST, HOOK, status=200)
    shop.harvest()
    assert len(posts(responses.mock)) == 4
    assert shop.row(id=tent)["status"] == "published" and not shop.row(id=tent)["error"]
    keys = {r.headers["Idempotency-Key"] for r in posts(responses.mock)}
    assert keys == {f"{tent}:1"}


@responses.activate
def test_a_client_error_is_not_retried_within_the_harvest(shop: Shop) -> None:
    responses.post(HOOK, status=400)
    (tent,) = in_review(shop, "Trail tent")
    shop.set(tent, review="approve")
    shop.harvest()
    assert len(posts(responses.mock)) == 1
    assert "HTTP 400" in shop.row(id=tent)["error"]


@responses.activate
def test_a_missing_secret_leaves_the_action_pending_and_names_the_variable(tmp_path: Path) -> None:
    listing = {**WORKFLOWS["listing"], "on_approve": {"webhook": HOOK, "secret_env": "PUBLISH_SECRET"}}
    shop = Shop(tmp_path, workflows={"listing": listing})
    responses.post(HOOK, status=200)
    (tent,) = in_review(shop, "Trail tent")
    shop.set(tent, review="approve")
    shop.harvest()
    assert not posts(responses.mock)
    assert "PUBLISH_SECRET" in shop.row(id=tent)["error"]


@responses.activate
def test_a_crash_after_delivery_never_sends_again(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    responses.post(HOOK, status=200)
    (tent,) = in_review(shop, "Trail tent")
    shop.set(tent, review="approve")

    def crash(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed between `delivered` and the status change")

    monkeypatch.setattr(actions, "_publish", crash)
    with pytest.raises(SystemExit):
        shop.harvest()
    monkeypatch.undo()
    assert shop.row(id=tent)["status"] == "approved"

    shop.harvest()
    assert len(posts(responses.mock)) == 1
    assert shop.row(id=tent)["status"] == "published"


@responses.activate
def test_a_crash_before_delivered_is_recorded_resends_with_the_same_idempotency_key(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses.post(HOOK, status=200)
    (tent,) = in_review(shop, "Trail tent")
    shop.set(tent, review="approve")
    real = State.action_state

    def crash_on_delivered(self: Any, task_id: str, attempt: int, new: str, **kwargs: Any) -> None:
        if new == "delivered":
            raise SystemExit("killed after the POST")
        real(self, task_id, attempt, new, **kwargs)

    monkeypatch.setattr(State, "action_state", crash_on_delivered)
    with pytest.raises(SystemExit):
        shop.harvest()
    monkeypatch.undo()
    with shop.state() as state:
        assert [a["state"] for a in state.actions_undelivered()] == ["sending"]

    shop.harvest()
    sent = posts(responses.mock)
    assert len(sent) == 2  # the one duplicate a crash can cause; the receiver drops it by key
    assert sent[0].headers["Idempotency-Key"] == sent[1].headers["Idempotency-Key"] == f"{tent}:1"
    assert shop.row(id=tent)["status"] == "published"


def test_only_approved_and_edited_rows_can_be_published(shop: Shop) -> None:
    (tent,) = in_review(shop, "Trail tent")
    with shop.state() as state, pytest.raises(TransitionError):
        state.move(tent, Status.PUBLISHED, now=shop.clock.now())


def test_the_status_dropdown_offers_published(shop: Shop) -> None:
    with shop.context() as ctx:
        assert "published" in ctx.schema().status_choices


def test_on_approve_and_trial_settings_are_validated(tmp_path: Path) -> None:
    from sheetbot.errors import ConfigError

    listing = {**WORKFLOWS["listing"], "on_approve": {"webhook": "not a url", "secret_env": "S"}}
    with pytest.raises(ConfigError, match="on_approve"):
        Shop(tmp_path / "a", workflows={"listing": listing})
    listing = {**WORKFLOWS["listing"], "on_approve": {"webhook": HOOK}}
    with pytest.raises(ConfigError, match="secret_env"):
        Shop(tmp_path / "b", workflows={"listing": listing})
    shop = Shop(tmp_path / "c")
    assert shop.config.trial.launch_bar == 0.75 and shop.config.workflows["listing"].on_approve is None
