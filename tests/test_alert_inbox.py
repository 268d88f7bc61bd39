"""Issue 14, item 12: the Process Alerts inbox as a mail client's.

Unread rows stand out; an alert is marked read or unread again (admin action, API);
and an alert links only to a page its user may open now, checked when shown.
"""

import pytest
from django.db import connection

from alerts.models import AlertName, ProcessAlert
from resync.models import ResyncRequest

from .conftest import BOTH
from .test_api_resync import auth

pytestmark = pytest.mark.django_db(databases=BOTH)

INBOX = "/admin/alerts/processalert/"


def alert(user, link="/admin/resync/district/101/tool/", read=False, message="The state requested a resync."):
    (a,) = ProcessAlert.objects.notify(
        [user], name=AlertName.STATE_RESYNC_REQUESTED, category="c", message=message, link=link
    )
    if read:
        ProcessAlert.objects.filter(pk=a.pk).mark_read()
        a.refresh_from_db()
    return a


def test_it_makes_unread_rows_stand_out(client, cast):
    alert(cast.alice, message="Still to read.")
    alert(cast.alice, message="Already read.", read=True)
    client.force_login(cast.alice)
    html = client.get(INBOX).content.decode()
    assert '<strong class="alert-unread">Still to read.</strong>' in html
    assert '<td class="field-shown_message">Already read.</td>' in html
    assert "resync/alerts.css" in html
    unread = client.get(INBOX, {"read": "no"}).content.decode()
    assert "Still to read." in unread and "Already read." not in unread


def test_it_marks_alerts_unread_and_read_again_in_the_admin(client, cast):
    a = alert(cast.alice, read=True)
    client.force_login(cast.alice)
    page = client.post(INBOX, {"action": "mark_unread", "_selected_action": [a.pk]}, follow=True)
    assert "1 alert(s) marked unread." in page.content.decode()
    a.refresh_from_db()
    assert a.read_at is None
    assert 'data-unread="1"' in client.get("/admin/").content.decode()
    client.post(INBOX, {"action": "mark_read", "_selected_action": [a.pk]})
    a.refresh_from_db()
    assert a.read_at is not None


