"""The admin's upload in a real browser: chromium (Playwright) against daphne and a worker,
which share UPLOAD_DIR (both under this run's DATA_DIR), as web and workers must."""

import pytest
from django.contrib.auth.models import Permission

from loads.models import Upload
from resync.models import DistrictRecord

from .conftest import add
from .servers import ARTIFACTS, serve
from .test_browser import browser, login  # noqa: F401 (the fixture; it skips without chromium)

pytestmark = pytest.mark.browser

SCHOOLS = "record_id,parent:District,name,number\n1,1,Adair High,001\n2,1,Adair Middle,002\n"


@pytest.mark.django_db(transaction=True, databases=["default", "state"])
def test_it_follows_the_check_then_loads_once_confirmed_without_a_shell(browser, cast, queue, tmp_path):  # noqa: F811
    cast.alice.user_permissions.add(Permission.objects.get(codename="load_district_data"))
    add(cast.district, "District", 1)
    file = tmp_path / "schools.csv"
    file.write_text(SCHOOLS)
    with serve() as base:
        page = login(browser, base, "alice")
        page.goto(f"{base}/admin/resync/district/")
        page.click("text=Upload records")
        page.select_option("#id_object", "School")
        page.set_input_files("#id_file", str(file))
        page.click("input[type=submit]")
        # The page polls while the worker checks, then shows the verdict and the preview.
        page.wait_for_selector("#upload-confirm", timeout=30000)
        assert page.text_content("#upload-status") == "Checked"
        assert "Adair Middle" in page.text_content("#upload-preview")
        assert DistrictRecord.objects.filter(sync_object__name="School").count() == 0
        page.click("#upload-confirm input[type=submit]")
        page.wait_for_selector("#upload-load", timeout=30000)
        page.screenshot(path=str(ARTIFACTS / "upload-loaded.png"), full_page=True)
    assert Upload.objects.get().status == Upload.Status.LOADED
    assert sorted(
        DistrictRecord.objects.filter(sync_object__name="School").values_list("record_id", flat=True)
    ) == [1, 2]
