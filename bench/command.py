"""How fast a full resync runs against the database's own bulk load, in one run.

Builds a synthetic district, moves it district -> state by plain SQL (the
floor), then resyncs it through the real path on K worker processes, and
prints (and with --json writes) the figures side by side. `python -m bench`
runs it (bench/__main__.py); it is no app's command, so production never loads it.
"""

import json
import statistics
import time
from pathlib import Path

import django_rq
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.test import Client
from django.urls import NoReverseMatch, reverse

from history.models import DISBatchHistory
from resync.groups import STATE_ADMINS
from resync.models import ResyncRequest
from statesync.env import child_env
from tool import actions

from . import parts as bench

MIB = 1024 * 1024


class Command(BaseCommand):
    help = "Benchmark a full resync of a synthetic district against plain SQL (the floor)."

    def add_arguments(self, parser):
        bench.add_common_arguments(parser, "About how many records.")

    def handle(self, *args, records, workers, json_path, repeat, seed, no_latency, **options):
        repeat = bench.rounds(records, repeat, json_path)
        if workers < 1:
            raise CommandError(f"--workers {workers}: give at least 1.")
        bench.check_migrated()
        log = self.stdout.write

        district, expected, _students = bench.make_district(records, seed, log=log)
        count = sum(expected.processed.values())
        bench.vacuum("default", "resync_districtrecord")
        bench.clear_state(district)

        # The floor and StateSync take turns, round by round, so a neighbour's
        # load on this shared machine weighs on both sides of each ratio alike.
        log(f"Floor (plain SQL) and StateSync ({workers} worker(s)) in turn, {repeat} round(s)")
        floor = bench.Floor(district)
        env = child_env()
        probes = _Probes(district, env, latency=not no_latency)
        pool = bench.Workers(workers, env)
        firsts, reloads, runs = bench.take_turns(
            floor,
            pool,
            probes,
            repeat,
            lambda: self.resync(district, expected, pool, probes, busy=True),
            lambda: bench.clear_state(district),
            log,
        )

        figures = self.figures(count, workers, firsts, reloads, runs, pool, probes)
        self.print_table(figures, runs["first"][0])
        if json_path:
            Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
            log(f"Wrote {json_path}")

    def resync(self, district, expected, pool, probes, busy: bool) -> dict:
        """One full resync through the real path, timed from the request to its end."""
        redis = django_rq.get_connection(settings.RQ_QUEUE)
        redis.delete(bench.SQL_KEY)
        checked = actions.check_resync(district, None, None, False)
        cpu_before = pool.cpu_seconds(), bench.postgres_cpu_seconds() if bench.is_postgres("state") else None
        started = time.monotonic()
        request = actions.do_request_resync(checked)
        if busy:
            probes.busy(request)
        try:
            while True:
                status = ResyncRequest.objects.filter(pk=request.pk).values_list("status", flat=True).get()
                if status == ResyncRequest.Status.FINISHED:
                    break
                if not pool.alive():
                    raise CommandError("A worker process died during the resync.")
                time.sleep(0.05)
        finally:
            ended = time.monotonic()
            probes.quiet()
        bench.wait_for_counts(redis)
        steps = list(DISBatchHistory.objects.filter(request=request).select_related("sync_object"))
        got = {s.sync_object.name: (s.processed, s.errors) for s in steps}
        want = {name: (n, expected.errors[name]) for name, n in expected.processed.items()}
        wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        if wrong:
            raise CommandError(f"The resync did not count what the generator planted: {wrong}")
        sql = {k.decode(): int(v) for k, v in redis.hgetall(bench.SQL_KEY).items()}
        pg = bench.postgres_cpu_seconds() if bench.is_postgres("state") else None
        return {
            "request": request.pk,
            "seconds": ended - started,
            "start": started,
            "end": ended,
            "statements": sum(sql.values()),
            "sql": sql,
            "worker_cpu_s": pool.cpu_seconds() - cpu_before[0],
            "postgres_cpu_s": None if pg is None or cpu_before[1] is None else pg - cpu_before[1],
            "steps": steps,
            "websocket": probes.progress.gaps(started, ended),
        }

    def figures(self, count, workers, firsts, reloads, runs, pool, probes) -> dict:
        median = statistics.median
        floor_first, floor_reload = median(firsts), median(reloads)
        first = median(r["seconds"] for r in runs["first"])
        reload = median(r["seconds"] for r in runs["reload"])
        per10k = lambda kind: round(median(r["statements"] for r in runs[kind]) * 10_000 / count, 1)  # noqa: E731
        ws = runs["first"][0]["websocket"]
        figures = {
            "records": count,
            "workers": workers,
            "repeat": len(firsts),
            "database": connections["state"].vendor,
            "floor_first_s": round(floor_first, 3),
            "floor_reload_s": round(floor_reload, 3),
            "floor_first_rps": round(count / floor_first),
            "floor_reload_rps": round(count / floor_reload),
            "statesync_first_s": round(first, 3),
            "statesync_reload_s": round(reload, 3),
            "statesync_first_rps": round(count / first),
            "statesync_reload_rps": round(count / reload),
            "ratio_first": round(floor_first / first, 4),
            "ratio_reload": round(floor_reload / reload, 4),
            "peak_worker_rss_mib": round(max(pool.peak_rss.values()) / MIB, 1),
            "worker_rss_mib": [round(v / MIB, 1) for v in pool.peak_rss.values()],
            "sql_per_10k_first": per10k("first"),
            "sql_per_10k_reload": per10k("reload"),
            "sql_first": runs["first"][0]["sql"],
            "worker_cpu_s_first": round(runs["first"][0]["worker_cpu_s"], 1),
            "postgres_cpu_s_first": _round(runs["first"][0]["postgres_cpu_s"]),
            "websocket_messages": ws["messages"],
            "websocket_median_gap_s": _round(ws["median_gap_s"], 3),
            "websocket_max_gap_s": _round(ws["max_gap_s"], 3),
        }
        figures.update(probes.latency(runs))
        return figures

    def print_table(self, f: dict, first_run: dict) -> None:
        w = self.stdout.write
        w("")
        w(f"{f['records']:,} records, {f['workers']} worker(s), {f['database']}, medians of {f['repeat']}")
        w(f"{'':24}{'first load':>14}{'reload':>14}")
        w(f"{'floor (plain SQL) rec/s':24}{f['floor_first_rps']:>14,}{f['floor_reload_rps']:>14,}")
        w(f"{'StateSync rec/s':24}{f['statesync_first_rps']:>14,}{f['statesync_reload_rps']:>14,}")
        w(f"{'StateSync / floor':24}{f['ratio_first']:>14.0%}{f['ratio_reload']:>14.0%}")
        w(
            f"{'seconds (floor/StateSync)':24}{f['floor_first_s']:>7.1f}/{f['statesync_first_s']:<6.1f}"
            f"{f['floor_reload_s']:>7.1f}/{f['statesync_reload_s']:<6.1f}"
        )
        w(f"{'SQL per 10,000 records':24}{f['sql_per_10k_first']:>14}{f['sql_per_10k_reload']:>14}")
        w(f"Peak worker RSS: {', '.join(f'{v} MiB' for v in f['worker_rss_mib'])}")
        pg = f["postgres_cpu_s_first"]
        w(
            f"CPU during the first load: workers {f['worker_cpu_s_first']} s, PostgreSQL "
            f"{'n/a' if pg is None else f'{pg} s'}, over {f['statesync_first_s']:.1f} s of wall time"
        )
        w(
            f"Websocket: {f['websocket_messages']} step pushes (a batch's steps in one), median gap "
            f"{f['websocket_median_gap_s']} s, longest {f['websocket_max_gap_s']} s"
        )
        for name, label in (("tool", "Tool page"), ("api", "API request status")):
            if f.get(f"{name}_idle_ms") is not None:
                w(
                    f"{label}: median {f[f'{name}_idle_ms']} ms idle, {f[f'{name}_busy_ms']} ms during "
                    f"the resync ({f[f'{name}_busy_ratio']}x)"
                )
        if f.get("api_missing"):
            w(f"API request status: {f['api_missing']}")
        w("Where the first load's time went, layer by layer:")
        for line in layers(first_run["steps"]):
            w("  " + line)


