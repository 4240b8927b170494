"""The HTTP door's trust boundary, in-process (no Ray): keys and principals, per-user scopes, CORS,
the body cap before spooling, rate limits, request ids on every error; and the real `HttpIngress`
class built the way a Serve replica builds it.

Every request goes through the app a replica serves (`create_app` over an `HttpDoor`) and the real
`VoicePipeline` on fake stages; keys come from a real keys file (`tests.fixtures.http_door`).
"""

from __future__ import annotations

import gc
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.routing import APIRoute
from starlette.routing import Route

from ingress.http import health_routes, middleware, profile_routes, text_routes, voice_routes
from ingress.http.access import ADMISSIONS
from ingress.http.app import create_app
from ingress.http.door import HttpDoor
from ingress.http.openai import routes as openai_routes
from serve_app.assembly.cli import main as cli_main
from serve_app.errors import PrerequisiteError
from serve_app.security.keys import KeyRing, key_digest
from serve_app.settings import SecuritySettings, Settings
from tests.fixtures.fake_stages import FakeStages, started_pipeline
from tests.fixtures.http_door import (
    ADMIN_KEY,
    ALICE_KEY,
    SERVICE_KEY,
    auth,
    door_settings,
    http_door,
)
from tests.fixtures.speech import sine_wav_bytes

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
AUDIO = sine_wav_bytes(1.0)
PUBLIC = {("GET", "/live"), ("GET", "/ready")}
AREAS = (text_routes, voice_routes, profile_routes, health_routes, openai_routes)
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def wav(**fields: str) -> dict[str, Any]:
    return {"files": {"audio": ("a.wav", AUDIO, "audio/wav")}, "data": fields}


