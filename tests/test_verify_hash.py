"""Verification's two compare paths give one answer: on PostgreSQL the hash-first path
(ids and hashes streamed from each database, only the odd ones read in full) against
the old text path, record for record, with every kind of difference planted."""

import pytest
from django.db import connections

from resync.models import DistrictRecord, StateRecord, SyncObject, record_scope
from resync.rules import Reason
from tool import actions
from verification import actions as verify
from verification import compare
from verification.models import DISVerificationDifference, VerificationRun

from .conftest import BOTH, COMMITTED, add, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)

Kind = DISVerificationDifference.Kind
ON_POSTGRES = connections["default"].vendor == "postgresql" and connections["state"].vendor == "postgresql"
PATHS = (False, True) if ON_POSTGRES else (False,)  # SQLite has no md5: it keeps the text path


def planted(district) -> dict[str, dict[int, tuple]]:
    """A resynced district, then one of each difference: {object: {record id: (kind, reason, detail)}}."""
    chain(district)
    for i in range(2, 31):
        add(district, "PersonIdentity", i, {"ScheduleStructure": 1}, {"name": f"p{i}"})
    for i in range(1, 61):
        add(district, "Enrollment", i, {"PersonIdentity": 1}, {"n": i, "grade": "09"}, excluded=i in (5, 6))
    add(district, "Test", 1, {"PersonIdentity": 1})  # no code: each score is refused test_no_code
    add(district, "TestScore", 1, {"PersonIdentity": 1, "Test": 1}, {"score": 1})
    actions.do_request_resync(actions.check_resync(district, None, None, False))
    run_queue()

    state = StateRecord.objects.filter(district_code=district.code)
    enrollments = state.filter(sync_object="Enrollment")
    template = enrollments.get(record_id=1)
    for i in range(61, 65):  # new at the district
        add(district, "Enrollment", i, {"PersonIdentity": 1}, {"n": i})
    DistrictRecord.objects.filter(sync_object__name="Enrollment", record_id__in=[3, 9]).delete()
    # A run of state-only ids longer than a page, past the district's last id.
    StateRecord.objects.bulk_create(
        StateRecord(
            district_code=district.code,
            sync_object="Enrollment",
            school_year=2027,
            record_id=i,
            parent_ids={"PersonIdentity": 1},
            payload={"n": i},
            step=template.step,
            synced_at=template.synced_at,
        )
        for i in range(100, 131)
    )
    enrollments.filter(record_id=12).update(payload={"n": 0, "grade": "09"})
    enrollments.filter(record_id=14).update(parent_ids={"PersonIdentity": 2})
    enrollments.filter(record_id=16).update(parent_ids={"PersonIdentity": 2}, payload={"n": 0})
    state.filter(sync_object="PersonIdentity", record_id=7).update(school_year=2026)
    # State-excluded: 5 reached the state anyway (a load flagged it after its resync); 6 did not.
    StateRecord.objects.create(
        district_code=district.code,
        sync_object="Enrollment",
        school_year=2027,
        record_id=5,
        parent_ids={"PersonIdentity": 1},
        payload={"n": 5, "grade": "09"},
        step=template.step,
        synced_at=template.synced_at,
    )
    # Equal JSON, spelled differently: keys reordered, and 22.0 for the district's 22
    # (different text, so different hashes: the full read must find them equal).
    enrollments.filter(record_id=20).update(payload={"grade": "09", "n": 20})
    enrollments.filter(record_id=22).update(payload={"n": 22.0, "grade": "09"})
    return {
        "Enrollment": {
            3: (Kind.ONLY_STATE, "", ""),
            9: (Kind.ONLY_STATE, "", ""),
            **{i: (Kind.ONLY_STATE, "", "") for i in range(100, 131)},
            **{i: (Kind.ONLY_DISTRICT, "", "") for i in range(61, 65)},
            5: (Kind.DIFFERENT, Reason.STATE_EXCLUDED, "state-excluded, yet at the state"),
            6: (Kind.NOT_ALLOWED, Reason.STATE_EXCLUDED, ""),
            12: (Kind.DIFFERENT, "", "payload"),
            14: (Kind.DIFFERENT, "", "parent_ids"),
            16: (Kind.DIFFERENT, "", "parent_ids, payload"),
        },
        "PersonIdentity": {7: (Kind.DIFFERENT, "", "school_year")},
        "TestScore": {1: (Kind.NOT_ALLOWED, Reason.TEST_NO_CODE, "")},
    }


def outcomes(district, name: str, chunk: int, by_hash: bool) -> tuple[list, int]:
    """(the outcomes of the records that do not match, in the order yielded; how many match)."""
    obj = SyncObject.objects.get(name=name)
    odd, matching = [], 0
    for item in compare.compare(district, obj, 2027, chunk, by_hash=by_hash):
        if isinstance(item, compare.Matched):
            matching += item.count
        else:
            odd.append(item)
    return odd, matching


