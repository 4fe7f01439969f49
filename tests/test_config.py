"""The YAML file: every mistake an admin makes is listed at once, with its key path, its line and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fakellm import FakeLLM

from sheetbot.boards.base import SchemaSpec
from sheetbot.boards.local import LocalBoard
from sheetbot.cli.check import run_check
from sheetbot.config.load import inspect_config, load_config
from sheetbot.config.models import Config
from sheetbot.errors import ConfigError, Problem

ROOT = Path(__file__).resolve().parents[1]


# Line numbers below refer to this text; keep it in step with the cases.
def check(path: Path, *, env: dict[str, str]) -> list[str]:
    """`sheetbot check` with the providers' probes answered by FakeLLM (it lists no models)."""
    return run_check(path, env=env, http_client=FakeLLM().async_client())


BASE = """\
timezone: Europe/Berlin
board:
  kind: local
  path: queue.xlsx
  sheet: Queue
state: sheetbot.db
providers:
  anthropic: {api_key_env: ANTHROPIC_API_KEY}
prices:
  claude-haiku-4-5: {input: 1.0, output: 5.0}
workflows:
  blog:
    provider: anthropic
    model: claude-haiku-4-5
    mode: live
    max_tokens: 1024
    prompt: "Write a post about {{input}}"
"""
COLUMNS = ["id", "type", "input", "priority", "status", "night", "output", "review", "notes",
           "edited_output", "error", "cost"]  # fmt: skip
ENV = {"ANTHROPIC_API_KEY": "sk-ant-test"}


def write(folder: Path, text: str, name: str = "sheetbot.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def make_board(path: Path, columns: list[str] = COLUMNS) -> Path:
    LocalBoard(path, "Queue").ensure_schema(
        SchemaSpec(
            columns=columns,
            review_column="review",
            review_choices=["approve", "edit", "rework"],
            status_column="status",
            status_choices=["queued", "review"],
        )
    )
    return path


def problems_of(path: Path) -> list[Problem]:
    config, problems = inspect_config(path)
    assert config is None, "a config with problems must not be returned"
    assert problems
    return problems


def at(problems: list[Problem], where: str) -> Problem:
    found = [p for p in problems if p.where == where]
    assert found, f"no problem at {where}: {[str(p) for p in problems]}"
    return found[0]


# -- a good file --------------------------------------------------------------------------------------
def test_the_base_config_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    config, problems = inspect_config(path)
    assert problems == []
    assert isinstance(config, Config)
    assert config.workflows["blog"].mode == "live"
    assert config.base_dir == tmp_path.resolve()
    assert load_config(path).state_path == tmp_path.resolve() / "sheetbot.db"


def test_a_good_config_with_its_board_and_key_passes_check(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    make_board(tmp_path / "queue.xlsx")
    assert check(path, env=ENV) == []


# -- the file itself ----------------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        inspect_config(path)
    assert "not found" in str(caught.value) and "--config" in str(caught.value)
    with pytest.raises(ConfigError, match="not found"):
        load_config(path)
    [line] = check(path, env={})
    assert str(path) in line and "sheetbot demo" in line


def test_empty_file(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "\n# nothing here\n"))
    assert "empty" in problem.message and "config/sheetbot.yaml" in problem.message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: UTC\nboard:\n  kind: local\n   path: x.xlsx\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert "not valid YAML" in problem.message
    assert problem.line == 4 and problem.file == str(path)
    assert f"{path}:4" in check(path, env={})[0]


def test_a_list_instead_of_a_mapping(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "- timezone: UTC\n- board: {}\n"))
    assert problem.line == 1 and "mapping" in problem.message


