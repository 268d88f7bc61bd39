import pytest

from alerts.models import AlertName, ProcessAlert

from .conftest import BOTH

pytestmark = pytest.mark.django_db(databases=BOTH)


def alert(user, name="State Resync Requested", link="/admin/resync/district/101/tool/"):
    (a,) = ProcessAlert.objects.notify(
        [user],
        name=name,
        category="Vertical Interoperability",
        message="The state requested a resync.",
        link=link,
    )
    return a


def test_it_marks_an_alert_read_when_opened_and_goes_to_the_tool(client, cast):
    a = alert(cast.alice)
    client.force_login(cast.alice)
    assert (
        'Process Alerts (<span id="alert-count" data-unread="1">1</span>)'
        in client.get("/admin/").content.decode()
    )
    response = client.get(f"/admin/alerts/processalert/{a.pk}/open/")
    assert response.status_code == 302 and response["Location"] == "/admin/resync/district/101/tool/"
    a.refresh_from_db()
    assert a.read_at is not None
    assert 'data-unread="0"' in client.get("/admin/").content.decode()


def test_it_keeps_each_inbox_to_its_owner(client, cast):
    a = alert(cast.alice)
    client.force_login(cast.charlie)
    assert client.get(f"/admin/alerts/processalert/{a.pk}/open/").status_code == 404
    assert "The state requested" not in client.get("/admin/alerts/processalert/").content.decode()
    a.refresh_from_db()
    assert a.read_at is None


def test_it_filters_the_inbox_by_name_and_marks_read_in_bulk(client, cast):
    alert(cast.alice)
    alert(cast.alice, name="Resync Finished")
    client.force_login(cast.alice)
    html = client.get("/admin/alerts/processalert/", {"name": "Resync Finished"}).content.decode()
    assert html.count('class="field-name"') == 1
    ids = list(ProcessAlert.objects.values_list("pk", flat=True))
    client.post("/admin/alerts/processalert/", {"action": "mark_read", "_selected_action": ids})
    assert not ProcessAlert.objects.unread().exists()


def test_it_sends_an_outsider_to_the_login(client, cast):
    a = alert(cast.alice)
    response = client.get(f"/admin/alerts/processalert/{a.pk}/open/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_it_names_no_state_request_on_a_district_users_alert_page(client, cast, queue):
    from tool import actions

    checked = actions.check_resync(cast.district, None, ["District"], False, user=cast.stella, level="state")
    request = actions.do_request_resync(checked)
    mine = ProcessAlert.objects.get(user=cast.alice, name=AlertName.STATE_RESYNC_REQUESTED)
    client.force_login(cast.alice)
    page = client.get(f"/admin/alerts/processalert/{mine.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and "The state requested a resync of district 101" in html
    assert f"Resync {request.pk}" not in html
    assert f"/admin/resync/resyncrequest/{request.pk}/" not in html
    # Every link on the page opens for the district user: the alert's own leads to the tool.
    assert (
        client.get(f"/admin/alerts/processalert/{mine.pk}/open/")["Location"]
        == "/admin/resync/district/101/tool/"
    )
    assert client.get("/admin/resync/district/101/tool/").status_code == 200

    theirs = ProcessAlert.objects.get(user=cast.stella, name=AlertName.STATE_RESYNC_REQUESTED)
    client.force_login(cast.stella)
    html = client.get(f"/admin/alerts/processalert/{theirs.pk}/change/").content.decode()
    assert f"/admin/resync/resyncrequest/{request.pk}/change/" in html


def test_it_stores_many_alerts_in_one_insert_and_counts_each_users_unread_once(
    cast, monkeypatch, django_assert_num_queries
):
    from core import events

    alert(cast.alice)  # one unread already
    trips = []  # one call of send_all: one trip to the channel layer after commit
    monkeypatch.setattr(events, "send_all", trips.append)
    fields = {"name": AlertName.STATE_RESYNC_REQUESTED, "category": "c", "message": "m"}
    new = [ProcessAlert(user=u, **fields) for u in (cast.alice, cast.alice, cast.charlie)]
    with django_assert_num_queries(2):  # the INSERT, and the counts of both users
        ProcessAlert.objects.notify_all(new)
    assert len(trips) == 1
    pushed = trips[0]
    unread = {(groups[0], message["unread"]) for groups, message in pushed}
    assert unread == {(f"user.{cast.alice.pk}", 3), (f"user.{cast.charlie.pk}", 1)}
    assert len(pushed) == 3 and {m["alert"] for _g, m in pushed} == {a.pk for a in new}


def test_it_finds_the_same_alert_recipients_for_many_districts_at_once(cast, django_assert_max_num_queries):
    from django.contrib.auth.models import Group, User
    from guardian.shortcuts import assign_perm

    from resync import rights

    team = Group.objects.create(name="district B helpers")
    helper = User.objects.create(username="helper")
    helper.groups.add(team)
    assign_perm(rights.DISTRICT, team, cast.other)  # through a group's object right
    gone = User.objects.create(username="gone", is_active=False)
    assign_perm(rights.DISTRICT, gone, cast.district)  # inactive: never alerted
    districts = [cast.district, cast.other]
    with django_assert_max_num_queries(5):
        found = rights.alert_recipients_of(districts)
    for d in districts:
        assert found[d.pk] == sorted(rights.alert_recipients(d), key=lambda u: u.pk), d.code
    assert helper in found[cast.other.pk] and helper not in found[cast.district.pk]
    assert gone not in found[cast.district.pk] and cast.stella in found[cast.district.pk]