@COMMITTED
def test_it_finds_every_planted_difference_the_same_way_on_both_paths(district, queue):
    want = planted(district)
    names = set(SyncObject.objects.offered(district, 2027).values_list("name", flat=True))
    for name in sorted(names):
        text = outcomes(district, name, 2000, by_hash=False)
        got = {o.record_id: (o.kind, o.reason, o.detail) for o in text[0]}
        assert got == want.get(name, {}), name
        district_count, state_count = (
            qs.count() for qs in record_scope(district, SyncObject.objects.get(name=name), 2027)
        )
        assert text[1] + len(got) - sum(o.kind == Kind.ONLY_STATE for o in text[0]) == district_count, name
        # Every page size, both paths: the same outcomes and matching count; at one chunk size,
        # in the same order too (district-only records wait for a chunk, so order follows it).
        for chunk in (1, 2, 3, 2000):
            same_chunk = outcomes(district, name, chunk, False)
            assert len(same_chunk[0]) == len(text[0]) and set(same_chunk[0]) == set(text[0]), (name, chunk)
            assert same_chunk[1] == text[1], (name, chunk)
            for by_hash in PATHS:
                assert outcomes(district, name, chunk, by_hash) == same_chunk, (name, chunk, by_hash)
    # 1 to 60 but 3 and 9 (deleted), 5, 6 (excluded), 12, 14 and 16 (changed); 20 and 22 match.
    assert outcomes(district, "Enrollment", 2000, False)[1] == 53


@COMMITTED
def test_it_stores_a_runs_outcomes_exactly_as_the_text_path_judges_them(district, queue):
    want = planted(district)
    run = verify.do_request_verification(verify.check_verification(district, None, None))
    run_queue()
    run.refresh_from_db()
    assert run.status == VerificationRun.Status.FINISHED, run.message
    rows = DISVerificationDifference.objects.filter(result__run=run)
    stored = {}
    for name, rid, kind, reason, detail in rows.values_list(
        "result__sync_object__name", "record_id", "kind", "reason", "detail"
    ):
        stored.setdefault(name, {})[rid] = (kind, reason, detail)
    assert stored == want
    matching = dict(run.results.values_list("sync_object__name", "matching"))
    for name, count in matching.items():
        assert count == outcomes(district, name, 2000, by_hash=False)[1], name
    assert matching["Enrollment"] == 53 and matching["PersonIdentity"] == 29
    district_rows = DistrictRecord.objects.filter(district=district).count()
    only_state = sum(kind == Kind.ONLY_STATE for found in want.values() for kind, _r, _d in found.values())
    assert run.records_compared == district_rows + only_state


@pytest.mark.skipif(not ON_POSTGRES, reason="the hash pages are PostgreSQL's")
def test_it_reads_hash_pages_of_the_same_id_range_never_longer_than_asked(district):
    chain(district)
    for i in range(1, 30):
        add(district, "Enrollment", i, {"PersonIdentity": 1}, {"n": i})
    template = dict(district_code=district.code, sync_object="Enrollment", school_year=2027, step=1)
    from django.utils import timezone

    StateRecord.objects.bulk_create(
        StateRecord(
            record_id=i,
            parent_ids={"PersonIdentity": 1},
            payload={"n": i},
            synced_at=timezone.now(),
            **template,
        )
        for i in (*range(1, 10), *range(20, 60))
    )
    district_side, state_side = record_scope(district, SyncObject.objects.get(name="Enrollment"), 2027)
    keys = (
        district_side.annotate(key=compare.RawSQL(compare.DISTRICT_HASH, [], compare.BigIntegerField())),
        state_side.annotate(key=compare.RawSQL(compare.HASH, [], compare.BigIntegerField())),
    )
    seen: tuple[list, list] = ([], [])
    after = 0
    for d_page, s_page in compare.pages(*keys, 4):
        assert len(d_page) <= 4 and len(s_page) <= 4
        ids = [r[0] for r in d_page + s_page]
        assert min(ids, default=after + 1) > after  # pages follow each other, never overlapping
        after = max(ids, default=after)
        seen[0].extend(d_page)
        seen[1].extend(s_page)
    assert [r[0] for r in seen[0]] == list(range(1, 30))
    assert [r[0] for r in seen[1]] == [*range(1, 10), *range(20, 60)]
    # Equal records hash alike on both sides; a different one does not.
    assert {r for r in seen[0]} & {r for r in seen[1]} == {r for r in seen[0] if r[0] < 10 or r[0] >= 20}