# -- one mistake at a time: (change to BASE, key path, line, words the message must contain) -----------
CASES = {
    "unknown board kind": (("kind: local", "kind: excel"), "board.kind", 3, ["'excel'", "'local'"]),
    "unknown provider name": (
        ("  anthropic: {api_key_env: ANTHROPIC_API_KEY}\n",
         "  anthropic: {api_key_env: ANTHROPIC_API_KEY}\n  mistral: {api_key_env: MISTRAL_API_KEY}\n"),
        "providers.mistral", 9, ["'mistral'", "kind: openai"],
    ),
    "unknown provider kind": (
        ("{api_key_env: ANTHROPIC_API_KEY}", "{kind: mistral}"), "providers.anthropic.kind", 8, ["'openai'"],
    ),
    "unknown mode": (("mode: live", "mode: turbo"), "workflows.blog.mode", 15, ["'turbo'", "'batch'", "'preview'"]),
    "provider not configured": (
        ("provider: anthropic", "provider: openai"), "workflows.blog.provider", 13, ["'openai'", "providers:"],
    ),
    "model without a price": (
        ("model: claude-haiku-4-5", "model: gpt-9"), "workflows.blog.model", 14, ["'gpt-9'", "prices:", "input"],
    ),
    "typo in a key": (
        ("max_tokens: 1024", "max_token: 1024"), "workflows.blog.max_token", 16, ["unknown key", "`max_tokens`?"],
    ),
    "max_tokens below one": (
        ("max_tokens: 1024", "max_tokens: -5"), "workflows.blog.max_tokens", 16, ["greater than 0", "-5"],
    ),
    "max_tokens not a number": (("max_tokens: 1024", "max_tokens: lots"), "workflows.blog.max_tokens", 16, ["integer"]),
    "prompt missing": (('prompt: "Write a post about {{input}}"', "description: x"), "workflows.blog.prompt", 12,
                       ["prompt"]),
    "prompt blank": (('prompt: "Write a post about {{input}}"', 'prompt: "  "'), "workflows.blog.prompt", 17,
                     ["prompt", "{{input}}"]),
    "invalid timezone": (("Europe/Berlin", "Mars/Olympus"), "timezone", 1, ["'Mars/Olympus'", "IANA"]),
    "board not a mapping": (("board:\n  kind: local\n  path: queue.xlsx\n  sheet: Queue\n", "board: queue.xlsx\n"),
                            "board", 2, ["mapping"]),
    "workflow empty": (("  blog:\n    provider", "  empty:\n  blog:\n    provider"), "workflows.empty", 12,
                       ["mapping", "empty"]),
    "key pasted into api_key_env": (
        ("{api_key_env: ANTHROPIC_API_KEY}", "{api_key_env: sk-ant-live-0123}"), "providers.anthropic.api_key_env", 8,
        ["environment variable", "not hold the secret"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_one_mistake_names_key_line_and_fix(tmp_path: Path, name: str) -> None:
    (old, new), where, line, words = CASES[name]
    path = write(tmp_path, edit(old, new))
    problem = at(problems_of(path), where)
    assert problem.line == line, str(problem)
    assert problem.file == str(path)
    for word in words:
        assert word in problem.message, str(problem)
    # check shows the same line, with the key path and the line number
    assert any(text.startswith(f"{where} ({path}:{line}): ") for text in check(path, env=ENV))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "\n" not in str(caught.value) and where in str(caught.value)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("25:00", ["25:00 is not a time", '"HH:MM"']),  # YAML reads it as 1500, which must not become 00:25
        ("17:00", ['write the time in quotes, "17:00"', "1020"]),  # valid, but unquoted it would be 00:17
        ('"25:00"', ["'25:00' is not a time"]),
        ('"5pm"', ["'5pm' is not a time"]),
        ("5", ["5 is not a time"]),
    ],
)
def test_times_must_be_quoted_hh_mm(tmp_path: Path, value: str, words: list[str]) -> None:
    path = write(tmp_path, BASE + f'schedule:\n  cutoff: {value}\n  window: {{start: "01:00", end: "05:00"}}\n')
    problems = problems_of(path)
    assert [p.where for p in problems] == ["schedule.cutoff"]
    for word in words:
        assert word in problems[0].message
    assert problems[0].line == 19


def test_unquoted_window_time_is_refused(tmp_path: Path) -> None:
    # YAML 1.1 reads 1:30 as 90 (but 01:30 as text): either way the admin gets what they wrote, or a problem.
    path = write(tmp_path, BASE + "schedule:\n  window:\n    start: 1:30\n    end: 05:00\n")
    problems = problems_of(path)
    assert [p.where for p in problems] == ["schedule.window.start"]
    assert problems[0].line == 20 and '"1:30"' in problems[0].message


def test_quoted_times_are_read_as_times(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + 'schedule:\n  cutoff: "17:30"\n'))
    assert (config.schedule.cutoff.hour, config.schedule.cutoff.minute) == (17, 30)


