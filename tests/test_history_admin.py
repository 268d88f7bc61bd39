"""History pages cost the same number of queries whatever they list."""

import pytest
from django.db import connection

from history.models import DISBatchHistory, ErrorLog, StepStatus
from resync.models import ResyncRequest, SyncObject

from .conftest import BOTH


def history(district, requests: int) -> None:
    objects = list(SyncObject.objects.all()[:5])
    for _ in range(requests):
        r = ResyncRequest.objects.create(
            district=district, school_year=2027, status="finished", outcome="red"
        )
        for so in objects:
            step = DISBatchHistory.objects.create(
                request=r,
                district=district,
                school_year=2027,
                sync_object=so,
                layer=0,
                status=StepStatus.RED,
                processed=10,
                errors=2,
            )
            ErrorLog.objects.bulk_create(
                ErrorLog(
                    step=step,
                    district=district,
                    sync_object=so,
                    record_id=i,
                    reason="parent_missing",
                    message="m",
                )
                for i in range(2)
            )


@pytest.mark.django_db(databases=BOTH)
@pytest.mark.parametrize(
    "url", ["/admin/history/disbatchhistory/", "/admin/history/errorlog/", "/admin/resync/resyncrequest/"]
)
def test_it_lists_history_in_constant_queries(client, district, url, django_assert_max_num_queries):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("root", "r@example.org", "pw"))
    history(district, 1)
    connection.queries_log.clear()  # a full log (9000) would make the capture count nothing
    with django_assert_max_num_queries(12) as small:
        assert client.get(url).status_code == 200
    baseline = len(small.captured_queries)  # read now: clearing the log empties the capture
    assert baseline > 0
    history(district, 8)
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        response = client.get(url)
    assert response.status_code == 200
    assert "101" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/admin/history/disbatchhistory/",
        "/admin/history/errorlog/",
        "/admin/resync/resyncrequest/",
        "/admin/resync/district/",
    ],
)
def test_it_sends_an_outsider_to_the_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
