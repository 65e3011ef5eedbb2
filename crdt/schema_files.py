"""The store's schema, one file per engine: ``crdt/schemas/sqlite.sql`` and ``postgres.sql``.

Each file holds a base (``-- @base N``: the statements that build a store of version N)
and forward migrations (``-- @migrate K``: from version K to K + 1). Both engines end at
the same version: a version names one logical format whatever the engine, so a format
change is a ``@migrate`` step in both files (a test checks they agree). The files are
package data; nothing here touches a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_MARKER = re.compile(r"^-- @(base|migrate) (\d+)\s*$", re.M)


class SchemaFileError(Exception):
    """A schema file is malformed (a packaging or editing mistake, not user data)."""


@dataclass(frozen=True)
class SchemaScript:
    engine: str
    base_version: int
    base: str
    migrations: dict[int, str]
    """version K -> the script that takes a store from K to K + 1"""

    @property
    def version(self) -> int:
        """The version a store of this engine ends at."""
        return self.base_version + len(self.migrations)


def parse(engine: str, text: str) -> SchemaScript:
    """Split a schema file's text at its markers (see the module docstring)."""
    parts = _MARKER.split(text)
    # parts: [header, kind, number, body, kind, number, body, ...]
    base: tuple[int, str] | None = None
    migrations: dict[int, str] = {}
    for i in range(1, len(parts), 3):
        kind, number, body = parts[i], int(parts[i + 1]), parts[i + 2]
        if kind == "base":
            if base is not None or migrations:
                raise SchemaFileError(f"{engine}.sql: one @base, before any @migrate")
            base = (number, body)
        else:
            if base is None:
                raise SchemaFileError(f"{engine}.sql: @migrate {number} before @base")
            expected = base[0] + len(migrations)
            if number != expected:
                raise SchemaFileError(
                    f"{engine}.sql: @migrate {number} where @migrate {expected} was expected"
                )
            migrations[number] = body
    if base is None:
        raise SchemaFileError(f"{engine}.sql: no @base")
    return SchemaScript(engine, base[0], base[1], migrations)


def load(engine: str) -> SchemaScript:
    """The packaged schema of *engine* (``sqlite`` or ``postgres``)."""
    text = resources.files("crdt").joinpath("schemas", f"{engine}.sql").read_text("utf-8")
    return parse(engine, text)


def split_sql(script: str) -> list[str]:
    """The statements of *script*: comment lines dropped, split at ``;``."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
