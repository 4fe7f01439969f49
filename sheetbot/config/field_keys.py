"""An output field's key in the answer's schema, and the YAML check that no two fields share one.

Apart from ``outputs`` (the schema and the answer's check, built on the config models) so that the
models' own validation can ask it without importing what is built on them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def schema_key(name: str) -> str:
    """A field's property name in the schema: Anthropic allows only ``[A-Za-z0-9_.-]{1,64}`` as tool
    property keys, and a field name is a column header, spaces and all. Answers may use either spelling."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]


def colliding_keys(names: Sequence[str]) -> list[list[str]]:
    """Groups of field names that become the same schema key, in the YAML's order."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(schema_key(name), []).append(name)
    return [group for group in groups.values() if len(group) > 1]
