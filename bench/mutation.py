"""Mutation testing of the night's core: which small changes to the code would no test notice?

A line coverage figure says a line ran; it does not say a test would fail if the line were wrong.
This runs mutmut 3 (a dev dependency) over a scope of sheetbot's source -- by default the four packages
whose mistakes cost money or rows: sheetbot/state/, sheetbot/status.py, sheetbot/night/, sheetbot/batch/ --
and prints the score (killed / total, per package) and every surviving mutant with its diff.

    .venv/bin/python bench/mutation.py sheetbot/status.py sheetbot/state/attempts.py \
        --tests tests/test_lifecycle.py tests/test_mutants_state.py tests/test_mutants_status.py
    .venv/bin/python bench/mutation.py ... --report      # the same arguments: print that run's results again
    .venv/bin/python bench/mutation.py                   # all four packages, every test: many hours on 2 cores

How: the repo's sheetbot/, tests/, config/ and pyproject.toml are copied to a work folder OUTSIDE the repo
(default: <tmp>/sheetbot-mutation/<hash of scope and tests>), with a [tool.mutmut] section naming the scope,
and `mutmut run` runs there at niceness 10 or more. So nothing mutmut writes (its mutants/ folder, its
caches) lands in the repo, and `python -m pytest` in the repo never collects a mutant. mutmut first runs the
selected tests once to record which tests reach which function, then runs, for each mutant, only those
tests, fastest first, stopping at the first failure. A re-run with the same arguments keeps the verdicts it
has (so an interrupted run resumes); use --fresh after changing the code, and --retry after adding or
strengthening tests (it runs again only the mutants that survived; the killed ones stay killed).

Why --tests: a killed mutant costs a second or two, but a surviving one runs every selected test that reaches
its function, and most of the state's methods are reached by ~280 tests (~4 minutes on a loaded 2-core
machine). Selecting the test files that test a scope keeps a run to minutes; the figures then say "with
these tests", and a mutant that survives them may still be killed by a test left out.

Statuses: killed (a test failed), timeout (counted as killed: the mutant hung), survived (every test that
reaches it passed), no tests (no selected test reaches the function), case only (see case_only: SQLite does
not tell the case of SQL text apart, so these are equivalent mutants). Score = killed / (all - skipped);
score* leaves the case-only ones out. Like every bench script it exits 0 whatever the score.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCOPE = ("sheetbot/status.py", "sheetbot/state", "sheetbot/night", "sheetbot/batch")
COPIED = ("sheetbot", "tests", "config")
KILLED = {"killed", "timeout", "caught by type check"}
SQL_TEXT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|FROM|VALUES|ORDER BY)\b", re.IGNORECASE)
ROW_KEY = re.compile(r"""\b(r|row)\[["'][A-Za-z_]+["']\]""")
# mutmut's exit-code vocabulary (mutmut.stats.status_by_exit_code), repeated here so the report can be read
# without importing mutmut (which reads its configuration from the current directory at import time).
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
          36: "timeout", 37: "caught by type check", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", None: "not checked"}  # fmt: skip


def _globs(scope: list[str]) -> list[str]:
    """mutmut's only_mutate patterns (fnmatch, `*` spans folders) for files and folders of the scope."""
    out = []
    for item in scope:
        path = Path(item.rstrip("/"))
        if not (REPO / path).exists():
            raise SystemExit(f"{item}: no such file or folder in {REPO}")
        out.append(str(path) if path.suffix == ".py" else f"{path}/*.py")
    return out


def _prepare(workdir: Path, scope: list[str], tests: list[str], fresh: bool) -> None:
    """Copy the repo's code and tests into the work folder and write its [tool.mutmut] section."""
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        target = workdir / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(REPO / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["sheetbot"]',
        f"only_mutate = {json.dumps(_globs(scope))}",
        'also_copy = ["config/"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(tests or ['tests/'])}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]',
        "use_git_change_detection = false",
        # A mutant that loops forever is a kill (timeout); mutmut's default waits 30x the tests' time in CPU
        # seconds, which at a loaded machine's share of a core is most of an hour. 6x is plenty.
        "timeout_multiplier = 3.0",
    ]
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    (workdir / "pyproject.toml").write_text(pyproject + "\n".join(lines) + "\n", encoding="utf-8")


def _run(workdir: Path, jobs: int, names: list[str]) -> int:
    """`mutmut run` at niceness 10 at least: the machine is shared, and mutants are never urgent."""
    mutmut = Path(sys.executable).parent / "mutmut"
    command = ["nice", "-n", str(max(0, 10 - os.nice(0))), str(mutmut), "run", "--max-children", str(jobs)]
    print("$ cd", workdir, "&&", " ".join(command), f"<{len(names)} mutants>" if names else "", flush=True)
    command += names
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(command, cwd=workdir, env=env, check=False).returncode


def _verdicts(workdir: Path) -> dict[str, dict[str, str]]:
    """Mutant name -> status, per source file (read from mutmut's .meta files)."""
    out: dict[str, dict[str, str]] = {}
    root = workdir / "mutants"
    for meta in sorted(root.glob("sheetbot/**/*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        source = str(meta.relative_to(root))[: -len(".meta")]
        out[source] = {name: STATUS.get(code, "suspicious") for name, code in data["exit_code_by_key"].items()}
    return out


def _package(source: str) -> str:
    """sheetbot/state/store.py -> sheetbot/state/ ; sheetbot/status.py stays itself."""
    parent = str(Path(source).parent)
    return source if parent == "sheetbot" else parent + "/"


def _diffs(workdir: Path, names: dict[str, str]) -> dict[str, str]:
    """The diff of each mutant, from mutmut itself (run in the work folder, where its config is)."""
    if not names:
        return {}
    code = (
        "import json, sys\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "out = {}\n"
        "for name, path in json.load(sys.stdin).items():\n"
        "    try:\n"
        "        out[name] = get_diff_for_mutant(name, path=path)\n"
        "    except Exception as exc:  # a diff we cannot show must not hide the others\n"
        "        out[name] = f'(no diff: {exc!r})'\n"
        "json.dump(out, sys.stdout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, input=json.dumps(names), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {name: f"(no diff: {done.stderr.strip().splitlines()[-1:]})" for name in names}
    result: dict[str, str] = json.loads(done.stdout)
    return result


def _columns() -> frozenset[str]:
    """Every column name of the state's tables, from the schema itself (an in-memory database)."""
    from sheetbot.state.schema import SCHEMA, migrate

    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    migrate(db)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return frozenset(c[1] for t in tables for c in db.execute(f"PRAGMA table_info({t})"))


def case_only(diff: str) -> bool:
    """A mutant that only changes the case of SQL text, of a sqlite3.Row key or of a column name put into SQL:
    SQLite reads keywords, table and column names, and Row keys without regard to case, so no test can tell
    it apart (an equivalent mutant). A case change of any other string ("sending") is a real mutant."""
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if not removed or [r.lower() for r in removed] != [a.lower() for a in added]:
        return False
    for before, after in zip(removed, added, strict=True):
        changed = {w for w in re.findall(r"[\"']([A-Za-z_]+)[\"']", before)} - set(
            re.findall(r"[\"']([A-Za-z_]+)[\"']", after)
        )
        if not (SQL_TEXT.search(before) or ROW_KEY.search(before) or (changed and changed <= COLUMNS)):
            return False
    return True


def _survivors_to_retry(workdir: Path) -> list[str]:
    """The mutants that survived or were not checked (not the case-only ones, which no test can kill)."""
    survived = {
        name: source
        for source, by_name in _verdicts(workdir).items()
        for name, status in by_name.items()
        if status in ("survived", "suspicious", "not checked")  # not checked: interrupted, or its tests changed
    }
    diffs = _diffs(workdir, survived)
    return sorted(name for name in survived if not case_only(diffs.get(name, "")))


def _report(workdir: Path, show_diffs: bool) -> None:
    verdicts = _verdicts(workdir)
    if not verdicts:
        print("No mutmut results in", workdir)
        return
    survivors = {
        name: source
        for source, by_name in verdicts.items()
        for name, status in by_name.items()
        if status not in KILLED and status not in ("skipped", "not checked")
    }
    diffs = _diffs(workdir, survivors)
    per_package: dict[str, Counter[str]] = defaultdict(Counter)
    for source, by_name in verdicts.items():
        for name, status in by_name.items():
            equivalent = name in survivors and case_only(diffs.get(name, ""))
            per_package[_package(source)]["case only" if equivalent else status] += 1
    print()
    print("score = (killed + timeout) / total; 'score*' leaves out the case-only mutants (equivalent, see case_only)")
    print(f"{'scope':<22}{'killed':>7}{'total':>7}{'score':>8}{'score*':>8}  survived  no-tests  case-only  other")
    overall: Counter[str] = Counter()
    for package in sorted(per_package):
        counts = per_package[package]
        overall.update(counts)
        _line(package, counts)
    _line("all", overall)
    print()
    for name, source in sorted(survivors.items()):
        if case_only(diffs.get(name, "")):
            continue
        print(f"--- {verdicts[source][name]}: {name}")
        if show_diffs:
            print(diffs.get(name, ""))
    unchecked = overall["not checked"]
    print(
        f"\n{len(survivors)} surviving mutants ({overall['case only']} of them case-only, not listed), "
        f"{unchecked} not checked yet (work folder: {workdir})"
    )


def _line(label: str, counts: Counter[str]) -> None:
    killed = sum(counts[s] for s in KILLED)
    total = sum(counts.values()) - counts["skipped"]
    other = total - killed - counts["survived"] - counts["no tests"] - counts["case only"]
    score = f"{100 * killed / total:.1f}%" if total else "-"
    real = total - counts["case only"]
    score_real = f"{100 * killed / real:.1f}%" if real else "-"
    print(
        f"{label:<22}{killed:>7}{total:>7}{score:>8}{score_real:>8}  {counts['survived']:>8}  {counts['no tests']:>8}"
        f"  {counts['case only']:>9}  {other:>5}"
    )


COLUMNS = _columns()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scope", nargs="*", help=f"files or folders to mutate (default: {' '.join(DEFAULT_SCOPE)})")
    parser.add_argument("--tests", nargs="+", default=[], help="test files to select from (default: all of tests/)")
    parser.add_argument("--workdir", type=Path, help="work folder (default: <tmp>/sheetbot-mutation/<scope hash>)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier verdicts in the work folder")
    parser.add_argument("--report", action="store_true", help="only print the last run's results")
    parser.add_argument(
        "--retry",
        action="store_true",
        help="with new or stronger tests (the code unchanged): run again only the mutants that survived",
    )
    parser.add_argument("--no-diffs", action="store_true", help="list surviving mutants without their diffs")
    args = parser.parse_args()
    scope = [s.rstrip("/") for s in args.scope] or list(DEFAULT_SCOPE)
    key = hashlib.sha256(json.dumps([sorted(scope), sorted(args.tests)]).encode()).hexdigest()[:10]
    workdir = (args.workdir or Path(tempfile.gettempdir()) / "sheetbot-mutation" / key).resolve()
    if REPO in workdir.parents or workdir == REPO:
        raise SystemExit("the work folder must be outside the repo, or pytest would collect the mutants")
    print("scope:", " ".join(scope), "| tests:", " ".join(args.tests) or "tests/")
    if not args.report:
        names = _survivors_to_retry(workdir) if args.retry and not args.fresh else []
        if args.retry and not names:
            print("no surviving mutant to retry")
        _prepare(workdir, scope, args.tests, args.fresh)
        code = _run(workdir, args.jobs, names) if names or not args.retry else 0
        if code != 0:
            print(f"mutmut run exited {code}; the figures below may be partial")
    _report(workdir, not args.no_diffs)


if __name__ == "__main__":
    main()
