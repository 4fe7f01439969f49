"""The Airtable board against FakeAirtable: quotas, retries, errors, schema, and whole nights."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_airtable import BASE_ID, ENDPOINT, TOKEN, FakeAirtable, FakeTime
from fakellm import FakeLLM
from harness import ENV, WORKFLOWS, at

from sheetbot.batch.mode import Batches
from sheetbot.boards.airtable import AirtableBoard, missing_fields
from sheetbot.boards.base import Claim, RowUpdate, SchemaSpec, Sheet
from sheetbot.boards.factory import open_board
from sheetbot.clock import FakeClock
from sheetbot.config.load import load_config
from sheetbot.errors import BoardError, BoardNotFound, BoardSchemaError, BoardWriteError, ConfigError
from sheetbot.morning.steps import Morning
from sheetbot.night.context import NightContext
from sheetbot.night.harvest import HarvestReport, harvest
from sheetbot.night.lock import LockReport, lock
from sheetbot.night.run import RunReport, run
from sheetbot.providers.base import EventHook, Provider
from sheetbot.providers.factory import make_provider
from sheetbot.state import State

AIR_ENV = {**ENV, "AIRTABLE_TOKEN": TOKEN}
COLUMNS = ["id", "type", "input", "priority", "status", "night", "output", "review", "notes", "edited_output"]
SPEC = SchemaSpec(
    columns=[*COLUMNS, "error", "cost"],
    review_column="review",
    review_choices=["approve", "edit", "rework"],
    status_column="status",
    status_choices=["queued", "locked", "review"],
    wide_columns=["input", "output", "notes", "edited_output", "error"],
)


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def fake(time: FakeTime) -> Iterator[FakeAirtable]:
    with FakeAirtable(time=time) as fake:
        yield fake


def board(time: FakeTime, **options: Any) -> AirtableBoard:
    settings: dict[str, Any] = {"base": BASE_ID, "table": "Queue", "env": AIR_ENV, "endpoint_url": ENDPOINT}
    return AirtableBoard(**{**settings, **options}, monotonic=time.monotonic, sleep=time.sleep)


def shaped(fake: FakeAirtable, time: FakeTime) -> AirtableBoard:
    """A board whose table has every sheetbot field, and a clean call log."""
    made = board(time)
    made.ensure_schema(SPEC)
    fake.calls.clear()
    time.now += 10  # the pacer's last second is over
    time.slept.clear()
    return made


def outputs(board: AirtableBoard, count: int) -> list[RowUpdate]:
    return [RowUpdate(f"t{n}", {"status": "review", "output": f"out {n}", "cost": 0.0125}) for n in range(count)]


# -- quotas -------------------------------------------------------------------------------
def test_writes_go_ten_records_a_request(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    for n in range(23):
        fake.add(id=f"t{n}", type="listing", input=f"item {n}")
    result = at_board.write(outputs(at_board, 23))
    assert result.written == 23 and result.missing == []
    updates = [c for c in fake.calls if c.kind == "update"]
    assert [c.records for c in updates] == [10, 10, 3]
    assert fake.count("list") == 1  # the id field only, right before writing
    assert fake.row(id="t22")["output"] == "out 22" and fake.row(id="t22")["cost"] == 0.0125


def test_at_most_five_requests_a_second_measured_on_the_fake_clock(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    for n in range(250):
        fake.add(id=f"t{n}", type="listing", input=f"item {n}")
    at_board.read()
    at_board.write(outputs(at_board, 250))
    assert fake.count() == 1 + 3 + 3 + 25
    assert fake.busiest_second() == 5
    assert all(c.status == 200 for c in fake.calls)  # the fake answers 429 to a sixth request in a second
    assert time.now - 1000.0 >= (fake.count() - 5) / 4 - 1e-6  # 5 in any 1.25 s: 4 a second


def test_a_lower_rate_from_the_yaml_is_kept(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = board(time, requests_per_s=2)
    for n in range(30):
        fake.add(id=f"t{n}")
    at_board.write([RowUpdate(f"t{n}", {"type": "blog"}) for n in range(30)])
    assert fake.busiest_second() == 2


def test_a_429_waits_30_seconds_then_succeeds(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    fake.add(id="t0")
    fake.fail_next(429, kind="update")
    assert at_board.write(outputs(at_board, 1)).written == 1
    assert 30.0 in time.slept
    assert [c.status for c in fake.calls if c.kind == "update"] == [429, 200]
    assert fake.row(id="t0")["status"] == "review"


def test_retry_after_longer_than_30_seconds_is_honoured(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    fake.add(id="t0")
    fake.fail_next(429, kind="update", headers={"Retry-After": "45"})
    at_board.write(outputs(at_board, 1))
    assert 45.0 in time.slept


def test_server_errors_are_retried_with_backoff(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    fake.add(id="t0")
    fake.fail_next(503, times=2, kind="update")
    fake.fail_next(502, kind="list")
    assert at_board.write(outputs(at_board, 1)).written == 1
    assert len(time.slept) == 3 and all(0 < s <= 30 for s in time.slept)


def test_a_write_that_keeps_failing_is_a_board_write_error(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    fake.add(id="t0")
    fake.fail_next(429, times=5, kind="update")
    with pytest.raises(BoardWriteError, match=r"kept answering 429 .*outputs are kept in the state"):
        at_board.write(outputs(at_board, 1))
    assert fake.count("update") == 5 and time.slept.count(30.0) == 4


# -- errors that name the fix -------------------------------------------------------------
def test_a_rejected_token_names_the_environment_variable(fake: FakeAirtable, time: FakeTime) -> None:
    env = {"AT_KEY": "patWrong"}
    with pytest.raises(BoardError, match=r"rejected the token in AT_KEY \(401 AUTHENTICATION_REQUIRED\)"):
        board(time, env=env, token_env="AT_KEY").read()
    with pytest.raises(BoardError, match=r"^AT_KEY is not set: .*data.records:read"):
        board(time, env={}, token_env="AT_KEY").read()
    assert fake.count() == 1


def test_a_missing_scope_is_named(time: FakeTime) -> None:
    with FakeAirtable(time=time, scopes={"schema.bases:read"}) as fake:
        fake.add(id="t0")
        with pytest.raises(BoardError, match=r"give the token in AIRTABLE_TOKEN the scope data.records:read"):
            board(time).read()
        with pytest.raises(BoardWriteError, match=r"data.records:read"):
            board(time).write([RowUpdate("t0", {"type": "x"})])


def test_a_missing_table_or_base_is_named(fake: FakeAirtable, time: FakeTime) -> None:
    with pytest.raises(
        BoardNotFound, match=r"has no table 'Jobs' \(it has 'Queue'\): run `sheetbot init` to create it"
    ):
        board(time, table="Jobs").read()
    with pytest.raises(BoardNotFound, match=r"no Airtable base named 'Shopp' .*\(it sees 'Shop'\)"):
        board(time, base="Shopp").read()
    with pytest.raises(BoardError, match=r"scope schema.bases:read and add the base"):
        board(time, base="appNOSUCHBASE0001").read()


# -- reading ---------------------------------------------------------------------------------
def test_read_gives_every_field_as_text_keyed_by_record_id(fake: FakeAirtable, time: FakeTime) -> None:
    fake.table.fields += [
        {"id": "fldScore", "name": "score", "type": "number", "options": {"precision": 2}},
        {"id": "fldDone", "name": "done", "type": "checkbox", "options": {}},
        {"id": "fldTags", "name": "tags", "type": "multipleSelects", "options": {"choices": []}},
        {"id": "fldWho", "name": "owner", "type": "singleCollaborator"},
    ]
    rec = fake.add(id="t1", input="=SUM(A1)", score=0.25, done=True, tags=["red", "blue"], owner={"name": "Ana"})
    fake.add(id="t2", score=3)
    fake.add()  # the blank records a new table comes with
    sheet = board(time).read()
    assert sheet.columns == ("id", "type", "input", "priority", "brand", "score", "done", "tags", "owner")
    assert len(sheet.rows) == 2 and sheet.rows[0].ref == rec
    first = sheet.rows[0].values
    assert first["input"] == "=SUM(A1)" and first["score"] == "0.25" and first["done"] == "TRUE"
    assert first["tags"] == "red, blue" and first["owner"] == "Ana" and first["type"] == ""
    assert sheet.rows[1].values["score"] == "3"


def test_reads_page_through_a_hundred_records_at_a_time(fake: FakeAirtable, time: FakeTime) -> None:
    for n in range(250):
        fake.add(id=f"t{n}")
    sheet = board(time).read()
    assert len(sheet.rows) == 250 and len({r.ref for r in sheet.rows}) == 250
    assert fake.count("list") == 3 and fake.count("tables") == 1


def test_base_and_table_by_name_or_id(fake: FakeAirtable, time: FakeTime) -> None:
    fake.add(id="t1")
    by_name = board(time, base="Shop", table="queue")  # a table name's case is forgiven
    assert by_name.read().rows[0].values["id"] == "t1"
    by_name.read()
    assert fake.count("bases") == 1  # the base name is looked up once
    assert all(fake.table.id in c.path for c in fake.calls if c.kind == "list")  # records by table id
    fake.calls.clear()
    board(time, table=fake.table.id).read()
    assert fake.count("bases") == 0


def test_endpoint_url_is_honoured(time: FakeTime) -> None:
    with FakeAirtable(time=time, endpoint="https://proxy.test/airtable") as fake:
        fake.add(id="t1")
        at_board = board(time, endpoint_url="https://proxy.test/airtable/")
        assert at_board.read().rows[0].values["id"] == "t1"
        assert fake.calls[0].path.startswith("/airtable/v0/meta/bases/")


# -- writing -----------------------------------------------------------------------------
def test_values_are_written_plain_and_typed_for_their_field(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    fake.add(id="t1", type="listing", review="approve")
    at_board.write([RowUpdate("t1", {"output": "=1+1", "cost": "0.5", "night": 7, "review": None, "error": ""})])
    sent = [c for c in fake.mock.calls if c.request.method == "PATCH"]
    bodies = [json.loads(c.request.body) for c in sent if isinstance(c.request.body, str | bytes)]
    assert bodies[0]["typecast"] is False
    assert bodies[0]["records"][0]["fields"] == {
        "output": "=1+1",
        "cost": 0.5,
        "night": "7",
        "review": None,
        "error": None,
    }
    row = fake.row(id="t1")
    assert row["output"] == "=1+1" and row["review"] == "" and row["cost"] == 0.5


def test_a_record_deleted_during_the_night_is_reported_missing(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    recs = {n: fake.add(id=f"t{n}") for n in range(12)}
    fake.delete(recs[3])
    result = at_board.write(outputs(at_board, 12))
    assert result.missing == ["t3"] and result.written == 11


def test_a_record_deleted_between_listing_and_writing_fails_no_batch(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    recs = {n: fake.add(id=f"t{n}") for n in range(15)}

    def person_deletes(kind: str) -> None:
        if kind == "update" and recs[12] in fake.table.records:
            fake.delete(recs[12])

    fake.before = person_deletes
    result = at_board.write(outputs(at_board, 15))
    assert result.missing == ["t12"] and result.written == 14
    assert fake.row(id="t14")["output"] == "out 14"


def test_a_write_planned_from_a_read_lists_the_records_once(fake: FakeAirtable, time: FakeTime) -> None:
    """read_then_write: the read's listing places the write (record ids never move), so a 250-row run's
    last read and write list the table once, not twice (3 list requests fewer, 100 for 10,000 rows)."""
    at_board = shaped(fake, time)
    recs = {n: fake.add(id=f"t{n}", type="listing", input=f"item {n}") for n in range(250)}

    def plan(sheet: Sheet) -> list[RowUpdate]:
        assert len(sheet.rows) == 250
        fake.delete(recs[7])  # a person deletes one meanwhile: listed again at the PATCH, the rest written
        return outputs(at_board, 250)

    _, result = at_board.read_then_write(plan)
    assert result.written == 249 and result.missing == ["t7"]
    assert fake.count("list") == 3 + 3  # the read's 3 pages, and once more after the deleted record's 422
    assert fake.row(id="t249")["output"] == "out 249"
    fake.calls.clear()
    at_board.read_then_write(lambda sheet: outputs(at_board, 249)[:10])
    assert fake.count("list") == 3 and fake.count("update") == 1


def test_a_write_to_a_field_the_table_lacks_says_run_init(fake: FakeAirtable, time: FakeTime) -> None:
    fake.add(id="t1")
    with pytest.raises(BoardWriteError, match=r"has no field output, status: run `sheetbot init`"):
        board(time).write([RowUpdate("t1", {"status": "review", "output": "x"})])


def test_a_copy_gets_its_own_id_and_not_its_originals_cells(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = shaped(fake, time)
    original = fake.add(id="t1", input="tent")
    copy = fake.duplicate(original)
    typed = fake.add(input="typed later")
    claims = [
        RowUpdate("t9", {"id": "t9", "status": None}, claim=Claim(ref=copy, old_id="t1", fingerprint={})),
        RowUpdate("t8", {"id": "t8"}, claim=Claim(ref=typed, old_id="", fingerprint={})),
        RowUpdate("t7", {"id": "t7"}, claim=Claim(ref=original, old_id="", fingerprint={})),  # has an id now
        RowUpdate("t1", {"status": "locked"}),
        RowUpdate("", {"status": "locked"}),
    ]
    result = at_board.write(claims)
    assert sorted(result.missing) == ["", "t7"] and result.written == 3
    assert fake.table.records[copy]["fields"] == {"id": "t9", "input": "tent"}
    assert fake.table.records[original]["fields"]["status"] == "locked"
    assert fake.table.records[typed]["fields"]["id"] == "t8"


# -- schema ----------------------------------------------------------------------------------
def test_ensure_schema_adds_missing_fields_with_their_types(fake: FakeAirtable, time: FakeTime) -> None:
    at_board = board(time)
    assert at_board.ensure_schema(SPEC) == [c for c in SPEC.columns if c not in ("id", "type", "input", "priority")]
    types = {f["name"]: f for f in fake.table.fields}
    assert types["review"]["type"] == "singleSelect"
    assert [c["name"] for c in types["review"]["options"]["choices"]] == ["approve", "edit", "rework"]
    assert types["cost"]["type"] == "number" and types["cost"]["options"] == {"precision": 6}
    assert {n for n, f in types.items() if f["type"] == "multilineText"} == {
        "output",
        "notes",
        "edited_output",
        "error",
    }
    assert types["status"]["type"] == types["night"]["type"] == types["input"]["type"] == "singleLineText"
    assert at_board.ensure_schema(SPEC) == [] and missing_fields(at_board, SPEC) == []


def test_without_the_schema_scope_init_lists_the_fields_to_add_by_hand(time: FakeTime) -> None:
    with FakeAirtable(time=time, scopes={"data.records:read", "data.records:write", "schema.bases:read"}) as fake:
        at_board = board(time)
        assert missing_fields(at_board, SPEC)[:2] == [("status", "Single line text"), ("night", "Single line text")]
        with pytest.raises(BoardSchemaError) as caught:
            at_board.ensure_schema(SPEC)
        message = str(caught.value)
        assert "\n" not in message and "lacks the scope schema.bases:write" in message
        assert "review (Single select: approve, edit, rework)" in message
        assert "cost (Number, 6 decimal places)" in message and "output (Long text)" in message
        assert len(fake.table.fields) == 5 and fake.count("create_field") == 1


def test_init_creates_a_missing_table_with_the_id_as_its_primary_field(time: FakeTime) -> None:
    with FakeAirtable(time=time, fields=None) as fake:
        with pytest.raises(BoardNotFound, match=r"has no table 'Queue' \(it has none\): run `sheetbot init`"):
            board(time).read()
        assert board(time).ensure_schema(SPEC) == list(SPEC.columns)
        assert fake.count("create_table") == 1 and fake.count("create_field") == 0
        assert fake.table.fields[0]["name"] == "id" and fake.table.fields[0]["type"] == "singleLineText"
        assert board(time).read().columns == tuple(SPEC.columns)


def test_without_the_schema_scope_a_missing_table_is_described_field_by_field(time: FakeTime) -> None:
    expected = r"or create the table 'Queue' with the fields: id \(Single line text\); type"
    with (
        FakeAirtable(time=time, fields=None, scopes={"schema.bases:read"}),
        pytest.raises(BoardSchemaError, match=expected),
    ):
        board(time).ensure_schema(SPEC)


# -- the factory -------------------------------------------------------------------------------
def test_the_factory_opens_an_airtable_board(tmp_path: Path) -> None:
    path = tmp_path / "sheetbot.yaml"
    config = {
        "providers": {"openai": {}},
        "prices": {"gpt-4.1-mini": {"input": 1, "output": 1}},
        "workflows": WORKFLOWS,
    }
    config["workflows"] = {"listing": WORKFLOWS["listing"]}
    path.write_text(yaml.safe_dump({**config, "board": {"kind": "airtable", "base": "Shop", "requests_per_s": 2}}))
    opened = open_board(load_config(path), env={"AIRTABLE_TOKEN": "x"})
    assert (
        isinstance(opened, AirtableBoard) and opened.pacer.burst == 2 and opened.describe() == "Airtable Shop [Queue]"
    )
    path.write_text(yaml.safe_dump({**config, "board": {"kind": "airtable"}}))
    with pytest.raises(ConfigError, match=r"board.base"):
        open_board(load_config(path), env={})


# -- whole nights --------------------------------------------------------------------------------
class AirShop:
    """sheetbot's phases over an Airtable base, with the model faked at the SDK's transport."""

    def __init__(self, folder: Path, fake: FakeAirtable, time: FakeTime) -> None:
        self.fake, self.time, self.llm = fake, time, FakeLLM()
        self.clock = FakeClock(at("2026-11-23T17:00"))
        config = {
            "timezone": "Europe/Berlin",
            "board": {"kind": "airtable", "base": "Shop", "sheet": "Queue", "endpoint_url": ENDPOINT},
            "providers": {
                "openai": {"api_key_env": "OPENAI_API_KEY", "base_url": "https://llm.test/v1", "max_retries": 0},
                "anthropic": {"api_key_env": "ANTHROPIC_API_KEY", "max_retries": 0},
            },
            "prices": {"gpt-4.1-mini": {"input": 0.4, "output": 1.6}, "claude-sonnet-4-6": {"input": 3, "output": 15}},
            "workflows": WORKFLOWS,
        }
        (folder / "sheetbot.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.config = load_config(folder / "sheetbot.yaml")

    @contextmanager
    def context(self) -> Iterator[NightContext]:
        state = State(self.config.state_path)
        llm = self.llm
        opened = AirtableBoard.from_config(
            self.config.board, env=AIR_ENV, monotonic=self.time.monotonic, sleep=self.time.sleep
        )

        def providers(name: str, on_event: EventHook | None) -> Provider:
            return make_provider(
                name, self.config.providers[name], env=AIR_ENV, http_client=llm.async_client(), on_event=on_event
            )

        try:
            yield NightContext(
                self.config, opened, state, self.clock, providers, env=AIR_ENV, batch_mode=Batches(), morning=Morning()
            )
        finally:
            state.close()

    def lock(self) -> LockReport:
        self.time.now += 3600  # phases are hours apart: each phase's board paces itself
        with self.context() as ctx:
            return lock(ctx)

    def run(self) -> RunReport:
        self.time.now += 3600
        with self.context() as ctx:
            return run(ctx)

    def harvest(self) -> HarvestReport:
        self.time.now += 3600
        with self.context() as ctx:
            return harvest(ctx)


def test_the_state_is_not_locked_while_a_phase_reads_the_board(
    tmp_path: Path, fake: FakeAirtable, time: FakeTime
) -> None:
    """The run's and the harvest's last read also places their write (writeback.reconcile); the state's
    transaction begins after it, so another program (the intake API, a CLI command) can write meanwhile even
    when the listing takes minutes (100 requests for 10,000 records)."""
    shop = AirShop(tmp_path, fake, time)
    for n in range(3):
        fake.add(type="listing", input=f"item {n}")
    shop.lock()
    other = State(shop.config.state_path)
    wrote: list[str] = []

    def another_program_writes(kind: str) -> None:
        if kind == "list":
            with other.waiting_at_most(0.05):
                other.set_meta_value("written-during-a-read", kind)
            wrote.append(kind)

    fake.before = another_program_writes
    shop.clock.set(at("2026-11-24T01:00"))
    try:
        assert shop.run().done.total() == 3
        for rec in list(fake.table.records):
            fake.set(rec, review="approve")
        shop.clock.set(at("2026-11-24T09:00"))
        assert shop.harvest().decisions == {"approve": 3}
    finally:
        fake.before = None
        other.close()
    assert len(wrote) >= 3  # the run's two reads and the harvest's, each answered with the state free


def test_two_nights_on_airtable(tmp_path: Path, fake: FakeAirtable, time: FakeTime) -> None:
    shop = AirShop(tmp_path, fake, time)
    tent = fake.add(type="listing", input="Trail tent, 2 person", brand="Kestrel")
    jacket = fake.add(type="listing", input="Down jacket", brand="Kestrel", priority="P1")
    blog = fake.add(type="blog", input="Pitching a tent in the rain")
    lamp = fake.add(type="listing", input="Camp lamp")
    fake.add(type="listnig", input="typo")

    report = shop.lock()  # the first lock adds sheetbot's fields, then locks
    assert report.locked.total() == 4 and len(report.failed) == 1 and "status" in report.columns_added
    ids = {rec: fake.table.records[rec]["fields"]["id"] for rec in (tent, jacket, blog, lamp)}
    assert all(fake.table.records[rec]["fields"]["status"] == "locked" for rec in ids)
    assert "Did you mean listing?" in fake.row(type="listnig")["error"]

    # during the evening a person duplicates a record (id and all) and deletes another
    copy = fake.duplicate(tent)
    fake.delete(lamp)
    shop.clock.set(at("2026-11-24T01:00"))
    ran = shop.run()
    assert ran.done.total() == 4 and ran.missing == [ids[lamp]]
    assert len(shop.llm.requests) == 4
    assert fake.table.records[tent]["fields"]["output"].startswith("OUTPUT for: Rewrite this listing:")
    assert fake.table.records[tent]["fields"]["cost"] > 0
    early = fake.table.records[copy]["fields"]  # the run already tells the copy apart: an id of its own, no output
    assert early["id"] not in ids.values() and "output" not in early

    shop.clock.set(at("2026-11-24T09:00"))
    fake.set(tent, review="approve")
    fake.set(jacket, review="edit", edited_output="My jacket copy")
    fake.set(blog, review="rework", notes="Shorter")
    harvested = shop.harvest()
    assert harvested.decisions == {"approve": 1, "edit": 1, "rework": 1}
    assert fake.table.records[tent]["fields"]["status"] == "approved"
    assert fake.table.records[jacket]["fields"]["status"] == "edited"
    copied = fake.table.records[copy]["fields"]
    assert copied["id"] not in ids.values() and "status" not in copied and "output" not in copied

    # the next night: the rework and the copy run; approved and edited records never run again
    shop.clock.set(at("2026-11-24T17:00"))
    assert shop.lock().locked.total() == 2
    shop.clock.set(at("2026-11-25T01:00"))
    shop.run()
    assert len(shop.llm.requests) == 6
    assert fake.table.records[blog]["fields"]["status"] == "review"
    assert "review" not in fake.table.records[blog]["fields"]  # yesterday's rework is not today's decision
    assert fake.busiest_second() <= 5 and all(c.status == 200 for c in fake.calls)
    assert all(c.records <= 10 for c in fake.calls)


def test_check_lists_the_fields_to_add_by_hand_with_their_types(tmp_path: Path) -> None:
    from sheetbot.cli.check import run_check

    config = {
        "board": {"kind": "airtable", "base": BASE_ID, "sheet": "Queue", "endpoint_url": ENDPOINT},
        "providers": {"openai": {}},
        "prices": {"gpt-4.1-mini": {"input": 0.4, "output": 1.6}},
        "workflows": {"w": {"provider": "openai", "model": "gpt-4.1-mini", "mode": "preview", "prompt": "{{input}}"}},
    }
    path = tmp_path / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with FakeAirtable(fields=["id", "type", "input"], scopes={"data.records:read", "schema.bases:read"}):
        [line] = run_check(path, env={"AIRTABLE_TOKEN": TOKEN})
    assert line.startswith("board.sheet") and "the table lacks fields: add " in line
    assert "review (Single select: approve, edit, rework)" in line and "schema.bases:write" in line