def _round(value, digits: int = 1):
    return None if value is None else round(value, digits)


def layers(steps: list[DISBatchHistory]) -> list[str]:
    """Per layer: its wall time, its steps' summed time and its longest step."""
    out = []
    for layer in sorted({s.layer for s in steps}):
        mine = [s for s in steps if s.layer == layer and s.started_at and s.ended_at]
        if not mine:
            continue
        wall = (max(s.ended_at for s in mine) - min(s.started_at for s in mine)).total_seconds()
        busy = sum((s.ended_at - s.started_at).total_seconds() for s in mine)
        big = max(mine, key=lambda s: s.ended_at - s.started_at)
        out.append(
            f"layer {layer + 1}: {wall:6.2f} s wall, {busy:6.2f} s of steps, {len(mine):2} steps, "
            f"{sum(s.processed for s in mine):>9,} records; longest {big.sync_object.name} "
            f"{(big.ended_at - big.started_at).total_seconds():.2f} s ({big.processed:,})"
        )
    return out


class _Probes:
    """The web server, the page loop and the websocket listener around the resyncs."""

    def __init__(self, district, env: dict, latency: bool):
        self.district, self.env, self.latency_on = district, env, latency
        self.progress = bench.Progress()
        self.server = self.pages = None
        self.idle_pages: list = []  # one per round: idle is sampled between the runs, like busy during them
        self.windows: list[tuple[float, float]] = []
        self.api_missing = ""

    def start(self) -> None:
        self.progress.start()
        if not self.latency_on:
            return
        user, _ = User.objects.get_or_create(username="bench-state-admin", defaults={"is_staff": True})
        user.groups.add(Group.objects.get(name=STATE_ADMINS))
        client = Client()
        client.force_login(user)
        self.session = client.cookies[settings.SESSION_COOKIE_NAME].value
        self.server = bench.WebServer(self.env)

    def busy(self, request: ResyncRequest) -> None:
        if not self.server:
            return
        paths = {"tool": reverse("admin:resync_tool", args=[self.district.code])}
        try:
            paths["api"] = reverse("request-detail", args=[request.pk])
        except NoReverseMatch:
            self.api_missing = "not measured: the API has no request status endpoint (issue 5) yet"
        self.pages = bench.Pages(self.server.port, self.session, paths)
        self.pages.loop()
        self._since = time.monotonic()

    def quiet(self) -> None:
        if self.pages:
            self.pages.stop()
            self.windows.append((self._since, time.monotonic()))
            self._busy_pages = [*getattr(self, "_busy_pages", []), self.pages]
            self.pages = None

    def idle(self, request_id: int) -> None:
        """Time the same pages with nothing running (after the first load has finished)."""
        if not self.server:
            return
        paths = {"tool": reverse("admin:resync_tool", args=[self.district.code])}
        if not self.api_missing:
            paths["api"] = reverse("request-detail", args=[request_id])
        pages = bench.Pages(self.server.port, self.session, paths)
        pages.idle(rounds=20)
        self.idle_pages.append(pages)

    def latency(self, runs: dict) -> dict:
        if not self.server:
            return {"latency": "not measured (--no-latency)"}
        out = {"api_missing": self.api_missing or None}
        for name in ("tool", "api"):
            idle_samples = [e for p in self.idle_pages for _t, e in p.samples.get(name, [])]
            if not idle_samples:
                continue
            idle = round(statistics.median(idle_samples) * 1000, 1)
            busy_samples = [e for p in self._busy_pages for _t, e in p.samples.get(name, [])]
            busy = round(statistics.median(busy_samples) * 1000, 1) if busy_samples else None
            out[f"{name}_idle_ms"] = idle
            out[f"{name}_busy_ms"] = busy
            out[f"{name}_busy_samples"] = len(busy_samples)
            out[f"{name}_busy_ratio"] = round(busy / idle, 2) if idle and busy else None
        return out

    def stop(self) -> None:
        self.progress.stop()
        if self.pages:
            self.pages.stop()
        if self.server:
            self.server.stop()
