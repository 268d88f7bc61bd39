"""Issue 14, items 9 and 12 in a real browser (chromium against daphne and a worker):
a live row's time reads exactly as after a reload, in the district's zone, named; the
inbox's unread rows stand out and one is marked unread again. No page logs a
JavaScript error."""

import re

import pytest

from alerts.models import AlertName, ProcessAlert

from .conftest import chain
from .servers import ARTIFACTS, serve
from .test_browser import browser, login  # noqa: F401 (the fixture; it skips without chromium)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases=["default", "state"])]

NAMED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T$")  # New York's zone, named


def errors_of(page) -> list[str]:
    """The page's JavaScript errors (console errors and uncaught exceptions), as they come."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_it_writes_a_live_rows_time_as_the_page_does_after_a_reload(browser, cast, queue):  # noqa: F811
    cast.district.time_zone = "America/New_York"
    cast.district.save()
    chain(cast.district)
    with serve() as base:
        page = login(browser, base, "alice")
        errors = errors_of(page)
        page.goto(f"{base}/admin/resync/district/101/tool/")
        page.wait_for_selector("body[data-live=open]")
        page.evaluate("window.marker = 'no reload'")
        page.check('input.pick[value="District"]')
        page.wait_for_function("document.getElementById('plan').textContent.includes('District')")
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#send")
        page.wait_for_selector('tr[data-object="District"] .status-green', timeout=30000)
        assert page.evaluate("window.marker") == "no reload"
        live = page.text_content('tr[data-object="District"] .last').strip()
        page.reload()
        page.wait_for_selector("body[data-live=open]")
        reloaded = page.text_content('tr[data-object="District"] .last').strip()
        page.screenshot(path=str(ARTIFACTS / "tool-times-in-district-zone.png"), full_page=True)
    assert NAMED.match(live), live
    assert live == reloaded
    assert errors == []


def test_it_makes_unread_alerts_stand_out_and_marks_one_unread_again(browser, cast, queue):  # noqa: F811
    def alert(message):
        (a,) = ProcessAlert.objects.notify(
            [cast.alice],
            name=AlertName.RESYNC_FINISHED,
            category="c",
            message=message,
            district=cast.district,
        )
        return a

    alert("Still to read.")
    ProcessAlert.objects.filter(pk=alert("Already read.").pk).mark_read()
    weight = "(text) => getComputedStyle([...document.querySelectorAll('#result_list td')].find(td => td.textContent.trim() === text)).fontWeight"
    with serve() as base:
        page = login(browser, base, "alice")
        errors = errors_of(page)
        page.goto(f"{base}/admin/alerts/processalert/")
        assert page.evaluate(weight, "Still to read.") == "600"
        assert page.evaluate(weight, "Already read.") == "400"
        assert page.text_content("#alert-count") == "1"
        page.check("#result_list tbody tr:has-text('Already read.') input.action-select")
        page.select_option("select[name=action]", "mark_unread")
        page.click("button[name=index]")
        page.wait_for_selector("text=1 alert(s) marked unread.")
        assert page.evaluate(weight, "Already read.") == "600"
        assert page.text_content("#alert-count") == "2"
        page.screenshot(path=str(ARTIFACTS / "alert-inbox-unread.png"), full_page=True)
        page.click("#result_list tbody tr:has-text('Already read.') th a")  # its Created link: its page
        page.click("#alert-mark button")
        page.wait_for_selector("text=Marked read.")
        assert page.text_content("#alert-count") == "1"
        page.screenshot(path=str(ARTIFACTS / "alert-page-marked-read.png"), full_page=True)
    assert errors == []