def test_a_step_model_needs_a_price_too(tmp_path: Path) -> None:
    steps = '    steps:\n      - {name: research, prompt: "Research {{input}}", model: gpt-9}\n'
    path = write(tmp_path, edit('    prompt: "Write a post about {{input}}"\n', steps))
    problem = at(problems_of(path), "workflows.blog.steps[0].model")
    assert problem.line == 18 and "'gpt-9'" in problem.message


def test_duplicate_key_names_the_second_line(tmp_path: Path) -> None:
    problem = at(problems_of(write(tmp_path, BASE + "timezone: UTC\n")), "timezone")
    assert problem.line == 18 and "twice" in problem.message


def test_duplicate_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, edit("    mode: live\n", "    mode: live\n    mode: batch\n"))
    problem = at(problems_of(path), "workflows.blog.mode")
    assert problem.line == 16 and "twice" in problem.message


# -- secrets ------------------------------------------------------------------------------------------
def test_api_key_in_the_yaml_is_refused_and_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, edit("{api_key_env: ANTHROPIC_API_KEY}", "{api_key: sk-secret123}"))
    problems = problems_of(path)
    [problem] = problems
    assert problem.where == "providers.anthropic.api_key" and problem.line == 8
    assert "api_key_env" in problem.message and "environment variable" in problem.message
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = check(path, env=ENV)
    for text in [str(problem), str(caught.value), *lines]:
        assert "sk-secret123" not in text


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("{api_key_env: ANTHROPIC_API_KEY}", "{api_key_env: sk-secret123}", "providers.anthropic.api_key_env"),
        ("  kind: local\n", "  kind: local\n  token: sk-secret123\n", "board.token"),
        ("  kind: local\n", "  kind: local\n  password: sk-secret123\n", "board.password"),
    ],
)
def test_secrets_anywhere_are_never_echoed(tmp_path: Path, old: str, new: str, where: str) -> None:
    path = write(tmp_path, edit(old, new))
    problems = problems_of(path)
    assert at(problems, where)
    assert [p.where for p in problems].count(where) == 1  # one message, not pydantic's as well
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for text in [*map(str, problems), str(caught.value), *check(path, env=ENV)]:
        assert "sk-secret123" not in text


def test_missing_api_key_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    make_board(tmp_path / "queue.xlsx")
    [line] = check(path, env={})
    assert line.startswith(f"providers.anthropic ({path}:8): ")
    assert "ANTHROPIC_API_KEY" in line and "blog" in line


def test_a_custom_variable_name_is_the_one_asked_for(tmp_path: Path) -> None:
    path = write(tmp_path, edit("ANTHROPIC_API_KEY", "TEAM_CLAUDE_KEY"))
    make_board(tmp_path / "queue.xlsx")
    [line] = check(path, env=ENV)
    assert "TEAM_CLAUDE_KEY" in line
    assert check(path, env={"TEAM_CLAUDE_KEY": "k"}) == []


def test_preview_workflows_need_no_key(tmp_path: Path) -> None:
    path = write(tmp_path, edit("mode: live", "mode: preview"))
    make_board(tmp_path / "queue.xlsx")
    assert check(path, env={}) == []


