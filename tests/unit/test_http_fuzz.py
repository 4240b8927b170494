"""Fuzzing the HTTP door from its own OpenAPI schema with schemathesis (issue 10).

Every operation the schema declares is called with generated requests (valid and invalid bodies,
paths, queries), with the admin key so authenticated routes are reached, against the real app over
a loopback port on fake stages. The checks: no 5xx, every response conforms to what the schema
declares (status code, content type, body: every 4xx is the documented `ErrorBody`,
`{error, errorCode, requestId}`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures import fake_stages
from tests.fixtures.http_door import ADMIN_KEY, ServedDoor, auth, door_settings, served_http_door

MAX_EXAMPLES = 20  # per operation


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDoor]:
    delay, fake_stages.DELAY = fake_stages.DELAY, 0.01
    s = door_settings(tmp_path_factory.mktemp("http-fuzz"), auth="required", rate_limit="1000000/minute",
                      rate_limit_per_user="1000000/minute")
    try:
        with served_http_door(s) as served:
            yield served
    finally:
        fake_stages.DELAY = delay


@pytest.fixture
def api_schema(served: ServedDoor) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(served.app.openapi())


schema = schemathesis.pytest.from_fixture("api_schema")
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema_and_never_5xx(case: schemathesis.Case, served: ServedDoor) -> None:
    case.call_and_validate(base_url=served.base_url, headers=auth(ADMIN_KEY), checks=CHECKS, timeout=30)


def test_the_schema_documents_the_error_body_on_every_operation(served: ServedDoor) -> None:
    spec = served.app.openapi()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert "4XX" in op["responses"], f"{method.upper()} {path}: no documented 4XX body"
    error = spec["components"]["schemas"]["ErrorBody"]
    assert {"error", "errorCode"} <= set(error["required"])

