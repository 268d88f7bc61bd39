"""The tool in a real browser: Debian's chromium driven by Playwright against daphne and a worker."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connections
from django.db.backends.signals import connection_created

from .conftest import BOTH, chain
from .servers import ARTIFACTS, serve

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists():
    # CI installs chromium (.ci/run) and sets STATESYNC_REQUIRE_BROWSER so a missing browser fails there.
    if os.environ.get("STATESYNC_REQUIRE_BROWSER"):
        raise RuntimeError("STATESYNC_REQUIRE_BROWSER is set but /usr/bin/chromium is missing.")
    pytest.skip(
        "SKIPPED: browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium).",
        allow_module_level=True,
    )

# Transactional: the live server and the worker it starts read the rows in other processes.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases=BOTH)]

# Records every status class a row's dot takes, so a Gray that lasts a few
# milliseconds is still seen.
WATCH = """
window.seen = {};
for (const row of document.querySelectorAll('#objects tbody tr')) {
  const name = row.dataset.object;
  window.seen[name] = [];
  new MutationObserver(() => {
    const dot = row.querySelector('.status-dot');
    if (dot) window.seen[name].push(dot.className.replace('status-dot status-', ''));
  }).observe(row, {subtree: true, childList: true, attributes: true});
}
"""


# The same for the state tool: every status class one district's Outcome cell takes.
WATCH_OUTCOME = """
(district) => {
  window.outcomes = [];
  const cell = document.querySelector('#districts tr[data-district="' + district + '"] .status');
  new MutationObserver(() => {
    const dot = cell.querySelector('.status-dot');
    if (dot) window.outcomes.push(dot.className.replace('status-dot status-', ''));
  }).observe(cell, {subtree: true, childList: true, attributes: true});
}
"""


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own
    # ORM calls are plain synchronous ones, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Under Playwright the test body sees other Django connections than
    # pytest-django's (another context): close them all, or the test database
    # cannot be dropped at the end ("being accessed by other users").
    opened, here = [], threading.get_ident()

    def track(sender, connection, **kwargs):
        if connection._thread_ident == here:  # other threads close their own
            opened.append(connection)

    connection_created.connect(track)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            yield b
            b.close()
    finally:
        connection_created.disconnect(track)
        for connection in opened:
            connection.close()


def login(browser, base: str, username: str):
    page = browser.new_context().new_page()
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page


def test_it_turns_the_dots_gray_then_green_without_a_reload(browser, cast, queue):
    chain(cast.district)
    with serve() as base:
        page = login(browser, base, "alice")
        page.goto(f"{base}/admin/resync/district/101/tool/")
        page.wait_for_selector("body[data-live=open]")
        page.evaluate("window.marker = 'no reload'")
        page.evaluate(WATCH)
        page.check('input.pick[value="School"]')
        page.check('input.pick[value="Calendar"]')
        page.wait_for_function("document.getElementById('plan').textContent.includes('Calendar')")
        assert page.text_content("#plan") == "Will run, in this order: District → School → Calendar"
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#send")
        for name in ("District", "School", "Calendar"):
            page.wait_for_selector(f'tr[data-object="{name}"] .status-green', timeout=30000)
        page.screenshot(path=str(ARTIFACTS / "district-tool-green.png"), full_page=True)
        seen = page.evaluate("window.seen")
        for name in ("District", "School", "Calendar"):
            assert "gray" in seen[name] and seen[name][-1] == "green", (name, seen[name])
            assert seen[name].index("gray") < seen[name].index("green")
        assert set(seen["Enrollment"]) <= {"none"}  # not sent: still Never synced, never Gray
        assert page.evaluate("window.marker") == "no reload"
        assert page.text_content('tr[data-object="School"] .processed') == "1"


def test_it_asks_with_the_real_plan_sends_once_on_a_double_click_and_refuses_an_empty_send(
    browser, cast, queue
):
    from resync.models import ResyncRequest

    chain(cast.district)
    with serve() as base:
        page = login(browser, base, "alice")
        page.goto(f"{base}/admin/resync/district/101/tool/")
        page.wait_for_selector("body[data-live=open]")
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        page.click("#send")  # nothing ticked: said at once, nothing asked
        page.wait_for_function("document.getElementById('send-result').textContent !== ''")
        assert (
            page.text_content("#send-result") == "Tick at least one object, or Select all for a full resync."
        )
        assert dialogs == []
        page.check('input.pick[value="Calendar"]')  # Check Dependencies adds District and School
        page.dblclick("#send")
        page.wait_for_function("document.getElementById('send-result').textContent.startsWith('Resync')")
        assert dialogs == ["Send 3 objects: District, School, Calendar?"]
        assert ResyncRequest.objects.count() == 1
        assert not page.is_checked('input.pick[value="Calendar"]')  # unticked once sent
        assert page.is_enabled("#send")
        page.wait_for_selector('tr[data-object="Calendar"] .status-green', timeout=30000)


def test_it_raises_the_alert_counter_in_an_open_district_page(browser, cast, queue):
    chain(cast.district)
    with serve() as base:
        alice = login(browser, base, "alice")
        alice.goto(f"{base}/admin/resync/district/101/tool/")
        alice.wait_for_selector("body[data-live=open]")
        before = int(alice.text_content("#alert-count"))

        stella = login(browser, base, "stella")
        stella.goto(f"{base}/admin/resync/district/state-tool/")
        stella.check('input[name=districts][value="101"]')
        stella.select_option("#state-objects", ["District"])
        stella.on("dialog", lambda dialog: dialog.accept())
        stella.click("#send-state")
        stella.wait_for_selector(".messagelist .success")

        alice.wait_for_function(f"Number(document.getElementById('alert-count').textContent) > {before}")
        alice.screenshot(path=str(ARTIFACTS / "district-alert-counter.png"), full_page=True)
        stella.screenshot(path=str(ARTIFACTS / "state-tool-sent.png"), full_page=True)
        assert int(alice.text_content("#alert-count")) == before + 1


def test_it_turns_the_state_tools_outcome_gray_then_green_without_a_reload(browser, cast, queue):
    chain(cast.district)
    with serve() as base:
        stella = login(browser, base, "stella")
        stella.goto(f"{base}/admin/resync/district/state-tool/")
        stella.wait_for_selector("body[data-live=open]")
        stella.evaluate("window.marker = 'no reload'")
        stella.evaluate(WATCH_OUTCOME, cast.district.pk)
        row = f'#districts tr[data-district="{cast.district.pk}"]'
        assert stella.text_content(f"{row} .status").strip() == ""

        # Another tab (another state administrator) sends; this page only listens.
        sender = stella.context.new_page()
        sender.goto(f"{base}/admin/resync/district/state-tool/")
        sender.check('input[name=districts][value="101"]')
        asked = []
        sender.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        sender.click("#send-state")  # no object chosen: said at once, nothing asked
        assert sender.text_content("#state-send-result") == "Choose objects, or tick Full resync."
        sender.select_option("#state-objects", ["District", "School"])
        sender.click("#send-state")
        sender.wait_for_selector(".messagelist .success")
        assert asked == [
            "Send a state resync request of District, School to 1 district (101)? They cannot stop it."
        ]

        stella.wait_for_selector(f"{row} .status .status-green", timeout=30000)
        stella.screenshot(path=str(ARTIFACTS / "state-tool-green.png"), full_page=True)
        outcomes = stella.evaluate("window.outcomes")
        assert "gray" in outcomes and outcomes[-1] == "green", outcomes
        assert outcomes.index("gray") < outcomes.index("green")
        assert stella.text_content(f"{row} .outcome") == "Green"
        assert stella.text_content(f"{row} .request-status") == "Finished"
        assert stella.text_content(f'#districts tr[data-district="{cast.other.pk}"] .status').strip() == ""
        assert stella.evaluate("window.marker") == "no reload"


def test_it_follows_a_verifications_progress_without_a_reload(browser, tool_cast, queue):
    from resync.models import SyncObject
    from verification import actions as verify
    from verification.models import DISVerificationResult, VerificationRun

    # Finished already, so the server's worker has nothing of it to run or recover;
    # the test then sends the pushes a worker sends as it goes.
    run = VerificationRun.objects.create(
        district=tool_cast.district,
        school_year=2027,
        sync_objects=["District", "School"],
        requested_by=tool_cast.alice,
        status="finished",
        objects_done=2,
        records_compared=2,
    )

    def off_this_thread(work) -> None:
        def run_it() -> None:
            work()
            connections.close_all()  # on_commit's autocommit check connected this thread

        # Playwright's event loop runs here, and async_to_sync refuses one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(run_it).result()

    def push(status: str, done: int) -> None:
        run.status, run.objects_done, run.records_compared = status, done, done
        off_this_thread(lambda: verify.push_run(run))

    def finish() -> None:
        # The end as a worker ends a run: its results, then do_finish_run's push with the totals.
        DISVerificationResult.objects.create(
            run=run, sync_object=SyncObject.objects.get(name="School"), only_district=3, not_allowed=1
        )
        run.objects_done = run.records_compared = 2
        verify.do_finish_run(run)

    with serve() as base:
        alice = login(browser, base, "alice")
        alice.goto(f"{base}/admin/verification/verificationrun/{run.pk}/change/")
        listing = alice.context.new_page()
        listing.goto(f"{base}/admin/verification/verificationrun/")
        for page in (alice, listing):
            page.wait_for_selector("body[data-live=open]")
            page.evaluate("window.marker = 'no reload'")
        assert alice.text_content(".field-progress .readonly") == "2/2 objects, 2 records"

        push("running", 1)  # through the real channel layer and daphne
        alice.wait_for_function(
            "document.querySelector('.field-progress .readonly').textContent === '1/2 objects, 1 records'"
        )
        assert alice.text_content(".field-status .readonly") == "Running"
        assert listing.text_content("#result_list td.field-status") == "Running"
        assert listing.text_content("#result_list td.field-progress") == "1/2 objects, 1 records"
        assert listing.text_content("#result_list td.field-to_resync") == "0"
        assert alice.query_selector("#verification-ended") is None

        off_this_thread(finish)
        alice.wait_for_selector("#verification-ended")
        alice.screenshot(path=str(ARTIFACTS / "verification-live.png"), full_page=True)
        assert alice.text_content(".field-status .readonly") == "Finished"
        assert "Show its results" in alice.text_content("#verification-ended")
        listing.wait_for_function(
            "document.querySelector('#result_list td.field-status').textContent === 'Finished'"
        )
        assert listing.text_content("#result_list td.field-to_resync") == "3"
        assert listing.text_content("#result_list td.field-not_allowed") == "1"
        for page in (alice, listing):
            assert page.evaluate("window.marker") == "no reload"


# Keeps every page socket at hand, and while window.holdSockets is set points new ones
# at a closed port: the page stays disconnected (and retrying) until the test lets go.
HOLD_SOCKETS = """
window.sockets = [];
const RealSocket = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const socket = new RealSocket(window.holdSockets ? "ws://127.0.0.1:9/held" : url, protocols);
  window.sockets.push(socket);
  return socket;
};
window.WebSocket.prototype = RealSocket.prototype;
"""


def test_it_catches_up_on_what_it_missed_while_its_socket_was_down(browser, cast, queue):
    import time

    from resync.models import ResyncRequest
    from tool import actions

    chain(cast.district)
    with serve() as base:
        page = login(browser, base, "alice")
        page.add_init_script(HOLD_SOCKETS)
        page.goto(f"{base}/admin/resync/district/101/tool/")
        page.wait_for_selector("body[data-live=open][data-resynced='1']")  # the first open fetched too
        assert page.locator('tr[data-object="School"] .status-dot:not(.status-none)').count() == 0
        page.evaluate("window.holdSockets = true; window.sockets[0].close()")
        page.wait_for_selector("body[data-live=closed]")

        # A resync runs from start to end while the page hears nothing.
        request = actions.do_request_resync(
            actions.check_resync(cast.district, None, ["School"], True, user=cast.alice)
        )
        deadline = time.monotonic() + 60
        while ResyncRequest.objects.get(pk=request.pk).status != ResyncRequest.Status.FINISHED:
            assert time.monotonic() < deadline, "the worker never finished the resync"
            time.sleep(0.2)
        # It missed the pushes: still no status.
        assert page.locator('tr[data-object="School"] .status-dot:not(.status-none)').count() == 0

        page.evaluate("window.holdSockets = false")
        page.wait_for_selector("body[data-live=open][data-resynced='2']", timeout=60000)
        for name in ("District", "School"):
            assert page.get_attribute(f'tr[data-object="{name}"] .status-dot', "class") == (
                "status-dot status-green"
            )
        assert page.text_content('tr[data-object="School"] .processed') == "1"
        page.screenshot(path=str(ARTIFACTS / "district-tool-caught-up.png"), full_page=True)


def test_it_catches_the_state_tool_up_on_a_request_it_missed(browser, cast, queue):
    import time

    from resync.models import ResyncRequest
    from tool import actions

    chain(cast.district)
    with serve() as base:
        stella = login(browser, base, "stella")
        stella.add_init_script(HOLD_SOCKETS)
        stella.goto(f"{base}/admin/resync/district/state-tool/")
        stella.wait_for_selector("body[data-live=open][data-resynced='1']")
        row = f'#districts tr[data-district="{cast.district.pk}"]'
        assert stella.text_content(f"{row} .status").strip() == ""
        stella.evaluate("window.holdSockets = true; window.sockets[0].close()")
        stella.wait_for_selector("body[data-live=closed]")

        request = actions.do_request_resync(
            actions.check_resync(cast.district, None, ["District"], False, user=cast.stella, level="state")
        )
        deadline = time.monotonic() + 60
        while ResyncRequest.objects.get(pk=request.pk).status != ResyncRequest.Status.FINISHED:
            assert time.monotonic() < deadline, "the worker never finished the resync"
            time.sleep(0.2)
        assert stella.text_content(f"{row} .status").strip() == ""  # it missed the pushes

        stella.evaluate("window.holdSockets = false")
        stella.wait_for_selector("body[data-live=open][data-resynced='2']", timeout=60000)
        assert stella.text_content(f"{row} .outcome") == "Green"
        assert stella.text_content(f"{row} .request-status") == "Finished"
        assert stella.text_content(f"{row} .request-id") == str(request.pk)
        assert stella.text_content(f'#districts tr[data-district="{cast.other.pk}"] .status').strip() == ""
