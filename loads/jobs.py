"""The admin's upload: a file saved, checked by one RQ job, loaded by another once confirmed.

Large files never go through a request: the form saves the file (under
settings.UPLOAD_DIR) and an Upload row, and the jobs read it from there, so the
web process and the workers must share that folder. Both jobs call the one load
path, loads.actions (check_load, wire_rows, do_load) over loads.files.read: the
check is do_load's dry run, the load a real do_load that validates everything
again (the file or the schema may have changed since the check). Each job checks
the uploader's right again when it runs: one withdrawn meanwhile fails it.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import django_rq
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from rq import get_current_job

from core import spreadsheet
from core.errors import REFUSALS, ResyncError, RightsError
from runner.jobs import job_lost, requeue_job

from .actions import CheckedLoad, LoadResult, RowProblem, check_load, do_load, wire_rows
from .files import FileError, Unreadable, format_for, read
from .models import Upload
from .rights import check_load_right

log = logging.getLogger(__name__)

PREVIEW = 20  # rows the upload's page shows
COUNTS = ("read", "inserted", "updated", "unchanged", "deleted", "rejected")
REPORT_HEADER = ["line", "record_id", "field", "reason", "row"]


def job_id(upload_id: int, phase: str) -> str:
    """`upload-<id>-check` or `upload-<id>-load`: the page reads a running job's progress by it."""
    return f"upload-{upload_id}-{phase}"


def check_upload_file(name: str) -> str:
    """The format of an uploaded file, by its name (loads.files.format_for); refused as input."""
    try:
        return format_for(name)
    except FileError as e:
        raise ResyncError(str(e), "file") from None


def do_upload(checked: CheckedLoad, file: UploadedFile, snapshot: bool, skip_invalid: bool) -> Upload:
    """Keep the file and its Upload, and queue its check once the transaction commits."""
    check_upload_file(file.name or "")
    with transaction.atomic():
        upload = Upload.objects.create(
            district=checked.district,
            sync_object=checked.sync_object,
            school_year=checked.year,
            snapshot=snapshot,
            skip_invalid=skip_invalid,
            file=file,
            name=(file.name or "")[:255],
            uploaded_by=checked.user,
        )
        # django-rq's COMMIT_MODE on_db_commit: enqueued when this transaction commits,
        # so the job never looks for a row that is not there yet. requeue_job first deletes
        # a job left under the same id (a database reset, another site on this Redis), whose
        # status and progress the page would otherwise read.
        requeue_job(check_job, upload.pk, job_id(upload.pk, "check"))
    return upload


def check_confirm(user: User, upload: Upload) -> None:
    """May `user` confirm `upload`? The right again, and a verdict that allows it."""
    check_load_right(user, upload.district)
    if upload.status != Upload.Status.CHECKED:
        raise ResyncError(
            f"Upload {upload.pk} is {upload.get_status_display().lower()}: only a checked upload is loaded.",
            "status",
        )


def do_confirm(upload: Upload) -> None:
    """Claim the checked upload for its load (once: a second confirm finds it loading) and
    queue the load once the transaction commits."""
    with transaction.atomic():
        taken = Upload.objects.filter(pk=upload.pk, status=Upload.Status.CHECKED).update(
            status=Upload.Status.LOADING, progress=0
        )
        if not taken:
            raise ResyncError(f"Upload {upload.pk} was confirmed already.", "status")
        requeue_job(load_job, upload.pk, job_id(upload.pk, "load"))


def queue():
    return django_rq.get_queue(settings.RQ_QUEUE)


RUNNING = {Upload.Status.CHECKING: "check", Upload.Status.LOADING: "load"}


def do_fail_if_lost(upload: Upload) -> None:
    """A checking or loading upload whose RQ job will never run (Redis lost it, or it died
    outside the job's own error handling) is failed, saying so, rather than shown as
    running forever. Only from its running status: a job that ends meanwhile wins."""
    phase = RUNNING.get(upload.status)
    if phase is None or not job_lost(job_id(upload.pk, phase)):
        return
    error = "Its job was lost before it ended (a worker stopped?): nothing was loaded; upload the file again."
    if Upload.objects.filter(pk=upload.pk, status=upload.status).update(
        status=Upload.Status.FAILED, error=error
    ):
        upload.status, upload.error = Upload.Status.FAILED, error


def progress_of(upload: Upload) -> int:
    """Rows read so far: the running job's count (the job's meta in Redis; the Upload row is
    written only when the job ends, as do_load holds one transaction), else the row's."""
    phase = RUNNING.get(upload.status)
    if phase is None:
        return upload.progress
    job = queue().fetch_job(job_id(upload.pk, phase))
    return int(job.meta.get("progress", 0)) if job is not None and job.is_started else 0


