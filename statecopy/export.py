"""One sync object's state records as CSV or NDJSON lines (pure functions over rows),
and the streamed response the API's export and the admin's share (response()).

The CSV reads like a district's load file (`parent:<Object>` columns, then the
schema's fields in order), so a state user opens it in a spreadsheet with the
columns the catalog documents; payload keys the schema does not name (an object
that allows extras, or a field since removed) go in one final JSON `extra` column
rather than being lost.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from rest_framework.fields import DateTimeField

from core import spreadsheet
from resync.models import StateRecord, SyncObject
from resync.schemas import validator_for

# As the list writes it (DRF: ISO 8601 in the project's time zone), so both read alike.
_MOMENT = DateTimeField()


def csv_columns(parents: Iterable[str], fields: Iterable[str]) -> list[str]:
    return ["district", "record_id", "school_year", *(f"parent:{p}" for p in parents), *fields, "extra"]


def _cell(value) -> str:
    """One cell's text. A string from the payload is made safe for a spreadsheet
    (core.spreadsheet); a number, typed so by the schema, stays as written: -5, not '-5."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str):
        return spreadsheet.text(value)
    return str(value)


def csv_row(record: StateRecord, parents: tuple[str, ...], fields: tuple[str, ...]) -> list[str]:
    payload = record.payload or {}
    extra = {k: v for k, v in payload.items() if k not in fields}
    return [
        spreadsheet.text(record.district_code),
        str(record.record_id),
        _cell(record.school_year),
        *(_cell((record.parent_ids or {}).get(p)) for p in parents),
        *(_cell(payload.get(f)) for f in fields),
        json.dumps(extra, sort_keys=True) if extra else "",
    ]


def as_csv(
    records: Iterable[StateRecord], parents: tuple[str, ...], fields: tuple[str, ...]
) -> Iterator[str]:
    """The header line, then one line per record, each a string as it is written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: list[str]) -> str:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(csv_columns(parents, fields))
    for record in records:
        yield line(csv_row(record, parents, fields))


def record_dict(record: StateRecord) -> dict:
    """A record as the state-records API shows it (one NDJSON line, one list entry)."""
    return {
        "district": record.district_code,
        "object": record.sync_object,
        "record_id": record.record_id,
        "school_year": record.school_year,
        "parents": record.parent_ids,
        "payload": record.payload,
        "step": record.step,
        "synced_at": _MOMENT.to_representation(record.synced_at),
    }


def as_ndjson(records: Iterable[StateRecord]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record_dict(record), sort_keys=True) + "\n"


async def in_thread(lines: Iterator[str], batch: int = 500) -> AsyncIterator[str]:
    """`lines` for an ASGI server, `batch` lines at a time from the request's thread.

    Given a plain iterator, Django under ASGI reads it whole into a list before
    sending a byte: the export would hold every record in memory. Thread-sensitive,
    so the database cursor the records stream from is always used from one thread.
    """

    def take() -> list[str]:
        return list(islice(lines, batch))

    while chunk := await sync_to_async(take, thread_sensitive=True)():
        yield "".join(chunk)


def response(request: HttpRequest, obj: SyncObject, district: str | None, fmt: str) -> StreamingHttpResponse:
    """One object's state records (of `district`, or every district's) streamed as `fmt`
    (csv or ndjson) in flat memory: the API's export and the admin's both answer with it."""
    records = StateRecord.objects.filter(sync_object=obj.name)
    if district is not None:
        records = records.filter(district_code=district)
    # Server-side chunks of 2,000 (a named cursor on PostgreSQL): memory stays flat.
    rows = records.order_by("district_code", "record_id").iterator(chunk_size=2000)
    name = f"state-{obj.name.lower()}" + (f"-{district}" if district is not None else "")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", name)  # a code is the client's text: never in a header raw
    if fmt == "ndjson":
        body, content_type = as_ndjson(rows), "application/x-ndjson"
    else:
        validator = validator_for(obj)
        body, content_type = as_csv(rows, tuple(validator.parents), tuple(validator.fields)), "text/csv"
    if isinstance(request, ASGIRequest):
        body = in_thread(body)  # else Django's ASGI handler reads it whole first
    answer = StreamingHttpResponse(body, content_type=content_type)
    answer["Content-Disposition"] = f'attachment; filename="{name}.{"ndjson" if fmt == "ndjson" else "csv"}"'
    return answer
