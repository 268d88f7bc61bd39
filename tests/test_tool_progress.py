"""The tool page tells the truth and shows progress (issue 14, items 5, 6, 7): batch
results only, Queued while waiting, objects and records done, time left, the finish
summary, and Yellow or Red results leading to their errors; the same progress on the
request's page and the Agent Queue."""

from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.utils import timezone

from history.models import DISBatchHistory, StepStatus
from resync.models import ResyncRequest, SyncObject
from runner import lifecycle
from selective.actions import check_selective_sync, do_selective_sync
from tool import actions

from .conftest import BOTH, COMMITTED, add, chain, run_queue

pytestmark = pytest.mark.django_db(databases=BOTH)

TOOL = "/admin/resync/district/101/tool/"
QUEUE = "/admin/resync/resyncrequest/queue/"


def resync(district, objects, user=None, deps=True, run=True) -> ResyncRequest:
    req = actions.do_request_resync(actions.check_resync(district, None, objects, deps, user=user))
    if run:
        run_queue()
    req.refresh_from_db()
    return req


def enrolled(district) -> None:
    """The chain and five enrollments, 3 of them state-excluded: an Enrollment resync is Red
    (3 of 5 in error)."""
    chain(district)
    for i in range(1, 6):
        add(district, "Enrollment", i, {"PersonIdentity": 1}, excluded=i in (2, 3, 4))


def row(html: str, obj: str) -> str:
    start = html.index(f'data-object="{obj}"')
    return html[start : html.index("</tr>", start)]


@COMMITTED
def test_it_keeps_the_batch_result_after_a_selective_sync(client, tool_cast, queue):
    cast = tool_cast
    enrolled(cast.district)
    batch = resync(cast.district, ["Enrollment"], cast.alice)
    selective = do_selective_sync(check_selective_sync(cast.district, None, "Enrollment", [1], cast.alice))
    run_queue()
    client.force_login(cast.alice)
    html = client.get(TOOL).content.decode()
    # The five-record batch, not the one-record Selective Sync sent after it.
    assert 'Processed: <span class="processed">5</span> Errors: <span class="errors">3</span>' in row(
        html, "Enrollment"
    )
    assert f"step__request__id__exact={batch.pk}" in row(html, "Enrollment")
    # Selective Sync's own history is linked, for those who may open it.
    assert f'href="/admin/verification/selectivesync/?district__id__exact={cast.district.pk}"' in html
    client.force_login(cast.bob)
    assert 'id="selective-history"' not in client.get(TOOL).content.decode()
    client.force_login(cast.alice)
    state = client.get(TOOL + "state/").json()
    enrollment = next(s for s in state["steps"] if s["object"] == "Enrollment")
    assert (enrollment["request"], enrollment["processed"]) == (batch.pk, 5)
    assert [p["request"] for p in state["progress"]] == [batch.pk]
    # A live push of the Selective Sync's step says what it is, so the page leaves the row.
    step = DISBatchHistory.objects.select_related("request", "sync_object").get(request=selective)
    assert lifecycle.step_event(step)["selective"] is True
    assert lifecycle.step_event(DISBatchHistory.objects.filter(request=batch).first())["selective"] is False


@COMMITTED
def test_it_links_a_red_row_to_its_errors_and_says_never_synced(client, cast, queue):
    enrolled(cast.district)
    batch = resync(cast.district, ["Enrollment"], cast.alice)
    client.force_login(cast.alice)
    html = client.get(TOOL).content.decode()
    enrollment = SyncObject.objects.get(name="Enrollment")
    link = f"/admin/history/errorlog/?step__request__id__exact={batch.pk}&amp;sync_object__id__exact={enrollment.pk}"
    assert row(html, "Enrollment").count(f'href="{link}"') == 2  # its Results and its Status
    assert 'title="Red"' in row(html, "Enrollment")
    assert "href=" not in row(html, "District")  # Green: nothing to look at
    assert "Never synced" in row(html, "Graduation") and "Never synced" not in row(html, "District")
    # The Error Log takes the link's filter (not a 400) and lists exactly those errors.
    page = client.get(unescape(link))
    assert page.status_code == 200
    assert page.content.decode().count('<td class="field-reason_shown">') == 3
    # Another district's administrator following the same link sees nothing of it.
    client.force_login(cast.charlie)
    other = client.get(unescape(link))
    assert other.status_code == 200 and 'class="field-reason_shown"' not in other.content.decode()


