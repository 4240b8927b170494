"""What one ZMQ message may ask for, over real sockets: frame 0 bounds, id validation, fan-out caps, and
the scoping of async jobs to their user.

Each refusal is an answer (never silence), a single one where a per-language burst would otherwise
go out, carried only by ids the service validated or generated.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ingress.gateway.frame0 import base64_allowance, json_depth, sniff
from ingress.gateway.server import GatewayServer
from tests.fixtures.gateway_client import Event, GatewayClient, new_id
from tests.fixtures.gateway_server import running_gateway
from tests.fixtures.speech import sine_wav_bytes

pytestmark = pytest.mark.timeout(60)

AUDIO = sine_wav_bytes(1.0)
AUDIO_B64 = base64.b64encode(AUDIO).decode()
MAX_TARGETS = 3
MAX_FRAME = 16 * 1024
MAX_AUDIO = 48 * 1024
OVER_ALL = MAX_FRAME + base64_allowance(MAX_AUDIO) + 1  # more than frame 0 may hold, strings included
MAX_DEPTH = 8


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[GatewayServer]:
    async with running_gateway(tmp_path, max_target_languages=MAX_TARGETS, max_preview_languages=2,
                               max_json_frame_bytes=MAX_FRAME, max_json_depth=MAX_DEPTH,
                               max_audio_bytes=MAX_AUDIO) as gw:
        yield gw


def translation(task_id: str, targets: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "translation", "taskId": task_id, "messageId": f"m-{task_id}", "text": "Bonjour",
            "sourceLanguage": "fr", "targetLanguages": targets, "conversationId": "conv", **extra}


async def only_event(gateway: GatewayClient, match: Any, quiet_s: float = 0.5) -> Event:
    """The one event matching, and no second one for the same request within `quiet_s`."""
    event = await gateway.wait_for(match, 5)
    with pytest.raises(TimeoutError):
        await gateway.wait_for(match, quiet_s)
    return event


async def pong_after(gateway: GatewayClient) -> None:
    await gateway.send({"type": "ping", "timestamp": 1})
    await gateway.wait_for(lambda e: e.type == "pong", 5)


# ---- frame 0: size and depth, before parsing ----

async def test_oversize_frame0_answers_with_its_type_event(server: GatewayServer, gateway: GatewayClient) -> None:
    task = new_id()
    body = translation(task, ["en", "es"], text="x" * OVER_ALL)
    await gateway.send(body)
    events = [await gateway.wait_for(lambda e: e.get("taskId") == task, 5) for _ in range(2)]
    assert {(e.type, e["errorCode"]) for e in events} == {("translation_error", "payload_too_large")}
    assert sorted(e["targetLanguage"] for e in events) == ["en", "es"]
    assert all(e["messageId"] == f"m-{task}" and "max_json_frame_bytes" in e["error"] for e in events)
    # Ids after the big field are read from the end of the frame.
    await gateway.send({"type": "audio_process", "text": "x" * OVER_ALL, "messageId": "m-big",
                        "attachmentId": "a-big", "senderId": "u1", "targetLanguages": ["en"]})
    event = await gateway.wait_for(lambda e: e.get("messageId") == "m-big", 5)
    assert event.type == "audio_process_error" and event["attachmentId"] == "a-big" and event["taskId"]
    assert server.stats()["malformed"] == 2
    await pong_after(gateway)


async def test_oversize_frame0_without_readable_ids_is_an_anonymous_error(gateway: GatewayClient) -> None:
    await gateway.send(b"\x00" * (MAX_FRAME + 1))
    event = await gateway.wait_for(lambda e: e.type == "error", 5)
    assert event["errorCode"] == "payload_too_large" and event["taskId"] is None
    await gateway.send({"taskId": "not a valid id", "text": "y" * OVER_ALL})  # a malformed id is not echoed
    event = await gateway.wait_for(lambda e: e.type == "error", 5)
    assert event["errorCode"] == "payload_too_large" and event["taskId"] is None
    await pong_after(gateway)


async def test_the_json_structure_is_bounded_not_the_base64_audio(gateway: GatewayClient) -> None:
    """Over max_json_frame_bytes in structure: refused. Over it in a base64 clip: served (the voice API
    carries its audio in frame 0, up to max_audio_bytes)."""
    task = new_id()
    await gateway.send(translation(task, ["en"], padding=[0] * MAX_FRAME))
    event = await only_event(gateway, lambda e: e.get("taskId") == task)
    assert (event.type, event["errorCode"]) == ("translation_error", "payload_too_large")
    assert "outside its strings" in event["error"]
    task = new_id()
    assert len(AUDIO_B64) > MAX_FRAME
    await gateway.send({"type": "voice_translate", "taskId": task, "audioBase64": AUDIO_B64, "targetLanguages": ["en"]})
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "voice_api_success", event.body


async def test_deep_nesting_is_refused_before_parsing(server: GatewayServer, gateway: GatewayClient) -> None:
    task = new_id()
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH + 2):
        nested = [nested]
    await gateway.send({"type": "voice_translate", "taskId": task, "targetLanguages": ["en"], "extra": nested})
    event = await only_event(gateway, lambda e: e.get("taskId") == task)
    assert (event.type, event["errorCode"]) == ("voice_api_error", "INVALID_REQUEST")
    assert "max_json_depth" in event["error"]
    # A million brackets: no recursion, no crash, an answer, and the loop lives.
    await gateway.send(b"[" * 1_000_000)
    event = await gateway.wait_for(lambda e: e.type == "error", 5)
    assert event["errorCode"] == "payload_too_large"
    await gateway.send(b"{" * 2000)
    event = await gateway.wait_for(lambda e: e.type == "error", 5)
    assert event["errorCode"] == "invalid_json" and "nested 2000 levels" in event["error"]
    await pong_after(gateway)
    assert server.stats()["loopAlive"] is True


async def test_brackets_inside_strings_do_not_count(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(translation(task, ["en"], text='[[[[{{{{[[[[{{{{ "\\" [[[['))
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "translation_completed"


def test_json_depth_and_sniff() -> None:
    assert json_depth(json.dumps({"a": [{"b": "]]]{{{\\\"[[["}, [1, [2, [3]]]]}).encode()) == 5
    assert json_depth(b'"' + b'\\"' * 100_000) == 0  # escaped quotes, unterminated: still linear
    assert json_depth(b"[]" * 1000) == 1
    head = b'{"type":"translation","taskId":"t-1","targetLanguages":["en","fr"],"text":"'
    found = sniff(head + b"x" * 100_000 + b'","messageId":"post:abc"}')
    assert found == {"type": "translation", "taskId": "t-1", "targetLanguages": ["en", "fr"],
                     "messageId": "post:abc"}
    assert sniff(b'{"taskId":"bad id","text":"' + b"x" * 100 + b'"}') == {}


# ---- ids: published only when validated (or generated) ----

@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "émoji", "", 42])
async def test_malformed_task_id_is_refused_and_never_echoed(gateway: GatewayClient, bad: Any) -> None:
    message = new_id("m")
    await gateway.send(translation("ignored", ["en"], taskId=bad, messageId=message))
    event = await only_event(gateway, lambda e: e.get("messageId") == message)
    assert event.type == "translation_error" and event["errorCode"] == "invalid_request"
    assert event["taskId"] == "" and "taskId" in event["error"]


async def test_malformed_ids_per_family(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "audio_process", "taskId": task, "messageId": "m/../x", "attachmentId": "a1",
                        "senderId": "u1", "targetLanguages": ["en"], "binaryFrames": {"audio": 1}}, AUDIO)
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "audio_process_error" and event["errorCode"] == "invalid_request"
    assert event["messageId"] == "" and event["attachmentId"] == "a1"
    # audio_process with a malformed taskId: refused under a generated one, beside the valid ids.
    await gateway.send({"type": "audio_process", "taskId": "t t", "messageId": "m-gen", "attachmentId": "a1",
                        "senderId": "u1", "targetLanguages": ["en"], "binaryFrames": {"audio": 1}}, AUDIO)
    event = await gateway.wait_for(lambda e: e.get("messageId") == "m-gen", 5)
    assert event.type == "audio_process_error" and event["taskId"].startswith("audio_")
    task = new_id()
    await gateway.send({"type": "voice_job_status", "taskId": task, "jobId": "vjob<script>"})
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert (event.type, event["errorCode"]) == ("voice_api_error", "INVALID_REQUEST") and "jobId" in event["error"]
    await gateway.send({"type": "story_text_object_translation", "postId": "p" * 200, "textObjectIndex": 0,
                        "text": "Salut", "targetLanguages": ["en"]})
    event = await gateway.wait_for(lambda e: e.type == "error", 5)
    assert event["errorCode"] == "invalid_request" and event["postId"] is None
    await gateway.send({"type": "voice_profile_compare", "request_id": "r r", "fingerprint_a": {},
                        "fingerprint_b": {}})
    event = await gateway.wait_for(lambda e: e.type == "voice_profile_error", 5)
    assert event["request_id"] == "" and "request_id" in event["error"]
    await gateway.send({"type": "z" * 10_000, "taskId": "t-type"})
    event = await gateway.wait_for(lambda e: e.get("taskId") == "t-type", 5)
    assert event["errorCode"] == "unknown_type" and event["requestType"] == "unknown"


async def test_namespaced_message_ids_are_accepted(gateway: GatewayClient) -> None:
    for message in ("post:665f1a", "comment:abc-1", "story:x_y.z", "user@host"):
        task = new_id()
        await gateway.send(translation(task, ["en"], messageId=message))
        event = await gateway.wait_for(lambda e, t=task: e.get("taskId") == t, 5)
        assert event.type == "translation_completed" and event["result"]["messageId"] == message


# ---- fan-out caps: one clear error, not a burst ----

async def test_translation_over_the_target_cap_is_one_error(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(translation(task, ["en", "es", "de", "it", "pt"] * 20))
    event = await only_event(gateway, lambda e: e.get("taskId") == task)
    assert (event.type, event["errorCode"]) == ("translation_error", "invalid_request")
    assert event["targetLanguage"] is None and "5 target languages" in event["error"]
    task = new_id()
    await gateway.send(translation(task, ["en"] * 50))  # duplicates are not extra languages
    event = await only_event(gateway, lambda e: e.get("taskId") == task)
    assert event.type == "translation_completed"


@pytest.mark.parametrize(
    ("body", "match", "kind", "code"),
    [
        ({"type": "story_text_object_translation", "postId": "p-cap", "textObjectIndex": 0, "text": "Salut"},
         "postId", "error", "invalid_request"),
        ({"type": "audio_process", "taskId": "t-cap-a", "messageId": "m-cap", "attachmentId": "a-cap",
          "senderId": "u1", "binaryFrames": {"audio": 1}}, "taskId", "audio_process_error", "invalid_request"),
        ({"type": "voice_translate", "taskId": "t-cap-v", "audioBase64": AUDIO_B64}, "taskId", "voice_api_error",
         "INVALID_REQUEST"),
        ({"type": "voice_translate_async", "taskId": "t-cap-j", "userId": "u1", "audioBase64": AUDIO_B64},
         "taskId", "voice_api_error", "INVALID_REQUEST"),
    ],
)
async def test_every_fan_out_type_is_capped(gateway: GatewayClient, body: dict[str, Any], match: str, kind: str,
                                            code: str) -> None:
    await gateway.send({**body, "targetLanguages": ["en", "es", "de", "it"]}, AUDIO)
    value = body[match]
    event = await only_event(gateway, lambda e: e.get(match) == value)
    assert (event.type, event["errorCode"]) == (kind, code) and "max_target_languages" in event["error"]


async def test_preview_languages_are_capped(gateway: GatewayClient) -> None:
    request_id = new_id("r")
    await gateway.send({"type": "voice_profile_analyze", "request_id": request_id, "user_id": "u1",
                        "audio_data": AUDIO_B64, "generate_previews": True, "preview_languages": ["en", "es", "de"]})
    event = await only_event(gateway, lambda e: e.get("request_id") == request_id)
    assert (event.type, event["errorCode"]) == ("voice_profile_error", "invalid_request")
    assert "max_preview_languages" in event["error"]


async def test_busy_burst_is_one_event_per_request_over_the_cap(server: GatewayServer,
                                                                gateway: GatewayClient) -> None:
    """Refused as busy before validation: a request listing too many languages still gets one event."""
    tasks = [new_id("flood") for _ in range(5 * server.settings.zmq_max_in_flight)]
    for task in tasks:
        await gateway.send(translation(task, ["en", "es", "de", "it", "pt", "nl"]))
    answers: dict[str, list[Event]] = {t: [] for t in tasks}
    for _ in tasks:
        event = await gateway.wait_for(lambda e: e.get("taskId") in answers, 10)
        answers[event["taskId"]].append(event)
    with pytest.raises(TimeoutError):
        await gateway.wait_for(lambda e: e.get("taskId") in answers, 0.5)
    codes = [evs[0]["errorCode"] for evs in answers.values()]
    assert all(len(evs) == 1 for evs in answers.values())
    assert "busy" in codes and "invalid_request" in codes and set(codes) == {"busy", "invalid_request"}
    # Within the cap, the busy burst is still one event per language.
    assert server.router.error_events(translation("t", ["en", "es", "en"]), _busy())[1].targetLanguage == "es"


def _busy() -> Any:
    from serve_app.errors import BusyError

    return BusyError("busy")


# ---- async jobs belong to their user ----

async def test_history_needs_a_user(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "voice_history", "taskId": task})
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert (event.type, event["errorCode"]) == ("voice_api_error", "INVALID_REQUEST") and "userId" in event["error"]


async def test_job_status_and_cancel_only_for_its_owner(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "voice_translate_async", "taskId": task, "userId": "owner",
                        "audioBase64": AUDIO_B64, "targetLanguages": ["en"]})
    ack = await gateway.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success", 5)
    job_id = ack["result"]["jobId"]

    async def ask(kind: str, **who: str) -> Event:
        t = new_id()
        await gateway.send({"type": kind, "taskId": t, "jobId": job_id, **who})
        return await gateway.wait_for(lambda e: e.get("taskId") == t, 5)

    unknown = new_id()
    await gateway.send({"type": "voice_job_status", "taskId": unknown, "jobId": "vjob_0000000000000000"})
    not_found = await gateway.wait_for(lambda e: e.get("taskId") == unknown, 5)
    for kind in ("voice_job_status", "voice_job_cancel"):
        for who in ({}, {"userId": "someone-else"}):
            event = await ask(kind, **who)
            assert (event.type, event["errorCode"]) == ("voice_api_error", "NOT_FOUND")
            # Same answer as for a job that does not exist: existence is not revealed.
            assert event["error"].replace(job_id, "X") == not_found["error"].replace("vjob_0000000000000000", "X")
    assert (await ask("voice_job_status", userId="owner")).type == "voice_api_success"
    final = await gateway.wait_for(lambda e: e.get("taskId") == task and e.type.startswith("voice_translation_"), 20)
    assert final.type == "voice_translation_completed"
    others = new_id()
    await gateway.send({"type": "voice_history", "taskId": others, "userId": "someone-else"})
    theirs = (await gateway.wait_for(lambda e: e.get("taskId") == others, 5))["result"]
    assert theirs["history"] == [] and theirs["total"] == 0
    mine = new_id()
    await gateway.send({"type": "voice_history", "taskId": mine, "userId": "owner"})
    owned = (await gateway.wait_for(lambda e: e.get("taskId") == mine, 5))["result"]
    assert [h["id"] for h in owned["history"]] == [final["result"]["translationId"]]
