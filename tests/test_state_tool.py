"""The state tool and the district tool explain what they offer (issue 14, item 10): the
state's edition's objects only, select-all for districts and objects, the year from the
districts' years; the previous/next year's fewer objects; a single-object user's page."""

import pytest

from resync.models import District, State

from .conftest import BOTH, add

pytestmark = pytest.mark.django_db(databases=BOTH)

STATE_TOOL = "/admin/resync/district/state-tool/"


def test_it_offers_the_state_only_its_editions_objects(client, cast, django_assert_max_num_queries):
    client.force_login(cast.stella)
    with django_assert_max_num_queries(20):
        page = client.get(STATE_TOOL).content.decode()
    assert '<option value="AttendanceKYMinute">' in page  # Kentucky's edition
    assert '<option value="AttendanceSDMinute">' not in page  # South Dakota's
    assert '<option value="District">' in page  # every edition's


def test_it_picks_the_year_from_the_districts_years(client, cast):
    client.force_login(cast.stella)
    page = client.get(STATE_TOOL).content.decode()
    assert 'type="number"' not in page
    assert '<select name="year" id="state-year">' in page
    assert '<option value="2027">2026-2027</option>' in page  # both districts' scoped year
    assert '<option value="2028">2027-2028 (only 101)</option>' in page  # A syncs the next year
    assert '<option value="2026">' not in page


def test_it_offers_select_all_for_districts_and_objects(client, cast):
    client.force_login(cast.stella)
    page = client.get(STATE_TOOL).content.decode()
    assert 'id="all-districts"' in page and 'id="all-objects"' in page and 'id="no-objects"' in page
    assert "resync/state_tool.js" in page


def test_it_lists_a_second_states_edition_too(client, cast):
    sd = State.objects.create(code="SD", name="South Dakota", edition="SD")
    District.objects.create(state=sd, code="901", name="Aberdeen", scope_year=2027)
    client.force_login(cast.stella)
    page = client.get(STATE_TOOL).content.decode()
    assert (
        '<option value="AttendanceSDMinute">' in page
        and '<option value="AttendanceBIEAbsentDays">' not in page
    )


def test_it_says_why_the_next_year_shows_fewer_objects(client, cast):
    client.force_login(cast.alice)
    scoped = client.get("/admin/resync/district/101/tool/").content.decode()
    assert 'id="year-explain"' not in scoped
    page = client.get("/admin/resync/district/101/tool/?year=2028").content.decode()
    explained = page[page.index('id="year-explain"') :].split("</p>")[0]
    assert "2027-2028 is not the scoped year (2026-2027)" in explained
    others = explained[explained.index("The other") :]
    assert "District" in others and "School" in others  # what the next year does not offer, by name
    assert '<tr data-object="District"' not in page


def test_it_gives_a_single_object_user_a_page_that_works(client, cast, django_assert_max_num_queries):
    client.force_login(cast.bob)  # Enrollment and PersonIdentity only
    with django_assert_max_num_queries(30):
        page = client.get("/admin/resync/district/101/tool/").content.decode()
    assert '<input type="checkbox" id="select-all" disabled' in page  # no full resync bound to fail
    explained = page[page.index('id="rights-explain"') :].split("</p>")[0]
    assert "You hold the tool right for 2 of these" in explained
    assert "(Enrollment, PersonIdentity)" in explained
    # Their parents, which Check Dependencies would add and bob may not resync, by name.
    assert "Check Dependencies is off for you: it would add their parents" in explained
    assert "District" in explained
    assert 'id="check-dependencies">' in page  # unticked: the send works as it stands
    alice = client.force_login(cast.alice) or client.get("/admin/resync/district/101/tool/").content.decode()
    assert 'id="rights-explain"' not in alice and 'id="select-all" title="Select all: full resync"' in alice
    assert 'id="check-dependencies" checked>' in alice


def test_it_never_lets_a_cancelled_request_hide_the_one_that_runs(client, cast):
    from datetime import timedelta

    from django.utils import timezone

    from resync.models import ResyncRequest
    from tool import actions

    def send(objects):
        checked = actions.check_resync(cast.district, None, objects, False, user=cast.alice)
        return actions.do_request_resync(checked)

    add(cast.district, "District", 1)  # something to move: it runs
    running = send(["District"])
    ResyncRequest.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    actions.do_cancel(send(["School"]), cast.alice)
    client.force_login(cast.stella)
    page = client.get(STATE_TOOL).content.decode()
    assert f'data-district="{cast.district.pk}" data-request="{running.pk}"' in page
    state = client.get(STATE_TOOL + "state/").json()["districts"]
    assert [(d["request"], d["status"]) for d in state] == [(running.pk, "running")]