def all_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, docs included, path parameters filled in."""
    out = [(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops]
    out += [(m, r.path) for r in app.routes if isinstance(r, Route) for m in sorted(r.methods - {"HEAD"})]
    return [(m, p.replace("{user_id}", "someone")) for m, p in out]


def api_routes() -> list[APIRoute]:
    return [r for area in AREAS for r in area.router.routes if isinstance(r, APIRoute)]


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, HttpDoor]]:
    async with http_door(door_settings(tmp_path)) as pair:
        yield pair


@pytest.fixture
async def client(door: tuple[httpx.AsyncClient, HttpDoor]) -> httpx.AsyncClient:
    return door[0]


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["errorCode"] == code, body
    assert body["error"]
    assert body["requestId"] == r.headers["x-request-id"], (body, r.headers)
    return body


# ---- keys and principals ----

async def test_every_route_but_live_and_ready_needs_a_key(door: tuple[httpx.AsyncClient, HttpDoor]) -> None:
    client, d = door
    routes = all_routes(create_app(d))
    assert ("POST", "/api/v1/voice/translate") in routes and ("GET", "/docs") in routes
    for method, path in routes:
        r = await client.request(method, path)
        if (method, path) in PUBLIC:
            assert r.status_code == 200, (path, r.text)
            continue
        if path.startswith("/v1/"):  # the OpenAI-compatible routes answer in OpenAI's error shape
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", (path, r.text)
        else:
            assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer", path


async def test_bearer_and_x_api_key_are_accepted_unknown_keys_are_not(client: httpx.AsyncClient) -> None:
    assert (await client.get("/stats", headers=auth(SERVICE_KEY))).status_code == 200
    assert (await client.get("/stats", headers={"X-API-Key": SERVICE_KEY})).status_code == 200
    assert (await client.get("/stats", headers={"authorization": f"bearer {ADMIN_KEY}"})).status_code == 200
    for headers in (auth("not-a-key"), {"X-API-Key": "nope"}, {"Authorization": f"Basic {SERVICE_KEY}"},
                    {"Authorization": "Bearer "}):
        body = assert_error(await client.get("/stats", headers=headers), 401, "unauthorized")
        assert SERVICE_KEY not in json.dumps(body)


async def test_a_caller_without_a_key_is_refused_before_its_upload_is_read(client: httpx.AsyncClient) -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for i in range(4):
            pulled.append(i)
            yield b"x" * 1024

    r = await client.post("/api/v1/voice/translate", content=body(),
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(r, 401, "unauthorized")
    assert pulled == []


def test_every_route_but_the_probes_is_admitted_exactly_once() -> None:
    """Scope and rate limit live in the admissions of `ingress.http.access`: a route without one
    would skip both, a route with two would count twice."""

    def calls(dependant: Any) -> list[Any]:
        return [dependant.call] + [c for d in dependant.dependencies for c in calls(d)]

    routes = api_routes()
    assert len(routes) >= 20
    for route in routes:  # a router's own dependencies are part of each route's dependant
        admissions = [c for c in calls(route.dependant) if c in ADMISSIONS]
        public = any((m, route.path) in PUBLIC for m in route.methods)
        assert len(admissions) == (0 if public else 1), (route.path, admissions)


def test_auth_required_without_keys_refuses_to_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PrerequisiteError, match="TRANSLATOR_API_KEYS"):
        HttpDoor(object(), door_settings(tmp_path, keys=False, auth="required"))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="ingress.http.door"):
        HttpDoor(object(), door_settings(tmp_path, keys=False, auth="optional"))  # type: ignore[arg-type]
        HttpDoor(object(), door_settings(tmp_path, auth="required"))  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert any("authentication OFF" in m and "optional" in m for m in messages), messages
    assert any("authentication ON: 4 keys" in m for m in messages), messages


async def test_open_door_lets_everyone_in_as_admin_and_says_so(tmp_path: Path) -> None:
    async with http_door(door_settings(tmp_path, keys=False, rate_limit="1/minute")) as (client, _):
        for _ in range(3):  # nobody is identified, so nobody is rate limited either
            assert (await client.get("/api/v1/voice/profiles")).status_code == 200
        assert (await client.get("/api/v1/voice/profiles/anyone")).status_code == 404


async def test_auth_disabled_ignores_configured_keys(tmp_path: Path) -> None:
    async with http_door(door_settings(tmp_path, auth="disabled")) as (client, _):
        assert (await client.get("/stats")).status_code == 200


def test_keys_file_entries_are_checked_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"name": "x", "sha256": key_digest("k").upper(), "role": "service"}]))
    ring = KeyRing.from_settings(SecuritySettings(api_keys_file=path))
    assert ring.authenticate("k").name == "x"  # an uppercase digest is the same digest
    path.write_text(json.dumps([{"name": "carol", "sha256": key_digest("k"), "role": "user"}]))
    with pytest.raises(PrerequisiteError, match=r"(?s)keys\.json.*carol.*user_id"):
        KeyRing.from_settings(SecuritySettings(api_keys_file=path))


# ---- scopes ----

@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
async def test_a_user_key_reaches_only_its_own_profile(client: httpx.AsyncClient, method: str) -> None:
    upload = {"files": {"audio": ("a.wav", AUDIO, "audio/wav")}} if method in ("POST", "PUT") else {}
    other = await client.request(method, "/api/v1/voice/profiles/bob", headers=auth(ALICE_KEY), **upload)
    assert_error(other, 403, "forbidden")
    own = await client.request(method, "/api/v1/voice/profiles/alice", headers=auth(ALICE_KEY), **upload)
    assert own.status_code not in (401, 403), own.text
    for key in (SERVICE_KEY, ADMIN_KEY):  # services and admins act for anyone
        anyone = await client.request(method, "/api/v1/voice/profiles/bob", headers=auth(key), **upload)
        assert anyone.status_code not in (401, 403), anyone.text


async def test_listing_every_profile_needs_an_admin_or_service_key(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/voice/profiles", headers=auth(ALICE_KEY)), 403, "forbidden")
    for key in (SERVICE_KEY, ADMIN_KEY):
        r = await client.get("/api/v1/voice/profiles", headers=auth(key))
        assert r.status_code == 200, r.text


async def test_verify_and_analyze_for_another_user_are_forbidden(client: httpx.AsyncClient) -> None:
    alice = auth(ALICE_KEY)
    assert_error(await client.post("/api/v1/voice/verify", headers=alice, **wav(user_id="bob")), 403, "forbidden")
    own = await client.post("/api/v1/voice/verify", headers=alice, **wav(user_id="alice"))
    assert own.status_code == 404, own.text  # allowed; alice has no profile yet
    assert_error(await client.post("/api/v1/voice/analyze", headers=alice, **wav(user_id="bob")), 403, "forbidden")
    for fields in ({"user_id": "alice"}, {}):
        r = await client.post("/api/v1/voice/analyze", headers=alice, **wav(**fields))
        assert r.status_code == 200, r.text
    r = await client.post("/api/v1/voice/analyze", headers=auth(SERVICE_KEY), **wav(user_id="bob"))
    assert r.status_code == 200 and r.json()["user_id"] == "bob"


async def test_a_voice_message_is_attributed_to_its_sender(door: tuple[httpx.AsyncClient, HttpDoor]) -> None:
    client, d = door
    senders: list[str | None] = []
    run_voice = d.pipeline.run_voice

    async def spy(job: Any) -> Any:
        senders.append(job.user_id)
        return await run_voice(job)

    d.pipeline.run_voice = spy  # type: ignore[method-assign]
    url = "/api/v1/voice/translate"
    assert_error(await client.post(url, headers=auth(ALICE_KEY), **wav(target_languages="en", user_id="bob")),
                 403, "forbidden")
    assert senders == []
    for key, fields, sender in [
        (ALICE_KEY, {}, "alice"),  # a user key's own message improves its own profile
        (ALICE_KEY, {"user_id": "alice"}, "alice"),
        (SERVICE_KEY, {}, None),
        (SERVICE_KEY, {"user_id": "bob"}, "bob"),
        (ADMIN_KEY, {"user_id": "carol"}, "carol"),
    ]:
        r = await client.post(url, headers=auth(key), **wav(target_languages="en", **fields))
        assert r.status_code == 200, r.text
        assert senders[-1] == sender, (key, fields, senders)


async def test_the_stream_applies_the_same_sender_rule(client: httpx.AsyncClient) -> None:
    url = "/api/v1/voice/translate/stream"
    assert_error(await client.post(url, headers=auth(ALICE_KEY), **wav(target_languages="en", user_id="bob")),
                 403, "forbidden")
    r = await client.post(url, headers=auth(ALICE_KEY), **wav(target_languages="en"))
    assert r.status_code == 200 and "event: completed" in r.text, r.text


@pytest.mark.parametrize("path", ["/stats", "/health", "/models", "/languages"])
async def test_routes_without_user_data_take_any_valid_key(client: httpx.AsyncClient, path: str) -> None:
    for key in (ALICE_KEY, SERVICE_KEY, ADMIN_KEY):
        r = await client.get(path, headers=auth(key))
        assert r.status_code == 200, (path, r.text)


# ---- CORS ----

PREFLIGHT = {"Origin": "https://chat.example", "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "authorization, x-api-key, content-type"}


async def test_no_cors_headers_unless_origins_are_configured(client: httpx.AsyncClient) -> None:
    r = await client.get("/stats", headers={**auth(SERVICE_KEY), "Origin": "https://chat.example"})
    assert r.status_code == 200
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    preflight = await client.options("/api/v1/voice/profiles/alice", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers


async def test_configured_origins_get_cors_and_others_do_not(tmp_path: Path) -> None:
    settings = door_settings(tmp_path, cors_allowed_origins="https://chat.example")
    async with http_door(settings) as (client, _):
        ok = await client.options("/api/v1/voice/profiles/alice", headers=PREFLIGHT)  # no key on a preflight
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == "https://chat.example"
        assert set(ok.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST", "PUT", "DELETE"}
        allowed = {h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "x-api-key", "content-type"} <= allowed
        evil = await client.options("/api/v1/voice/profiles/alice", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
        refused = await client.get("/stats", headers={"Origin": "https://chat.example"})  # a browser can read the 401
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://chat.example"
        assert "x-request-id" in refused.headers["access-control-expose-headers"].lower()


# ---- body size ----

async def test_a_declared_body_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for i in range(8):
            pulled.append(i)
            yield b"x" * 1024

    async with http_door(door_settings(tmp_path, max_http_body_bytes=4096)) as (client, _):
        r = await client.post("/api/v1/voice/translate", content=body(),
                              headers={**auth(SERVICE_KEY), "content-length": "8192",
                                       "content-type": "multipart/form-data; boundary=b"})
        assert_error(r, 413, "payload_too_large")
        assert pulled == []


async def test_a_chunked_body_is_cut_off_once_over_the_cap(tmp_path: Path) -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"--b\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n"
        for i in range(64):
            pulled.append(i)
            yield b"x" * 1024

    async with http_door(door_settings(tmp_path, max_http_body_bytes=4096)) as (client, _):
        r = await client.post("/api/v1/voice/translate", content=body(),
                              headers={**auth(SERVICE_KEY), "content-type": "multipart/form-data; boundary=b"})
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "payload_too_large")
        assert len(pulled) <= 5  # stopped at the cap, not after the whole upload
        ok = await client.post("/api/v1/voice/translate", headers=auth(SERVICE_KEY),
                               files={"audio": ("a.wav", b"\0" * 1000, "audio/wav")}, data={"target_languages": "en"})
        assert ok.status_code == 422, ok.text  # under the cap: through to the audio check


async def test_the_audio_size_check_still_answers_its_own_413(tmp_path: Path) -> None:
    async with http_door(door_settings(tmp_path, max_audio_bytes=1000)) as (client, _):
        r = await client.post("/api/v1/voice/translate", headers=auth(SERVICE_KEY), **wav(target_languages="en"))
        body = assert_error(r, 413, "payload_too_large")
        assert "audio upload exceeds 1000 bytes" in body["error"]


# ---- rate limits ----

async def test_over_the_principal_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    async with http_door(door_settings(tmp_path, rate_limit="2/minute")) as (client, _):
        for _ in range(2):
            assert (await client.get("/stats", headers=auth(SERVICE_KEY))).status_code == 200
        r = await client.get("/stats", headers=auth(SERVICE_KEY))
        assert_error(r, 429, "rate_limited")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert (await client.get("/stats", headers=auth(ADMIN_KEY))).status_code == 200  # another principal
        for _ in range(3):  # probes are never limited
            assert (await client.get("/live")).status_code == 200


async def test_the_per_user_limit_counts_the_user_acted_for(tmp_path: Path) -> None:
    async with http_door(door_settings(tmp_path, rate_limit_per_user="1/minute")) as (client, _):
        for _ in range(3):  # refused requests naming bob are not counted against bob
            assert (await client.get("/api/v1/voice/profiles/bob", headers=auth(ALICE_KEY))).status_code == 403
        assert (await client.get("/api/v1/voice/profiles/bob", headers=auth(SERVICE_KEY))).status_code == 404
        assert_error(await client.get("/api/v1/voice/profiles/bob", headers=auth(ADMIN_KEY)), 429, "rate_limited")
        assert (await client.get("/api/v1/voice/profiles/carol", headers=auth(SERVICE_KEY))).status_code == 404
        assert (await client.get("/stats", headers=auth(SERVICE_KEY))).status_code == 200  # acts for nobody
        assert (await client.get("/stats", headers=auth(ALICE_KEY))).status_code == 200  # alice, once
        assert_error(await client.get("/stats", headers=auth(ALICE_KEY)), 429, "rate_limited")


# ---- request ids ----

async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    ok = await client.get("/stats", headers=auth(SERVICE_KEY))
    assert HEX32.match(ok.headers["x-request-id"])
    again = await client.get("/stats", headers=auth(SERVICE_KEY))
    assert again.headers["x-request-id"] != ok.headers["x-request-id"]
    missing = assert_error(await client.get("/no/such/route", headers=auth(SERVICE_KEY)), 404, "not_found")
    assert missing["detail"] == "Not Found"
    invalid = assert_error(await client.post("/translate", json={"target_language": "en"}, headers=auth(SERVICE_KEY)),
                           422, "invalid_request")
    assert invalid["detail"][0]["loc"] == ["body", "text"]
    unsupported = await client.post("/translate", json={"text": "Hi", "target_language": "zz"},
                                    headers=auth(SERVICE_KEY))
    assert_error(unsupported, 400, "unsupported_language")  # existing codes unchanged, id added


async def test_a_5xx_carries_its_id_in_the_body_the_header_and_the_log(
    door: tuple[httpx.AsyncClient, HttpDoor], caplog: pytest.LogCaptureFixture
) -> None:
    client, d = door

    async def broken() -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    d.pipeline.stats = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="ingress.http.app"):
        r = await client.get("/stats", headers=auth(SERVICE_KEY))
    body = assert_error(r, 500, "processing_failed")
    assert any(body["requestId"] in rec.getMessage() for rec in caplog.records), caplog.text


async def test_a_stream_error_event_carries_the_request_id(door: tuple[httpx.AsyncClient, HttpDoor]) -> None:
    client, d = door

    async def failing(job: Any) -> AsyncIterator[Any]:
        raise RuntimeError("stage died")
        yield  # pragma: no cover

    d.pipeline.process_voice = failing  # type: ignore[method-assign]
    r = await client.post("/api/v1/voice/translate/stream", headers=auth(SERVICE_KEY), **wav(target_languages="en"))
    assert r.status_code == 200
    event = r.text.split("event: error\ndata: ", 1)[1].split("\n", 1)[0]
    assert json.loads(event)["requestId"] == r.headers["x-request-id"]


async def test_under_serve_the_id_is_serves_and_the_proxy_sets_the_header(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "serve_request_id", lambda: "serve-req-7")
    r = await client.get("/stats")
    assert r.status_code == 401 and r.json()["requestId"] == "serve-req-7"
    assert "x-request-id" not in r.headers  # Serve's proxy adds it; twice would be wrong


# ---- the deployment as a Serve replica builds it, and the config files ----

class HandleOver:
    """A Serve handle stand-in over a real pipeline: `handle.method.remote(...)` runs the method."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    def options(self, **_: Any) -> HandleOver:
        return self

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pipeline, name)
        return type("Method", (), {"remote": staticmethod(method)})()


