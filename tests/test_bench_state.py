"""The state-wide benchmark runs end to end on a tiny state (figures checked for shape, never for speed)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from bench import parts, state
from history.models import DISBatchHistory
from resync.demo import Expected
from resync.models import District, DistrictRecord, ResyncRequest, StateRecord

from .conftest import BOTH

# Transactional: the benchmark's worker processes read the rows, so they must be committed.
COMMITTED = pytest.mark.django_db(transaction=True, databases=BOTH)

KEYS = {
    "records",
    "districts",
    "workers",
    "commit",
    "uncommitted",
    "largest_district",
    "median_district",
    "smallest_district",
    "floor_first_rps",
    "floor_reload_rps",
    "statesync_first_rps",
    "statesync_reload_rps",
    "ratio_first",
    "ratio_reload",
    "last_finish_first_s",
    "last_finish_reload_s",
    "steps_first",
    "steps_ran_first",
    "steps_per_s_first",
    "per_step_overhead_ms_first",
    "per_step_overhead_ms_reload",
    "small_step_median_ms_first",
    "peak_worker_rss_mib",
    "worker_cpu_s_first",
    "worker_cpu_ms_per_step_first",
    "postgres_cpu_s_first",
    "websocket_max_gap_s",
}


@pytest.fixture
def groups(catalog):
    from django.contrib.auth.models import Group, Permission

    from resync import groups
    from resync.models import SyncObject, SyncObjectGroupObjectPermission

    # A transactional test's flush removed the groups the migration made.
    groups.create_groups(Group, Permission, SyncObject, SyncObjectGroupObjectPermission)


def codes(n: int) -> list[str]:
    return [str(state.FIRST_CODE + i) for i in range(n)]


@COMMITTED
def test_it_measures_a_tiny_state_through_one_state_request_and_writes_json(groups, queue, tmp_path, capsys):
    path = tmp_path / "state.json"
    call_command(
        state.Command(),
        *("--districts", "3", "--records", "3000", "--workers", "1", "--repeat", "1"),
        *("--no-latency", "--json", str(path)),
    )
    figures = json.loads(path.read_text())
    assert KEYS <= set(figures)

    districts = list(District.objects.filter(code__in=codes(3)).order_by("code"))
    sizes = [DistrictRecord.objects.filter(district=d).count() for d in districts]
    assert figures["records"] == sum(sizes) and 2500 <= sum(sizes) <= 3500
    assert figures["districts"] == 3 and figures["workers"] == 1
    # Largest first, many small: the first district is the biggest.
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert (figures["largest_district"], figures["smallest_district"]) == (sizes[0], sizes[-1])
    assert figures["ratio_first"] == pytest.approx(
        figures["floor_first_s"] / figures["statesync_first_s"], rel=0.01, abs=1e-3
    )
    # Every district's catalog is planned; only objects with records on a side take a worker.
    assert figures["steps_first"] == DISBatchHistory.objects.count() // 2
    assert 0 < figures["steps_ran_first"] < figures["steps_first"]
    assert 20 < figures["peak_worker_rss_mib"] < 2000  # a real process was sampled
    assert len(figures["commit"]) == 40

    # Two state requests (first load, reload), each one request per district by the state
    # administrator, all finished; the state holds what the first load sent.
    requests = ResyncRequest.objects.filter(district__in=districts)
    assert requests.count() == 6
    assert {(r.level, r.status, r.requested_by.username) for r in requests} == {
        (ResyncRequest.Level.STATE, ResyncRequest.Status.FINISHED, state.ADMIN)
    }
    first = requests.order_by("id")[:3]
    sent = sum(s.processed - s.errors for s in DISBatchHistory.objects.filter(request__in=first))
    assert StateRecord.objects.filter(district_code__in=codes(3)).count() == sent > 0
    assert parts.FLOOR not in connections["state"].introspection.table_names()

    out = capsys.readouterr().out
    assert "3 districts" in out and "StateSync / floor" in out and "overhead per step run" in out


@COMMITTED
def test_it_stops_naming_a_district_whose_counts_differ_from_what_was_planted(groups, queue, monkeypatch):
    make = parts.make_district

    def miscounted(records, *args, **kwargs):
        district, expected, students = make(records, *args, **kwargs)
        if district.code == "902":
            expected.processed["Enrollment"] += 1  # the generator "planted" one more
        return district, expected, students

    monkeypatch.setattr(parts, "make_district", miscounted)
    with pytest.raises(
        CommandError, match=r"\(1 wrong\): district 902 Enrollment: counted \(\d+, \d+\), planted"
    ):
        call_command(
            state.Command(),
            *("--districts", "2", "--records", "1200", "--repeat", "1", "--no-latency"),
        )
    # The benchmark tidied up after itself all the same.
    assert parts.FLOOR not in connections["state"].introspection.table_names()


def test_it_spreads_a_state_into_a_few_large_and_many_small_districts():
    sizes = state.spread(1_000_000, 100)
    assert sum(sizes) == 1_000_000 and len(sizes) == 100
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > 40 * sizes[-1] and min(sizes) >= state.MIN_RECORDS
    assert state.spread(1800, 3) == [600, 600, 600]


def test_it_counts_an_object_planted_nothing_that_counted_something_as_wrong():
    planted = Expected()
    planted.add("District")
    planted.add("School", failing=True)
    good = {"District": (1, 0), "School": (1, 1), "Day": (0, 0)}
    assert state.miscounts({"901": planted}, {"901": good}) == []
    assert state.miscounts({"901": planted}, {"901": dict(good, Day=(2, 0))}) == [
        "district 901 Day: counted (2, 0), planted (0, 0)"
    ]
    assert state.miscounts({"901": planted}, {}) == [
        "district 901 District: counted None, planted (1, 0)",
        "district 901 School: counted None, planted (1, 1)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--districts", "0", "--records", "5000"), "--districts 0: give at least 1"),
        (("--districts", "10", "--records", "5000"), "--records 5000: give at least 600 per district"),
        (("--districts", "2", "--records", "5000", "--workers", "0"), "--workers 0: give at least 1"),
    ],
)
def test_it_refuses_a_state_too_small_to_mean_anything(args, message):
    with pytest.raises(CommandError, match=message):
        call_command(state.Command(), *args)


@pytest.mark.django_db(databases=BOTH)
def test_it_refuses_to_start_behind_an_earlier_runs_unfinished_request(catalog):
    district = parts.bench_district("902", "Bench District 2")
    left = ResyncRequest.objects.create(
        district=district, school_year=2027, status=ResyncRequest.Status.RUNNING
    )
    with pytest.raises(
        CommandError, match=rf"1 unfinished request\(s\) from an earlier run \(ids {left.pk}\)"
    ):
        call_command(state.Command(), "--districts", "2", "--records", "1200")
    assert not DistrictRecord.objects.exists()  # refused before filling anything
