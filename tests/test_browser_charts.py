"""The history chart and the state dashboard in a real browser (issue 14, items 16 and
17): Debian's chromium driven by Playwright against daphne. Every page here fails the
test on any JavaScript error."""

from datetime import timedelta

import pytest
from django.utils import timezone

from .servers import ARTIFACTS
from .test_browser import browser, login, serve  # noqa: F401 (browser is a fixture)
from .test_browser_progress import watch_errors
from .test_dashboard import resync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases=["default", "state"])]


def test_it_walks_from_the_tool_to_the_chart_and_from_the_home_to_the_dashboard(browser, cast, queue):  # noqa: F811
    start = timezone.now() - timedelta(days=120)
    for i in range(120):  # more resyncs than points: each object's chart draws 30, with bands
        resync(
            cast.district,
            start + timedelta(days=i),
            [("District", 1, 0), ("School", 40, i % 5)],
            minutes=2 + i % 4,
        )
    resync(cast.other, start, [("District", 1, 0)])  # green; A ends red
    with serve() as base:
        alice = login(browser, base, "alice")
        errors = watch_errors(alice)
        alice.goto(f"{base}/admin/resync/district/101/tool/")
        alice.click("#history-link a")
        alice.wait_for_selector('#objects tr[data-object="School"] svg.chart')
        assert (
            alice.locator('#objects tr[data-object="School"] svg.chart').first.locator("circle").count() == 30
        )
        box = alice.locator('#objects tr[data-object="School"] svg.chart').first.bounding_box()
        assert box["width"] > 200 and box["height"] > 50  # drawn at a readable size
        alice.screenshot(path=str(ARTIFACTS / "history-chart-district.png"), full_page=True)
        alice.select_option("#year", "2027")
        alice.wait_for_url("**?year=2027")
        assert alice.locator("#durations svg.chart").count() == 1

        stella = login(browser, base, "stella")
        errors += watch_errors(stella)
        stella.goto(f"{base}/admin/")
        stella.click("text=State dashboard")
        stella.wait_for_selector("#outcome-chart svg.chart")
        assert stella.locator("#result_list tbody tr").count() == 2
        stella.screenshot(path=str(ARTIFACTS / "state-dashboard.png"), full_page=True)
        stella.click("#changelist-filter >> text=Red")
        stella.wait_for_url("**outcome=red**")
        assert stella.locator("#result_list tbody tr").count() == 1
        stella.click("text=History chart: every district")
        stella.wait_for_selector('#objects tr[data-object="District"] svg.chart')
        stella.screenshot(path=str(ARTIFACTS / "history-chart-state.png"), full_page=True)
        assert errors == []
