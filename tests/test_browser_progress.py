"""The tool's live progress in a real browser (issue 14, items 5, 6, 7): Debian's
chromium driven by Playwright against daphne and a worker. Every page here fails the
test on any JavaScript error."""

import pytest

from resync.models import ResyncRequest
from runner import lifecycle
from selective.actions import check_selective_sync, do_selective_sync

from .conftest import add, chain
from .servers import ARTIFACTS
from .test_browser import browser, login, serve  # noqa: F401 (browser is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases=["default", "state"])]

# Every state the rows and the progress block pass through, however briefly.
WATCH = """
window.seen = {labels: new Set(), progress: []};
new MutationObserver(() => {
  document.querySelectorAll('#objects .outcome').forEach((o) => window.seen.labels.add(o.textContent));
  const p = document.getElementById('progress').textContent.replace(/\\s+/g, ' ').trim();
  if (p && window.seen.progress[window.seen.progress.length - 1] !== p) window.seen.progress.push(p);
}).observe(document.getElementById('resync-tool'), {subtree: true, childList: true, characterData: true});
"""


def watch_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def test_it_shows_queued_progress_and_the_summary_live_and_links_red_to_its_errors(
    browser,  # noqa: F811
    tool_cast,
    queue,
):
    cast = tool_cast
    chain(cast.district)
    for i in range(1, 6):
        add(cast.district, "Enrollment", i, {"PersonIdentity": 1}, excluded=i in (2, 3, 4))
    with serve() as base:
        page = login(browser, base, "alice")
        errors = watch_errors(page)
        page.goto(f"{base}/admin/resync/district/101/tool/")
        page.wait_for_selector("body[data-live=open]")
        assert "Never synced" in page.text_content('tr[data-object="Enrollment"]')
        page.evaluate(WATCH)
        page.check('input.pick[value="Enrollment"]')
        page.wait_for_function("document.getElementById('plan').textContent.includes('Enrollment')")
        # Another request of the district runs (no steps: it ends when told to), so this
        # one waits and its objects are Queued for as long as the test looks at them.
        before = ResyncRequest.objects.create(
            district=cast.district, school_year=2027, objects_asked=["District"], status="running"
        )
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#send")
        page.wait_for_selector('tr[data-object="Enrollment"] .status-queued')
        assert "waits for the request before it" in page.text_content("#progress")
        assert "0/6" in page.text_content("#progress")
        page.screenshot(path=str(ARTIFACTS / "tool-progress-queued.png"), full_page=True)
        lifecycle.advance(before.pk)  # it ends: the waiting one starts
        summary = "#progress a.summary"
        page.wait_for_function(
            "document.querySelector('#progress .resync-progress[data-status=finished]') !== null",
            timeout=30000,
        )
        assert page.text_content(summary) == "5 green, 1 red: 3 errors"
        seen = page.evaluate("({labels: [...window.seen.labels], progress: window.seen.progress})")
        assert any("objects done" in p for p in seen["progress"])  # 0/6 … then the summary
        red = page.locator('tr[data-object="Enrollment"] .status a')
        assert page.text_content('tr[data-object="Enrollment"] .outcome') == "Red"
        page.screenshot(path=str(ARTIFACTS / "tool-progress-summary.png"), full_page=True)

        # A Selective Sync of one record, pushed live, leaves the row to the batch: its
        # finish makes the page fetch its rows again, and they still say 5 and 3.
        fetched = int(page.evaluate("document.body.dataset.resynced"))
        do_selective_sync(check_selective_sync(cast.district, None, "Enrollment", [1], cast.alice))
        page.wait_for_function(f"Number(document.body.dataset.resynced) > {fetched}", timeout=30000)
        page.wait_for_function("document.querySelector('#progress .resync-progress[data-status=finished]')")
        assert page.text_content('tr[data-object="Enrollment"] .processed') == "5"
        assert page.text_content('tr[data-object="Enrollment"] .errors') == "3"
        red.click()
        page.wait_for_selector("#result_list")
        assert page.locator("#result_list tbody tr").count() == 3  # the three errors of that row
        assert "step__request__id__exact" in page.url

        # The Agent Queue refreshes by itself: a request that appears is shown without a reload.
        page.goto(f"{base}/admin/resync/resyncrequest/queue/")
        page.evaluate("window.marker = 'no reload'")
        waiting = ResyncRequest.objects.create(
            district=cast.district, school_year=2027, objects_asked=["School"]
        )
        page.wait_for_selector(f'#agent-requests tr[data-request="{waiting.pk}"]', timeout=10000)
        assert page.evaluate("window.marker") == "no reload"
        page.screenshot(path=str(ARTIFACTS / "agent-queue-live.png"), full_page=True)

        # Its page follows it too, until it ends.
        page.click(f'#agent-requests tr[data-request="{waiting.pk}"] a')
        page.wait_for_selector("#request-progress")
        assert "waits for the request before it" in page.text_content("#request-progress")
        ResyncRequest.objects.filter(pk=waiting.pk).update(status="finished", outcome="green")
        page.wait_for_selector("#request-progress[data-done]", timeout=10000)
        assert "finished: nothing to resync: 0 errors" in " ".join(
            page.text_content("#request-progress").split()
        )
        assert errors == []
