"""`columns: {input: Brief}`: {{input}} reads the column the YAML maps it to, even when the board still has a
leftover column literally named `input` (issue 11, smaller items)."""

from __future__ import annotations

from pathlib import Path

import yaml
from fakellm import split_prompt
from harness import Shop, at
from openpyxl import load_workbook

from sheetbot.config.load import load_config
from sheetbot.night.prompts import missing_columns
from sheetbot.night.templates import render, row_lookup


def test_a_renamed_logical_column_wins_over_a_leftover_column_of_that_name() -> None:
    lookup = row_lookup({"Brief": "the real brief", "input": "stale leftover"}, {"input": "Brief"})
    assert render("{{input}}", lookup) == "the real brief"
    assert render("{{Brief}}", lookup) == "the real brief"


def test_a_column_not_renamed_is_read_by_its_own_name() -> None:
    lookup = row_lookup({"input": "typed", "brand": "Acme"}, {"input": "input"})
    assert render("{{input}} {{brand}}", lookup) == "typed Acme"


def test_the_mapped_column_must_exist_even_when_a_leftover_one_does(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    workflow = shop.config.workflows["listing"]
    aliases = {"input": "Brief", "brand": "brand"}
    assert "input" in missing_columns(workflow, {"id", "type", "input", "brand"}, aliases)
    assert missing_columns(workflow, {"id", "type", "Brief", "input", "brand"}, aliases) == []


def test_the_night_sends_the_mapped_column_not_the_leftover_one(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["board"]["columns"] = {"input": "Brief"}
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    book = load_workbook(shop.book)
    book["Queue"].cell(row=1, column=4, value="Brief")  # the old `input` header, renamed by the team
    book.save(shop.book)
    shop.add(id="t1", type="listing", priority="P1", Brief="Red wool scarf", brand="Acme", input="OLD NOTES")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    prompts = [split_prompt(r.json)[1] for r in shop.fake.requests]
    assert prompts and all("Red wool scarf" in p and "OLD NOTES" not in p for p in prompts), prompts
