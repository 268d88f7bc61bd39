"""The verification benchmark runs end to end on a tiny district (figures checked for shape and
correctness, never for speed)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from bench import parts as bench
from bench import verify
from resync.models import District, DistrictRecord, StateRecord
from verification.models import DISVerificationDifference, VerificationRun

from .conftest import BOTH

# Transactional: the benchmark's worker processes read the rows, so they must be committed.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

KEYS = {
    "records",
    "repeat",
    "database",
    "changed_records",
    "floor_first_rps",
    "floor_reload_rps",
    "verify_matching_rps",
    "verify_changed_rps",
    "ratio_matching",
    "ratio_changed",
    "peak_verifier_rss_mib",
    "checked",
}


@pytest.fixture
def groups(catalog):
    from django.contrib.auth.models import Group, Permission

    from resync import groups
    from resync.models import SyncObject, SyncObjectGroupObjectPermission

    # A transactional test's flush removed the groups the migration made.
    groups.create_groups(Group, Permission, SyncObject, SyncObjectGroupObjectPermission)


def test_it_verifies_a_tiny_district_through_a_real_worker_and_writes_json(groups, queue, tmp_path, capsys):
    path = tmp_path / "verify.json"
    call_command(
        verify.Command(), "--records", "2000", "--changed", "0.02", "--repeat", "1", "--json", str(path)
    )
    figures = json.loads(path.read_text())
    assert KEYS <= set(figures)

    district = District.objects.get(code=bench.CODE)
    records = DistrictRecord.objects.filter(district=district).count()
    assert figures["records"] == records and 1500 <= records <= 2500
    assert figures["database"] == connections["state"].vendor
    # The rates and ratios follow from the times measured (rounded in the JSON).
    assert figures["verify_matching_rps"] == pytest.approx(records / figures["verify_matching_s"], rel=0.01)
    floor_s, verify_s = figures["floor_first_s"], figures["verify_changed_s"]
    # The JSON rounds seconds to 1 ms: on a tiny district (a floor of about 10 ms) that
    # alone moves the ratio by a few percent, so the bound is what the rounding allows.
    rounding = 0.0005 / floor_s + 0.0005 / verify_s
    assert figures["ratio_changed"] == pytest.approx(floor_s / verify_s, rel=0.01 + rounding, abs=1e-3)
    assert 20 < figures["start_verifier_rss_mib"] <= figures["peak_verifier_rss_mib"] < 2000

    # Two real verifications ran: the matching copy found nothing to resync, the changed one
    # exactly the records it changed (one state row in 50), and the state matches again.
    matching, changed = VerificationRun.objects.filter(district=district).order_by("id")
    assert {matching.status, changed.status} == {VerificationRun.Status.FINISHED}
    kinds = DISVerificationDifference.Kind
    found = DISVerificationDifference.objects.exclude(kind=kinds.NOT_ALLOWED)
    assert not found.filter(result__run=matching).exists()
    rows = StateRecord.objects.filter(district_code=bench.CODE).order_by("id")
    every = [(r.sync_object, r.record_id) for r in rows if r.id % 50 == 0]
    assert figures["changed_records"] == len(every) > 10
    got = found.filter(result__run=changed).values_list(
        "result__sync_object__name", "record_id", "kind", "detail"
    )
    assert sorted(got) == sorted((o, rid, kinds.DIFFERENT, "payload") for o, rid in every)
    assert not StateRecord.objects.filter(district_code=bench.CODE, payload__has_key=verify.MARK).exists()
    assert bench.FLOOR not in connections["state"].introspection.table_names()
    out = capsys.readouterr().out
    assert "verification / floor" in out and "Verifying worker's RSS" in out


def test_it_stops_when_a_verification_finds_other_than_what_was_planted():
    want = {"Enrollment": (0, 0, 2, 1, 10)}
    planted = {"Enrollment": {4, 7}}
    verify.check({"Enrollment": (0, 0, 2, 1, 10)}, want, {"Enrollment": {4, 7}}, planted, set())
    with pytest.raises(CommandError, match="did not count what was planted"):
        verify.check({"Enrollment": (0, 1, 2, 1, 10)}, want, {"Enrollment": {4, 7}}, planted, set())
    with pytest.raises(CommandError, match="Enrollment differences are not the records planted"):
        verify.check({"Enrollment": (0, 0, 2, 1, 10)}, want, {"Enrollment": {4, 8}}, planted, set())
    # Cut at the limit of kept rows: fewer is fine, a record not planted never is.
    verify.check({"Enrollment": (0, 0, 2, 1, 10)}, want, {"Enrollment": {4}}, planted, {"Enrollment"})
    with pytest.raises(CommandError, match="not the records planted"):
        verify.check({"Enrollment": (0, 0, 2, 1, 10)}, want, {"Enrollment": {9}}, planted, {"Enrollment"})


def test_it_refuses_a_share_changed_that_is_no_share(catalog):
    with pytest.raises(CommandError, match="--changed 1.5: give a share between 0 and 1"):
        call_command(verify.Command(), "--records", "2000", "--changed", "1.5")
    with pytest.raises(CommandError, match="--records 10: give at least 1000"):
        call_command(verify.Command(), "--records", "10")