async def replica(settings: dict[str, Any], pipeline: Any) -> Any:
    """Serve's own replica wrapper constructing `HttpIngress` (constructor, `__serve_build_asgi_app__`,
    ASGI lifespan) in this process: what `serve deploy` does, without a cluster."""
    from ray.serve._private.common import DeploymentID
    from ray.serve._private.replica import UserCallableWrapper

    from ingress.http.deployment import HttpIngress

    wrapper = UserCallableWrapper(
        HttpIngress.func_or_class, (HandleOver(pipeline),), {"settings_overrides": settings},
        deployment_id=DeploymentID(name="HttpIngress", app_name="translator"),
        run_sync_methods_in_threadpool=False, run_user_code_in_separate_thread=False, local_testing_mode=True,
        deployment_config=HttpIngress._deployment_config, actor_id="unit-test",
    )
    await wrapper.initialize_callable()
    return wrapper


async def test_the_serve_replica_builds_the_guarded_app(tmp_path: Path) -> None:
    settings = {"cache_dir": str(tmp_path), "api_keys": SERVICE_KEY, "auth": "required"}
    pipeline = await started_pipeline(Settings(cache_dir=tmp_path), FakeStages())
    try:
        wrapper = await replica(settings, pipeline)
        transport = httpx.ASGITransport(app=wrapper.user_callable)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            assert (await client.get("/live")).status_code == 200
            assert_error(await client.get("/stats"), 401, "unauthorized")
            r = await client.get("/stats", headers=auth(SERVICE_KEY))
            assert r.status_code == 200 and "cache" in r.json()
        await wrapper.call_destructor()
    finally:
        await pipeline.close()


