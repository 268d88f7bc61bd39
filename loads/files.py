"""Streaming readers of district record files: CSV and NDJSON, from a path or standard input.

Each yields `(line_number, row)` one row at a time, so memory stays flat whatever
the file's size: `row` is a dict (a CSV row's text by column, or an NDJSON line's
object), or an `Unreadable` saying why that line could not be read. A bad line
is a problem of that line, never a traceback, and the lines after it still come:
an atomic load lists every problem, and --skip-invalid loads the rest.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.parsers import DuplicateKey, strict_loads

FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}

# One CSV field may be long (a comment, a note), but not without bound: csv's own
# default is 128 KiB, which a single bad quote can make one "field" of the whole file.
csv.field_size_limit(1 << 20)


@dataclass(frozen=True)
class Unreadable:
    """A line that is not a row: why, in words naming the problem."""

    message: str


Rows = Iterator[tuple[int, "dict | Unreadable"]]


class FileError(ValueError):
    """The file as a whole cannot be read (no such file, a format StateSync does not know)."""


def format_for(path: str, given: str | None = None) -> str:
    """The format of `path`: `given` (csv or ndjson) or its extension; stdin needs `given`."""
    if given:
        if given not in ("csv", "ndjson"):
            raise FileError(f"Unknown format {given!r}: choose csv or ndjson.")
        return given
    if path == "-":
        raise FileError("Standard input has no extension: give --format csv or --format ndjson.")
    found = FORMATS.get(Path(path).suffix.lower())
    if found is None:
        raise FileError(
            f"Cannot tell the format of {path}: name it .csv, .ndjson or .jsonl, or give --format."
        )
    return found


@contextmanager
def opened(path: str) -> Iterator[BinaryIO]:
    """`path` opened for reading bytes; `-` is standard input (left open)."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed below, after the caller's loop)
    except OSError as e:
        raise FileError(f"Cannot read {path}: {e.strerror}.") from None
    with stream:
        yield stream


def read(stream: BinaryIO, fmt: str) -> Rows:
    return read_csv(stream) if fmt == "csv" else read_ndjson(stream)


# No record's line is anywhere near this long; without a bound one newline-less line (a
# broken export, a hostile body) would be read whole into memory before any check.
MAX_LINE = 1 << 20
TOO_LONG = b"\x00\n"  # what a skipped over-long line is passed on as: not blank, never a row
BOM = b"\xef\xbb\xbf"  # Excel's "CSV UTF-8" starts with one; it is no part of the header


def _lines(stream: BinaryIO, long: set[int]) -> Iterator[bytes]:
    """The stream's lines, each read at most MAX_LINE bytes at a time: a longer one is
    noted in `long` (by number), skipped to its end and passed on as TOO_LONG, so a
    reader keeps its place and reports that line. A leading byte-order mark is dropped."""
    number = 0
    while raw := stream.readline(MAX_LINE + 1):
        number += 1
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            long.add(number)
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(MAX_LINE)
            raw = TOO_LONG
        yield raw


def _too_long(number: int) -> Unreadable:
    return Unreadable(f"line {number} is longer than {MAX_LINE:,} bytes: no record is; was a newline lost?")


def _decoded(lines: Iterable[bytes], bad: set[int]) -> Iterator[str]:
    """Each line as text, decoded as strict UTF-8. A line that is not UTF-8 is noted in
    `bad` (by number) and passed on with its bad bytes replaced, so the CSV reader keeps
    its place in the file; the row holding it is then reported, not loaded."""
    for number, raw in enumerate(lines, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.add(number)
            yield raw.decode("utf-8", errors="replace")


def read_csv(stream: BinaryIO) -> Rows:
    """CSV with a header row; a row's line is where it starts (a quoted field may span
    lines). Blank lines are skipped. csv.reader, not DictReader: DictReader skips blank
    lines inside its next(), and the line a row starts on would be lost."""
    bad: set[int] = set()
    long: set[int] = set()
    reader = csv.reader(_decoded(_lines(stream, long), bad))
    header: list[str] = []
    last = 0
    while not header:
        try:
            header = next(reader)
        except StopIteration:
            yield 1, Unreadable("the file is empty: a CSV file starts with its header row.")
            return
        except csv.Error as e:
            yield reader.line_num, Unreadable(f"the header row cannot be read: {e}.")
            return
        if long.intersection(range(last + 1, reader.line_num + 1)):
            yield reader.line_num, _too_long(reader.line_num)
            return
        if bad.intersection(range(last + 1, reader.line_num + 1)):
            yield reader.line_num, Unreadable("the header row is not valid UTF-8.")
            return
        last = reader.line_num
    doubled = sorted({name for name in header if header.count(name) > 1})
    if doubled:
        yield last, Unreadable("the header names a column twice: " + ", ".join(doubled) + ".")
        return
    width = len(header)
    while True:
        start = last + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            last = reader.line_num
            yield start, Unreadable(f"not a CSV row: {e}.")
            continue
        last = reader.line_num
        if not cells:
            continue  # a blank line
        # An over-long line or bad bytes on any line the row spans: the row is unreadable.
        if long and long.intersection(range(start, last + 1)):
            yield start, _too_long(min(long.intersection(range(start, last + 1))))
            long.difference_update(range(start, last + 1))
            bad.difference_update(range(start, last + 1))
        elif bad and bad.intersection(range(start, last + 1)):
            yield start, Unreadable("the line is not valid UTF-8.")
            bad.difference_update(range(start, last + 1))
        elif len(cells) > width:
            yield start, Unreadable(f"the row has more values than the header's {width} columns.")
        elif len(cells) < width:
            yield start, Unreadable(f"the row has fewer values than the header's {width} columns.")
        else:
            yield start, dict(zip(header, cells, strict=True))


def read_ndjson(stream: BinaryIO) -> Rows:
    """One JSON object per line; blank lines are skipped."""
    long: set[int] = set()
    for number, raw in enumerate(_lines(stream, long), 1):
        if number in long:
            yield number, _too_long(number)
            continue
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, Unreadable("the line is not valid UTF-8.")
            continue
        try:
            value = strict_loads(text)
        except RecursionError:
            yield number, Unreadable("the line nests too deep to be a record.")
            continue
        except DuplicateKey as e:
            yield number, Unreadable(f"{e}: send each key once.")
            continue
        except ValueError as e:
            yield number, Unreadable(f"not a JSON object (truncated?): {e}.")
            continue
        if not isinstance(value, dict):
            yield number, Unreadable(f"a line must hold one JSON object, not {type(value).__name__}.")
            continue
        yield number, value
