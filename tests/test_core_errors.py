"""One HTTP contract: a refusal gets the same status at every door, and a failure
under /api/ is still the API's JSON."""

from unittest import mock

import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.test import Client
from rest_framework.exceptions import PermissionDenied, ValidationError

from alerts.admin import ProcessAlertAdmin
from alerts.api import AlertViewSet
from core.api import refusals_answered
from core.errors import ResyncError, RightsError, status_for

from .conftest import BOTH


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RightsError("You have no right to resync district 101."), 403),
        (DjangoPermissionDenied(), 403),
        (ResyncError("Unknown sync object(s): Nope."), 400),
        (Http404("No such district."), 404),
        (ObjectDoesNotExist(), 404),
        (RuntimeError("a bug"), 500),
    ],
)
def test_it_maps_each_refusal_to_one_status(error, status):
    assert status_for(error) == status


def test_it_answers_a_refusal_in_the_api_with_the_status_every_door_gives():
    with pytest.raises(PermissionDenied) as denied, refusals_answered():
        raise RightsError("Check Dependencies needs parents you may not resync: School.")
    assert denied.value.status_code == status_for(RightsError()) == 403
    assert str(denied.value.detail) == "Check Dependencies needs parents you may not resync: School."
    with pytest.raises(ValidationError) as refused, refusals_answered():
        raise ResyncError("Year 'x' is not a number.", "year")
    assert refused.value.status_code == status_for(ResyncError("")) == 400
    assert refused.value.detail == {"year": ["Year 'x' is not a number."]}


@pytest.fixture
def failing_client(cast) -> Client:
    """A client that gets the 500 page instead of the test re-raising the view's exception."""
    client = Client(raise_request_exception=False)
    client.force_login(cast.alice)
    return client


@pytest.mark.django_db(databases=BOTH)
def test_it_answers_a_failure_under_the_api_with_json(failing_client):
    with mock.patch.object(AlertViewSet, "list", side_effect=RuntimeError("a bug")):
        answer = failing_client.get("/api/v1/alerts/")
    assert answer.status_code == 500
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"detail": "Server error: StateSync failed to answer; it is logged."}
    assert "a bug" not in answer.content.decode()


@pytest.mark.django_db(databases=BOTH)
def test_it_answers_a_failure_elsewhere_with_the_html_page(failing_client):
    with mock.patch.object(ProcessAlertAdmin, "get_queryset", side_effect=RuntimeError("a bug")):
        answer = failing_client.get("/admin/alerts/processalert/")
    assert answer.status_code == 500
    assert answer["Content-Type"].startswith("text/html")
    assert "a bug" not in answer.content.decode()
