"""pyproject.toml declares what sheetbot imports, and nothing it does not.

An import that only works because some other package happens to pull its distribution in (``requests``
through pyairtable, ``httpx2`` through the SDKs) breaks the day that package stops; a declared package
nobody imports is weight and attack surface. Read from the code itself (every import, at any depth).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    """The distributions in [project].dependencies, without versions or extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {normal(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


@cache
def imported() -> dict[str, set[str]]:
    """Top-level module names outside the standard library that sheetbot imports -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "sheetbot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                # _typeshed: the standard library's own stubs, imported for type checking only.
                if top not in {"sheetbot", "_typeshed"} and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    providers = packages_distributions()
    wanted = declared()
    missing = {
        module: sorted(files)
        for module, files in imported().items()
        if not {normal(d) for d in providers.get(module, [module])} & wanted
    }
    assert missing == {}


def test_every_declared_package_is_imported() -> None:
    providers = packages_distributions()
    used = {normal(d) for module in imported() for d in providers.get(module, [module])}
    assert declared() - used == set()


def test_requests_and_httpx2_are_imported_directly_and_pytz_is_not() -> None:
    modules = imported()
    assert "requests" in modules and "httpx2" in modules
    assert "httpx" not in modules and "pytz" not in modules  # pytz comes with schedule[timezone]
    assert {"requests", "httpx2"} <= declared() and "pytz" not in declared()
