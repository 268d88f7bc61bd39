"""How fast a verification compares a district's two stores against the floor, in one run.

`python -m bench verify --records N [--changed 0.01] [--repeat R] [--json PATH]` fills the
benchmark district (bench.parts.make_district), gives the state an identical copy by one
full resync through the real path (request, RQ, a real worker), then takes turns, round by
round: the floor (the resync benchmark's plain-SQL move of the same records, bench.parts.Floor)
and two verifications through the real path (check_verification, do_request_verification,
a real worker process of their own): of the matching copy, then with a share of the
state's records changed (their payload). Each run must find exactly what was planted, or
the benchmark stops with an error.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import django_rq
import psutil
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction
from rq.job import Job

from history.models import DISBatchHistory
from resync.models import ResyncRequest, StateRecord
from statesync.env import child_env
from tool import actions
from verification import actions as verify
from verification.models import DISVerificationDifference, VerificationRun

from . import parts as bench

MIB = 1024 * 1024
MARK = "bench_changed"  # the key a changed state record's payload gains, and loses again
TABLE = StateRecord._meta.db_table
Kind = DISVerificationDifference.Kind


def wanted(expected, planted: dict[str, set[int]]) -> dict[str, tuple]:
    """Per object, the counts a verification must find: (only district, only state,
    different, not allowed, matching). The resync refused the generator's planted
    errors (not allowed), sent the rest; `planted` are the state records changed since."""
    out = {}
    for name, processed in expected.processed.items():
        errors = expected.errors[name]
        changed = len(planted.get(name, ()))
        out[name] = (0, 0, changed, errors, processed - errors - changed)
    return out


def check(
    found: dict[str, tuple], want: dict[str, tuple], kept: dict[str, set[int]], planted: dict, cut: set[str]
) -> None:
    """Stop (CommandError naming what differs) unless the run counted what was planted and
    kept exactly the planted records as its differences: all of them, or only planted
    ones for an object whose kept rows were cut at verification's limit (`cut`)."""
    wrong = {name: (found.get(name), w) for name, w in want.items() if found.get(name) != w}
    if wrong:
        raise CommandError(f"The verification did not count what was planted (found, wanted): {wrong}")
    for name in set(kept) | set(planted):
        ids, mine = kept.get(name, set()), planted.get(name, set())
        if not ids <= mine or (name not in cut and ids != mine):
            raise CommandError(f"The verification's {name} differences are not the records planted.")


def change(district, every: int) -> dict[str, set[int]]:
    """Change the payload of one state record in `every` (by row id) of the district:
    {object: record ids}."""
    if bench.is_postgres("state"):
        new = f"payload || '{{\"{MARK}\": true}}'::jsonb"
    else:
        new = f"json_set(payload, '$.{MARK}', json('true'))"
    with transaction.atomic(using="state"), connections["state"].cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET payload = {new} WHERE district_code = %s AND id %% %s = 0 "
            "RETURNING sync_object, record_id",
            [district.code, every],
        )
        planted: dict[str, set[int]] = {}
        for name, rid in cursor.fetchall():
            planted.setdefault(name, set()).add(rid)
    return planted


def restore(district, every: int) -> None:
    """Undo change(): the same records lose the key, and match again."""
    old = f"payload - '{MARK}'" if bench.is_postgres("state") else f"json_remove(payload, '$.{MARK}')"
    with transaction.atomic(using="state"), connections["state"].cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET payload = {old} WHERE district_code = %s AND id %% %s = 0",
            [district.code, every],
        )


def postgres_cpu() -> float | None:
    return bench.postgres_cpu_seconds() if bench.is_postgres("state") else None


def wait(model, pk: int, done: tuple, pool: bench.Workers, what: str) -> None:
    """Until the row's status is one of `done`; stops (CommandError) if the worker dies or
    one of its jobs fails, which would leave the row waiting for ever."""
    failed = django_rq.get_queue(settings.RQ_QUEUE).failed_job_registry
    before = set(failed.get_job_ids())
    while model.objects.filter(pk=pk).values_list("status", flat=True).get() not in done:
        if not pool.alive():
            raise CommandError(f"The worker process died during the {what}.")
        new = sorted(set(failed.get_job_ids()) - before)
        if new:
            result = Job.fetch(new[0], connection=failed.connection).latest_result()
            error = (
                result.exc_string.strip().splitlines()[-1]
                if result and result.exc_string
                else "see the RQ dashboard"
            )
            raise CommandError(f"Job {new[0]} of the {what} failed: {error}")
        time.sleep(0.02)