def check_job(upload_id: int) -> None:
    _run(upload_id, dry_run=True)


def load_job(upload_id: int) -> None:
    _run(upload_id, dry_run=False)


def _run(upload_id: int, dry_run: bool) -> None:
    upload = (
        Upload.objects.select_related("district__state", "sync_object", "uploaded_by")
        .filter(pk=upload_id)
        .first()
    )
    expected = Upload.Status.CHECKING if dry_run else Upload.Status.LOADING
    if upload is None or upload.status != expected:
        log.info("upload %s is not %s any more; skipping", upload_id, expected)
        return
    try:
        if upload.uploaded_by is None:
            raise RightsError("The account that uploaded the file is gone.")
        checked = check_load(upload.district, upload.sync_object.name, upload.school_year, upload.uploaded_by)
    except REFUSALS as e:
        _finish(upload, Upload.Status.FAILED, error=f"Refused when the job ran: {e}")
        return
    try:
        result, preview = _load(upload, checked, dry_run)
    except Exception as e:
        log.exception("upload %s failed", upload_id)
        _finish(upload, Upload.Status.FAILED, error=f"{type(e).__name__}: {e}")
        return
    verdict = _verdict(result, preview if dry_run else upload.verdict.get("preview"))
    if dry_run:
        ok = result.problem_count == 0 or upload.skip_invalid
        _finish(upload, Upload.Status.CHECKED if ok else Upload.Status.REFUSED, verdict, result.read)
    elif result.written:
        _finish(upload, Upload.Status.LOADED, verdict, result.read, load=result.load)
    else:
        _finish(upload, Upload.Status.REFUSED, verdict, result.read)


def _load(upload: Upload, checked: CheckedLoad, dry_run: bool) -> tuple[LoadResult, dict]:
    fmt = check_upload_file(upload.name)
    preview: dict = {"columns": [], "rows": []}
    job = get_current_job()

    def progress(read: int) -> None:
        if job is not None:
            job.meta["progress"] = read
            job.save_meta()

    with upload.file.open("rb") as stream:
        rows = wire_rows(checked, _previewed(read(stream, fmt), preview), fmt)
        if not upload.skip_invalid:
            return do_load(checked, rows, upload.snapshot, on_progress=progress, dry_run=dry_run), preview
        with report_path(upload).open("w", encoding="utf-8", newline="") as out:
            result = do_load(
                checked,
                rows,
                upload.snapshot,
                skip_invalid=True,
                on_reject=_reporter(out),
                on_progress=progress,
                dry_run=dry_run,
            )
    return result, preview


def _previewed(rows: Iterator[tuple[int, dict | Unreadable]], preview: dict) -> Iterator:
    """`rows` as they pass, the first PREVIEW kept in `preview` as the page shows them."""
    columns: list[str] = preview["columns"]
    for line, row in rows:
        if len(preview["rows"]) < PREVIEW:
            if isinstance(row, Unreadable):
                preview["rows"].append({"line": line, "unreadable": row.message})
            else:
                columns.extend(k for k in row if k not in columns)
                shown = {k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()}
                preview["rows"].append({"line": line, "cells": shown})
        yield line, row


def _verdict(result: LoadResult, preview: dict | None) -> dict:
    return {
        "counts": {k: getattr(result, k) for k in COUNTS},
        "problems": [
            {"line": p.line, "record_id": p.record_id, "field": p.field, "message": p.message}
            for p in result.problems
        ],
        "problem_count": result.problem_count,
        "kept": result.kept,
        "preview": preview or {"columns": [], "rows": []},
    }


def _finish(upload: Upload, status: str, verdict: dict | None = None, read: int = 0, **more) -> None:
    upload.status = status
    upload.progress = read
    if verdict is not None:
        upload.verdict = verdict
    for name, value in more.items():
        setattr(upload, name, value)
    upload.save(update_fields=["status", "progress", "verdict", *more])


def report_path(upload: Upload) -> Path:
    """The refused rows of a skip_invalid upload, as CSV beside its file (rewritten by each job)."""
    return Path(upload.file.path + ".rejected.csv")


def _reporter(out) -> Callable[[int, dict | None, list[RowProblem]], None]:
    writer = csv.writer(out)
    writer.writerow(REPORT_HEADER)

    def write(line: int, row: dict | None, problems: list[RowProblem]) -> None:
        shown = "" if row is None else json.dumps(row, default=str, sort_keys=True)
        for p in problems:
            # The row and the reason quote the district's text: safe to open (CSV injection).
            writer.writerow(
                [
                    line,
                    "" if p.record_id is None else p.record_id,
                    *map(spreadsheet.text, (p.field, p.message, shown)),
                ]
            )

    return write
