"""A request's and a verification's admin pages (issue 14, item 11): a request's steps
and who asked; a verification's summary first, its results as a table, and a
"different" record's district and state values side by side, field by field."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from history.models import DISBatchHistory
from resync.models import DistrictRecord
from tool import actions
from verification.models import DISVerificationDifference, VerificationRun

from .conftest import BOTH, add, chain, run_queue

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)

REQUESTS = "/admin/resync/resyncrequest/"
RUNS = "/admin/verification/verificationrun/"


def resynced(district, user=None):
    chain(district)
    req = actions.do_request_resync(actions.check_resync(district, None, None, False, user=user))
    run_queue()
    return req


def test_it_shows_a_requests_steps_and_who_asked(client, tool_cast, queue, django_assert_max_num_queries):
    req = resynced(tool_cast.district, tool_cast.alice)
    one = actions.do_request_resync(
        actions.check_resync(tool_cast.district, None, ["District"], False, user=tool_cast.stella)
    )
    run_queue()
    client.force_login(tool_cast.alice)
    client.get(f"{REQUESTS}{one.pk}/change/")  # the first page of a process warms its caches
    counts = []
    for shown in (one, req):  # one step, then every object's: the same queries
        with CaptureQueriesContext(connections["default"]) as queries:
            page = client.get(f"{REQUESTS}{shown.pk}/change/").content.decode()
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 24, counts  # 21 measured
    steps = DISBatchHistory.objects.filter(request=req)
    assert page.count('<tr class="step"') == steps.count() > 5
    school = steps.get(sync_object__name="School")
    row = page[page.index(f'data-step="{school.pk}"') :].split("</tr>")[0]
    assert "<td>School</td>" in row and "Green" in row and "<td>1</td>" in row  # processed
    assert '<div class="readonly">alice</div>' in page  # who asked


def test_it_keeps_a_state_requests_page_from_the_district(client, tool_cast, queue):
    req = resynced(tool_cast.district, tool_cast.stella)
    state = actions.do_request_resync(
        actions.check_resync(tool_cast.district, None, ["District"], False, tool_cast.stella, "state")
    )
    client.force_login(tool_cast.alice)
    assert client.get(f"{REQUESTS}{state.pk}/change/").status_code == 404
    client.force_login(tool_cast.stella)
    page = client.get(f"{REQUESTS}{state.pk}/change/").content.decode()
    assert '<div class="readonly">stella</div>' in page and req.pk != state.pk


def drifted(district) -> DistrictRecord:
    """Resynced, then the school renamed and its number changed at the district."""
    resynced(district)
    school = DistrictRecord.objects.get(district=district, sync_object__name="School")
    school.payload = {"name": "Adair Senior High", "number": "002"}
    school.save()
    add(district, "Enrollment", 1, {"PersonIdentity": 1})
    return school


def test_it_sums_up_first_and_shows_a_different_record_side_by_side(
    client, tool_cast, queue, django_assert_max_num_queries
):
    drifted(tool_cast.district)
    client.force_login(tool_cast.alice)
    client.post(RUNS + "add/", {"district": "101", "objects": ["School", "Enrollment", "Calendar"]})
    run_queue()
    run = VerificationRun.objects.latest("id")
    assert run.status == "finished"
    with django_assert_max_num_queries(20):  # 17 measured: the side by side in two queries
        page = client.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert page.index('id="verification-summary"') < page.index("<fieldset")  # the summary first
    assert "<strong>2 of 3 objects differ: 2 records to resync</strong>" in page
    assert '<tr class="result differs" data-object="School">' in page  # a table, not a JSON list
    assert "Objects compared" in page and ", ".join(run.sync_objects) in page
    assert '<div class="readonly">alice</div>' in page  # no link to a user page alice may not open
    table = page[page.index('<table class="side-by-side" data-record="1">') :].split("</table>")[0]
    assert "School record 1 (differs in: payload)" in table
    # The chain sent the school with no payload: the state's copy has none of its fields.
    assert '<th scope="row">parent: District</th><td>1</td><td>1</td>' in table
    assert (
        '<th scope="row">name</th><td class="differs">Adair Senior High</td><td class="differs">—</td>'
        in table
    )
    diff = DISVerificationDifference.objects.get(result__run=run, kind="different")
    with django_assert_max_num_queries(20):
        own = client.get(f"/admin/verification/disverificationdifference/{diff.pk}/change/").content.decode()
    assert '<td class="differs">Adair Senior High</td>' in own