class Command(BaseCommand):
    help = "Benchmark a verification of a synthetic district against plain SQL (the floor)."

    def add_arguments(self, parser):
        parser.add_argument("--records", type=int, required=True, help="About how many records.")
        parser.add_argument(
            "--changed", type=float, default=0.01, help="Share of the state's records changed (default 0.01)."
        )
        parser.add_argument("--json", dest="json_path", help="Also write the figures as JSON to this path.")
        parser.add_argument("--repeat", type=int, help="Rounds, medians reported (default 3, 1 above 200k).")
        parser.add_argument("--seed", type=int, default=2027)

    def handle(self, *args, records, changed, json_path, repeat, seed, **options):
        repeat = bench.rounds(records, repeat, json_path)
        if not 0 < changed < 1:
            raise CommandError(f"--changed {changed}: give a share between 0 and 1, such as 0.01.")
        bench.check_migrated()
        log = self.stdout.write
        district, expected, _students = bench.make_district(records, seed, log=log)
        count = sum(expected.processed.values())
        bench.vacuum("default", "resync_districtrecord")
        bench.clear_state(district)
        env = child_env()
        self.copy_to_state(district, expected, env)
        every = max(1, round(1 / changed))

        log(f"Floor (plain SQL) and verification in turn, {repeat} round(s)")
        floor = bench.Floor(district)
        # A worker of its own: its peak RSS is the verifications', not the resync's.
        pool = bench.Workers(1, env)
        runs: dict[str, list] = {"floor_first": [], "floor_reload": [], "matching": [], "changed": []}
        planted: dict[str, set[int]] = {}
        try:
            floor.prepare()
            pool.start()
            start_rss = matching_peak = sum(psutil.Process(p.pid).memory_info().rss for p in pool.procs)
            for i in range(repeat):
                floor.empty()
                runs["floor_first"].append(floor.run())
                runs["floor_reload"].append(floor.run())
                floor.empty()  # out of the state's cache before the verification's turn
                runs["matching"].append(self.verification(district, pool, wanted(expected, {}), {}))
                matching_peak = max(matching_peak, *pool.peak_rss.values())
                planted = change(district, every)
                bench.vacuum("state", TABLE)
                runs["changed"].append(self.verification(district, pool, wanted(expected, planted), planted))
                restore(district, every)
                bench.vacuum("state", TABLE)
                log(
                    f"  round {i + 1}: floor first {runs['floor_first'][-1]:.2f} s, reload "
                    f"{runs['floor_reload'][-1]:.2f} s; verification matching {runs['matching'][-1]['seconds']:.2f} s, "
                    f"changed {runs['changed'][-1]['seconds']:.2f} s"
                )
        finally:
            floor.drop()
            pool.stop()
        figures = self.figures(count, runs, planted, pool, (start_rss, matching_peak), changed)
        self.print_table(figures)
        if json_path:
            Path(json_path).write_text(json.dumps(figures, indent=2) + "\n")
            log(f"Wrote {json_path}")

    def copy_to_state(self, district, expected, env: dict) -> None:
        """The state's identical copy: one full resync through the real path (not the floor's
        SQL: the resync refuses the generator's planted errors, which a copy would carry)."""
        started = time.monotonic()
        pool = bench.Workers(1, env)
        try:
            pool.start()
            request = actions.do_request_resync(actions.check_resync(district, None, None, False))
            wait(ResyncRequest, request.pk, (ResyncRequest.Status.FINISHED,), pool, "resync")
        finally:
            pool.stop()
        steps = DISBatchHistory.objects.filter(request=request).select_related("sync_object")
        got = {s.sync_object.name: (s.processed, s.errors) for s in steps}
        want = {name: (n, expected.errors[name]) for name, n in expected.processed.items()}
        wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        if wrong:
            raise CommandError(f"The resync did not count what the generator planted: {wrong}")
        bench.vacuum("state", TABLE)
        self.stdout.write(f"Copied to the state by a full resync in {time.monotonic() - started:.1f} s")

    def verification(self, district, pool: bench.Workers, want: dict, planted: dict) -> dict:
        """One verification of every object through the real path, timed from the request
        to its end, and checked against what was planted."""
        checked = verify.check_verification(district, None, None)
        cpu = pool.cpu_seconds(), postgres_cpu()
        started = time.monotonic()
        run = verify.do_request_verification(checked)
        wait(
            VerificationRun,
            run.pk,
            (VerificationRun.Status.FINISHED, VerificationRun.Status.FAILED),
            pool,
            "run",
        )
        seconds = time.monotonic() - started
        run.refresh_from_db()
        if run.status != VerificationRun.Status.FINISHED:
            raise CommandError(f"Verification {run.pk} failed: {run.message}")
        results = run.results.select_related("sync_object")
        found = {
            r.sync_object.name: (r.only_district, r.only_state, r.different, r.not_allowed, r.matching)
            for r in results
        }
        kept: dict[str, set[int]] = {}
        rows = DISVerificationDifference.objects.filter(result__run=run, kind=Kind.DIFFERENT)
        for name, rid, detail in rows.values_list("result__sync_object__name", "record_id", "detail"):
            if detail != "payload":
                raise CommandError(
                    f"Verification {run.pk}: {name} {rid} differs in {detail}, not its payload."
                )
            kept.setdefault(name, set()).add(rid)
        cut = {r.sync_object.name for r in results if r.truncated}
        check(found, want, kept, planted, cut)
        pg = postgres_cpu()
        return {
            "run": run.pk,
            "seconds": seconds,
            "compared": run.records_compared,
            "worker_cpu_s": pool.cpu_seconds() - cpu[0],
            "postgres_cpu_s": None if pg is None or cpu[1] is None else pg - cpu[1],
        }

    def figures(
        self, count: int, runs: dict, planted: dict, pool, rss: tuple[int, int], changed: float
    ) -> dict:
        median = statistics.median
        floor_first, floor_reload = median(runs["floor_first"]), median(runs["floor_reload"])
        seconds = {kind: median(r["seconds"] for r in runs[kind]) for kind in ("matching", "changed")}
        figures = {
            "records": count,
            "repeat": len(runs["matching"]),
            "database": connections["state"].vendor,
            "changed_share": changed,
            "changed_records": sum(len(ids) for ids in planted.values()),
            "floor_first_s": round(floor_first, 3),
            "floor_reload_s": round(floor_reload, 3),
            "floor_first_rps": round(count / floor_first),
            "floor_reload_rps": round(count / floor_reload),
        }
        for kind, s in seconds.items():
            first = runs[kind][0]
            figures |= {
                f"verify_{kind}_s": round(s, 3),
                f"verify_{kind}_rps": round(count / s),
                # Against the floor's faster move, the first load into an empty table.
                f"ratio_{kind}": round(floor_first / s, 4),
                f"verify_{kind}_worker_cpu_s": round(first["worker_cpu_s"], 2),
                f"verify_{kind}_postgres_cpu_s": None
                if first["postgres_cpu_s"] is None
                else round(first["postgres_cpu_s"], 2),
            }
        figures |= {
            "checked": True,  # every run found exactly what was planted (else it stopped)
            "peak_verifier_rss_mib": round(max(pool.peak_rss.values()) / MIB, 1),
            "start_verifier_rss_mib": round(rss[0] / MIB, 1),
            # The peak of the matching runs alone (the changed ones also write difference rows).
            "peak_verifier_rss_mib_matching": round(rss[1] / MIB, 1),
        }
        return figures

    def print_table(self, f: dict) -> None:
        w = self.stdout.write
        w("")
        w(f"{f['records']:,} records, {f['database']}, medians of {f['repeat']}")
        w(
            f"{'floor (plain SQL), first load':36}{f['floor_first_rps']:>12,} rec/s {f['floor_first_s']:>8.2f} s"
        )
        w(f"{'floor, reload':36}{f['floor_reload_rps']:>12,} rec/s {f['floor_reload_s']:>8.2f} s")
        for kind, label in (("matching", "matching copy"), ("changed", f"{f['changed_records']:,} changed")):
            w(
                f"{'verification, ' + label:36}{f[f'verify_{kind}_rps']:>12,} rec/s {f[f'verify_{kind}_s']:>8.2f} s"
                f"  verification / floor {f[f'ratio_{kind}']:.0%}"
            )
        w(
            f"Verifying worker's RSS: {f['start_verifier_rss_mib']} MiB at its start, "
            f"{f['peak_verifier_rss_mib_matching']} MiB at its peak comparing the matching copy, "
            f"{f['peak_verifier_rss_mib']} MiB at its peak"
        )
        w(
            f"CPU of the matching verification: worker {f['verify_matching_worker_cpu_s']} s, PostgreSQL "
            f"{f['verify_matching_postgres_cpu_s'] if f['verify_matching_postgres_cpu_s'] is not None else 'n/a'} s"
        )
