"""Choosing PostgreSQL for the state (issue 15, item 1): the YAML's URL or DATABASE_URL, never a password in the
YAML, one schema per board, and a server that cannot be reached said in one sentence without the password."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from harness import shop_config
from state_backends import ENV, HOW, postgres_url

from sheetbot.config.load import load_config
from sheetbot.config.state_target import PostgresTarget, shown_url
from sheetbot.errors import ConfigError, StateUnavailableError
from sheetbot.state import State


@pytest.mark.parametrize(
    "url", ["postgresql://night:pa55word@db.test/shop", "postgres://night@db.test/shop?password=pa55word"]
)
def test_a_password_in_the_state_url_is_a_one_line_config_error_saying_where_it_goes(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="PGPASSWORD") as caught:
        load_config(shop_config(tmp_path, state=url))
    message = str(caught.value)
    assert "pa55word" not in message and "state" in message and "DATABASE_URL" in message


def test_a_role_without_password_is_accepted_and_names_the_boards_schema(tmp_path: Path) -> None:
    config = load_config(shop_config(tmp_path, state="postgresql://night@db.test:5433/shop"))
    target = config.state_target
    assert isinstance(target, PostgresTarget)
    assert target.url == "postgresql://night@db.test:5433/shop"
    assert target.schema.startswith("sheetbot_queue_")  # the workbook's name, and a hash of its whole path
    assert config.state_path == target.path and target.path.parent == tmp_path  # journal, claims: beside the YAML
    assert config.state_exists


def test_two_boards_in_one_database_get_two_schemas_unless_told(tmp_path: Path) -> None:
    url = "postgresql://night@db.test/shop"
    one = load_config(shop_config(tmp_path / "one", state=url)).state_target
    two = load_config(shop_config(tmp_path / "two", state=url)).state_target
    named = load_config(shop_config(tmp_path / "three", state=url, state_schema="client_a")).state_target
    assert isinstance(one, PostgresTarget) and isinstance(two, PostgresTarget) and isinstance(named, PostgresTarget)
    assert one.schema != two.schema
    assert named.schema == "client_a"


def test_a_schema_name_that_would_need_quoting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state_schema"):
        load_config(shop_config(tmp_path, state="postgresql://night@db.test/shop", state_schema='a"; DROP'))


def test_database_url_is_used_while_the_yaml_keeps_the_default_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:s3cret-from-env@db.test:5432/d1")
    config = load_config(shop_config(tmp_path))  # `state: sheetbot.db`, the default
    target = config.state_target
    assert isinstance(target, PostgresTarget) and target.url.endswith("/d1")
    assert "s3cret-from-env" not in str(target)  # printed and logged as postgres://app:***@db.test:5432/d1
    explicit = load_config(shop_config(tmp_path / "file", state="elsewhere.db"))
    assert explicit.state_target == tmp_path / "file" / "elsewhere.db"  # a file the YAML names wins


def test_an_unreachable_server_is_a_state_error_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://night:s3cret-pw@127.0.0.1:1/shop"  # port 1: nothing listens
    with pytest.raises(StateUnavailableError) as caught:
        State(PostgresTarget(url=url, schema="board", path=tmp_path / "state"), busy_timeout_s=2)
    assert "s3cret-pw" not in str(caught.value) and "cannot connect" in str(caught.value)
    assert shown_url(url) == "postgresql://night:***@127.0.0.1:1/shop"


def test_the_readmes_postgresql_example_is_a_validshop_config(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### PostgreSQL state", 1)[1]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    config = load_config(shop_config(tmp_path, **example))
    target = config.state_target
    assert isinstance(target, PostgresTarget) and target.schema == "shop_main"


def test_without_a_server_the_postgresql_tests_skip_saying_how_to_run_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert postgres_url.__wrapped__() == (None, f"{ENV} is not set")
    monkeypatch.setenv(ENV, "postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    url, why = postgres_url.__wrapped__()
    assert url is None and "cannot be reached" in why
    assert "pg_ctlcluster --skip-systemctl-redirect 15 main start" in HOW and f"export {ENV}=postgresql://" in HOW


def test_check_finds_a_state_database_that_cannot_be_reached(tmp_path: Path) -> None:
    """`check` is run before the cutoff to learn what would fail at it: an unreachable state server too."""
    from harness import ENV as KEYS

    from sheetbot.cli.check import run_check

    path = shop_config(tmp_path, state="postgresql://night@127.0.0.1:1/shop")  # port 1: nothing listens
    problems = [p for p in run_check(path, env={**KEYS, "PGPASSWORD": "s3cret-pw"}) if p.startswith("state ")]
    assert len(problems) == 1 and "cannot connect to the state database" in problems[0]
    assert "\n" not in problems[0] and "s3cret-pw" not in problems[0]
