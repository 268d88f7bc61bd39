"""The admin's upload: a file saved, checked by a real RQ worker (a dry run: preview and
verdict), confirmed, loaded by a second job; through the admin's URLs, for the cast."""

import csv
import io

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from loads import jobs
from loads.models import Load, Upload
from resync import groups
from resync.models import DistrictRecord, SyncField, SyncObject

from .conftest import COMMITTED, add, run_queue

# Committed: the jobs run on a worker (run_queue), and RQ enqueues a job when its transaction commits.
pytestmark = COMMITTED

UPLOADS = "/admin/loads/upload/"
LOADS = "/admin/loads/load/"
NEW = UPLOADS + "new/101/"

SCHOOLS_CSV = (
    "record_id,parent:District,name,opened,state_number\n"
    "1,1,Adair High,2001-08-15,KY-1\n"
    "2,1,Adair Middle,,KY-2\n"
    '3,1,"Adair Elementary, North",1999-08-20,\n'
    "4,1,Adair Primary,2010-08-10,KY-4\n"
)
BAD_ROW = "5,1,Adair Annex,not-a-date,KY-5\n"


@pytest.fixture
def loaders(cast, queue, settings, tmp_path):
    """The cast, with district data W for the State Administrators (loads 0002; cast
    gives the groups their base rights only), alice and charlie; bob has none. School's
    schema of its own, the District record the schools hang under, uploads in tmp_path."""
    settings.UPLOAD_DIR = tmp_path / "uploads"
    groups.grant(Group, Permission, {groups.STATE_ADMINS: groups.LOAD_STATE_PERMS})
    load_right = Permission.objects.get(codename="load_district_data")
    cast.alice.user_permissions.add(load_right)
    cast.charlie.user_permissions.add(load_right)
    school = SyncObject.objects.get(name="School")
    SyncField.objects.filter(sync_object=school).delete()
    for name, kind, extra in [
        ("name", SyncField.Type.STRING, {"required": True, "max_length": 40}),
        ("opened", SyncField.Type.DATE, {}),
        ("state_number", SyncField.Type.STRING, {"owner": SyncField.Owner.STATE}),
    ]:
        SyncField.objects.create(sync_object=school, name=name, type=kind, **extra)
    add(cast.district, "District", 1)
    return cast


def upload(client, user, text: str, name="schools.csv", url=NEW, **fields):
    client.force_login(user)
    data = {"object": "School", "year": "", "file": SimpleUploadedFile(name, text.encode()), **fields}
    return client.post(url, data)


def uploaded(client, user, text: str, **fields) -> Upload:
    """Upload `text` as `user`, run the check and give the upload as it stands."""
    response = upload(client, user, text, **fields)
    got = Upload.objects.latest("id")
    assert response.status_code == 302 and response["Location"] == f"{UPLOADS}{got.pk}/change/"
    run_queue()
    got.refresh_from_db()
    return got


def schools(district) -> list[int]:
    return sorted(
        DistrictRecord.objects.filter(district=district, sync_object__name="School").values_list(
            "record_id", flat=True
        )
    )


def test_it_checks_previews_and_loads_an_upload_once_confirmed(client, loaders, settings):
    response = upload(client, loaders.alice, SCHOOLS_CSV)
    up = Upload.objects.get()
    assert (up.status, up.uploaded_by, up.name) == (Upload.Status.CHECKING, loaders.alice, "schools.csv")
    assert up.file.path.startswith(str(settings.UPLOAD_DIR) + "/")
    page = client.get(response["Location"])
    assert b"Checking the file: nothing is written yet." in page.content and b"upload-poll" in page.content
    assert client.get(f"{UPLOADS}{up.pk}/progress/").json() == {
        "status": "checking",
        "progress": 0,
        "running": True,
    }

    run_queue()
    up.refresh_from_db()
    assert up.status == Upload.Status.CHECKED and up.progress == 4
    assert up.verdict["counts"] == {
        "read": 4,
        "inserted": 4,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "rejected": 0,
    }
    assert schools(loaders.district) == [] and Load.objects.count() == 0  # a dry run keeps nothing
    page = client.get(f"{UPLOADS}{up.pk}/change/").content.decode()
    assert "Adair Elementary, North" in page and "<th>state_number</th>" in page
    assert 'id="upload-confirm"' in page and "upload-poll" not in page
    assert client.get(f"{UPLOADS}{up.pk}/progress/").json() == {
        "status": "checked",
        "progress": 4,
        "running": False,
    }

    assert client.post(f"{UPLOADS}{up.pk}/confirm/").status_code == 302
    assert Upload.objects.get().status == Upload.Status.LOADING
    assert client.post(f"{UPLOADS}{up.pk}/confirm/").status_code == 302  # a second confirm: refused
    run_queue()
    up.refresh_from_db()
    assert up.status == Upload.Status.LOADED and schools(loaders.district) == [1, 2, 3, 4]
    load = Load.objects.get()
    assert (up.load, load.loaded_by, load.inserted, load.sync_object.name) == (
        load,
        loaders.alice,
        4,
        "School",
    )
    page = client.get(f"{UPLOADS}{up.pk}/change/").content.decode()
    assert f'href="{LOADS}{load.pk}/change/"' in page and 'id="upload-confirm"' not in page
    assert b"Adair County" in client.get(f"{LOADS}{load.pk}/change/").content  # read-only history
    client.force_login(loaders.charlie)
    assert client.get(f"{LOADS}{load.pk}/change/").status_code == 404  # another district's
    assert client.get(f"{LOADS}{load.pk}/delete/").status_code in (403, 404)