# -- many problems at once ----------------------------------------------------------------------------
def test_every_problem_is_listed_together(tmp_path: Path) -> None:
    text = edit("model: claude-haiku-4-5", "model: gpt-9")
    text = edit("max_tokens: 1024", "max_tokens: -5", text)
    text = edit("mode: live", "mode: turbo", text)
    text = edit("Europe/Berlin", "Mars/Olympus", text)
    text = edit("provider: anthropic", "provider: openai", text)
    path = write(tmp_path, text + "schedule:\n  cutoff: 25:00\nmystery: 1\n")
    problems = problems_of(path)
    assert {p.where: p.line for p in problems} == {
        "timezone": 1,
        "workflows.blog.provider": 13,
        "workflows.blog.model": 14,
        "workflows.blog.mode": 15,
        "workflows.blog.max_tokens": 16,
        "schedule.cutoff": 19,
        "mystery": 20,
    }
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)  # in file order
    lines = check(path, env=ENV)
    assert len(lines) == len(problems)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "(and 6 more: run `sheetbot check`)" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "board: 5\n",
        "providers: [anthropic]\nworkflows: {a: {provider: anthropic, model: m, prompt: x}}\n",
        "prices: [1]\nworkflows: {a: {provider: anthropic, model: m, prompt: x}}\n",
        "workflows: {a: 5}\n",
        "workflows: {a: {provider: [x], model: {y: 1}, prompt: x}}\n",
        "workflows:\n",
        "include: 5\n",
        "include: [5, null]\n",
        "schedule: {window: 5}\n",
        "schedule: {cutoff: [1, 2]}\n",
        "board: {columns: {id: type}}\n",
        "board: {kind: google_sheets}\n",
        "board: {kind: airtable}\n",
        "? [a, b]\n: 1\n",
        "1: 2\n",
        "timezone: 5\n",
        "notify: {email_to: me}\n",
    ],
)
def test_odd_shapes_are_problems_not_crashes(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    try:
        problems = problems_of(path)
    except ConfigError as exc:  # only for what is not YAML at all
        problems = exc.problems
    assert all(p.message for p in problems)
    assert check(path, env={})


# -- the board: templates and columns -----------------------------------------------------------------
def test_template_naming_a_column_the_board_lacks(tmp_path: Path) -> None:
    text = edit("    mode: live\n", "    mode: live\n    system: You write for {{brand}}.\n")
    path = write(tmp_path, text)
    make_board(tmp_path / "queue.xlsx")
    config, problems = inspect_config(path)
    assert config is not None and problems == []  # the YAML alone is fine
    [line] = check(path, env=ENV)
    assert line.startswith(f"workflows.blog.system ({path}:16): ")
    assert "'brand'" in line and "{{brand}}" in line and "blog" in line and "sheetbot init" in line

    make_board(tmp_path / "queue.xlsx", [*COLUMNS, "brand"])
    assert check(path, env=ENV) == []


def test_renamed_columns_count_as_the_logical_name(tmp_path: Path) -> None:
    text = edit("  sheet: Queue\n", "  sheet: Queue\n  columns: {input: Brief}\n")
    path = write(tmp_path, text)
    make_board(tmp_path / "queue.xlsx", ["Brief" if c == "input" else c for c in COLUMNS])
    assert check(path, env=ENV) == []


def test_missing_workbook_says_run_init(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    [line] = check(path, env=ENV)
    assert line.startswith(f"board.path ({path}:4): ")
    assert "queue.xlsx" in line and f"sheetbot init --config {path}" in line


def test_board_missing_columns_says_run_init(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    make_board(tmp_path / "queue.xlsx", ["type", "input"])
    [line] = check(path, env=ENV)
    assert line.startswith(f"board ({path}:2): ")
    assert "status" in line and "review" in line and "sheetbot init" in line


def test_missing_worksheet(tmp_path: Path) -> None:
    path = write(tmp_path, edit("sheet: Queue", "sheet: Tasks"))
    make_board(tmp_path / "queue.xlsx")
    [line] = check(path, env=ENV)
    assert line.startswith(f"board.sheet ({path}:5): ") and "'Tasks'" in line


def test_a_workbook_that_is_not_xlsx(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    write(tmp_path, "this is not a workbook", "queue.xlsx")
    [line] = check(path, env=ENV)
    assert line.startswith(f"board.path ({path}:4): ") and "not a valid .xlsx" in line


def test_an_airtable_board_without_its_token_names_the_variable_and_scopes(tmp_path: Path) -> None:
    path = write(tmp_path, edit("kind: local", "kind: airtable\n  base: appXXXXXXXXXXXXXX"))
    [line] = check(path, env=ENV)
    assert "AIRTABLE_TOKEN" in line and "data.records:write" in line


# -- include: ------------------------------------------------------------------------------------------
NEWS = """\
workflows:
  news:
    provider: anthropic
    model: claude-haiku-4-5
    prompt: "Summarise {{input}}"
"""


def test_included_workflows_are_merged(tmp_path: Path) -> None:
    write(tmp_path, NEWS, "workflows/news.yaml")
    config = load_config(write(tmp_path, BASE + "include: [workflows/*.yaml]\n"))
    assert set(config.workflows) == {"blog", "news"}


def test_problems_in_included_files_name_that_file_and_line(tmp_path: Path) -> None:
    sub = write(tmp_path, edit("model: claude-haiku-4-5", "model: gpt-9", NEWS), "workflows/news.yaml")
    problem = at(problems_of(write(tmp_path, BASE + "include: [workflows/*.yaml]\n")), "workflows.news.model")
    assert problem.file == str(sub) and problem.line == 4


def test_include_matching_nothing(tmp_path: Path) -> None:
    problem = at(problems_of(write(tmp_path, BASE + "include: [flows/*.yaml]\n")), "include[0]")
    assert problem.line == 18 and "'flows/*.yaml'" in problem.message and "include:" in problem.message


def test_include_entries_must_be_patterns(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, BASE + "include: [5]\n"))
    assert [p.where for p in problems] == ["include[0]"]  # one message, not pydantic's as well
    assert "glob" in problems[0].message and problems[0].line == 18


def test_workflow_defined_twice_across_files(tmp_path: Path) -> None:
    sub = write(tmp_path, NEWS.replace("news:", "blog:"), "workflows/blog.yaml")
    problem = at(problems_of(write(tmp_path, BASE + "include: [workflows/*.yaml]\n")), "workflows.blog")
    assert problem.file == str(sub) and problem.line == 2
    assert "twice" in problem.message and "rename" in problem.message


def test_included_file_that_is_not_yaml(tmp_path: Path) -> None:
    sub = write(tmp_path, "workflows:\n  news: [\n", "workflows/news.yaml")
    problems = problems_of(write(tmp_path, BASE + "include: [workflows/*.yaml, nothing/*.yaml]\n"))
    assert any(p.file == str(sub) and "not valid YAML" in p.message for p in problems)
    assert at(problems, "include[1]")  # and the rest is still checked


def test_included_file_without_workflows(tmp_path: Path) -> None:
    write(tmp_path, "- just a list\n", "workflows/list.yaml")
    write(tmp_path, NEWS + "providers: {openai: {}}\n", "workflows/news.yaml")
    problems = problems_of(write(tmp_path, BASE + "include: [workflows/*.yaml]\n"))
    assert "no `workflows:` mapping" in at(problems, "include[0]").message
    assert "only `workflows:`" in at(problems, "providers").message


@pytest.mark.parametrize("workflows", ["[a, b]", "5", "just text"])
def test_non_mapping_workflows_with_include_is_a_problem(tmp_path: Path, workflows: str) -> None:
    write(tmp_path, NEWS, "workflows/news.yaml")
    path = write(tmp_path, f"include: [workflows/*.yaml]\nworkflows: {workflows}\n")
    problem = at(problems_of(path), "workflows")
    assert problem.line == 2 and "mapping" in problem.message


# -- the example in the repository --------------------------------------------------------------------
def test_the_example_config_only_lacks_the_workbook_and_keys(tmp_path: Path) -> None:
    """On a fresh checkout: no workbook yet (run init), no API keys, no Slack webhook; nothing else."""
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder, ignore=shutil.ignore_patterns("*.xlsx", "*.db*", "__pycache__"))
    path = folder / "sheetbot.yaml"
    lines = check(path, env={})
    assert [line.split(" ", 1)[0] for line in lines] == [
        "board.path",
        "providers.anthropic",
        "providers.openai",
        "notify.slack_webhook_env",
    ]
    assert "sheetbot init" in lines[0]
    assert "ANTHROPIC_API_KEY" in lines[1] and "OPENAI_API_KEY" in lines[2]
    keys = {"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o", "SLACK_WEBHOOK_URL": "https://hooks.slack.test/x"}
    assert [line.split(" ", 1)[0] for line in check(path, env=keys)] == ["board.path"]


def test_a_notification_channel_without_its_secret_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "notify:\n  slack_webhook_env: SLACK_HOOK\n")
    lines = [line for line in check(path, env=ENV) if line.startswith("notify")]
    assert len(lines) == 1 and "SLACK_HOOK is not set" in lines[0] and f"{path}:" in lines[0]
