"""A state-wide resync against the database's own bulk load, in one run.

Fills a state of N districts whose sizes follow a Zipf-like spread (a few
large, many small), moves all their records district -> state by plain SQL
(the floor), then sends one state request for every district as the API does
(a state administrator, level STATE, all or nothing) and runs it on K worker
processes. `python -m bench state …` runs it (bench/__main__.py).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

import django_rq
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from core.errors import ResyncError, RightsError
from history.models import DISBatchHistory
from resync.demo import Expected
from resync.groups import STATE_ADMINS
from resync.models import District, ResyncRequest, StateRecord
from statesync.env import child_env
from tool import actions

from . import parts as bench
from .command import MIB, _Probes, _round

FIRST_CODE = 901  # district 900 is the one-district benchmark's
MIN_RECORDS = 600  # about what the demo's smallest district (30 students) holds
SMALL_STEP = 100  # a step of at most this many records is nearly all fixed cost
ADMIN = "bench-state-admin"
PAGE_PAUSE = 1.0  # seconds between two rounds of the pages during a state request


class Probes(_Probes):
    """The one-district benchmark's probes, the pages fetched once a second: a state
    request runs for minutes, so that still gives hundreds of samples, and fetching
    them as often as it does (every 0.2 s) made daphne use more CPU than the worker
    it was timing (which runs at niceness 10, daphne at 0)."""

    def busy(self, request: ResyncRequest) -> None:
        super().busy(request)
        if self.pages:
            self.pages.stop()
            self.pages.loop(pause=PAGE_PAUSE)


def spread(total: int, count: int, minimum: int = MIN_RECORDS) -> list[int]:
    """`total` records split over `count` districts, largest first: each gets `minimum`
    and a Zipf share (1/k for the k-th) of the rest, as a state has a few big
    districts and many small ones. The sizes add up to `total`."""
    weights = [1 / k for k in range(1, count + 1)]
    rest, whole = total - minimum * count, sum(weights)
    sizes = [minimum + int(rest * w / whole) for w in weights]
    sizes[0] += total - sum(sizes)  # what rounding down left over
    return sizes


def miscounts(planted: dict[str, Expected], counted: dict[str, dict[str, tuple[int, int]]]) -> list[str]:
    """Each district's objects whose (Processed, Errors) differ from what the generator
    planted, in district and object order; an object planted nothing must count (0, 0)."""
    wrong = []
    for code in sorted(planted, key=int):
        want, got = planted[code], counted.get(code, {})
        for name in sorted(set(want.processed) | set(got)):
            expected = (want.processed.get(name, 0), want.errors.get(name, 0))
            if got.get(name) != expected:
                wrong.append(f"district {code} {name}: counted {got.get(name)}, planted {expected}")
    return wrong


def step_ran(step: dict) -> bool:
    """A step a worker took: not one finished at once for having nothing to move."""
    return bool(step["worker"]) or step["processed"] > 0


def revision() -> dict:
    """The commit measured, and the tracked files changed since it (others' work in
    progress in this tree runs in the workers too, so the figures depend on it)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=bench.ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "uncommitted": [line[3:] for line in changed.splitlines()],
    }