def test_it_refuses_a_file_with_a_bad_row_and_cannot_confirm_it(client, loaders):
    up = uploaded(client, loaders.alice, SCHOOLS_CSV + BAD_ROW)
    assert up.status == Upload.Status.REFUSED
    assert up.verdict["problems"] == [
        {"line": 6, "record_id": 5, "field": "opened", "message": up.verdict["problems"][0]["message"]}
    ]
    page = client.get(f"{UPLOADS}{up.pk}/change/").content.decode()
    assert "<td>6</td><td>5</td><td>opened</td>" in page and 'id="upload-confirm"' not in page
    response = client.post(f"{UPLOADS}{up.pk}/confirm/", follow=True)
    assert b"only a checked upload is loaded" in response.content
    run_queue()
    assert Upload.objects.get().status == Upload.Status.REFUSED and schools(loaders.district) == []


def test_it_loads_the_valid_rows_with_skip_invalid_and_gives_the_refused_ones(client, loaders):
    up = uploaded(client, loaders.alice, SCHOOLS_CSV + BAD_ROW + "6,1,=HYPERLINK(1),,\n", skip_invalid="on")
    assert up.status == Upload.Status.CHECKED and up.verdict["counts"]["rejected"] == 1
    assert client.post(f"{UPLOADS}{up.pk}/confirm/").status_code == 302
    run_queue()
    up.refresh_from_db()
    assert up.status == Upload.Status.LOADED and schools(loaders.district) == [1, 2, 3, 4, 6]
    report = client.get(f"{UPLOADS}{up.pk}/report/")
    assert report.status_code == 200 and report["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode())))
    assert rows[0] == ["line", "record_id", "field", "reason", "row"]
    assert [r[:3] for r in rows[1:]] == [["6", "5", "opened"]]
    # The load's own rows are typed: a formula-like name loads as text, unchanged.
    assert (
        DistrictRecord.objects.get(record_id=6, sync_object__name="School").payload["name"] == "=HYPERLINK(1)"
    )


def test_it_writes_the_refused_rows_report_safe_for_a_spreadsheet(client, loaders):
    # A column named like a formula is an unknown field: the report names it, quoted.
    text = "record_id,parent:District,name,@SUM(A1)\n7,1,Adair Annex,-3\n"
    up = uploaded(client, loaders.alice, text, skip_invalid="on")
    rows = list(csv.reader(jobs.report_path(up).open()))
    line, record, field, reason, row = rows[1]
    assert (line, record, field) == ("2", "7", "'@SUM(A1)")  # line and id: numbers, as numbers
    assert row.startswith("{") and '"@SUM(A1)": "-3"' in row  # the row as JSON: never a formula
    assert reason and not reason.startswith(("=", "+", "-", "@"))


def test_it_deletes_what_a_snapshot_upload_leaves_out(client, loaders):
    up = uploaded(client, loaders.alice, SCHOOLS_CSV)
    client.post(f"{UPLOADS}{up.pk}/confirm/")
    run_queue()
    kept = "\n".join(line for line in SCHOOLS_CSV.splitlines() if not line.startswith(("2,", "4,"))) + "\n"
    up = uploaded(client, loaders.alice, kept, snapshot="on")
    assert up.verdict["counts"] == {
        "read": 2,
        "inserted": 0,
        "updated": 0,
        "unchanged": 2,
        "deleted": 2,
        "rejected": 0,
    }
    assert schools(loaders.district) == [1, 2, 3, 4]  # the check deleted nothing
    client.post(f"{UPLOADS}{up.pk}/confirm/")
    run_queue()
    assert schools(loaders.district) == [1, 3] and Load.objects.latest("id").deleted == 2


def test_it_loads_the_file_as_it_is_when_confirmed(client, loaders):
    # The real load validates again: a file changed on disk since its check is refused whole.
    up = uploaded(client, loaders.alice, SCHOOLS_CSV)
    with open(up.file.path, "a") as f:
        f.write(BAD_ROW)
    client.post(f"{UPLOADS}{up.pk}/confirm/")
    run_queue()
    up.refresh_from_db()
    assert up.status == Upload.Status.REFUSED and up.verdict["problems"][0]["line"] == 6
    assert schools(loaders.district) == [] and Load.objects.count() == 0


def test_it_fails_a_job_whose_uploader_lost_the_right_meanwhile(client, loaders):
    upload(client, loaders.alice, SCHOOLS_CSV)
    loaders.alice.user_permissions.clear()
    run_queue()
    up = Upload.objects.get()
    assert up.status == Upload.Status.FAILED and "district data W" in up.error
    assert schools(loaders.district) == []


def test_it_fails_an_upload_whose_job_was_lost_instead_of_showing_it_running(client, loaders, queue):
    upload(client, loaders.alice, SCHOOLS_CSV)
    up = Upload.objects.get()
    assert client.get(f"{UPLOADS}{up.pk}/progress/").json()["running"]  # queued: not lost
    queue.empty()  # Redis lost the job
    assert client.get(f"{UPLOADS}{up.pk}/progress/").json() == {
        "status": "failed",
        "progress": 0,
        "running": False,
    }
    page = client.get(f"{UPLOADS}{up.pk}/change/").content.decode()
    assert "Its job was lost" in page and "upload-poll" not in page


def test_it_names_what_the_form_refuses(client, loaders):
    response = upload(client, loaders.alice, SCHOOLS_CSV, name="schools.txt")
    assert response.status_code == 200 and b"Cannot tell the format of schools.txt" in response.content
    response = upload(client, loaders.alice, SCHOOLS_CSV, year="2027")
    assert b"School is not tied to a school year" in response.content
    response = upload(client, loaders.alice, SCHOOLS_CSV, object="Nothing")
    assert b"Select a valid choice" in response.content
    assert Upload.objects.count() == 0


def test_it_reports_progress_of_a_running_job_in_its_meta(client, loaders):
    rows = "".join(f"{i},1,School {i},,\n" for i in range(10, 2510))
    up = uploaded(client, loaders.alice, "record_id,parent:District,name,opened,state_number\n" + rows)
    assert up.status == Upload.Status.CHECKED and up.progress == 2500
    job = jobs.queue().fetch_job(jobs.job_id(up.pk, "check"))
    assert 0 < job.meta["progress"] <= 2500  # what the page polls while the check runs


def test_it_shows_the_upload_doors_to_the_right_people_only(client, loaders):
    up = uploaded(client, loaders.alice, SCHOOLS_CSV)
    doors = [
        ("get", NEW),
        ("post", NEW),
        ("get", f"{UPLOADS}{up.pk}/change/"),
        ("get", f"{UPLOADS}{up.pk}/progress/"),
        ("post", f"{UPLOADS}{up.pk}/confirm/"),
    ]
    expected = {"bob": 403, "charlie": 404}  # bob: the district, not data W; charlie: another district
    for name, status in expected.items():
        client.force_login(getattr(loaders, name))
        for method, url in doors:
            data = {"object": "School", "file": SimpleUploadedFile("s.csv", SCHOOLS_CSV.encode())}
            assert getattr(client, method)(url, data if method == "post" else None).status_code == status, (
                name,
                url,
            )
    client.logout()
    for method, url in doors:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Upload.objects.count() == 1 and Upload.objects.get().status == Upload.Status.CHECKED
    # Charlie's own district's form is his; stella's is every district's.
    client.force_login(loaders.charlie)
    assert client.get(UPLOADS + "new/202/").status_code == 200
    assert client.get(UPLOADS).content.count(b"schools.csv") == 0  # not his district's upload
    client.force_login(loaders.stella)
    assert client.get(f"{UPLOADS}{up.pk}/change/").status_code == 200


def test_it_links_the_upload_form_from_the_district_list(client, loaders):
    client.force_login(loaders.alice)
    assert f'href="{NEW}"'.encode() in client.get("/admin/resync/district/").content
    form = client.get(NEW).content.decode()
    assert 'enctype="multipart/form-data"' in form and '<option value="School">' in form


@pytest.mark.parametrize("url", [UPLOADS, LOADS])
def test_it_lists_uploads_and_loads_in_constant_queries(client, loaders, url, django_assert_max_num_queries):
    def one_more(user):
        up = uploaded(client, user, SCHOOLS_CSV)
        client.post(f"{UPLOADS}{up.pk}/confirm/")
        run_queue()

    one_more(loaders.alice)
    client.force_login(loaders.alice)
    connection.queries_log.clear()
    with django_assert_max_num_queries(30) as few:
        assert client.get(url).status_code == 200
    baseline = len(few.captured_queries)
    for user in (loaders.alice, loaders.stella, loaders.alice):
        one_more(user)
    assert Load.objects.count() == 4
    client.force_login(loaders.alice)
    connection.queries_log.clear()
    with django_assert_max_num_queries(baseline):
        page = client.get(url)
    assert page.status_code == 200 and page.content.count(b"School") >= 4


def test_it_shows_the_upload_page_in_constant_queries(client, loaders, django_assert_max_num_queries):
    up = uploaded(client, loaders.alice, SCHOOLS_CSV + BAD_ROW)
    with django_assert_max_num_queries(12):
        assert client.get(f"{UPLOADS}{up.pk}/change/").status_code == 200
