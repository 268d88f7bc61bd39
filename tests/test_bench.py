"""The benchmark command runs end to end on a tiny district (figures checked for shape, never for speed)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from bench import parts as bench
from bench.command import Command
from history.models import DISBatchHistory
from resync.models import District, DistrictRecord, ResyncRequest, StateRecord

from .conftest import BOTH

# Transactional: the benchmark's worker processes read the rows, so they must be committed.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

KEYS = {
    "records",
    "workers",
    "floor_first_rps",
    "floor_reload_rps",
    "statesync_first_rps",
    "statesync_reload_rps",
    "ratio_first",
    "ratio_reload",
    "peak_worker_rss_mib",
}


@pytest.fixture
def groups(catalog):
    from django.contrib.auth.models import Group, Permission

    from resync import groups
    from resync.models import SyncObject, SyncObjectGroupObjectPermission

    # A transactional test's flush removed the groups the migration made.
    groups.create_groups(Group, Permission, SyncObject, SyncObjectGroupObjectPermission)


def test_it_measures_a_tiny_district_through_real_workers_and_writes_json(groups, queue, tmp_path, capsys):
    path = tmp_path / "bench.json"
    call_command(Command(), "--records", "2000", "--workers", "1", "--repeat", "1", "--json", str(path))
    figures = json.loads(path.read_text())
    assert KEYS <= set(figures)

    district = District.objects.get(code=bench.CODE)
    records = DistrictRecord.objects.filter(district=district).count()
    assert figures["records"] == records and 1500 <= records <= 2500
    assert figures["workers"] == 1
    # The ratios and rates follow from the times measured (which are rounded in the JSON).
    assert figures["ratio_first"] == pytest.approx(
        figures["statesync_first_rps"] / figures["floor_first_rps"], rel=0.01, abs=1e-3
    )
    assert figures["ratio_reload"] == pytest.approx(
        figures["floor_reload_s"] / figures["statesync_reload_s"], rel=0.01, abs=1e-3
    )
    assert figures["statesync_reload_rps"] == pytest.approx(
        records / figures["statesync_reload_s"], rel=0.01, abs=1e-3
    )
    assert 20 < figures["peak_worker_rss_mib"] < 2000  # a real process was sampled
    assert figures["sql_per_10k_first"] > 0  # the workers counted their statements
    assert figures["websocket_messages"] > 0  # progress reached the channel layer
    assert figures["tool_idle_ms"] > 0 and figures["tool_busy_samples"] > 0

    # Two real resyncs ran (first load, reload), both finished, and the state holds what was sent.
    requests = ResyncRequest.objects.filter(district=district)
    assert [r.status for r in requests] == [ResyncRequest.Status.FINISHED] * 2
    steps = DISBatchHistory.objects.filter(request=requests[0])
    sent = sum(s.processed - s.errors for s in steps)
    assert StateRecord.objects.filter(district_code=bench.CODE).count() == sent > 0
    # The floor's tables are gone.
    assert bench.FLOOR not in connections["state"].introspection.table_names()

    out = capsys.readouterr().out
    assert "StateSync / floor" in out and "Where the first load's time went" in out


def test_it_refuses_a_size_too_small_to_mean_anything(catalog):
    with pytest.raises(CommandError, match="--records 10: give at least 1000"):
        call_command(Command(), "--records", "10")


def test_it_measures_a_tiny_import_against_copy_and_writes_json(catalog, tmp_path, capsys):
    from bench import imports

    path = tmp_path / "import.json"
    call_command(imports.Command(), "--records", "1000", "--repeat", "1", "--json", str(path))
    figures = json.loads(path.read_text())

    assert figures["records"] == 1000 and figures["repeat"] == 1
    # The rates and ratios follow from the times measured (rounded in the JSON).
    assert figures["ratio_first"] == pytest.approx(
        figures["import_first_rps"] / figures["copy_rps"], rel=0.01
    )
    assert figures["ratio_reload"] == pytest.approx(
        figures["import_reload_rps"] / figures["copy_rps"], rel=0.01
    )
    assert 20 < figures["peak_rss_mib"] < 2000  # the child process was measured
    # The last import (the reload) left the file's records, changed by nothing.
    district = District.objects.get(code=imports.CODE)
    assert DistrictRecord.objects.filter(district=district).count() == 1000
    out = capsys.readouterr().out
    assert "import / COPY" in out and "Importer's peak RSS" in out


def test_it_refuses_an_import_too_small_to_mean_anything(catalog):
    from bench import imports

    with pytest.raises(CommandError, match="--records 10: give at least 1000"):
        call_command(imports.Command(), "--records", "10")


def test_it_refuses_to_measure_a_database_not_migrated(monkeypatch):
    from django.core.management.base import CommandError
    from django.db.migrations.executor import MigrationExecutor

    from bench import parts

    parts.check_migrated()  # the test databases are

    def one_left(self, targets, clean_start=False):
        return [(self.loader.graph.nodes[self.loader.graph.leaf_nodes()[0]], False)]

    monkeypatch.setattr(MigrationExecutor, "migration_plan", one_left)
    with pytest.raises(
        CommandError,
        match=r"'default' database is not migrated \(1 to apply: .*run `python manage.py migrate`",
    ):
        parts.check_migrated()