class Command(BaseCommand):
    help = "Benchmark one state resync request of N synthetic districts against plain SQL (the floor)."

    def add_arguments(self, parser):
        parser.add_argument("--districts", type=int, required=True, help="How many districts.")
        bench.add_common_arguments(parser, "About how many records in all.")

    def handle(self, *args, districts, records, workers, json_path, repeat, seed, no_latency, **options):
        repeat = bench.rounds(records, repeat, json_path)
        if districts < 1:
            raise CommandError(f"--districts {districts}: give at least 1.")
        if records < districts * MIN_RECORDS:
            raise CommandError(
                f"--records {records}: give at least {MIN_RECORDS} per district "
                f"({districts * MIN_RECORDS:,} for {districts} districts)."
            )
        if workers < 1:
            raise CommandError(f"--workers {workers}: give at least 1.")
        bench.check_migrated()
        # A run stopped half-way leaves its requests running and their jobs queued: the next
        # run's requests would wait behind them (one request at a time per district) and
        # its workers run the old ones' steps, so its figures would measure both.
        left = ResyncRequest.objects.filter(
            district__code__in=[str(FIRST_CODE + n) for n in range(districts)],
            status__in=ResyncRequest.ACTIVE,
        ).values_list("pk", flat=True)
        if left:
            raise CommandError(
                f"The benchmark's districts still have {len(left)} unfinished request(s) from an earlier "
                f"run (ids {', '.join(map(str, sorted(left)[:5]))}{'…' if len(left) > 5 else ''}): let a worker on {settings.RQ_QUEUE!r} "
                "finish them, or delete them and their queued jobs, first."
            )
        log = self.stdout.write
        rev = revision()

        state, planted = self.fill(spread(records, districts), seed, log)
        count = sum(sum(e.processed.values()) for e in planted.values())
        bench.vacuum("default", "resync_districtrecord")
        codes = [d.code for d in state]
        clear = lambda: self.clear(codes)  # noqa: E731
        clear()
        user = self.admin()

        log(f"Floor (plain SQL) and StateSync ({workers} worker(s)) in turn, {repeat} round(s)")
        floor = bench.Floor(state)
        env = child_env()
        probes = Probes(state[0], env, latency=not no_latency)  # the largest district's pages
        pool = bench.Workers(workers, env)
        firsts, reloads, runs = bench.take_turns(
            floor, pool, probes, repeat, lambda: self.resync(state, planted, user, pool, probes), clear, log
        )

        sizes = sorted((sum(e.processed.values()) for e in planted.values()), reverse=True)
        figures = self.figures(count, sizes, workers, firsts, reloads, runs, pool, probes)
        figures.update(rev)
        self.print_table(figures)
        if json_path:
            Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
            log(f"Wrote {json_path}")

    def fill(self, sizes: list[int], seed: int, log) -> tuple[list[District], dict[str, Expected]]:
        """Create (or refill) the districts, largest first; what each must count."""
        started = time.monotonic()
        state, planted, fit = [], {}, None
        quiet = lambda _line: None  # noqa: E731  (one line per district is too many at 100)
        for n, size in enumerate(sizes):
            code = str(FIRST_CODE + n)
            name = f"Bench District {n + 1}"
            fit = fit or bench.fit_generator(bench.bench_district(code, name))
            district, expected, _students = bench.make_district(size, seed, quiet, code, name, fit=fit)
            state.append(district)
            planted[code] = expected
        made = sorted((sum(e.processed.values()) for e in planted.values()), reverse=True)
        log(
            f"Generated {sum(made):,} records in {len(made)} districts ({state[0].code}-{state[-1].code}) "
            f"in {time.monotonic() - started:.1f} s: largest {made[0]:,}, median "
            f"{round(statistics.median(made)):,}, smallest {made[-1]:,}"
        )
        return state, planted

    def clear(self, codes: list[str]) -> None:
        """Remove the districts from the state side, so the next resync is a first load."""
        StateRecord.objects.filter(district_code__in=codes).delete()
        bench.vacuum("state", "resync_staterecord")

    def admin(self) -> User:
        """The state administrator who sends the request (the same one the pages are timed for)."""
        user, _ = User.objects.get_or_create(username=ADMIN, defaults={"is_staff": True})
        user.groups.add(Group.objects.get(name=STATE_ADMINS))
        return user

    def resync(self, state: list[District], planted: dict, user: User, pool, probes) -> dict:
        """One state request for every district, as the API sends it; timed from the send
        to the last district's finish."""
        redis = django_rq.get_connection(settings.RQ_QUEUE)
        redis.delete(bench.SQL_KEY)
        pg = bench.is_postgres("state")
        cpu_before = pool.cpu_seconds(), bench.postgres_cpu_seconds() if pg else None
        sent_at = timezone.now()
        started = time.monotonic()
        try:  # the API's checks, then one transaction: one refused, none is sent
            checks = [
                actions.check_resync(d, None, None, False, user=user, level=ResyncRequest.Level.STATE)
                for d in state
            ]
            requests = actions.do_request_resyncs(checks)
        except (ResyncError, RightsError) as e:
            raise CommandError(f"The state request was refused: {e}") from None
        sent = time.monotonic()
        ids = [r.pk for r in requests]
        probes.busy(requests[0])
        try:
            unfinished = ResyncRequest.objects.filter(pk__in=ids).exclude(
                status=ResyncRequest.Status.FINISHED
            )
            while unfinished.exists():
                if not pool.alive():
                    raise CommandError("A worker process died during the resync.")
                time.sleep(0.05)
        finally:
            ended = time.monotonic()
            probes.quiet()
        steps = list(
            DISBatchHistory.objects.filter(request__in=ids).values(
                "district__code",
                "sync_object__name",
                "processed",
                "errors",
                "worker",
                "started_at",
                "ended_at",
            )
        )
        counted: dict[str, dict[str, tuple[int, int]]] = {}
        for s in steps:
            counted.setdefault(s["district__code"], {})[s["sync_object__name"]] = (
                s["processed"],
                s["errors"],
            )
        wrong = miscounts(planted, counted)
        if wrong:
            raise CommandError(
                f"The state resync did not count what the generator planted ({len(wrong)} wrong): "
                + "; ".join(wrong[:5])
            )
        finishes = sorted(
            (f - sent_at).total_seconds()
            for f in ResyncRequest.objects.filter(pk__in=ids).values_list("finished_at", flat=True)
        )
        ran = [s for s in steps if step_ran(s)]
        small = [_seconds(s["started_at"], s["ended_at"]) for s in ran if s["processed"] <= SMALL_STEP]
        bench.wait_for_counts(redis)
        sql = {k.decode(): int(v) for k, v in redis.hgetall(bench.SQL_KEY).items()}
        pg_after = bench.postgres_cpu_seconds() if pg else None
        return {
            "request": requests[0].pk,
            "seconds": ended - started,
            "send_s": sent - started,
            "finish_first_s": finishes[0],
            "finish_median_s": statistics.median(finishes),
            "finish_last_s": finishes[-1],
            "largest_finish_s": (ResyncRequest.objects.get(pk=ids[0]).finished_at - sent_at).total_seconds(),
            "steps": len(steps),
            "steps_ran": len(ran),
            "small_steps": len(small),
            "small_step_median_s": statistics.median(small) if small else None,
            "statements": sum(sql.values()),
            "sql": sql,
            "worker_cpu_s": pool.cpu_seconds() - cpu_before[0],
            "postgres_cpu_s": None if pg_after is None or cpu_before[1] is None else pg_after - cpu_before[1],
            # From the send's return: before it commits no step runs, and its seconds are
            # reported as sending, not as a running step's silence.
            "websocket": probes.progress.gaps(sent, ended),
        }

    def figures(self, count, sizes, workers, firsts, reloads, runs, pool, probes) -> dict:
        median = statistics.median
        figures = {
            "records": count,
            "districts": len(sizes),
            "workers": workers,
            "repeat": len(firsts),
            "database": connections["state"].vendor,
            "largest_district": sizes[0],
            "median_district": round(median(sizes)),
            "smallest_district": sizes[-1],
        }
        for kind, floors in (("first", firsts), ("reload", reloads)):
            mine = runs[kind]
            floor, wall = median(floors), median(r["seconds"] for r in mine)
            ran = median(r["steps_ran"] for r in mine)
            small = [r["small_step_median_s"] for r in mine if r["small_step_median_s"] is not None]
            figures.update(
                {
                    f"floor_{kind}_s": round(floor, 3),
                    f"floor_{kind}_rps": round(count / floor),
                    f"statesync_{kind}_s": round(wall, 3),
                    f"statesync_{kind}_rps": round(count / wall),
                    f"ratio_{kind}": round(floor / wall, 4),
                    f"send_{kind}_s": round(median(r["send_s"] for r in mine), 3),
                    f"first_finish_{kind}_s": round(median(r["finish_first_s"] for r in mine), 3),
                    f"median_finish_{kind}_s": round(median(r["finish_median_s"] for r in mine), 3),
                    f"last_finish_{kind}_s": round(median(r["finish_last_s"] for r in mine), 3),
                    f"largest_finish_{kind}_s": round(median(r["largest_finish_s"] for r in mine), 3),
                    f"steps_{kind}": mine[0]["steps"],
                    f"steps_ran_{kind}": ran,
                    f"steps_per_s_{kind}": round(ran / wall, 1),
                    # What a step that ran cost beyond the floor's time for the same records.
                    f"per_step_overhead_ms_{kind}": round((wall - floor) / ran * 1000, 1) if ran else None,
                    f"small_steps_{kind}": mine[0]["small_steps"],
                    f"small_step_median_ms_{kind}": round(median(small) * 1000, 1) if small else None,
                    f"sql_per_step_{kind}": round(median(r["statements"] for r in mine) / ran, 1)
                    if ran
                    else None,
                    f"worker_cpu_s_{kind}": round(median(r["worker_cpu_s"] for r in mine), 1),
                    # CPU, unlike wall time, hardly moves with a neighbour's load on a shared machine.
                    f"worker_cpu_ms_per_step_{kind}": (
                        round(median(r["worker_cpu_s"] for r in mine) / ran * 1000, 1) if ran else None
                    ),
                    f"postgres_cpu_s_{kind}": _round(_median_or_none([r["postgres_cpu_s"] for r in mine])),
                }
            )
        ws = [r["websocket"] for kind in runs for r in runs[kind]]
        figures.update(
            {
                "peak_worker_rss_mib": round(max(pool.peak_rss.values()) / MIB, 1),
                "worker_rss_mib": [round(v / MIB, 1) for v in pool.peak_rss.values()],
                "websocket_messages": ws[0]["messages"],
                "websocket_max_gap_s": _round(max((w["max_gap_s"] or 0) for w in ws), 3),
                "websocket_max_gap_from_s": _round(
                    max(ws, key=lambda w: w["max_gap_s"] or 0)["max_gap_from_s"], 3
                ),
                "rounds": {
                    "floor_first_s": [round(s, 3) for s in firsts],
                    "floor_reload_s": [round(s, 3) for s in reloads],
                    "statesync_first_s": [round(r["seconds"], 3) for r in runs["first"]],
                    "statesync_reload_s": [round(r["seconds"], 3) for r in runs["reload"]],
                },
            }
        )
        figures.update(probes.latency(runs))
        return figures

    def print_table(self, f: dict) -> None:
        w = self.stdout.write
        w("")
        w(
            f"{f['records']:,} records in {f['districts']} districts (largest {f['largest_district']:,}, "
            f"median {f['median_district']:,}, smallest {f['smallest_district']:,}), {f['workers']} "
            f"worker(s), {f['database']}, medians of {f['repeat']}; commit {(f['commit'] or '?')[:12]}"
            + (f" with {len(f['uncommitted'])} file(s) changed" if f["uncommitted"] else "")
        )
        w(f"{'':34}{'first load':>14}{'reload':>14}")

        def row(label: str, key: str, fmt: str = "") -> None:
            a, b = f[key.format("first")], f[key.format("reload")]
            show = lambda v: "n/a" if v is None else format(v, fmt)  # noqa: E731
            w(f"{label:34}{show(a):>14}{show(b):>14}")

        row("floor (plain SQL) rec/s", "floor_{}_rps", ",")
        row("StateSync rec/s", "statesync_{}_rps", ",")
        row("StateSync / floor", "ratio_{}", ".0%")
        row("floor seconds", "floor_{}_s", ".1f")
        row("StateSync seconds (send to last)", "statesync_{}_s", ".1f")
        row("  sending (checks, one commit)", "send_{}_s", ".2f")
        row("  first district done", "first_finish_{}_s", ".1f")
        row("  median district done", "median_finish_{}_s", ".1f")
        row("  largest district done", "largest_finish_{}_s", ".1f")
        row("steps", "steps_{}")
        row("steps run (not finished empty)", "steps_ran_{}")
        row("steps run per second", "steps_per_s_{}")
        row("overhead per step run, ms", "per_step_overhead_ms_{}")
        row(f"median step of <= {SMALL_STEP} records, ms", "small_step_median_ms_{}")
        row("SQL statements per step run", "sql_per_step_{}")
        row("worker CPU s", "worker_cpu_s_{}")
        row("worker CPU ms per step run", "worker_cpu_ms_per_step_{}")
        row("PostgreSQL CPU s", "postgres_cpu_s_{}")
        w(f"Peak worker RSS: {', '.join(f'{v} MiB' for v in f['worker_rss_mib'])}")
        w(
            f"Websocket: {f['websocket_messages']} step pushes (a batch's steps in one), longest gap {f['websocket_max_gap_s']} s"
            f" from {f['websocket_max_gap_from_s']} s into its run"
        )
        for name, label in (("tool", "Tool page"), ("api", "API request status")):
            if f.get(f"{name}_idle_ms") is not None:
                w(
                    f"{label}: median {f[f'{name}_idle_ms']} ms idle, {f[f'{name}_busy_ms']} ms during "
                    f"the resyncs ({f[f'{name}_busy_ratio']}x)"
                )


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return (end - start).total_seconds() if start and end else 0.0


def _median_or_none(values: list):
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None
