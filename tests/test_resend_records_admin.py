"""Resend the failed records (Selective Sync) from the admin: a request's page and the
Error Log's filters offer it where selective.resend.check_resend_records accepts, its
page previews the object and the records, POST sends one Selective Sync of exactly
them, and a refusal is shown in the API's words."""

from __future__ import annotations

import re

import pytest

from history.models import ErrorLog
from resync.models import ResyncRequest, SyncObject

from .conftest import BOTH, add, chain, run_queue
from .test_resync import resync

# Transactional: the requests are run by a worker (run_queue), and RQ enqueues a job on commit.
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

PAGE = "/admin/verification/selectivesync/resend-failed-records/"
REQUESTS = "/admin/resync/resyncrequest/"


@pytest.fixture
def failed(tool_cast, queue):
    """District A (101): Enrollments 3 and 4 state-excluded, sent by a district request;
    then Enrollment 6 too, failed by a state request (which also fails 3 and 4 again).
    District B (202): Enrollment 5 whose parent PersonIdentity 9 is missing."""
    c = tool_cast
    chain(c.district)
    for rid in (3, 4):
        add(c.district, "Enrollment", rid, {"PersonIdentity": 1}, excluded=True)
    add(c.district, "Enrollment", 5, {"PersonIdentity": 1})
    c.req = resync(c.district, ["Enrollment", "PersonIdentity"], check_dependencies=True)
    run_queue()
    add(c.district, "Enrollment", 6, {"PersonIdentity": 1}, excluded=True)
    c.req_state = resync(c.district, ["Enrollment"], level="state")
    run_queue()
    chain(c.other)
    add(c.other, "Enrollment", 5, {"PersonIdentity": 9})
    c.req_b = resync(c.other, ["Enrollment"])
    run_queue()
    rows = ErrorLog.objects.order_by("step__request_id", "record_id")
    assert list(rows.values_list("step__request_id", "record_id")) == [
        (c.req.pk, 3),
        (c.req.pk, 4),
        (c.req_state.pk, 3),
        (c.req_state.pk, 4),
        (c.req_state.pk, 6),
        (c.req_b.pk, 5),
    ]
    c.enrollment = SyncObject.objects.get(name="Enrollment").pk
    return c


def link(html: str) -> str | None:
    found = re.search(r'href="([^"]+)" id="resend-failed-records"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_it_resends_a_requests_failed_records_from_its_page_after_a_preview(client, failed):
    client.force_login(failed.alice)
    url = link(client.get(f"{REQUESTS}{failed.req.pk}/change/").content.decode())
    assert url == f"{PAGE}?step__request__id__exact={failed.req.pk}"
    preview = client.get(url)
    html = preview.content.decode()
    assert preview.status_code == 200
    assert '<dd id="resend-records-object">Enrollment</dd>' in html
    assert '<dd id="resend-records-count">2 records</dd>' in html
    assert '<dd id="resend-records-ids">3, 4</dd>' in html
    before = set(ResyncRequest.objects.values_list("pk", flat=True))
    assert ResyncRequest.objects.count() == len(before)  # the preview sent nothing
    sent = client.post(url)
    assert sent.status_code == 303 and sent["Location"] == "/admin/verification/selectivesync/"
    (new,) = ResyncRequest.objects.exclude(pk__in=before)  # exactly one request
    assert new.records == [3, 4] and new.objects_asked == ["Enrollment"]
    assert new.requested_by == failed.alice and new.level == ResyncRequest.Level.DISTRICT


def test_it_hides_another_districts_records_from_a_district_user(client, failed):
    client.force_login(failed.charlie)  # district B's administrator
    for query in (f"step__request__id__exact={failed.req.pk}", f"district__id__exact={failed.district.pk}"):
        assert client.get(f"{PAGE}?{query}").status_code == 404
        assert client.post(f"{PAGE}?{query}").status_code == 404
    assert ResyncRequest.objects.count() == 3


def test_it_shows_a_district_none_of_a_state_requests_records(client, failed):
    client.force_login(failed.alice)
    assert client.get(f"{PAGE}?step__request__id__exact={failed.req_state.pk}").status_code == 404
    assert client.post(f"{PAGE}?step__request__id__exact={failed.req_state.pk}").status_code == 404
    # Through the Error Log's filter, only the district's own request's records: not 6.
    url = link(
        client.get(f"/admin/history/errorlog/?sync_object__id__exact={failed.enrollment}").content.decode()
    )
    assert url == f"{PAGE}?sync_object__id__exact={failed.enrollment}"
    assert '<dd id="resend-records-ids">3, 4</dd>' in client.get(url).content.decode()
    assert client.post(url).status_code == 303
    assert ResyncRequest.objects.latest("id").records == [3, 4]
    # The state sees the state request's records too.
    client.force_login(failed.stella)
    page = client.get(f"{PAGE}?step__request__id__exact={failed.req_state.pk}").content.decode()
    assert '<dd id="resend-records-ids">3, 4, 6</dd>' in page


def test_it_refuses_on_the_page_in_the_apis_words_and_offers_nothing_there(client, failed):
    client.force_login(failed.charlie)
    api = client.post(f"/api/v1/requests/{failed.req_b.pk}/resend-failed-records/")
    assert api.status_code == 400
    (said,) = api.json()["errors"]
    assert "sends no parents" in said
    url = f"{PAGE}?step__request__id__exact={failed.req_b.pk}"
    for answer in (client.get(url), client.post(url)):
        assert answer.status_code == 400
        assert f'<p class="errornote" id="resend-records-refused">{said}</p>' in answer.content.decode()
    assert ResyncRequest.objects.count() == 3
    # Neither its request's page nor the Error Log offers what would be refused.
    assert link(client.get(f"{REQUESTS}{failed.req_b.pk}/change/").content.decode()) is None
    assert link(client.get("/admin/history/errorlog/").content.decode()) is None
    assert link(client.get("/admin/history/errorlog/summary/").content.decode()) is None


def test_it_refuses_errors_of_several_districts_and_offers_it_once_filtered_to_one(client, failed):
    client.force_login(failed.stella)
    page = client.get(PAGE)
    assert page.status_code == 400 and "one object of one district and year" in page.content.decode()
    assert link(client.get("/admin/history/errorlog/").content.decode()) is None
    assert link(client.get("/admin/history/errorlog/summary/").content.decode()) is None
    query = f"district__id__exact={failed.district.pk}&sync_object__id__exact={failed.enrollment}"
    summary = client.get(f"/admin/history/errorlog/summary/?{query}").content.decode()
    assert link(summary) == f"{PAGE}?{query}"
    assert '<dd id="resend-records-ids">3, 4, 6</dd>' in client.get(link(summary)).content.decode()


def test_it_needs_selective_syncs_right_to_be_offered_or_to_send(client, failed):
    from django.contrib.auth.models import Group

    for group in Group.objects.all():
        group.permissions.remove(*group.permissions.filter(codename="use_selectivesync"))
    client.force_login(failed.alice)
    assert link(client.get(f"{REQUESTS}{failed.req.pk}/change/").content.decode()) is None
    answer = client.post(f"{PAGE}?step__request__id__exact={failed.req.pk}")
    assert answer.status_code == 403 and "Selective Sync needs its W right." in answer.content.decode()
    assert ResyncRequest.objects.count() == 3
