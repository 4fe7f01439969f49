"""The audit log: provenance for every lock, model call, write and decision; append-only; masked exports."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from fakellm import split_prompt
from harness import Shop, at
from nightly import night

from sheetbot.cli.main import main
from sheetbot.errors import SheetbotError
from sheetbot.morning.audit import parse_since
from sheetbot.safety.masking import mask, mask_text
from sheetbot.state.audit import input_hash, prompt_hash


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def entries(shop: Shop, event: str) -> list[dict[str, object]]:
    with shop.state() as state:
        return [{"task_id": r.task_id, **json.loads(r.detail)} for r in state.audit_entries(event)]


def test_a_night_leaves_a_trail_with_provenance(shop: Shop) -> None:
    night(shop, "2026-11-23", ["approve", "rework"], notes="Shorter")
    locks = entries(shop, "lock_task")
    calls = entries(shop, "model_call")
    assert len(locks) == 2 and len(calls) == 2
    with shop.state() as state:
        for call in calls:
            task = state.task(str(call["task_id"]))
            assert task is not None
            assert call["input_hash"] == input_hash(task.snapshot)
            attempt = state.final_output(task.task_id, 1)
            assert attempt is not None
            assert call["prompt_hash"] == prompt_hash(attempt.system, attempt.prompt)
            assert call["output_hash"] == hashlib.sha256((attempt.output or "").encode()).hexdigest()
            assert (call["model"], call["step"], call["ok"]) == ("gpt-4.1-mini", "final", True)
    # the lock's input hash is the one the model call answered
    assert {c["input_hash"] for c in calls} == {lock["input_hash"] for lock in locks}
    # the hash covers what the provider really received
    system, prompt = split_prompt(shop.fake.requests[0].json)
    assert prompt_hash(system, prompt) in {c["prompt_hash"] for c in calls}
    assert [d["decision"] for d in entries(shop, "decision")] == ["approve", "rework"]
    assert entries(shop, "write")  # every phase that wrote to the board says what it wrote


def test_failed_calls_are_audited_too(shop: Shop) -> None:
    shop.add(type="listing", input="Tent", brand="Kestrel")
    shop.lock()
    shop.fake.fail_next(400)
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    [call] = entries(shop, "model_call")
    assert call["ok"] is False and call["error"] and call["output_hash"] is None


def test_the_audit_log_refuses_updates_and_deletes(shop: Shop) -> None:
    night(shop, "2026-11-23", ["approve"])
    db = sqlite3.connect(shop.config.state_path)
    try:
        for sql in ("UPDATE audit SET event = 'nothing'", "DELETE FROM audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)
        assert db.execute("SELECT COUNT(*) FROM audit WHERE event = 'nothing'").fetchone()[0] == 0
    finally:
        db.close()


def test_export_masks_contacts_as_csv_and_jsonl(shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    night(shop, "2026-11-23", ["approve"])
    with shop.state() as state:
        state.audit(
            "action",
            now=shop.clock.now(),
            task_id="t1",
            detail={"to": "jane.doe@example.com", "call": "+49 30 1234567", "night": "2026-11-23", "usd": "$1,299.00"},
        )
    config = str(shop.config_path)
    out_csv, out_jsonl = tmp_path / "out" / "audit.csv", tmp_path / "out" / "audit.jsonl"
    assert main(["audit", "--config", config, "--since", "3650d", "--out", str(out_csv)]) == 0
    assert "audit entries" in capsys.readouterr().out
    assert main(["audit", "--config", config, "--since", "3650d", "--out", str(out_jsonl)]) == 0
    text = out_csv.read_text(encoding="utf-8") + out_jsonl.read_text(encoding="utf-8")
    assert "jane.doe" not in text and "1234567" not in text
    assert "j***@example.com" in text and "[phone]" in text
    assert "2026-11-23" in text and "$1,299.00" in text  # dates and prices are not phone numbers
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    lines = [json.loads(line) for line in out_jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines) > 5
    assert {"lock_task", "model_call", "decision", "write", "action"} <= {r["event"] for r in rows}
    assert lines[-1]["detail"]["to"] == "j***@example.com"
    # --since leaves older entries out: from the morning's harvest on, the lock and the run are gone
    assert main(["audit", "--config", config, "--since", "2026-11-24T09:00+01:00", "--out", str(out_jsonl)]) == 0
    morning = [json.loads(line)["event"] for line in out_jsonl.read_text(encoding="utf-8").splitlines()]
    assert "decision" in morning and "action" in morning
    assert "lock_task" not in morning and "model_call" not in morning
    assert main(["audit", "--config", config, "--out", str(tmp_path / "audit.txt")]) == 1
    assert ".csv or .jsonl" in capsys.readouterr().err


def test_parse_since() -> None:
    now = at("2026-11-24T09:00")
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("12h", now=now) == now - timedelta(hours=12)
    assert parse_since("2026-11-01", now=now) == at("2026-11-01T00:00")
    with pytest.raises(SheetbotError, match="7d"):
        parse_since("last week", now=now)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("write to jane.doe@example.com today", "write to j***@example.com today"),
        ("a.b+tag@mail.co.uk;", "a***@mail.co.uk;"),
        ("call +49 30 1234567 now", "call [phone] now"),
        ("Phone: +1 (415) 555-0132.", "Phone: [phone]."),
        ("+44 20 7946 0958, thanks", "[phone], thanks"),
        ("0049 30 123456 78", "[phone]"),
        ("+4915112345678", "[phone]"),
        ("Tel. 0171/1234567", "Tel. [phone]"),
        ("(030) 12345678", "[phone]"),
    ],
)
def test_masking_contacts(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23",
        "2026-11-23T09:00:00+01:00",
        "2026-11-23 09:00 to 2026-11-24 05:00",
        "23.11.2026",
        "price $1,299.00",
        "EUR 1299.99",
        "1,234,567.89",
        "cost 0.004512",
        "order 12345678901",
        "sku 123-456",
        "12 345 678.50",
    ],
)
def test_masking_leaves_dates_prices_and_ids(text: str) -> None:
    assert mask_text(text) == text


def test_mask_walks_json_values() -> None:
    assert mask({"a": ["x@y.io", 3, None], "b@c.de": "+49 171 1234567"}) == {
        "a": ["x***@y.io", 3, None],
        "b***@c.de": "[phone]",
    }
