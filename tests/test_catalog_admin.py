import pytest

from resync.models import SyncObject


@pytest.mark.django_db
def test_it_shows_parents_in_order_and_children_alphabetically(client, superuser):
    client.force_login(superuser)
    enrollment = SyncObject.objects.get(name="Enrollment")
    html = client.get(f"/admin/resync/syncobject/{enrollment.pk}/change/").content.decode()
    assert "District, School, Calendar, ScheduleStructure, <b>PersonIdentity*</b>" in html
    assert "<b>AttendanceBIEAbsentDays*</b>, <b>AttendanceExactCount*</b>" in html
    assert "<b>TeamMember*</b>" in html


@pytest.mark.django_db
def test_it_lists_the_catalog_in_constant_queries(client, superuser, django_assert_max_num_queries):
    client.force_login(superuser)
    with django_assert_max_num_queries(8):
        response = client.get("/admin/resync/syncobject/")
    assert response.status_code == 200
    assert response.content.decode().count('class="field-name"') == SyncObject.objects.count()


@pytest.mark.django_db
def test_it_refuses_the_catalog_to_an_outsider(client):
    response = client.get("/admin/resync/syncobject/")
    assert response.status_code == 302 and "/login/" in response["Location"]
