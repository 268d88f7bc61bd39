"""The SQL of one reporting view per sync object in the state database (state_views).

A view reads the state record store and gives each schema field its own typed
column, so a reporting tool (Power BI, Tableau, plain SQL) queries
`state_enrollment` as a table instead of digging into JSON. Pure: the command
passes the connection's vendor and quoting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

# PostgreSQL: the text of a payload key, cast. numeric rather than double precision:
# the JSON's decimal digits come back as written.
PG_TYPES = {
    "string": "text",
    "code": "text",
    "integer": "bigint",
    "number": "numeric",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamptz",
}
# SQLite has type affinities only; json_extract already gives numbers and 0/1 for
# booleans, and dates stay ISO text (SQLite's own date functions read them).
SQLITE_TYPES = {
    "string": "TEXT",
    "code": "TEXT",
    "integer": "INTEGER",
    "number": "REAL",
    "boolean": "INTEGER",
    "date": "TEXT",
    "datetime": "TEXT",
}
FIXED = ("district", "record_id", "school_year", "parents", "synced_at")


class Column(NamedTuple):
    name: str
    type: str  # a SyncField.Type value


def view_name(object_name: str) -> str:
    return f"state_{object_name.lower()}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _extract(vendor: str, column: Column) -> str:
    if vendor == "postgresql":
        return f"(payload->>{_literal(column.name)})::{PG_TYPES[column.type]}"
    path = '$."' + column.name.replace('"', '\\"') + '"'
    return f"CAST(json_extract(payload, {_literal(path)}) AS {SQLITE_TYPES[column.type]})"


def view_columns(fields: Iterable[Column], allows_extra: bool = False) -> list[str]:
    """The view's column names, in order: a schema field after the fixed ones, then the
    whole payload for an object open to extra fields, synced_at last."""
    return [*FIXED[:-1], *(f.name for f in fields), *(["payload"] if allows_extra else []), FIXED[-1]]


def view_statements(
    vendor: str,
    quote: Callable[[str], str],
    table: str,
    object_name: str,
    fields: list[Column],
    allows_extra: bool = False,
) -> list[str]:
    """The statements that create or replace `object_name`'s view over `table`.

    An object whose schema allows extra fields (every object the shipped schemas do
    not describe yet) also gets its whole `payload`: else its view would show none of
    what the districts send. A field named like a fixed column would make two columns
    of one name: refused by name (ValueError) rather than hidden.
    """
    fixed = (*FIXED, "payload") if allows_extra else FIXED
    clash = [f.name for f in fields if f.name in fixed]
    if clash:
        raise ValueError(f"{object_name}: field {clash[0]!r} has the name of a fixed column of its view.")
    # SQLite stores JSON as text: json() hands it out minified and checked.
    parents, payload = (
        ("parent_ids", "payload") if vendor == "postgresql" else ("json(parent_ids)", "json(payload)")
    )
    extra = [f"{payload} AS {quote('payload')}"] if allows_extra else []
    select = ", ".join(
        [
            f"district_code AS {quote('district')}",
            f"record_id AS {quote('record_id')}",
            f"school_year AS {quote('school_year')}",
            f"{parents} AS {quote('parents')}",
            *(f"{_extract(vendor, f)} AS {quote(f.name)}" for f in fields),
            *extra,
            f"synced_at AS {quote('synced_at')}",
        ]
    )
    body = f"SELECT {select} FROM {quote(table)} WHERE sync_object = {_literal(object_name)}"
    name = quote(view_name(object_name))
    if vendor == "postgresql":
        return [f"CREATE OR REPLACE VIEW {name} AS {body}"]
    return [f"DROP VIEW IF EXISTS {name}", f"CREATE VIEW {name} AS {body}"]


def drop_statement(object_name: str, quote: Callable[[str], str]) -> str:
    return f"DROP VIEW IF EXISTS {quote(view_name(object_name))}"
