"""How fast a district file loads against the database's own bulk load, in one run.

`python -m bench import --records N [--repeat R] [--json PATH]` writes a synthetic
Enrollment file of N records (CSV, as a SIS exports it), then in turns: the floor
(plain COPY of the same rows into the same table, resync_districtrecord; executemany
on SQLite), and the import through import_records' path (check_load, wire_rows,
do_load) as a first load and as a reload of the same file (nothing changed). Each
import runs in a child process of its own, whose peak RSS is the importer's memory.
"""

from __future__ import annotations

import csv
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from django.utils import timezone

from loads import actions
from resync.models import District, DistrictRecord, SyncObject
from runner.engine import copy_text
from statesync.env import child_env

from .parts import rounds

CODE = "BENCHLOAD"
OBJECT = "Enrollment"
YEAR = 2027
GRADES = ["KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"]
HEADER = [
    "record_id",
    "school_year",
    "parent:PersonIdentity",
    "grade",
    "start_date",
    "end_date",
    "service_type",
]
TABLE = DistrictRecord._meta.db_table
MIB = 1024 * 1024


def district() -> District:
    """The benchmark's own district (made once), its records removed."""
    found = District.objects.select_related("state").filter(code=CODE).first()
    if found is None:
        found = actions.do_add_district("BL", CODE, "Import benchmark", YEAR)
    clear(found)
    return found


def clear(d: District) -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE district_id = %s", [d.pk])
        if connections["default"].vendor == "postgresql":
            cursor.execute(f"VACUUM ANALYZE {TABLE}")


