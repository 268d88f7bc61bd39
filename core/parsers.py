"""The API's JSON parser: a body it cannot store is a 400 naming why, never a 500.

DRF's JSONParser turns malformed JSON into a 400 but lets through what then
fails deeper down: nesting deep enough to raise RecursionError, strings holding
NUL (PostgreSQL refuses them in text) or a lone surrogate (no UTF-8 encoding
exists for it, so the database driver fails), and, served by daphne, bodies of any size (DRF then reads the stream
itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# No StateSync body nests past two levels; this leaves room and stays far below
# the interpreter's recursion limit, which the serializers would otherwise meet.
MAX_DEPTH = 32


def is_whole_number(raw: str) -> bool:
    """Whether a query parameter (a page, a page size, an admin filter) reads as a whole
    number: ASCII digits only (str.isdigit() also accepts '²' and '①', which int() refuses),
    and few enough for a 64-bit integer (int() itself refuses past 4,300 digits).

    Not resync.rules.whole_number, which reads a record id out of
    stored JSON (an int or digits as text, signed, any bigint) and returns it."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 18


def whole_number_arg(text: str) -> int:
    """argparse's type for a command's year or count: ASCII digits, as the admin's
    forms and the API read them (type=int would also take '２０２７' and '2_027')."""
    if not is_whole_number(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            # The same 400 Django gives when a view reads request.body past the limit.
            raise ParseError(f"The request body is over {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE).")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError(f"JSON parse error - the body is not valid {encoding}.") from None
        try:
            data = strict_loads(text)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - the body is nested deeper than {MAX_DEPTH} levels."
            ) from None
        except ValueError as e:
            raise ParseError(f"JSON parse error - {e}") from None
        problem = _unstorable(data)
        if problem:
            raise ParseError(f"JSON body refused - {problem}")
        return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON (no number can be NaN or infinite)")


class DuplicateKey(ValueError):
    """An object names a key twice: json.loads keeps the last value silently, so which
    one the sender meant is unknown (a record's `grade` sent twice, say)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise DuplicateKey(f"the key {twice!r} appears twice in one object")
    return found


def strict_loads(text: str) -> Any:
    """json.loads, refusing the NaN and Infinity Python's reader accepts (JSON has no such
    numbers, and neither SQLite's JSON nor PostgreSQL's jsonb can store them) and an
    object naming a key twice (DuplicateKey, naming it)."""
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)


def _unstorable(data) -> str | None:
    """What in `data` no database could store, walked without recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"the body is nested deeper than {MAX_DEPTH} levels."
        if isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, depth))
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, float) and not math.isfinite(value):
            # 1e400 reads as infinity: neither SQLite's JSON nor jsonb can store it.
            return f"a number ({value}) is too large to store; JSON numbers must be finite."
        elif isinstance(value, str):
            if "\x00" in value:
                return f"the string {value.replace(chr(0), '')[:40]!r} holds a NUL character (\\u0000)."
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"the string {value[:40]!r} holds a lone surrogate, which is not valid Unicode."
    return None