def test_it_marks_only_your_own_alerts_unread_in_the_admin(client, cast):
    theirs = alert(cast.charlie, read=True)
    client.force_login(cast.alice)
    client.post(INBOX, {"action": "mark_unread", "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert theirs.read_at is not None


def test_it_marks_an_alert_unread_by_the_api_and_keeps_others_out(client, cast):
    a = alert(cast.alice, read=True)
    response = client.post(f"/api/v1/alerts/{a.pk}/unread/", headers=auth(cast.alice))
    assert response.status_code == 200 and response.json()["read_at"] is None
    a.refresh_from_db()
    assert a.read_at is None
    assert client.post(f"/api/v1/alerts/{a.pk}/read/", headers=auth(cast.alice)).json()["read_at"]
    assert client.post(f"/api/v1/alerts/{a.pk}/unread/", headers=auth(cast.charlie)).status_code == 404
    a.refresh_from_db()
    assert a.read_at is not None


def test_it_drops_a_link_to_a_district_the_user_may_no_longer_open(client, cast):
    # Charlie's right on district A was withdrawn (or never held): no link to its tool.
    a = alert(cast.charlie, link="/admin/resync/district/101/tool/")
    client.force_login(cast.charlie)
    html = client.get(INBOX).content.decode()
    assert f"/admin/alerts/processalert/{a.pk}/open/" not in html
    assert (
        f"/admin/alerts/processalert/{a.pk}/open/"
        not in client.get(f"{INBOX}{a.pk}/change/").content.decode()
    )
    opened = client.get(f"/admin/alerts/processalert/{a.pk}/open/")
    assert opened.status_code == 302 and opened["Location"] == f"{INBOX}{a.pk}/change/"
    (shown,) = client.get("/api/v1/alerts/", headers=auth(cast.charlie)).json()["results"]
    assert shown["link"] == ""


def test_it_never_links_a_district_user_to_a_state_requests_page(client, cast):
    state = ResyncRequest.objects.create(district=cast.district, school_year=2027, level="state")
    link = f"/admin/resync/resyncrequest/{state.pk}/change/"
    mine = alert(cast.alice, link=link)
    hers = alert(cast.stella, link=link)
    client.force_login(cast.alice)
    assert link not in client.get(INBOX).content.decode()
    assert (
        client.get(f"/admin/alerts/processalert/{mine.pk}/open/")["Location"] == f"{INBOX}{mine.pk}/change/"
    )
    assert client.get("/api/v1/alerts/", headers=auth(cast.alice)).json()["results"][0]["link"] == ""
    client.force_login(cast.stella)
    assert f"/admin/alerts/processalert/{hers.pk}/open/" in client.get(INBOX).content.decode()
    assert client.get(f"/admin/alerts/processalert/{hers.pk}/open/")["Location"] == link
    assert client.get("/api/v1/alerts/", headers=auth(cast.stella)).json()["results"][0]["link"] == link


def test_it_keeps_the_link_to_a_page_the_user_may_open(client, cast):
    a = alert(cast.alice)
    client.force_login(cast.alice)
    assert f"/admin/alerts/processalert/{a.pk}/open/" in client.get(INBOX).content.decode()
    assert (
        client.get(f"/admin/alerts/processalert/{a.pk}/open/")["Location"]
        == "/admin/resync/district/101/tool/"
    )


def test_it_drops_a_link_to_a_page_it_cannot_check(client, cast):
    a = alert(cast.alice, link="https://elsewhere.example/phish")
    client.force_login(cast.alice)
    assert client.get(f"/admin/alerts/processalert/{a.pk}/open/")["Location"] == f"{INBOX}{a.pk}/change/"


def test_it_lists_the_inbox_in_constant_queries(client, cast, django_assert_max_num_queries):
    alert(cast.alice)
    client.force_login(cast.alice)
    connection.queries_log.clear()
    with django_assert_max_num_queries(20) as few:
        assert client.get(INBOX).status_code == 200
    baseline = len(few.captured_queries)
    for i in range(30):
        alert(cast.alice, read=i % 2 == 0, message=f"Alert {i}.")
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        html = client.get(INBOX).content.decode()
    assert "Alert 29." in html
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        api = client.get("/api/v1/alerts/", headers=auth(cast.alice))
    assert api.status_code == 200 and len(api.json()["results"]) >= 20


def test_it_names_the_district_on_an_alerts_page_without_linking_to_its_page(client, cast):
    (a,) = ProcessAlert.objects.notify(
        [cast.charlie],
        name=AlertName.STATE_RESYNC_REQUESTED,
        category="c",
        message="m",
        district=cast.district,
    )
    client.force_login(cast.charlie)
    html = client.get(f"{INBOX}{a.pk}/change/").content.decode()
    assert "101 Adair County" in html
    assert f"/admin/resync/district/{cast.district.pk}/change/" not in html


def test_it_links_a_verification_only_for_those_who_may_see_it(client, tool_cast):
    from verification.models import VerificationRun

    cast = tool_cast
    run = VerificationRun.objects.create(district=cast.district, school_year=2027, sync_objects=["District"])
    link = f"/admin/verification/verificationrun/{run.pk}/change/"
    ok, no = alert(cast.alice, link=link), alert(cast.charlie, link=link)
    client.force_login(cast.alice)
    assert client.get(f"/admin/alerts/processalert/{ok.pk}/open/")["Location"] == link
    assert client.get(link).status_code == 200
    client.force_login(cast.charlie)  # another district's run
    assert client.get(f"/admin/alerts/processalert/{no.pk}/open/")["Location"] == f"{INBOX}{no.pk}/change/"
    assert client.get(link).status_code == 404


def test_it_marks_an_alert_read_or_unread_from_its_own_page(client, cast):
    a = alert(cast.alice, read=True)
    mark = f"/admin/alerts/processalert/{a.pk}/mark/"
    client.force_login(cast.alice)
    page = client.get(f"{INBOX}{a.pk}/change/").content.decode()
    assert f'action="{mark}"' in page and "Mark unread" in page
    assert client.get(mark).status_code == 405  # it changes the alert: POST only
    done = client.post(mark, {"read": "0"})
    assert done.status_code == 302 and done["Location"] == f"{INBOX}{a.pk}/change/"
    a.refresh_from_db()
    assert a.read_at is None
    assert "Mark read" in client.get(f"{INBOX}{a.pk}/change/").content.decode()
    client.post(mark, {"read": "1"})
    a.refresh_from_db()
    assert a.read_at is not None
    client.force_login(cast.charlie)
    assert client.post(mark, {"read": "0"}).status_code == 404
    a.refresh_from_db()
    assert a.read_at is not None
