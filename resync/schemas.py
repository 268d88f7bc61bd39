"""Validating one incoming record against its sync object's schema (issue 13).

The one validation home: the file import, the API's batch upsert and the admin's
upload all build a RecordValidator and ask it, so they refuse the same things with
the same reasons. A record on the wire:

    {"record_id": 7, "school_year": 2027, "parents": {"School": 3},
     "state_excluded": false, "name": "Main", ...payload fields...}

The schema becomes one JSON Schema, compiled once per validator. A valid record,
nearly every one, is passed by jsonschema_rs (compiled Rust, about twenty times
faster) plus the checks it cannot make as StateSync makes them (an integer is a
JSON integer within bigint, dates by the checks below); a record it refuses is
judged again by jsonschema, whose errors are told back as Problems naming the
field. The slow validator alone decides what is wrong, so the messages stay its. A payload field whose
value is null counts as absent: the demo's SIS sends `end_date: null` for an open
enrollment, and a required field refuses it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker, validators

from .models import RESERVED_FIELD_NAMES, SyncField, SyncObject

KEYS = ("record_id", "school_year", "parents", "state_excluded")
PARENT_COLUMN = "parent:"
EXTRA_CELLS = "(extra cells)"  # a CSV row longer than its header (csv.DictReader's None key)

FORMATS = FormatChecker(formats=())
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    # Strictly YYYY-MM-DD: fromisoformat alone also takes 20270115 and 2027-W03.
    if not isinstance(value, str):
        return True
    return bool(_DATE.fullmatch(value)) and bool(dt.date.fromisoformat(value))


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return "T" in value and bool(_DATE.match(value)) and bool(dt.datetime.fromisoformat(value))


def _passes(check):
    """A format check as jsonschema_rs calls one: True or False, never raising."""

    def passes(value: str) -> bool:
        try:
            return bool(check(value))
        except ValueError:
            return False

    return passes


@dataclass(frozen=True)
class Problem:
    """One reason a record is refused, naming the field (or record key) at fault."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


# JSON Schema calls 1.0 an integer; a record id, a parent id or an integer field that
# arrives as 1.0 would then be stored as a float (and break the state views' bigint
# casts). Here an integer is a JSON integer, and booleans are not numbers.
Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _checker, v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda _checker, v: isinstance(v, int | float) and not isinstance(v, bool),
        }
    ),
)
# What both databases store in a bigint column.
BIGINT = {"minimum": -(2**63), "maximum": 2**63 - 1}
_LOW, _HIGH = BIGINT["minimum"], BIGINT["maximum"]

_JSON_TYPES = {
    SyncField.Type.STRING: {"type": "string"},
    SyncField.Type.INTEGER: {"type": "integer", **BIGINT},
    SyncField.Type.NUMBER: {"type": "number"},
    SyncField.Type.BOOLEAN: {"type": "boolean"},
    SyncField.Type.DATE: {"type": "string", "format": "date"},
    SyncField.Type.DATETIME: {"type": "string", "format": "date-time"},
    SyncField.Type.CODE: {"type": "string"},
}
_TYPE_WORDS = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
}


def value_schema(f: SyncField) -> dict:
    """The JSON Schema a present value of field `f` must meet."""
    schema = dict(_JSON_TYPES[f.type])
    if f.max_length is not None:
        schema["maxLength"] = f.max_length
    if f.type == SyncField.Type.CODE:
        schema["enum"] = list(f.codes)
    return schema


def field_schema(f: SyncField) -> dict:
    """The JSON Schema of one payload field; null stands for absent, unless required."""
    return value_schema(f) if f.required else {"anyOf": [{"type": "null"}, value_schema(f)]}


