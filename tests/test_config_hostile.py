"""A hostile or careless YAML cannot hurt the process: bounded size, depth and aliases; regular files only;
and no value `check` accepts can crash a later phase (issue 11 items 5 and 6)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from test_config import BASE, write

from sheetbot.config.load import inspect_config
from sheetbot.config.yaml_file import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, MAX_INCLUDES
from sheetbot.errors import ConfigError, Problem


def problems(path: Path) -> list[Problem]:
    """What `check` lists: the YAML's problems, or the one reason the file could not be read at all."""
    try:
        config, found = inspect_config(path)
    except ConfigError as exc:
        return exc.problems
    assert config is None and found
    return found


def laughs(levels: int, fan: int) -> str:
    """The "billion laughs": each level names the one before `fan` times."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + laughs(6, 10))  # a million nodes once expanded
    (p,) = problems(path)
    assert "alias" in p.message and "anchor" in p.message
    assert p.file == str(path) and p.line is not None


def test_few_nested_aliases_that_expand_hugely_are_refused(tmp_path: Path) -> None:
    """Two aliases a level, 40 levels: under the alias cap, 2**40 nodes expanded."""
    text = 'x0: &x0 ["lol"]\n' + "".join(f"x{i}: &x{i} [*x{i - 1}, *x{i - 1}]\n" for i in range(1, 25))
    assert text.count("*") < 2 * 25
    (p,) = problems(write(tmp_path, BASE + text))
    assert "expands" in p.message or "alias" in p.message


def test_a_few_aliases_still_work(tmp_path: Path) -> None:
    """A merge key is the usual, harmless use of an anchor."""
    text = BASE.replace("    provider: anthropic\n    model: claude-haiku-4-5\n", "    <<: *d\n")
    text = "x: &d {provider: anthropic, model: claude-haiku-4-5}\n" + text
    found = problems(write(tmp_path, text))
    assert [p.where for p in found] == ["x"]  # only the unknown key: the alias itself is fine


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    (p,) = problems(write(tmp_path, BASE + "loop: &l [*l]\n"))
    assert "itself" in p.message


def test_nesting_deeper_than_the_cap_is_refused(tmp_path: Path) -> None:
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    (p,) = problems(write(tmp_path, BASE + f"deep: {deep}\n"))
    assert "nested" in p.message


def test_very_deep_nesting_is_one_problem_not_a_recursion_error(tmp_path: Path) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    (p,) = problems(write(tmp_path, BASE + f"deep: {deep}\n"))
    assert "nested" in p.message


def test_too_many_aliases_are_refused(tmp_path: Path) -> None:
    items = ", ".join(["*s"] * (MAX_ALIASES + 1))
    (p,) = problems(write(tmp_path, BASE + f"s: &s lol\nmany: [{items}]\n"))
    assert "alias" in p.message


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(ConfigError) as caught:
        inspect_config(path)
    assert "larger than" in str(caught.value) and str(path) in str(caught.value)


def test_an_included_file_over_the_size_cap_is_one_problem(tmp_path: Path) -> None:
    write(tmp_path, "workflows: {}\n# " + "x" * MAX_BYTES + "\n", "more/big.yaml")
    path = write(tmp_path, BASE + "include: [more/*.yaml]\n")
    (p,) = problems(path)
    assert "larger than" in p.message and "big.yaml" in str(p)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_an_included_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "more").mkdir()
    os.mkfifo(tmp_path / "more" / "pipe.yaml")
    (p,) = problems(write(tmp_path, BASE + "include: [more/*.yaml]\n"))
    assert "not a regular file" in p.message and "pipe.yaml" in str(p)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_an_included_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "zero.yaml").symlink_to("/dev/zero")
    (p,) = problems(write(tmp_path, BASE + "include: [more/*.yaml]\n"))
    assert "not a regular file" in p.message and "zero.yaml" in str(p)


def test_an_included_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "more" / "sub.yaml").mkdir(parents=True)
    (p,) = problems(write(tmp_path, BASE + "include: [more/*.yaml]\n"))
    assert "not a regular file" in p.message


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_the_config_itself_must_be_a_regular_file() -> None:
    with pytest.raises(ConfigError) as caught:
        inspect_config("/dev/zero")
    assert "not a regular file" in str(caught.value)
    assert "\n" not in str(caught.value)


# -- item 6: every number bounded, every time HH:MM ------------------------------------------------


def with_key(dotted: str, value: object) -> str:
    data = yaml.safe_load(BASE)
    node = data
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


HOSTILE = [
    ("schedule.harvest_every_min", 1e20),
    ("schedule.harvest_every_min", 10**30),
    ("schedule.cutoff", "17:00+05:00"),
    ("schedule.cutoff", "17:00:30"),
    ("schedule.summary", "09:00Z"),
    ("schedule.window.start", "01:00-03:00"),
    ("schedule.window.end", "5:00:00.5"),
    ("trial.max_hours", 1e300),
    ("trial.max_hours", float("inf")),
    ("limits.nightly_usd", float("nan")),
    ("limits.nightly_usd", float("inf")),
    ("limits.nightly_rows", 10**12),
    ("limits.state_wait_s", 1e300),
    ("board.timeout_s", float("inf")),
    ("providers.anthropic.timeout_s", 1e300),
    ("providers.anthropic.rpm", 10**20),
    ("providers.anthropic.breaker_cooldown_s", 1e300),
    ("providers.anthropic.batch_poll_s", 1e300),
    ("providers.anthropic.breaker_failures", 10**20),
    ("prices.claude-haiku-4-5.input", float("inf")),
    ("workflows.blog.timeout_s", 1e300),
    ("workflows.blog.task_timeout_s", float("nan")),
    ("workflows.blog.nightly_rows", 10**20),
    ("workflows.blog.max_usd_per_task", float("inf")),
    ("alerts.approval_nights", 10**20),
    ("escalation.sla.P0", "1e300h"),
    ("escalation.sla.P1", 1e300),
    ("escalation.sla.P2", "nanh"),
    ("escalation.queue_depth.for_min", 1e300),
    ("escalation.waiting.factor", float("inf")),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE, ids=[f"{k}={v}" for k, v in HOSTILE])
def test_check_refuses_values_a_later_phase_cannot_use(tmp_path: Path, key: str, value: object) -> None:
    found = problems(write(tmp_path, with_key(key, value)))
    assert [p.where for p in found] == [key], found
    assert "\n" not in str(found[0])


@pytest.mark.parametrize("value", ["17:00", "7:05", "00:00", "23:59"])
def test_plain_times_still_work(tmp_path: Path, value: str) -> None:
    config, found = inspect_config(write(tmp_path, with_key("schedule.cutoff", value)))
    assert not found and config is not None
    assert config.schedule.cutoff.tzinfo is None


def test_aliases_cannot_nest_deeper_than_the_cap_once_expanded(tmp_path: Path) -> None:
    """Each anchor is shallow, but each holds the one before: expanded, the nesting is far past the cap."""
    depth = MAX_DEPTH - 5
    text = "c0: &c0 x\n" + "".join(
        f"c{i}: &c{i} " + "[" * depth + f"*c{i - 1}" + "]" * depth + "\n" for i in range(1, 60)
    )
    (p,) = problems(write(tmp_path, BASE + text))
    assert "nested" in p.message


def test_a_glob_matching_too_many_files_is_one_problem(tmp_path: Path) -> None:
    for i in range(MAX_INCLUDES + 1):
        write(tmp_path, f"workflows: {{w{i}: {{}}}}\n", f"more/w{i}.yaml")
    found = problems(write(tmp_path, BASE + "include: [more/*.yaml]\n"))
    assert len(found) == 1 and "files" in found[0].message and found[0].where == "include[0]"