@COMMITTED
def test_it_shows_queued_objects_progress_and_the_finish_summary(client, cast, queue):
    enrolled(cast.district)
    client.force_login(cast.alice)
    waiting = resync(cast.district, ["Enrollment"], cast.alice, run=False)
    html = client.get(TOOL).content.decode()
    # Every object of the request not started yet says Queued, not a blank or old dot.
    for name in ("District", "School", "Enrollment"):
        assert "Queued" in row(html, name) and "status-queued" in row(html, name)
    assert f"Resync {waiting.pk}</strong>" in html
    assert '<span class="done">0/6</span> objects done' in html
    assert "estimating…" in html  # no history of this district to go on yet
    run_queue()
    html = client.get(TOOL).content.decode()
    summary = f'href="/admin/history/errorlog/?step__request__id__exact={waiting.pk}"'
    assert summary in html and "5 green, 1 red: 3 errors</a>" in html
    # A second resync: the district's history now gives an estimate.
    again = resync(cast.district, ["Enrollment"], cast.alice, run=False)
    body = client.get(TOOL + "state/").json()
    (shown,) = body["progress"]
    assert (shown["request"], shown["done"], shown["total"]) == (again.pk, 0, 6)
    assert shown["seconds_left"] is not None and shown["time_left"].startswith("about")
    assert "0/6" in body["progress_html"]
    run_queue()
    # A request cancelled while it waited never ran: the summary stays the last one that did.
    last = resync(cast.district, ["Enrollment"], cast.alice, run=False)
    waiting = resync(cast.district, ["School"], cast.alice, deps=False, run=False)
    actions.do_cancel(waiting, cast.alice)
    run_queue()
    (shown,) = client.get(TOOL + "state/").json()["progress"]
    assert (shown["request"], shown["summary"]) == (last.pk, "5 green, 1 red: 3 errors")


def test_it_estimates_from_previous_durations_then_the_running_rate(cast):
    from tool import progress  # here: the module is what this test is about

    now = timezone.now()
    district = cast.district
    old = ResyncRequest.objects.create(district=district, school_year=2027, status="finished")
    req = ResyncRequest.objects.create(
        district=district, school_year=2027, status="running", started_at=now - timedelta(seconds=40)
    )
    objects = {o.name: o for o in SyncObject.objects.filter(name__in=["District", "School", "Calendar"])}

    def step(request, name, status, took=None, ran=None):
        started = now - timedelta(seconds=ran if ran is not None else 100)
        return DISBatchHistory.objects.create(
            request=request,
            district=district,
            school_year=2027,
            sync_object=objects[name],
            layer=0,
            status=status,
            processed=10,
            started_at=started if (took or ran) else None,
            ended_at=started + timedelta(seconds=took) if took else None,
        )

    step(old, "District", StepStatus.GREEN, took=30)
    step(old, "School", StepStatus.GREEN, took=10)
    step(req, "District", StepStatus.RUNNING, ran=5)  # 30 s last time, 5 s run: 25 left
    step(req, "School", StepStatus.QUEUED)  # 10 s last time
    assert progress.of([req], now)[req.pk].seconds_left == 35
    calendar = step(req, "Calendar", StepStatus.QUEUED)  # never run here before: no estimate yet
    assert progress.of([req], now)[req.pk].time_left == "estimating…"
    DISBatchHistory.objects.filter(request=req, sync_object__name="School").update(status=StepStatus.GREEN)
    # One of three done in 40 s: Calendar is taken at the request's running rate.
    assert progress.of([req], now)[req.pk].seconds_left == 25 + 40
    assert calendar.pk


@COMMITTED
def test_it_shows_progress_on_the_agent_queue_in_constant_queries(
    client, cast, queue, django_assert_max_num_queries
):
    enrolled(cast.district)
    resync(cast.district, ["Enrollment"], cast.alice)
    client.force_login(cast.stella)
    req = resync(cast.district, ["Enrollment"], cast.alice, run=False)
    html = client.get(QUEUE).content.decode()
    assert 'id="agent-queue-live" data-poll="2000"' in html  # fetched again every 2 s by tool.js
    assert f'data-request="{req.pk}"' in html and '<span class="done">0/6</span> objects' in html
    assert "resync/tool.js" in html
    connection.queries_log.clear()
    with django_assert_max_num_queries(40) as few:
        client.get(QUEUE)
    baseline = len(few.captured_queries)
    for _ in range(3):  # more requests waiting behind it: no more queries
        resync(cast.district, ["School"], deps=False, run=False)
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        assert client.get(QUEUE).content.decode().count('class="progress"') == 4
    run_queue()


@COMMITTED
def test_it_shows_progress_on_the_requests_page(client, cast, queue, django_assert_max_num_queries):
    enrolled(cast.district)
    req = resync(cast.district, ["Enrollment"], cast.alice, run=False)
    client.force_login(cast.alice)
    page = f"/admin/resync/resyncrequest/{req.pk}/change/"
    html = client.get(page).content.decode()
    assert 'id="request-progress" data-poll="2000">' in html and "0/6</span> objects done" in html
    run_queue()
    connection.queries_log.clear()
    with django_assert_max_num_queries(30):
        html = client.get(page).content.decode()
    assert 'data-done="1"' in html and "5 green, 1 red: 3 errors" in html
    client.force_login(cast.charlie)
    assert client.get(page).status_code == 404
