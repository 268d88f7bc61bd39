"""The history charts and the state's dashboard (items 16 and 17 of issue 14), on real
rows through the real URLs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from history.models import DISBatchHistory
from resync import status
from resync.models import ResyncRequest, SyncObject

from .conftest import BOTH

pytestmark = pytest.mark.django_db(databases=BOTH)

DASHBOARD = "/admin/dashboard/districtoutcome/"
STATE_HISTORY = "/admin/dashboard/districtoutcome/history/"


def history(code: str) -> str:
    return f"/admin/dashboard/districtoutcome/history/{code}/"


def resync(district, at, steps, *, level="district", objects=None, records=None, minutes=3, year=2027):
    """A finished request with one finished step per (object, processed, errors)."""
    req = ResyncRequest.objects.create(
        district=district,
        school_year=year,
        level=level,
        objects_asked=objects,
        records=records,
        status=ResyncRequest.Status.FINISHED,
        steps_failed=0,
        started_at=at,
        finished_at=at + timedelta(minutes=minutes),
    )
    colours = []
    for name, processed, errors in steps:
        step = DISBatchHistory(
            request=req,
            district=district,
            school_year=year,
            sync_object=SyncObject.objects.get(name=name),
            layer=0,
            processed=processed,
            errors=errors,
            started_at=at,
            ended_at=at + timedelta(minutes=1),
        )
        step.status = status.colour(processed, errors)
        step.save()
        colours.append(step.status)
    req.outcome = status.worst(colours)
    req.save(update_fields=["outcome"])
    return req


def points(html: str, object_name: str) -> int:
    row = html.split(f'data-object="{object_name}"', 1)[1].split("</tr>", 1)[0]
    return row.split("</svg>", 1)[0].count("<circle")  # in its first chart, the error rate


def test_it_charts_each_objects_error_rate_and_count_and_how_long_resyncs_took(cast, client):
    d = cast.district
    start = timezone.now() - timedelta(days=10)
    resync(d, start, [("District", 1, 0), ("Enrollment", 100, 0)])
    resync(d, start + timedelta(days=1), [("District", 1, 0), ("Enrollment", 120, 6)], minutes=5)
    resync(d, start + timedelta(days=2), [("Enrollment", 2, 1)], objects=["Enrollment"], records=[1, 2])
    resync(d, start + timedelta(days=3), [("Enrollment", 121, 60)], level="state")
    client.force_login(cast.alice)
    page = client.get(history("101"))
    assert page.status_code == 200
    html = page.content.decode()
    # Two whole-object resyncs of Enrollment: the Selective Sync one and the state's are not hers to chart.
    assert points(html, "Enrollment") == 2
    assert "5%" in html and ">5% of 120<" in html  # 6 of 120, its latest
    # Each point names its resync's start, in the server's time zone, on every database.
    assert f"<title>{timezone.localtime(start):%Y-%m-%d %H:%M}: 0%</title>" in html
    assert "Full resyncs" in html and ">5.0 min<" in html  # the latest she may see
    assert 'href="/admin/resync/district/101/tool/"' in html
    client.force_login(cast.stella)
    html = client.get(history("101")).content.decode()
    assert points(html, "Enrollment") == 3 and ">50% of 121<" in html  # the state's request too
    assert ">3.0 min<" in html


def test_it_stays_readable_and_cheap_for_150_resyncs(cast, client, django_assert_max_num_queries):
    d = cast.district
    start = timezone.now() - timedelta(days=200)
    for i in range(150):
        resync(d, start + timedelta(days=i), [("District", 1, 0), ("School", 10, i % 3)])
    client.force_login(cast.alice)
    # 11 for the page and its 150 resyncs, plus the admin menu's own rights checks (for a
    # district user: webhooks and the audit report ask which districts are theirs).
    with django_assert_max_num_queries(16):
        html = client.get(history("101")).content.decode()
    assert points(html, "School") == 30 and "(5 resyncs)" in html and "<polygon" in html
    durations = html.split('id="durations"', 1)[1].split("</svg>", 1)[0]
    assert durations.count("<circle") == 50 and "(3 resyncs)" in durations
    assert len(html) < 120_000  # the page does not grow with the history
    assert html.count('<svg class="chart"') == 5  # two per object, one for the durations


def test_it_charts_the_state_across_districts_for_the_state_only(cast, client, django_assert_max_num_queries):
    start = timezone.now() - timedelta(days=3)
    resync(cast.district, start, [("School", 10, 0)])
    resync(cast.other, start + timedelta(days=1), [("School", 20, 4)])
    client.force_login(cast.stella)
    with django_assert_max_num_queries(12):
        html = client.get(STATE_HISTORY).content.decode()
    assert points(html, "School") == 2 and ">20% of 20<" in html
    assert f'href="{history("202")}"' in html
    client.force_login(cast.charlie)
    assert client.get(STATE_HISTORY).status_code == 404
    assert client.get(history("101")).status_code == 404


def test_it_offers_the_years_of_its_history_and_answers_another_with_a_404(cast, client):
    # A district that switched to 2028 keeps its 2027 history, which stays on offer.
    resync(cast.district, timezone.now() - timedelta(days=1), [("School", 10, 0)], year=2027)
    cast.district.scope_year, cast.district.sync_next_year = 2028, False
    cast.district.save()
    client.force_login(cast.alice)
    page = client.get(history("101") + "?year=2027")
    assert page.status_code == 200 and page.context["years"] == [2028, 2027]
    assert points(page.content.decode(), "School") == 1
    assert client.get(history("101") + "?year=2028").context["objects"] == []
    for bad in ("abc", "1999", "9" * 40):
        assert client.get(history("101") + f"?year={bad}").status_code == 404


def test_it_lists_every_district_with_its_last_full_resync_and_the_years_resyncs(
    cast, client, django_assert_max_num_queries
):
    a, b = cast.district, cast.other
    start = timezone.now() - timedelta(days=5)
    resync(a, start, [("District", 1, 0)])
    last = resync(a, start + timedelta(days=1), [("District", 1, 0), ("School", 10, 7)])
    resync(a, start + timedelta(days=2), [("School", 1, 0)], objects=["School"])  # not a full resync
    # B switched to 2028 and has not run its start-of-year resync: not ready to switch again.
    b.scope_year, b.year_switched_at = 2028, start
    b.save()
    client.force_login(cast.stella)
    with django_assert_max_num_queries(14):
        page = client.get(DASHBOARD)
    assert page.status_code == 200
    html = page.content.decode()
    row_a = html.split('class="field-code">101', 1)[1].split("</tr>", 1)[0]
    row_b = html.split('class="field-code">202', 1)[1].split("</tr>", 1)[0]
    assert f"/admin/resync/resyncrequest/{last.pk}/change/" in row_a and "Red" in row_a
    assert '<td class="field-errors">7</td>' in row_a
    assert 'field-end_of_year"><img src="/static/admin/img/icon-yes.svg"' in row_a
    assert 'field-ready"><img src="/static/admin/img/icon-yes.svg"' in row_a
    assert "Never" in row_b
    assert 'field-start_of_year"><img src="/static/admin/img/icon-no.svg"' in row_b
    assert 'field-ready"><img src="/static/admin/img/icon-no.svg"' in row_b
    chart = html.split('id="outcome-chart"', 1)[1].split("</svg>", 1)[0]
    assert "<title>Red: 1</title>" in chart and "<title>No full resync: 1</title>" in chart
    assert "<title>Green: 0</title>" in chart


@pytest.mark.parametrize(
    "query, listed",
    [
        ("?outcome=red", ["101"]),
        ("?outcome=never", ["202"]),
        ("?start_of_year=missing", ["202"]),
        ("?end_of_year=done", ["101"]),
        # Columns count from 0 (no action checkbox); what is missing sorts first on every database.
        ("?o=3", ["202", "101"]),  # by the last full resync
        ("?o=-5", ["101", "202"]),  # by errors, most first
        ("?o=4", ["202", "101"]),  # by outcome
        ("?o=6", ["202", "101"]),  # by the end-of-year resync: B has none
        ("?q=Boone", ["202"]),
    ],
)
def test_it_filters_and_sorts_the_districts(cast, client, query, listed):
    resync(cast.district, timezone.now() - timedelta(days=1), [("School", 10, 7)])
    cast.other.year_switched_at = timezone.now()
    cast.other.save()
    client.force_login(cast.stella)
    page = client.get(DASHBOARD + query)
    assert page.status_code == 200
    assert [d.code for d in page.context["cl"].result_list] == listed
    if query == "?outcome=red":
        assert "<title>Red: 1</title>" in page.content.decode()
        assert "<title>No full resync: 0</title>" in page.content.decode()  # the chart counts what is listed


def test_it_is_a_404_for_district_users_and_is_linked_for_the_state(cast, client):
    for user in (cast.alice, cast.bob, cast.charlie):
        client.force_login(user)
        assert client.get(DASHBOARD).status_code == 404
        assert f'href="{DASHBOARD}"' not in client.get("/admin/").content.decode()
    client.force_login(cast.alice)
    assert history("101") in client.get("/admin/").content.decode()
    assert history("101") in client.get("/admin/resync/district/101/tool/").content.decode()
    client.force_login(cast.stella)
    index = client.get("/admin/").content.decode()
    assert f'href="{DASHBOARD}"' in index and f'href="{STATE_HISTORY}"' in index
