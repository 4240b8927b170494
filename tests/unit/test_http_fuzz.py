"""Fuzzing the HTTP door from its own OpenAPI schema with schemathesis (issue 10).

Every operation the schema declares is called with generated requests (valid and invalid bodies,
paths, queries), with the admin key so authenticated routes are reached, against the real app over
a loopback port on fake stages. The checks: no 5xx, every response conforms to what the schema
declares (status code, content type, body: every 4xx is the documented `ErrorBody`,
`{error, errorCode, requestId}`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import fake_stages
from tests.fixtures.http_door import ADMIN_KEY, ServedDoor, auth, door_settings, http_door, served_http_door
from tests.fixtures.http_fuzz import fuzz_every_operation

MAX_EXAMPLES = 50  # per operation


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


def test_every_operation_answers_within_its_schema_and_never_5xx(served: ServedDoor) -> None:
    """Each operation in turn, its own hypothesis run; failures are gathered so one run reports them all."""
    outcome = fuzz_every_operation(served.app.openapi(), served.base_url, max_examples=MAX_EXAMPLES, timeout_s=30,
                                   headers=auth(ADMIN_KEY))
    print(f"\nHTTP fuzz: {outcome.summary()}")
    assert not outcome.failures, outcome.report()


def test_the_schema_documents_the_error_body_on_every_operation(served: ServedDoor) -> None:
    spec = served.app.openapi()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert "4XX" in op["responses"], f"{method.upper()} {path}: no documented 4XX body"
    error = spec["components"]["schemas"]["ErrorBody"]
    assert {"error", "errorCode"} <= set(error["required"])
    openai_error = spec["components"]["schemas"]["OpenAIErrorBody"]  # the /v1 routes answer in OpenAI's shape
    assert openai_error["required"] == ["error"]
    for path, operations in spec["paths"].items():
        expected = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
        for method, op in operations.items():
            ref = op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith(f"/{expected}"), (method, path, ref)



@pytest.mark.parametrize(("path", "body"), [
    ("/translate", b'{"text":"hi","target_language":"xx\\ud800"}'),
    ("/translate", b'{"text":"\\ud800","target_language":"en"}'),
    ("/translate/batch", b'[{"text":"hi","target_language":"zz\\udc00"}]'),
    ("/detect-language", b'{"text":"\\ud800"}'),
])
async def test_a_lone_surrogate_is_a_422_not_a_500(tmp_path: Path, path: str, body: bytes) -> None:
    """Regression: the 422 body echoes the bad input, and a lone surrogate (valid JSON) could not be
    UTF-8 encoded, so the error handler itself failed and the caller got a 500."""
    async with http_door(door_settings(tmp_path)) as (client, _):
        r = await client.post(path, content=body, headers={**auth(ADMIN_KEY), "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errorCode"] == "invalid_request"