def record_schema(
    fields: list[SyncField], parents: tuple[str, ...], year_scoped: bool, allows_extra: bool
) -> dict:
    """The JSON Schema of a whole record in the wire form."""
    parent_schema = {
        "type": "object",
        "properties": {p: {"type": "integer", "minimum": 1, "maximum": BIGINT["maximum"]} for p in parents},
        "required": list(parents),
        "additionalProperties": False,
    }
    properties: dict[str, Any] = {
        "record_id": {"type": "integer", "minimum": 1, "maximum": BIGINT["maximum"]},
        "school_year": {"type": "integer", "minimum": 1900, "maximum": 2999}
        if year_scoped
        # {"not": {}} rather than False: jsonschema's errors under a False schema lose their path.
        else {"not": {}},
        "parents": parent_schema,
        "state_excluded": {"type": "boolean"},
    }
    properties.update({f.name: field_schema(f) for f in fields})
    required = ["record_id"]
    if year_scoped:
        required.append("school_year")
    if parents:
        required.append("parents")
    required += [f.name for f in fields if f.required]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": allows_extra,
    }


class RecordValidator:
    """Validates records of one sync object; build it with `validator_for`."""

    def __init__(
        self,
        object_name: str,
        fields: list[SyncField],
        parents: tuple[str, ...],
        year_scoped: bool,
        allows_extra: bool = False,
    ):
        self.object_name = object_name
        self.fields = {f.name: f for f in fields}
        self.parents = parents
        self.year_scoped = year_scoped
        self.allows_extra = allows_extra
        self.locked = tuple(f.name for f in fields if f.owner == SyncField.Owner.STATE)
        self.schema = record_schema(fields, parents, year_scoped, allows_extra)
        Validator.check_schema(self.schema)
        self._validator = Validator(self.schema, format_checker=FORMATS)
        self._fast = jsonschema_rs.Draft202012Validator(
            self.schema,
            validate_formats=True,
            formats={"date": _passes(_is_date), "date-time": _passes(_is_datetime)},
        )
        # Where jsonschema_rs takes 1.0 as an integer and rounds a Python int past
        # bigint to a float before comparing: these values are checked here again.
        self._columns: dict[str, tuple[str, Any]] = {}  # from_csv's typing, by column
        self._integers = tuple(name for name, f in self.fields.items() if f.type == SyncField.Type.INTEGER)

    # ---- validating ---------------------------------------------------------

    def problems(self, row: dict) -> list[Problem]:
        """Every reason `row` (wire form) is refused; empty when it is valid."""
        if not isinstance(row, dict):
            return [Problem("record", f"a record is a JSON object, not {type(row).__name__}")]
        if self._passes(row):
            return []
        found = []
        for error in self._validator.iter_errors(row):
            found.extend(self._explain(error, row))
        found = list(dict.fromkeys(found))  # one anyOf can say the same twice
        return sorted(found, key=lambda p: (self._rank(p.field), p.field))

    def _passes(self, row: dict) -> bool:
        """True when `row` is surely valid: the fast validator passes it and its
        integers are JSON integers within bigint. False sends it to the slow one."""
        try:
            if not self._fast.is_valid(row):
                return False
        except Exception:  # a value it cannot take in (a huge int): the slow validator judges
            return False
        values = [row["record_id"], row.get("school_year")]
        parents = row.get("parents")
        if parents:
            values.extend(parents.values())
        values.extend(row.get(name) for name in self._integers)
        return all(v is None or (type(v) is int and _LOW <= v <= _HIGH) for v in values)

    def _rank(self, name: str) -> int:
        if name in KEYS or name.startswith("parents"):
            return 0
        return 1

    def _explain(self, error: jsonschema.ValidationError, row: dict) -> list[Problem]:
        path = list(error.absolute_path)
        if not path:
            return self._explain_record(error, row)
        name = str(path[0])
        if name == "parents":
            return self._explain_parents(error, path)
        if name == "school_year" and not self.year_scoped:
            return [Problem(name, f"refused: {self.object_name} is not tied to a school year")]
        value = error.instance if len(path) == 1 else row.get(name)
        return [Problem(name, self._describe(name, error, value))]

    def _explain_record(self, error: jsonschema.ValidationError, row: dict) -> list[Problem]:
        if error.validator == "required":
            missing = [k for k in error.validator_value if k not in row]
            out = []
            for k in missing:
                if k == "school_year":
                    out.append(Problem(k, f"required: {self.object_name} is tied to a school year"))
                elif k == "parents":
                    out.append(
                        Problem(k, f"required: {self.object_name}'s parents are {_names(self.parents)}")
                    )
                else:
                    out.append(Problem(k, "required"))
            return out
        if error.validator == "additionalProperties":
            known = set(self.schema["properties"])
            return [
                Problem(EXTRA_CELLS, "the row has more cells than its header names")
                if k == EXTRA_CELLS
                else Problem(str(k), f"unknown field: {self.object_name}'s schema does not name it")
                for k in row
                if k not in known
            ]
        if error.validator == "type":
            return [Problem("record", "a record is a JSON object")]
        return [Problem("record", error.message)]

    def _explain_parents(self, error: jsonschema.ValidationError, path: list) -> list[Problem]:
        if len(path) > 1:
            name = f"parents.{path[1]}"
            return [Problem(name, f"a parent's record id is a positive integer, not {error.instance!r}")]
        if error.validator == "required":
            missing = [p for p in error.validator_value if p not in error.instance]
            return [
                Problem(f"parents.{p}", f"missing parent: {self.object_name} needs its {p}") for p in missing
            ]
        if error.validator == "additionalProperties":
            extra = [k for k in error.instance if k not in self.parents]
            return [
                Problem(
                    f"parents.{k}",
                    f"not a parent of {self.object_name} (its parents: {_names(self.parents)})",
                )
                for k in extra
            ]
        return [Problem("parents", "parents is an object: {ParentObject: parent record id}")]

    def _describe(self, name: str, error: jsonschema.ValidationError, value: object) -> str:
        f = self.fields.get(name)
        # An optional field wraps its schema in anyOf [null, schema]: explain the inner one.
        if error.validator == "anyOf" and f is not None:
            inner = Validator(value_schema(f), format_checker=FORMATS).iter_errors(value)
            error = next(inner, error)
        if error.validator == "maximum":
            what = "a record id" if name == "record_id" or name.startswith("parents.") else "a value"
            return f"{what} is at most {error.validator_value}, not {value!r}"
        if name == "record_id":
            return f"a record id is a positive integer, not {value!r}"
        if name == "state_excluded":
            return f"state_excluded is true or false, not {value!r}"
        if name == "school_year":
            return f"a school year is its ending year (2027 for 2026-27), not {value!r}"
        if value is None and f is not None and f.required:
            return "required: null is no value"
        if error.validator == "type":
            if f is not None and f.type == SyncField.Type.DATE:
                return f"{value!r} is not a date (YYYY-MM-DD)"
            if f is not None and f.type == SyncField.Type.DATETIME:
                return f"{value!r} is not a date and time (ISO 8601)"
            want = _TYPE_WORDS.get(str(error.validator_value), str(error.validator_value))
            return f"{value!r} is not {want}"
        if error.validator == "format":
            kind = "a date (YYYY-MM-DD)" if error.validator_value == "date" else "a date and time (ISO 8601)"
            return f"{value!r} is not {kind}"
        if error.validator == "enum":
            return f"{value!r} is not one of its codes: {', '.join(map(str, error.validator_value))}"
        if error.validator == "maxLength":
            return f"longer than {error.validator_value} characters ({len(value)})"
        if error.validator == "minimum":
            return f"{value!r} is below {error.validator_value}"
        return error.message

    # ---- reading ------------------------------------------------------------

    def from_csv(self, row: dict[str | None, Any]) -> dict:
        """A CSV row (every value text) in the wire form, typed by the schema.

        An empty cell is absent. A value that does not parse stays the text it was, so
        problems() names it: typing here never refuses, it only converts.
        """
        out: dict[str, Any] = {}
        parents: dict[str, Any] = {}
        columns = self._columns
        for key, text in row.items():
            if key is None:  # more cells than the header names
                out[EXTRA_CELLS] = text
                continue
            if text is None or text == "":
                continue  # a short row, or an empty cell: absent
            how = columns.get(key)
            if how is None:
                how = columns[key] = self._column(key)
            parent, typed = how
            if parent:
                parents[parent] = typed(text)
            else:
                out[key] = text if typed is None else typed(text)
        if parents:
            out["parents"] = parents
        return out

    def _column(self, key: str) -> tuple[str, Any]:
        """How a CSV column's text is typed: (parent name or "", function or None for text as is).
        Worked out once a column, then kept (from_csv runs for every row of a file)."""
        if key.startswith(PARENT_COLUMN):
            return key[len(PARENT_COLUMN) :], _integer
        if key in ("record_id", "school_year"):
            return "", _integer
        if key == "state_excluded":
            return "", _boolean
        f = self.fields.get(key)
        if f is None or f.type in (
            SyncField.Type.STRING,
            SyncField.Type.CODE,
            SyncField.Type.DATE,
            SyncField.Type.DATETIME,
        ):
            return "", None
        return "", lambda text, kind=f.type: _typed(kind, text)

    def split(self, row: dict) -> tuple[int, int | None, dict[str, int], dict, bool]:
        """(record_id, school_year, parent_ids, payload, state_excluded) of a valid row."""
        payload = {k: v for k, v in row.items() if k not in RESERVED_FIELD_NAMES}
        return (
            row["record_id"],
            row.get("school_year") if self.year_scoped else None,
            dict(row.get("parents") or {}),
            payload,
            bool(row.get("state_excluded", False)),
        )

    def locked_changes(self, old_payload: dict, new_payload: dict) -> list[Problem]:
        """The state-locked fields whose value a load would change, for a record that
        exists already (a new record may set them: the district sends what the state
        assigned). Absent and null are the same value."""
        return [
            Problem(
                name,
                f"state-locked: a district load may not change it "
                f"({old_payload.get(name)!r} → {new_payload.get(name)!r})",
            )
            for name in self.locked
            if old_payload.get(name) != new_payload.get(name)
        ]