@pytest.mark.filterwarnings("ignore:coroutine .*__del__' was never awaited:RuntimeWarning")
async def test_a_replica_requiring_keys_without_any_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError, match="TRANSLATOR_API_KEYS"):
        await replica({"cache_dir": str(tmp_path), "auth": "required"}, object())
    gc.collect()  # Serve's half-built wrapper has an async __del__ nobody awaits; let it go here


def test_config_profiles_local_runs_optional_production_requires_keys() -> None:
    def app_settings(name: str) -> dict[str, Any]:
        return yaml.safe_load((ROOT / name).read_text())["applications"][0]["args"]["settings"]

    assert app_settings("serve_config.local.yaml")["auth"] == "optional"
    production = app_settings("serve_config.yaml")
    assert "auth" not in production and "api_keys" not in production  # the default, keys from the environment
    assert SecuritySettings.model_fields["auth"].default == "required"


def test_hash_key_prints_a_keys_file_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-key\n"))
    assert cli_main(["hash-key", "--name", "alice-app", "--role", "user", "--user-id", "alice"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry == {"name": "alice-app", "sha256": key_digest("s3cret-key"), "role": "user", "user_id": "alice"}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([entry]))
    ring = KeyRing.from_settings(SecuritySettings(api_keys_file=path))
    assert ring.authenticate("s3cret-key").user_id == "alice"
    assert cli_main(["hash-key", "--name", "x", "--role", "user", "--generate"]) == 2  # a user key needs its user
