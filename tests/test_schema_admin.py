"""The field schemas in the catalog's admin: state administrators edit them, everyone
else reads them, and every change is recorded (SyncFieldChange) whichever door it
came through."""

from html.parser import HTMLParser

import pytest

from resync.models import SyncField, SyncFieldChange, SyncObject

pytestmark = pytest.mark.django_db


class FormData(HTMLParser):
    """The fields a browser would post from the page's change form, as rendered."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button"):
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.data[name] = a.get("value", "on")
            else:
                self.data[name] = a.get("value") or ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data


def page(obj: SyncObject) -> str:
    return f"/admin/resync/syncobject/{obj.pk}/change/"


def form_of(client, obj: SyncObject) -> dict[str, str]:
    parser = FormData()
    parser.feed(client.get(page(obj)).content.decode())
    return parser.data


def row_of(data: dict[str, str], field: SyncField) -> str:
    (key,) = [
        k for k, v in data.items() if k.startswith("fields-") and k.endswith("-id") and v == str(field.pk)
    ]
    return key[: -len("-id")]


@pytest.fixture
def person():
    return SyncObject.objects.get(name="PersonIdentity")


def test_it_shows_the_schema_on_the_objects_page(client, cast, person):
    client.force_login(cast.alice)
    html = client.get(page(person)).content.decode()
    for shown in ("state_id", "State-locked", "District-owned", "birth_date", "Date (YYYY-MM-DD)", "SSID"):
        assert shown in html


def test_it_saves_and_records_a_state_admins_change(client, cast, person):
    first = person.fields.get(name="first")
    client.force_login(cast.stella)
    data = form_of(client, person)
    data[f"{row_of(data, first)}-max_length"] = "80"
    response = client.post(page(person), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    first.refresh_from_db()
    assert first.max_length == 80
    change = SyncFieldChange.objects.get()
    assert (change.sync_object, change.field, change.action) == (person, "first", "changed")
    assert change.changes == {"max_length": [50, 80]}
    assert change.changed_by == cast.stella and change.changed_at is not None
    assert "max_length: 50 → 80" in client.get(page(person)).content.decode()


def test_it_records_a_field_added_and_one_removed_by_a_state_admin(client, cast, person):
    middle = person.fields.get(name="middle")
    client.force_login(cast.stella)
    data = form_of(client, person)
    data[f"{row_of(data, middle)}-DELETE"] = "on"
    n = int(data["fields-TOTAL_FORMS"])
    data["fields-TOTAL_FORMS"] = str(n + 1)
    data.update(
        {
            f"fields-{n}-name": "gender",
            f"fields-{n}-type": "code",
            f"fields-{n}-codes": '["F", "M", "X"]',
            f"fields-{n}-owner": "district",
            f"fields-{n}-position": "9",
            f"fields-{n}-sync_object": str(person.pk),
        }
    )
    response = client.post(page(person), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not person.fields.filter(name="middle").exists()
    assert person.fields.get(name="gender").codes == ["F", "M", "X"]
    done = dict(SyncFieldChange.objects.values_list("field", "action"))
    assert done == {"middle": "removed", "gender": "added"}
    assert set(SyncFieldChange.objects.values_list("changed_by", flat=True)) == {cast.stella.pk}


def test_it_refuses_a_code_field_without_codes(client, cast, person):
    first = person.fields.get(name="first")
    client.force_login(cast.stella)
    data = form_of(client, person)
    data[f"{row_of(data, first)}-type"] = "code"
    response = client.post(page(person), data)
    assert response.status_code == 200
    assert "A code field lists its codes" in response.content.decode()
    assert person.fields.get(name="first").type == "string"
    assert not SyncFieldChange.objects.exists()


def test_it_records_opening_a_schema_to_extras(client, cast, person):
    client.force_login(cast.stella)
    data = form_of(client, person)
    data["allows_extra"] = "on"
    assert client.post(page(person), data).status_code == 302
    person.refresh_from_db()
    assert person.allows_extra and person.enabled
    change = SyncFieldChange.objects.get()
    assert (change.field, change.changes, change.changed_by) == (
        "",
        {"allows_extra": [False, True]},
        cast.stella,
    )


def test_it_keeps_the_catalog_itself_read_only_for_a_state_admin(client, cast, person):
    client.force_login(cast.stella)
    html = client.get(page(person)).content.decode()
    assert 'name="allows_extra"' in html and 'name="fields-0-max_length"' in html
    assert 'name="editions"' not in html and 'name="enabled"' not in html


def test_it_shows_a_district_admin_the_schema_read_only(client, cast, person):
    client.force_login(cast.alice)
    html = client.get(page(person)).content.decode()
    assert "state_id" in html
    assert 'name="fields-0-max_length"' not in html and 'name="fields-0-DELETE"' not in html
    assert 'name="allows_extra"' not in html


def test_it_refuses_a_district_admins_change(client, cast, person):
    client.force_login(cast.stella)
    data = form_of(client, person)  # the form as a state admin would post it
    first = person.fields.get(name="first")
    data[f"{row_of(data, first)}-max_length"] = "80"
    client.force_login(cast.alice)
    assert client.post(page(person), data).status_code == 403
    assert person.fields.get(name="first").max_length == 50
    assert not SyncFieldChange.objects.exists()


def test_it_records_a_change_made_outside_the_admin(cast, person):
    # The model records, so a shell or a command cannot change a schema unseen.
    field = person.fields.get(name="last")
    field.description = "Family name."
    field.save(by=cast.stella)
    field.save()  # no change: nothing recorded
    SyncField.objects.create(sync_object=person, name="suffix", max_length=8)
    field.delete()
    rows = list(SyncFieldChange.objects.order_by("id").values_list("field", "action", "changed_by"))
    assert rows == [
        ("last", "changed", cast.stella.pk),
        ("suffix", "added", None),
        ("last", "removed", None),
    ]