def validator_for(sync_object: SyncObject) -> RecordValidator:
    """The validator of `sync_object`'s records, reading its schema once: its fields,
    immediate parents (those enabled in this deployment: a switched-off
    ReportingEntity is no parent District must name) and whether it is year-scoped.
    Every district shares its object's schema."""
    fields = list(sync_object.fields.order_by("position", "name"))
    parents = tuple(
        sync_object.parent_links.filter(parent__enabled=True)
        .order_by("position")
        .values_list("parent__name", flat=True)
    )
    return RecordValidator(
        sync_object.name, fields, parents, sync_object.year_scoped, sync_object.allows_extra
    )


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) or "none"


# At most 19 digits: anything longer is past bigint (the schema's maximum names it), and
# int() of thousands of digits raises instead of parsing.
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def _integer(text: str) -> int | str:
    if text.isascii() and text.isdigit() and len(text) < 20:
        return int(text)  # the common cell, as the pattern below would take it
    t = text.strip()
    return int(t) if _INTEGER.fullmatch(t) else text


def _boolean(text: str) -> bool | str:
    t = text.strip().lower()
    return {"true": True, "false": False}.get(t, text)


def _typed(kind: str, text: str) -> Any:
    if kind == SyncField.Type.INTEGER:
        return _integer(text)
    if kind == SyncField.Type.NUMBER:
        t = text.strip()
        if _INTEGER.fullmatch(t):
            return int(t)
        try:
            number = float(t)
        except ValueError:
            return text
        return number if number == number and abs(number) != float("inf") else text
    if kind == SyncField.Type.BOOLEAN:
        return _boolean(text)
    return text
