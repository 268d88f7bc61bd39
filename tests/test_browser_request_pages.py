"""Issue 14, items 4, 10 and 11 in a real browser (chromium, Playwright): a district
administrator cancels a waiting request through its confirmation, reads a verification's
different record side by side, and a state administrator ticks every district and every
object at once. Any JavaScript error on these pages fails the test; screenshots are kept."""

import subprocess
import sys
from contextlib import contextmanager

import pytest

from resync.models import DistrictRecord, ResyncRequest
from statesync.env import child_env
from tool import actions
from verification import actions as verify

from .conftest import BOTH, chain, run_queue
from .servers import ARTIFACTS, ROOT, free_port, wait_for_port
from .test_browser import browser, login  # noqa: F401 (the fixture; it skips without chromium)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases=BOTH)]


@contextmanager
def web_only():
    """daphne without a worker: a waiting request stays waiting while the page is read."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / f"daphne-{port}.log", "w") as log:
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "statesync.asgi:application",
            ],
            cwd=ROOT,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, web, f"daphne did not start; see {log.name}")
            yield f"http://127.0.0.1:{port}"
        finally:
            web.terminate()
            try:
                web.wait(10)
            except subprocess.TimeoutExpired:
                web.kill()


def watched(page) -> list[str]:
    """The page's JavaScript errors (console errors and uncaught exceptions), as they come."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_it_cancels_compares_and_selects_all_in_the_browser(browser, tool_cast, queue):  # noqa: F811
    district = tool_cast.district
    chain(district)
    actions.do_request_resync(actions.check_resync(district, None, None, False))
    run_queue()
    school = DistrictRecord.objects.get(district=district, sync_object__name="School")
    school.payload = {"name": "Adair Senior High", "number": "002"}
    school.save()
    run = verify.do_request_verification(
        verify.check_verification(district, None, ["School"], tool_cast.alice)
    )
    run_queue()
    running = actions.do_request_resync(
        actions.check_resync(district, None, ["District"], False, tool_cast.alice)
    )
    waiting = actions.do_request_resync(
        actions.check_resync(district, None, ["PersonIdentity"], False, tool_cast.alice)
    )
    statuses = dict(ResyncRequest.objects.filter(pk__in=[running.pk, waiting.pk]).values_list("pk", "status"))
    assert statuses == {running.pk: "running", waiting.pk: "waiting"}

    with web_only() as base:
        page = login(browser, base, "alice")
        errors = watched(page)
        page.goto(f"{base}/admin/resync/resyncrequest/{waiting.pk}/change/")
        page.click("#cancel-request")
        assert "none of its 1 step will run (PersonIdentity)" in page.text_content("#content")
        page.screenshot(path=str(ARTIFACTS / "request-cancel-confirm.png"), full_page=True)
        page.click("#confirm-cancel")
        page.wait_for_selector(".messagelist .success")
        assert "by alice at" in page.text_content(".field-cancelled")
        page.screenshot(path=str(ARTIFACTS / "request-cancelled.png"), full_page=True)

        page.goto(f"{base}/admin/verification/verificationrun/{run.pk}/change/")
        assert "1 record to resync" in page.text_content("#verification-summary")
        cells = page.locator('#side-by-side tr.differs:has(th:text-is("name")) td').all_text_contents()
        assert cells == ["Adair Senior High", "—"]
        page.screenshot(path=str(ARTIFACTS / "verification-side-by-side.png"), full_page=True)

        state = login(browser, base, "stella")
        errors += watched(state)
        state.goto(f"{base}/admin/resync/district/state-tool/")
        state.check("#all-districts")
        ticked = state.locator('#districts input[name="districts"]:checked').count()
        assert ticked == state.locator('#districts input[name="districts"]').count() == 2
        state.click("#all-objects")
        chosen = state.eval_on_selector("#state-objects", "s => s.selectedOptions.length")
        assert chosen == state.locator("#state-objects option").count() > 10
        state.click("#no-objects")
        assert state.eval_on_selector("#state-objects", "s => s.selectedOptions.length") == 0
        state.select_option("#state-year", "2028")
        state.screenshot(path=str(ARTIFACTS / "state-tool-select-all.png"), full_page=True)

        bob = login(browser, base, "bob")  # the tool right for Enrollment and PersonIdentity only
        errors += watched(bob)
        bob.goto(f"{base}/admin/resync/district/101/tool/")
        assert bob.is_disabled("#select-all")
        assert "Check Dependencies is off for you" in bob.text_content("#rights-explain")
        assert not bob.is_checked("#check-dependencies")
        bob.screenshot(path=str(ARTIFACTS / "tool-single-object-user.png"), full_page=True)
    assert errors == []
    waiting.refresh_from_db()
    assert waiting.status == ResyncRequest.Status.CANCELLED
