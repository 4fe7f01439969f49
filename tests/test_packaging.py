"""Packaging (issue 13 item 13): what `pipx install .` gets must run `sheetbot demo` from any folder.

The sdist is built, then the wheel from the sdist (``python -m build``), so a file missing from either shows
here: the LICENSE, the YAML's schema, the ready workflows, the demo rows, and the example config the
messages point to. .ci/run goes further and installs the wheel into a fresh venv. Without the build tools
(an offline machine without setuptools in the index) the test is skipped, saying why.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from sheetbot.config.example import example_config, example_workflows
from sheetbot.config.load import inspect

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p.name for p in (ROOT / "config" / "workflows").glob("*.yaml"))
#: What offline looks like to pip: the build backend cannot be had, which is no fault of the package.
OFFLINE = ("No matching distribution", "Could not find a version", "Failed to establish", "No module named build")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """The names in the sdist (without its top folder) and in the wheel."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        text = done.stdout + done.stderr
        if any(sign in text for sign in OFFLINE):
            pytest.skip(f"cannot build offline here (`python -m build` found no build backend): {text[-300:]}")
        pytest.fail(f"python -m build failed:\n{text[-3000:]}")
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
    return in_sdist, in_wheel


def test_the_wheel_carries_what_an_install_needs(built: tuple[set[str], set[str]]) -> None:
    _, wheel = built
    must = {
        "sheetbot-0.1.0.dist-info/licenses/LICENSE",
        "sheetbot/config/sheetbot.schema.json",
        "sheetbot/cli/demo_data.yaml",
        "sheetbot/example/__init__.py",
        "sheetbot/example/sheetbot.yaml",
        *(f"sheetbot/recipes/{name}" for name in RECIPES),
        *(f"sheetbot/example/workflows/{name}" for name in RECIPES),
    }
    assert must - wheel == set()
    assert {n for n in wheel if n.startswith("tests/")} == set()


def test_the_sdist_carries_the_license_and_the_example(built: tuple[set[str], set[str]]) -> None:
    sdist, _ = built
    must = {"LICENSE", "README.md", "pyproject.toml", "config/sheetbot.yaml", "sheetbot/config/sheetbot.schema.json"}
    assert must | {f"config/workflows/{name}" for name in RECIPES} <= sdist


def test_the_license_is_mit_for_the_contributors() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 sheetbot contributors" in text


def test_the_messages_name_an_example_that_exists_and_loads() -> None:
    assert example_config().is_file()
    assert sorted(p.name for p in example_workflows().glob("*.yaml")) == RECIPES
    found = inspect(example_config())
    assert found.problems == [], found.problems
