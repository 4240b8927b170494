"""Deadlines on every stage call (issue 10): a hung stage ends in a clear `stage_timeout` naming it, the
hung call is cancelled, the other languages still complete, and on the ZMQ door the in-flight slot and
the de-duplication entry are freed so the same taskId can be re-pushed. Fake stages that never return
play the wedged model; the deadline code is the production code (`VoicePipeline` wraps every stages
object in `DeadlineStages`)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingress.gateway.server import build_gateway
from serve_app.deadlines import StageDeadlines
from serve_app.domain.voice import VoiceJob
from serve_app.errors import StageTimeoutError
from serve_app.pipeline.deadline_stages import DeadlineStages
from serve_app.settings import Settings
from tests.fixtures.fake_stages import FakeStages, started_pipeline
from tests.fixtures.gateway_client import GatewayClient, connected_client
from tests.fixtures.gateway_server import running_gateway
from tests.fixtures.http_door import door_settings, http_door
from tests.fixtures.speech import sine_wav_bytes

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
AUDIO = sine_wav_bytes(1.0)
# Short deadlines (the fakes answer in 0.2 s, with room for a loaded 2-core machine) so a hung stage is
# given up on within seconds.
QUICK = {f"{stage}_timeout_s": 2.0 for stage in ("transcribe", "translate", "detect_language",
                                                 "speaker_reference", "synthesize", "convert")}


def quick_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(cache_dir=tmp_path, voice_profile_dir=tmp_path / "profiles", **{**QUICK, **overrides})


# ---- the wrapper itself ----

async def test_a_hung_stage_raises_stage_timeout_naming_it_and_the_call_is_cancelled(tmp_path: Path) -> None:
    fake = FakeStages(hang={"synthesize"})
    stages = DeadlineStages(fake, quick_settings(tmp_path))
    with pytest.raises(StageTimeoutError) as caught:
        await stages.synthesize("hello", "en")
    err = caught.value
    assert (err.code, err.status, err.stage) == ("stage_timeout", 504, "synthesize")
    assert "synthesize" in err.message and err.family_code == "tts_failed"
    assert fake.cancelled == ["synthesize"]
    assert (await stages.translate("hello", "en", "fr")).translated_text == "hello->fr"  # the others still answer


def test_stage_timeout_is_rebuilt_from_its_reduce_as_it_crosses_ray_hops() -> None:
    """Ray carries a replica's exception to its caller by the exception's `__reduce__`; copying uses the
    same protocol, so the rebuilt error must still name its stage and code."""
    import copy

    back = copy.deepcopy(StageTimeoutError("convert", 3.5))
    assert (back.stage, back.timeout_s, back.code, back.message) == ("convert", 3.5, "stage_timeout",
                                                                    "stage convert timed out after 3.5 s")


def test_deadlines_scale_with_the_input() -> None:
    d = StageDeadlines(Settings())
    assert d.transcribe(45) > d.transcribe(1) and d.synthesize(900) > d.synthesize(10)
    assert d.convert(60) > d.convert(1) and d.translate(5000) > d.translate(10)


def test_defaults_answer_a_hung_translator_within_the_gateways_30s_and_fit_a_cpu_voice_message() -> None:
    d = StageDeadlines(Settings())
    assert d.translate(len("a chat message of a couple of sentences, as people write them") * 4) < 30
    # A 45 s voice message (about 700 characters of speech) on the 2-core CPU graph: bench/last_run_voice_graph.txt
    # measured ~1.9 s transcribing, ~12 s synthesizing and ~1.5 s converting a short message per language with
    # three languages at once; each deadline leaves several times that, scaled to the longer message.
    assert d.transcribe(45) >= 10 * 1.9 and d.speaker_reference(45) >= 10 * 0.6
    assert d.synthesize(700) >= 4 * 12 and d.convert(90) >= 10 * 1.5 and d.translate(700) >= 5 * 3.4


@pytest.mark.parametrize("config", ["serve_config.yaml", "serve_config.local.yaml"])
def test_serve_request_timeout_outlasts_the_worst_case_voice_message(config: str) -> None:
    """`serve run`'s proxy must not cut a voice message the Pipeline is still allowed to finish: the
    largest one (max_audio_seconds, every stage using its whole deadline) fits request_timeout_s."""
    data = yaml.safe_load((ROOT / config).read_text())
    args = data["applications"][0]["args"]["settings"]
    settings = Settings(**args)
    worst = StageDeadlines(settings).worst_voice_message_s(settings.max_audio_seconds)
    assert data["http_options"]["request_timeout_s"] >= worst, (config, worst)
    assert settings.voice_job_timeout_s >= worst


# ---- the pipeline: the other languages still complete ----

async def test_text_translation_reports_the_hung_language_and_delivers_the_others(tmp_path: Path) -> None:
    fake = FakeStages(hang={"translate:de"})
    pipeline = await started_pipeline(quick_settings(tmp_path), fake)
    try:
        out = {t.target_language: t for t in await pipeline.translate_text("Bonjour", "fr", ["en", "de", "es"])}
    finally:
        await pipeline.close()
    assert out["en"].ok and out["es"].ok
    assert out["de"].error_code == "stage_timeout" and "translate" in (out["de"].error or "")
    assert fake.cancelled == ["translate:de"]


async def test_voice_message_with_a_hung_synthesizer_language_completes_the_others(tmp_path: Path) -> None:
    fake = FakeStages(hang={"tts:es"})
    pipeline = await started_pipeline(quick_settings(tmp_path), fake)
    try:
        result = await pipeline.run_voice(VoiceJob(audio=AUDIO, target_languages=["en", "es"]))
    finally:
        await pipeline.close()
    assert [t.target_language for t in result.translations] == ["en"]
    [failed] = result.failed
    assert (failed.target_language, failed.error_code) == ("es", "stage_timeout") and "synthesize" in failed.error


async def test_a_hung_transcriber_fails_the_message_with_stage_timeout(tmp_path: Path) -> None:
    fake = FakeStages(hang={"transcribe"})
    pipeline = await started_pipeline(quick_settings(tmp_path), fake)
    try:
        with pytest.raises(StageTimeoutError) as caught:
            await pipeline.run_voice(VoiceJob(audio=AUDIO, target_languages=["en"]))
    finally:
        await pipeline.close()
    assert caught.value.stage == "transcribe" and fake.cancelled == ["transcribe"]


# ---- the HTTP door ----

async def test_http_translate_on_a_hung_translator_is_a_504_stage_timeout(tmp_path: Path) -> None:
    settings = door_settings(tmp_path, keys=False, **QUICK)
    async with http_door(settings, FakeStages(hang={"translate"})) as (client, _):
        r = await client.post("/translate", json={"text": "Bonjour", "source_language": "fr",
                                                  "target_language": "en"})
        assert r.status_code == 504, r.text
        assert r.json()["errorCode"] == "stage_timeout" and "translate" in r.json()["error"]


async def test_http_voice_translate_reports_the_hung_language_and_delivers_the_other(tmp_path: Path) -> None:
    settings = door_settings(tmp_path, keys=False, **QUICK)
    async with http_door(settings, FakeStages(hang={"tts:de"})) as (client, _):
        r = await client.post("/api/v1/voice/translate", files={"audio": ("a.wav", AUDIO, "audio/wav")},
                              data={"target_languages": "en,de"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [t["target_language"] for t in body["translations"]] == ["en"]
        assert [(f["target_language"], f["error_code"]) for f in body["failed_languages"]] == [("de", "stage_timeout")]


# ---- the ZMQ door ----

def new_id() -> str:
    return uuid.uuid4().hex


async def settle(server: Any) -> None:
    """Wait (bounded) until every request task of the door has ended."""
    for _ in range(100):
        if not server.tasks:
            return
        await asyncio.sleep(0.05)


async def collect(gateway: GatewayClient, task: str, seconds: float) -> list[Any]:
    """Every event for `task` that arrives within `seconds` (to prove nothing more comes)."""
    out = []
    end = asyncio.get_running_loop().time() + seconds
    while (left := end - asyncio.get_running_loop().time()) > 0:
        try:
            out.append(await gateway.wait_for(lambda e: e.get("taskId") == task, left))
        except TimeoutError:
            break
    return out


async def test_zmq_translation_hung_language_one_terminal_answer_each_slot_freed_and_repushable(
    tmp_path: Path,
) -> None:
    fake = FakeStages(hang={"translate:de"})
    async with running_gateway(tmp_path, stages=fake, **QUICK) as server:
        gateway = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            task = new_id()
            message = {"type": "translation", "taskId": task, "messageId": "m1", "text": "Bonjour",
                       "sourceLanguage": "fr", "targetLanguages": ["en", "de"], "conversationId": "c",
                       "modelType": "basic", "timestamp": 1}
            for attempt in range(2):  # the same taskId is served again once its languages have answered
                await gateway.send(message)
                events = await collect(gateway, task, 5.0)
                by_language = {(e.type, e["targetLanguage"]) for e in events}
                assert len(events) == 2 and by_language == {("translation_completed", "en"),
                                                            ("translation_error", "de")}, (attempt, events)
                [error] = [e for e in events if e.type == "translation_error"]
                assert error["errorCode"] == "stage_timeout" and "translate" in error["error"]
                await settle(server)
                assert server.stats()["inFlight"] == 0 and server.router.text.in_flight == {}
            assert fake.cancelled == ["translate:de", "translate:de"]
        finally:
            gateway.close()


async def test_zmq_audio_process_hung_language_delivers_the_other(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, stages=FakeStages(hang={"tts:de"}), **QUICK) as server:
        gateway = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            task = new_id()
            await gateway.send({"type": "audio_process", "taskId": task, "messageId": "m1", "attachmentId": "a1",
                                "senderId": "u1", "conversationId": "c1", "targetLanguages": ["en", "de"],
                                "generateVoiceClone": True,
                                "binaryFrames": {"audio": 1, "audioMimeType": "audio/wav", "audioSize": len(AUDIO)}},
                               AUDIO)
            events = await gateway.events_for(task, lambda e: e.type in ("audio_process_completed",
                                                                         "audio_process_error"), 15)
            done = events[-1]
            assert done.type == "audio_process_completed"
            assert [t["targetLanguage"] for t in done["translatedAudios"]] == ["en"]
            assert [(f["targetLanguage"], f["errorCode"]) for f in done["failedLanguages"]] == [("de", "stage_timeout")]
            await settle(server)
            assert len(server.tasks) == 0
        finally:
            gateway.close()


@pytest.mark.parametrize(("overrides", "code"), [({}, "stage_timeout"),
                                                 ({"transcribe_timeout_s": 30.0, "voice_job_timeout_s": 1.0},
                                                  "job_timeout")])
async def test_zmq_async_job_on_a_hung_transcriber_fails_with_its_deadline(
    tmp_path: Path, overrides: dict[str, Any], code: str
) -> None:
    async with running_gateway(tmp_path, stages=FakeStages(hang={"transcribe"}), **{**QUICK, **overrides}) as server:
        gateway = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            task = new_id()
            await gateway.send({"type": "voice_translate_async", "taskId": task, "userId": "u1",
                                "audioBase64": base64.b64encode(AUDIO).decode(), "targetLanguages": ["en"]})
            events = await gateway.events_for(task, lambda e: e.type in ("voice_translation_completed",
                                                                         "voice_translation_failed"), 15)
            final = events[-1]
            assert (final.type, final["status"], final["errorCode"]) == ("voice_translation_failed", "failed", code)
            job = await server.router.jobs.get(final["jobId"], "u1")
            assert (job.status, job.errorCode) == ("failed", code)
        finally:
            gateway.close()


# ---- graceful shutdown of the ZMQ door ----

async def test_zmq_shutdown_drains_answers_the_rest_and_frees_the_ports(tmp_path: Path) -> None:
    """Stop pulling, let what finishes within the drain bound finish, answer what does not with an
    error event (only its languages still owed), and leave the ports free for the next replica."""
    fake = FakeStages(hang={"translate:de"})
    async with running_gateway(tmp_path, stages=fake, translate_timeout_s=30.0, zmq_drain_timeout_s=3.0) as server:
        gateway = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            slow, quick = new_id(), new_id()
            for task, targets in ((slow, ["en", "de"]), (quick, ["es"])):
                await gateway.send({"type": "translation", "taskId": task, "messageId": "m", "text": "Bonjour",
                                    "sourceLanguage": "fr", "targetLanguages": targets, "modelType": "basic"})
            for _ in range(100):
                if len(server.tasks) == 2:
                    break
                await asyncio.sleep(0.02)
            assert len(server.tasks) == 2
            await server.shutdown(server.settings.zmq_drain_timeout_s)
            slow_events = await collect(gateway, slow, 3.0)
            quick_events = await collect(gateway, quick, 0.5)
        finally:
            gateway.close()
        assert [(e.type, e["targetLanguage"]) for e in quick_events] == [("translation_completed", "es")]
        assert sorted((e.type, e["targetLanguage"]) for e in slow_events) == [("translation_completed", "en"),
                                                                              ("translation_error", "de")]
        [error] = [e for e in slow_events if e.type == "translation_error"]
        assert error["errorCode"] == "pipeline_unavailable"
        assert fake.cancelled == ["translate:de"] and not server.tasks
        # The next replica binds the same ports at once (no retry window needed).
        pipeline = await started_pipeline(server.settings)
        successor = build_gateway(pipeline, server.settings.model_copy(update={"zmq_bind_timeout_s": 0.1}))
        try:
            await successor.start()
            successor.check()
        finally:
            successor.close()
            await pipeline.close()


# ---- a hung Pipeline: the door's own bound ----

async def test_zmq_door_answers_even_when_the_pipeline_itself_hangs(tmp_path: Path) -> None:
    """Past every stage deadline the door gives up on the Pipeline (a stopped replica): a text language
    gets `request_timeout`, a voice API request its error event, and the slots are freed."""
    flat = {f"{stage}_timeout_per_{unit}_s": 0.0 for stage, unit in (
        ("transcribe", "audio"), ("speaker_reference", "audio"), ("translate", "char"), ("synthesize", "char"),
        ("convert", "audio"))}
    async with running_gateway(tmp_path, **QUICK, **flat, deadline_overhead_s=0.5) as server:
        pipeline = server.router.text.pipeline

        async def hang(*args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()

        pipeline.translate_text = hang  # type: ignore[method-assign]
        pipeline.run_voice = hang  # type: ignore[method-assign]
        gateway = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
        try:
            text, voice = new_id(), new_id()
            await gateway.send({"type": "translation", "taskId": text, "messageId": "m", "text": "Bonjour",
                                "sourceLanguage": "fr", "targetLanguages": ["en"], "modelType": "basic"})
            await gateway.send({"type": "voice_translate", "taskId": voice, "userId": "u1",
                                "audioBase64": base64.b64encode(AUDIO).decode(), "targetLanguages": ["en"]})
            text_events = await collect(gateway, text, 5.0)  # the door waits 2 s + 0.5 s
            voice_events = await collect(gateway, voice, 12.0)  # 2 + 3 x 2 + 0.5 + 0.5 s
        finally:
            gateway.close()
        assert [(e.type, e["errorCode"]) for e in text_events] == [("translation_error", "request_timeout")]
        [voice_error] = voice_events
        assert (voice_error.type, voice_error["errorCode"]) == ("voice_api_error", "INTERNAL_ERROR")
        assert "pipeline" in voice_error["error"]
        await settle(server)
        assert server.stats()["inFlight"] == 0 and server.router.text.in_flight == {}
