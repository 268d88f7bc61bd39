"""The OpenAPI schema the app serves, its doc pages, and schemathesis fuzzing the API from it."""

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from alerts.models import ProcessAlert
from statesync.wsgi import application

from .conftest import BOTH, COMMITTED, chain
from .test_api_resync import post

pytestmark = pytest.mark.django_db(databases=BOTH)
# COMMITTED: the fuzzing test, which calls the WSGI application itself: its request_started
# closes the test's connection, as around every real request.


def served_schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


# The operations this suite's API modules serve (other apps may add theirs).
OURS = {
    "GET /api/v1/sync-objects/",
    "GET /api/v1/sync-objects/{name}/",
    "GET /api/v1/districts/",
    "GET /api/v1/districts/{code}/",
    "GET /api/v1/districts/{code}/plan/",
    "GET /api/v1/requests/",
    "POST /api/v1/requests/",
    "GET /api/v1/requests/{id}/",
    "GET /api/v1/state-requests/",
    "POST /api/v1/state-requests/",
    "GET /api/v1/history/",
    "GET /api/v1/history/{id}/",
    "GET /api/v1/error-log/",
    "GET /api/v1/error-log/export/",
    "GET /api/v1/alerts/",
    "POST /api/v1/alerts/{id}/read/",
    "POST /api/v1/alerts/read/",
}


def test_it_serves_a_valid_schema_with_every_endpoints_errors(client, db):
    schema = served_schema(client)
    validate_schema(schema)
    operations = {
        (method.upper(), path): op
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert {f"{m} {p}" for m, p in operations} >= OURS
    for (method, path), op in operations.items():
        codes = set(op["responses"])
        assert "401" in codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if method == "POST" and "read" not in path:
            assert {"400", "403"} <= codes, (method, path)
        for code in codes - {"200", "201"}:
            assert op["responses"][code]["description"], (method, path, code)
    plan = operations["GET", "/api/v1/districts/{code}/plan/"]["responses"]
    assert {"400", "401", "403", "404"} <= set(plan)
    assert schema["components"]["securitySchemes"]["tokenAuth"]["type"] == "apiKey"


@pytest.mark.parametrize(
    "page, asset",
    [("docs", "swagger-ui-dist/swagger-ui-bundle.js"), ("redoc", "redoc/bundles/redoc.standalone.js")],
)
def test_it_serves_the_doc_pages_from_its_own_static_files(client, db, page, asset):
    html = client.get(f"/api/{page}/").content.decode()
    assert f"/static/drf_spectacular_sidecar/{asset}" in html
    assert "cdn" not in html.lower()  # the browser here reaches no CDN
    assert finders.find(f"drf_spectacular_sidecar/{asset}")


class StateAdminToken:
    """Every fuzzed request carries the state admin's token; schemathesis also
    probes each operation without it and with a bad one, expecting 401."""

    def get(self, case, ctx) -> str:
        return Token.objects.get_or_create(user=User.objects.get(username="stella"))[0].key

    def set(self, case, key: str, ctx) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Token {key}"}


# Values that name real rows, so part of the fuzzing gets past "no such district"
# into the code behind it; OMIT leaves the parameter out.
OMIT = object()
WORDS = {
    "district": ["101", "202", OMIT],
    "object": ["School", "Enrollment", OMIT],
    "objects": [OMIT, ["Enrollment"], ["District", "School"]],
    "year": [OMIT, 2027, 2028],
    "school_year": [2027, OMIT],
    "all": [True, False, OMIT],
    "check_dependencies": [True, False],
    "reason": ["parent_missing", OMIT],
    "unread": [True, False],
}
BODIES = {
    "/api/v1/requests/": [
        {"district": "101", "objects": ["Enrollment"], "check_dependencies": True},
        {"district": "101", "all": True, "year": 2028},
        {"district": "202", "objects": ["District", "School"]},
    ],
    "/api/v1/state-requests/": [
        {"districts": ["101", "202"], "objects": ["District"], "check_dependencies": True},
        {"districts": ["202"], "all": True},
    ],
}


def on_real_rows(operation, path_parameters: dict, auth):
    """Cases whose path names real rows and whose query and body draw on WORDS and BODIES."""
    names = [p.name for p in operation.query if p.name in WORDS]
    queries = st.fixed_dictionaries({n: st.sampled_from(WORDS[n]) for n in names}).map(
        lambda q: {k: v for k, v in q.items() if v is not OMIT}
    )
    bodies = st.sampled_from(BODIES.get(operation.path, [None]))
    return st.tuples(queries, bodies).flatmap(
        lambda qb: operation.as_strategy(
            path_parameters=path_parameters or None,
            query=qb[0] or None,
            **({"body": qb[1], "media_type": "application/json"} if qb[1] else {}),
            auth_storage=auth,
        )
    )


FUZZ = settings(
    max_examples=8,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    derandomize=True,  # the same examples every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
)


@COMMITTED
def test_it_never_fails_and_always_answers_as_its_schema_says(cast, queue):
    """Schemathesis fuzzes every operation of the schema the app serves, in
    process through WSGI: random valid and invalid input, then input on rows
    that exist. No 500, and every answer (status, content type, body) is one
    the schema documents. One test, one database, a bounded number of cases."""
    chain(cast.district)
    client = Client()
    ours = post(client, cast.stella, "/api/v1/requests/", {"district": "101", "all": True}).json()
    post(client, cast.stella, "/api/v1/state-requests/", {"districts": ["202"], "all": True})
    real = {
        "code": "101",
        "name": "Enrollment",
        "id": ours["id"],
        "/api/v1/history/{id}/": ours["steps"][0]["id"],
        "/api/v1/alerts/{id}/read/": ProcessAlert.objects.filter(user=cast.stella).first().pk,
    }
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    schema.auth(refresh_interval=None)(StateAdminToken)  # a new database each test: a new token
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in operations} >= OURS

    def check(case):
        # Schema-valid input may still name a district or object that does not
        # exist: the API answers that with a 400 naming the field, on purpose.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    for operation in operations:
        modes = [operation.as_strategy(m, auth_storage=schema.auth) for m in GenerationMode]
        FUZZ(given(case=st.one_of(modes))(check))()
        if f"{operation.method.upper()} {operation.path}" in OURS:
            path = {p.name: real.get(operation.path, real[p.name]) for p in operation.path_parameters}
            FUZZ(given(case=on_real_rows(operation, path, schema.auth))(check))()