def rows(records: int, seed: int = 2027):
    """The file's rows as text cells: dense ids, one enrollment in three ended."""
    rnd = random.Random(seed)
    for rid in range(1, records + 1):
        day = rnd.randrange(1, 28)
        end = f"2027-05-{day:02d}" if rid % 3 == 0 else ""
        yield [
            str(rid),
            str(YEAR),
            str(100_000 + rid // 2),
            rnd.choice(GRADES),
            f"2026-08-{day:02d}",
            end,
            "P",
        ]


def write_file(path: Path, records: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(HEADER)
        w.writerows(rows(records))


def write_floor(path: Path, d: District, records: int) -> None:
    """The same rows as COPY text for the table, as do_load would store them."""
    obj = SyncObject.objects.get(name=OBJECT).pk
    now = timezone.now().isoformat()
    dumps = json.dumps
    with open(path, "w", encoding="utf-8") as out:
        for rid, year, parent, grade, start, end, service in rows(records):
            payload = {"grade": grade, "start_date": start, "service_type": service}
            if end:
                payload["end_date"] = end
            out.write(
                f"{d.pk}\t{obj}\t{year}\t{rid}\t{copy_text(dumps({'PersonIdentity': int(parent)}))}\t"
                f"{copy_text(dumps(payload))}\tf\t{now}\n"
            )


def floor(path: Path) -> float:
    """Seconds to put the rows into the table the database's fastest way (the floor)."""
    connection = connections["default"]
    columns = (
        "district_id, sync_object_id, school_year, record_id, parent_ids, payload, state_excluded, changed_at"
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor, open(path, encoding="utf-8") as data:
        if connection.vendor == "postgresql":
            cursor.cursor.copy_expert(f"COPY {TABLE} ({columns}) FROM STDIN", data, size=1 << 18)
        else:
            values = (line.rstrip("\n").split("\t") for line in data)
            cursor.executemany(
                f"INSERT INTO {TABLE} ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", values
            )
    return time.perf_counter() - started


def import_once(path: str) -> dict:
    """One import through import_records' path, in this process: its counts, seconds and peak RSS."""
    from loads.files import opened, read

    before = psutil.Process().memory_info().rss  # Django and the code, before any row
    started = time.perf_counter()
    checked = actions.check_load(CODE, OBJECT, YEAR)
    with opened(path) as stream:
        result = actions.do_load(checked, actions.wire_rows(checked, read(stream, "csv"), "csv"))
    seconds = time.perf_counter() - started
    if not result.written:
        raise RuntimeError(f"the benchmark's load was refused: {[str(p) for p in result.problems[:3]]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    counts = {k: getattr(result, k) for k in ("read", "inserted", "updated", "unchanged")}
    return {"seconds": seconds, "peak_rss": peak, "start_rss": before, **counts}


def import_in_child(path: str, env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "import-once", path],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise CommandError(f"The import's process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Command(BaseCommand):
    help = "Benchmark import_records' load of a synthetic file against plain COPY (the floor)."

    def add_arguments(self, parser):
        parser.add_argument("--records", type=int, required=True, help="How many records the file holds.")
        parser.add_argument("--json", dest="json_path", help="Also write the figures as JSON to this path.")
        parser.add_argument("--repeat", type=int, help="Rounds, medians reported (default 3, 1 above 200k).")

    def handle(self, *args, records, json_path, repeat, **options):
        repeat = rounds(records, repeat, json_path)
        log = self.stdout.write
        d = district()
        env = child_env()
        runs: dict[str, list] = {"floor": [], "first": [], "reload": []}
        with tempfile.TemporaryDirectory(prefix="statesync-import-bench-") as folder:
            file, copy = Path(folder) / "enrollment.csv", Path(folder) / "floor.copy"
            write_file(file, records)
            write_floor(copy, d, records)
            log(f"Wrote {records:,} Enrollment records ({file.stat().st_size / MIB:.0f} MiB of CSV)")
            # The floor and the import take turns, so a neighbour's load on this
            # shared machine weighs on both sides of each ratio alike.
            for i in range(repeat):
                clear(d)
                runs["floor"].append(floor(copy))
                clear(d)
                runs["first"].append(import_in_child(str(file), env))
                runs["reload"].append(import_in_child(str(file), env))
                log(
                    f"  round {i + 1}: COPY {runs['floor'][-1]:.2f} s, import first "
                    f"{runs['first'][-1]['seconds']:.2f} s, reload {runs['reload'][-1]['seconds']:.2f} s"
                )
        figures = self.figures(records, runs)
        self.print_table(figures)
        if json_path:
            Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
            log(f"Wrote {json_path}")

    def figures(self, records: int, runs: dict) -> dict:
        median = statistics.median
        copy_s = median(runs["floor"])
        first, reload = (median(r["seconds"] for r in runs[k]) for k in ("first", "reload"))
        for kind, want in (("first", "inserted"), ("reload", "unchanged")):
            if any(r[want] != records for r in runs[kind]):
                raise CommandError(f"The {kind} import did not count {records:,} {want}: {runs[kind]}")
        peak = max(r["peak_rss"] for k in ("first", "reload") for r in runs[k])
        return {
            "records": records,
            "repeat": len(runs["floor"]),
            "database": connections["default"].vendor,
            "copy_s": round(copy_s, 4),
            "copy_rps": round(records / copy_s),
            "import_first_s": round(first, 4),
            "import_reload_s": round(reload, 4),
            "import_first_rps": round(records / first),
            "import_reload_rps": round(records / reload),
            "ratio_first": round(copy_s / first, 4),
            "ratio_reload": round(copy_s / reload, 4),
            "peak_rss_mib": round(peak / MIB, 1),
            "start_rss_mib": round(max(r["start_rss"] for r in runs["first"]) / MIB, 1),
        }

    def print_table(self, f: dict) -> None:
        w = self.stdout.write
        w("")
        w(f"{f['records']:,} Enrollment records, {f['database']}, medians of {f['repeat']}")
        w(f"{'':28}{'first load':>14}{'reload':>14}")
        w(f"{'plain COPY (floor) rec/s':28}{f['copy_rps']:>14,}{f['copy_rps']:>14,}")
        w(f"{'import rec/s':28}{f['import_first_rps']:>14,}{f['import_reload_rps']:>14,}")
        w(f"{'import / COPY':28}{f['ratio_first']:>14.0%}{f['ratio_reload']:>14.0%}")
        w(f"Importer's peak RSS: {f['peak_rss_mib']} MiB ({f['start_rss_mib']} MiB before the load)")
