"""The year switch through its confirmation, in a real browser (issue 14, item 1): a
district administrator ticks the district, picks the action, reads what will happen,
and only the confirmation's Yes switches. Any JavaScript error fails the test."""

import pytest

from resync.models import District
from tool import actions

from .conftest import chain, run_queue
from .servers import ARTIFACTS
from .test_browser import browser, login, serve  # noqa: F401 (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases=["default", "state"])]


def test_it_switches_the_year_only_after_its_confirmation(browser, tool_cast, queue):  # noqa: F811
    district = tool_cast.district
    chain(district)
    actions.do_request_resync(actions.check_resync(district, None, None, False))  # the end-of-year resync
    run_queue()
    with serve() as base:
        page = login(browser, base, "alice")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}/admin/verification/schoolyearswitch/")
        page.check(f'input[name="_selected_action"][value="{district.pk}"]')
        page.select_option('select[name="action"]', "switch_year")
        page.click('button[name="index"]')
        page.wait_for_selector("#switches")
        text = page.text_content("#content")
        assert "The switch cannot be undone" in text and "start-of-year full resync" in text
        assert "2027 → 2028" in page.text_content("#switches li.allowed")
        page.screenshot(path=str(ARTIFACTS / "year-switch-confirm.png"), full_page=True)
        assert District.objects.get(pk=district.pk).scope_year == 2027  # asking switched nothing
        page.click('input[type="submit"][value^="Yes, switch"]')
        page.wait_for_selector(".messagelist .success")
        assert "District 101 now syncs 2028" in page.text_content(".messagelist")
    assert District.objects.get(pk=district.pk).scope_year == 2028
    assert errors == []
