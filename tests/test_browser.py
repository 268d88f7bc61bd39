"""The tool in a real browser: Debian's chromium driven by Playwright against daphne and a worker."""

import os
from pathlib import Path

import pytest

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


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own
    # ORM calls are plain synchronous ones, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


def login(browser, base: str, username: str):
    page = browser.new_context().new_page()
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page


def test_it_turns_the_dots_gray_then_green_without_a_reload(browser, cast, queue):
    chain(cast.a)
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
        assert seen["Enrollment"] == []  # not sent, untouched
        assert page.evaluate("window.marker") == "no reload"
        assert page.text_content('tr[data-object="School"] .processed') == "1"


def test_it_raises_the_alert_counter_in_an_open_district_page(browser, cast, queue):
    chain(cast.a)
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
