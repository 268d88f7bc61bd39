"""The shipped field schemas (resync.field_catalog, loaded by resync 0011)."""

import pytest

from resync.field_catalog import SCHEMAS
from resync.models import DistrictRecord, SyncField, SyncObject
from resync.schemas import validator_for


@pytest.mark.django_db
def test_it_ships_a_schema_for_every_object_the_demo_fills(demo_district):
    district, _expected = demo_district
    filled = set(DistrictRecord.objects.filter(district=district).values_list("sync_object__name", flat=True))
    assert filled <= set(SCHEMAS)
    assert set(SyncField.objects.values_list("sync_object__name", flat=True)) >= filled


@pytest.mark.django_db
def test_it_finds_every_tiny_demo_record_valid(demo_district):
    district, _expected = demo_district
    validators = {o.pk: validator_for(o) for o in SyncObject.objects.all()}
    bad = []
    records = DistrictRecord.objects.filter(district=district).select_related("sync_object")
    for r in records:
        wire = {"record_id": r.record_id, "parents": r.parent_ids, **r.payload}
        if r.school_year is not None:
            wire["school_year"] = r.school_year
        if r.state_excluded:
            wire["state_excluded"] = True
        if r.parent_ids == {}:
            del wire["parents"]
        bad += [(r.sync_object.name, r.record_id, p) for p in validators[r.sync_object_id].problems(wire)]
    assert records.count() > 500  # tiny: about 670
    assert bad == []


@pytest.mark.django_db
def test_it_locks_the_state_assigned_fields(catalog):
    locked = set(
        SyncField.objects.filter(owner=SyncField.Owner.STATE).values_list("sync_object__name", "name")
    )
    assert {("PersonIdentity", "state_id"), ("Test", "state_code"), ("District", "code")} <= locked
    assert ("PersonIdentity", "first") not in locked


@pytest.mark.django_db
def test_it_leaves_an_object_with_no_shipped_schema_open(catalog):
    assert SyncObject.objects.get(name="Graduation").allows_extra
    assert not SyncObject.objects.get(name="Enrollment").allows_extra


@pytest.mark.django_db
def test_it_keeps_a_state_edit_when_reloaded(catalog):
    from resync.field_catalog import load_field_catalog

    first = SyncField.objects.get(sync_object__name="PersonIdentity", name="first")
    first.max_length = 80
    first.save()
    SyncField.objects.filter(sync_object__name="PersonIdentity", name="last").delete()
    load_field_catalog(SyncObject, SyncField)
    assert SyncField.objects.get(pk=first.pk).max_length == 80
    assert SyncField.objects.filter(sync_object__name="PersonIdentity", name="last").exists()
