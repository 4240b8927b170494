"""The ZMQ gateway over real sockets, without Ray: `GatewayServer` + handlers + the real pipeline
(`VoicePipeline` over `FakeStages`, with the embedded stores). Each test plays the chat gateway with
PUSH and SUB sockets.

What matters here is the protocol's promises: every request gets an answer (never silence), the
receive loop survives anything it is sent, and every error carries the ids the gateway matches on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ingress.gateway.server import GatewayServer, build_gateway
from serve_app.pipeline.voice_pipeline import VoicePipeline
from tests.fixtures import gateway_shapes as shapes
from tests.fixtures.fake_stages import FakeStages
from tests.fixtures.gateway_client import Event, GatewayClient, connected_client, new_id
from tests.fixtures.gateway_server import gateway_settings, running_gateway
from tests.fixtures.speech import sine_wav_bytes

pytestmark = pytest.mark.timeout(60)

MAX_IN_FLIGHT = 4
AUDIO = sine_wav_bytes(1.0)  # a 200 Hz tone; the fake stages hear "bonjour" and answer 0.5 s per language
PROFILE_AUDIO = sine_wav_bytes(10.5)  # a profile needs at least 10 s


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[GatewayServer]:
    async with running_gateway(tmp_path, zmq_max_in_flight=MAX_IN_FLIGHT) as gw:
        yield gw


def is_type(*types: str):
    return lambda e: e.type in types


def translation(task_id: str, targets: list[str], text: str = "Bonjour", **extra: Any) -> dict[str, Any]:
    return {"type": "translation", "taskId": task_id, "messageId": f"m-{task_id}", "text": text,
            "sourceLanguage": "fr", "targetLanguages": targets, "conversationId": "conv", "modelType": "basic",
            "timestamp": 1724350000000, **extra}


def audio_process(targets: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "audio_process", "messageId": "m1", "attachmentId": "a1", "senderId": "u1",
            "conversationId": "c1", "targetLanguages": targets, "generateVoiceClone": True,
            "binaryFrames": {"audio": 1, "audioMimeType": "audio/wav", "audioSize": len(AUDIO)}, **extra}


async def pong_after(gateway: GatewayClient) -> Event:
    """The loop is alive: a ping sent now is answered."""
    await gateway.send({"type": "ping", "timestamp": 1})
    return await gateway.wait_for(is_type("pong"), 5)


# ---- happy paths, one per request type ----

async def test_ping_answers_pong_with_ports(server: GatewayServer, gateway: GatewayClient) -> None:
    pong = await pong_after(gateway)
    assert pong["translator_status"] == "alive"
    assert pong["translator_port_pull"] == server.settings.zmq_pull_port
    assert pong["translator_port_pub"] == server.settings.zmq_pub_port
    assert pong["audio_pipeline_available"] is True
    assert isinstance(pong["timestamp"], float) and pong["timestamp"] > 1e9
    assert pong.binaries == []


async def test_translation_one_event_per_language(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(translation(task, ["en", "es", "de"]))
    events = [await gateway.wait_for(lambda e: e.get("taskId") == task, 5) for _ in range(3)]
    assert {e.type for e in events} == {"translation_completed"}
    assert sorted(e["targetLanguage"] for e in events) == ["de", "en", "es"]
    for e in events:
        result = e["result"]
        assert result["messageId"] == f"m-{task}"
        assert result["translatedText"] == f"Bonjour->{e['targetLanguage']}"
        assert result["sourceLanguage"] == "fr" and result["targetLanguage"] == e["targetLanguage"]
        assert result["modelType"] == "basic" and result["fromCache"] is False
        assert isinstance(result["processingTime"], float) and isinstance(result["confidenceScore"], float)
        assert e["metadata"]["requestId"] == task and e["metadata"]["protocol"] == "ZMQ_PUB_SUB"
    assert await gateway.no_event_for(task, 0.5) == []


async def test_missing_type_means_translation(gateway: GatewayClient) -> None:
    task = new_id()
    body = translation(task, ["en"])
    del body["type"]
    await gateway.send(body)
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "translation_completed" and event["targetLanguage"] == "en"


async def test_story_text_object_translation(gateway: GatewayClient) -> None:
    post = new_id("post")
    await gateway.send({"type": "story_text_object_translation", "postId": post, "textObjectIndex": 2,
                        "text": "Salut", "sourceLanguage": "fr", "targetLanguages": ["en", "de"], "timestamp": 1})
    event = await gateway.wait_for(lambda e: e.get("postId") == post, 5)
    assert event.type == "story_text_object_translation_completed"
    assert event["textObjectIndex"] == 2
    assert event["translations"] == {"en": "Salut->en", "de": "Salut->de"}


async def test_audio_process_without_task_id_echoes_a_generated_one(gateway: GatewayClient) -> None:
    await gateway.send(audio_process(["en", "es"], messageId="m-gen", attachmentId="a-gen"), AUDIO)
    first = await gateway.wait_for(lambda e: e.get("messageId") == "m-gen", 10)
    assert first.type == "transcription_ready"
    task = first["taskId"]
    assert task
    events = [first, *await gateway.events_for(task, is_type("audio_process_completed", "audio_process_error"), 10)]
    assert [e.type for e in events] == ["transcription_ready", "audio_translations_progressive",
                                        "audio_translations_completed", "audio_process_completed"]
    for e in events:
        assert (e["taskId"], e["messageId"], e["attachmentId"]) == (task, "m-gen", "a-gen")
        assert isinstance(e["timestamp"], float)
    assert first["transcription"]["text"] == "bonjour" and first.binaries == []
    for e in events[1:3]:
        assert len(e.binaries) == 1
        assert e["binaryFrames"]["audio"] == {"index": 1, "size": len(e.binaries[0]), "mimeType": "audio/mpeg"}
        assert e["translatedAudio"]["targetLanguage"] == e["language"]
        assert e["translatedAudio"]["voiceCloned"] is True
    done = events[-1]
    assert {t["targetLanguage"] for t in done["translatedAudios"]} == {"en", "es"}
    frames = done["binaryFrames"]
    assert set(frames) == {"audio_en", "audio_es", "embedding"}
    for ref in frames.values():
        assert ref["size"] == len(done.binaries[ref["index"] - 1])
    assert done["voiceModelUserId"] == "u1" and done["failedLanguages"] == []
    assert "audioBase64" not in json.dumps(done.body)


async def test_audio_process_one_language_is_audio_translation_ready(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(audio_process(["en"], taskId=task), AUDIO)
    events = await gateway.events_for(task, is_type("audio_process_completed", "audio_process_error"), 10)
    assert [e.type for e in events] == ["transcription_ready", "audio_translation_ready", "audio_process_completed"]


async def test_audio_process_mobile_transcription_replaces_whisper(gateway: GatewayClient) -> None:
    task = new_id()
    mobile = {"text": "Salut tout le monde", "language": "fr", "confidence": 0.9, "source": "ios",
              "segments": [{"text": "Salut tout le monde", "startMs": 0, "endMs": 900}]}
    await gateway.send(audio_process(["en"], taskId=task, mobileTranscription=mobile), AUDIO)
    ready = await gateway.wait_for(lambda e: e.get("taskId") == task, 10)
    assert ready.type == "transcription_ready"
    assert ready["transcription"]["source"] == "mobile" and ready["transcription"]["text"] == "Salut tout le monde"
    await gateway.events_for(task, is_type("audio_process_completed"), 10)


async def test_audio_process_base64_audio_when_no_frame(gateway: GatewayClient) -> None:
    task = new_id()
    body = audio_process(["en"], taskId=task, audioBase64=base64.b64encode(AUDIO).decode())
    del body["binaryFrames"]
    await gateway.send(body)
    events = await gateway.events_for(task, is_type("audio_process_completed", "audio_process_error"), 10)
    assert events[-1].type == "audio_process_completed"


async def test_audio_process_failed_language_reported_others_delivered(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(audio_process(["en", "xx"], taskId=task), AUDIO)
    events = await gateway.events_for(task, is_type("audio_process_completed", "audio_process_error"), 10)
    done = events[-1]
    assert done.type == "audio_process_completed"
    assert [t["targetLanguage"] for t in done["translatedAudios"]] == ["en"]
    assert [f["targetLanguage"] for f in done["failedLanguages"]] == ["xx"]
    assert done["failedLanguages"][0]["errorCode"] == "unsupported_language"


async def test_transcription_only(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "transcription_only", "taskId": task, "messageId": "m1", "attachmentId": "a1",
                        "audioFormat": "wav", "mobileTranscription": None,
                        "binaryFrames": {"audio": 1, "audioMimeType": "audio/wav", "audioSize": len(AUDIO)}}, AUDIO)
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "transcription_completed"
    assert (event["messageId"], event["attachmentId"]) == ("m1", "a1")
    assert event["transcription"]["text"] == "bonjour" and isinstance(event["processingTimeMs"], int)


async def test_transcription_only_corrupt_audio(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "transcription_only", "taskId": task, "messageId": "m1", "attachmentId": "a1",
                        "binaryFrames": {"audio": 1}}, b"\x00\x01garbage" * 100)
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "transcription_error" and event["errorCode"] == "invalid_request"
    assert event["error"]


def b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode()


async def voice_api_call(gateway: GatewayClient, body: dict[str, Any], timeout_s: float = 10) -> Any:
    """Send one voice API request; return its `voice_api_success` result after checking the envelope."""
    event = await gateway.ask(body, timeout_s)
    assert event.type == "voice_api_success", event.body
    assert event["requestType"] == body["type"] and isinstance(event["processingTimeMs"], int)
    assert isinstance(event["timestamp"], float)
    return event["result"]


def check_voice_translation(result: dict[str, Any], targets: list[str]) -> None:
    """VoiceTranslationResult, every field, exactly (the gateway's fields and our declared extras)."""
    shapes.check(result, {**shapes.VOICE_TRANSLATION_RESULT, **shapes.VOICE_TRANSLATION_RESULT_EXTRAS}, exact=True)
    assert result["translationId"].startswith("vtr_") and result["processingTimeMs"] >= 400  # ms: 2 fake stages
    original = result["originalAudio"]
    shapes.check(original, {**shapes.VOICE_TRANSLATION_ORIGINAL_AUDIO, "source": str}, exact=True)
    assert (original["transcription"], original["language"], original["source"]) == ("bonjour", "fr", "whisper")
    assert original["durationMs"] == 1000 and original["confidence"] == 0.9
    assert [t["targetLanguage"] for t in result["translations"]] == targets
    for t in result["translations"]:
        shapes.check(t, {**shapes.VOICE_TRANSLATION_OUTPUT, **shapes.VOICE_TRANSLATION_OUTPUT_EXTRAS}, exact=True)
        assert t["translatedText"] == f"bonjour->{t['targetLanguage']}"
        assert base64.b64decode(t["audioBase64"])[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")  # mp3
        assert t["durationMs"] == 500 and t["voiceCloned"] is True and t["audioMimeType"] == "audio/mpeg"
        assert t["voiceQuality"] == t["voiceSimilarity"] == 0.7 and t["baseVoiceSimilarity"] == 0.5
    assert result["voiceCloned"] is True and result["failedLanguages"] == []
    assert "voiceProfile" not in result  # 1 s of speech is kept as a pending sample: no profile yet


async def test_voice_translate_result_is_the_gateways_voice_translation_result(gateway: GatewayClient) -> None:
    result = await voice_api_call(gateway, {"type": "voice_translate", "userId": "u1", "audioBase64": b64(AUDIO),
                                            "targetLanguages": ["en", "es"], "sourceLanguage": "fr",
                                            "generateVoiceClone": True})
    check_voice_translation(result, ["en", "es"])
    assert result["userId"] == "u1"


async def test_voice_translate_reports_the_senders_new_profile(gateway: GatewayClient) -> None:
    result = await voice_api_call(gateway, {"type": "voice_translate", "userId": "u-long",
                                            "audioBase64": b64(PROFILE_AUDIO), "targetLanguages": ["en"]})
    shapes.check(result["voiceProfile"], {**shapes.VOICE_TRANSLATION_PROFILE, "version": int, "action": str},
                 exact=True)
    assert result["voiceProfile"]["profileId"].startswith("vfp_")
    assert result["voiceProfile"]["isNew"] is True and result["voiceProfile"]["action"] == "created"
    assert 0 < result["voiceProfile"]["quality"] <= 1 and result["originalAudio"]["durationMs"] == 1000


async def test_voice_translate_async_progress_completed_status_history(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "voice_translate_async", "taskId": task, "userId": "u1",
                        "audioBase64": b64(AUDIO), "targetLanguages": ["en", "es"],
                        "priority": "normal", "callbackMetadata": {"k": "v"}})
    events = await gateway.events_for(task, is_type("voice_translation_completed", "voice_translation_failed"), 10)
    ack = events[0]
    assert ack.type == "voice_api_success" and ack["processingTimeMs"] == 0
    shapes.check(ack["result"], shapes.VOICE_JOB_ACCEPTED, exact=True)
    assert ack["result"]["status"] == "pending"
    job_id = ack["result"]["jobId"]
    progress = [e for e in events if e.type == "voice_job_progress"]
    assert progress and all(e["jobId"] == job_id for e in progress)
    values = [e["progress"] for e in progress]
    assert values == sorted(values) and all(isinstance(v, int) and 0 <= v <= 100 for v in values)
    assert all(isinstance(e["currentStep"], str) for e in progress)
    final = events[-1]
    assert final.type == "voice_translation_completed"
    assert (final["jobId"], final["status"], final["userId"]) == (job_id, "completed", "u1")
    check_voice_translation(final["result"], ["en", "es"])

    status = await voice_api_call(gateway, {"type": "voice_job_status", "userId": "u1", "jobId": job_id})
    shapes.check(status, {**shapes.TRANSLATION_JOB, "taskId": str, "targetLanguages": [str],
                          "errorCode": shapes.Opt(str), "updatedAt": shapes.ISO}, exact=True)
    shapes.check(status, shapes.required({k: v for k, v in shapes.TRANSLATION_JOB.items() if k != "error"}))
    assert (status["jobId"], status["userId"], status["status"], status["progress"]) == (job_id, "u1", "completed", 100)
    assert status["createdAt"] <= status["startedAt"] <= status["completedAt"] <= status["updatedAt"]
    assert status["result"] == final["result"] and "error" not in status and status["taskId"] == task

    history = await voice_api_call(gateway, {"type": "voice_history", "userId": "u1"})
    shapes.check(history, {**shapes.VOICE_HISTORY, "limit": int, "offset": int}, exact=True)
    [entry] = [h for h in history["history"] if h.get("jobId") == job_id]
    shapes.check(entry, {**shapes.TRANSLATION_HISTORY_ENTRY, "jobId": shapes.Opt(str), "requestType": str,
                         "audioDurationMs": shapes.MS}, exact=True)
    assert entry["id"] == final["result"]["translationId"] and entry["requestType"] == "voice_translate_async"
    assert (entry["userId"], entry["sourceLanguage"], entry["targetLanguages"]) == ("u1", "fr", ["en", "es"])
    assert entry["originalText"] == "bonjour" and entry["translatedTexts"] == {"en": "bonjour->en", "es": "bonjour->es"}
    assert entry["audioGenerated"] is True and entry["voiceCloned"] is True and entry["audioDurationMs"] == 1000
    assert entry["processingTimeMs"] == final["result"]["processingTimeMs"] and "feedbackRating" not in entry
    assert history["total"] >= 1 and history["limit"] == 20 and history["offset"] == 0

    rated = await voice_api_call(gateway, {"type": "voice_feedback", "userId": "u1", "translationId": entry["id"],
                                           "rating": 4})
    shapes.check(rated, {**shapes.VOICE_FEEDBACK, "recorded": bool}, exact=True)
    assert rated["success"] is True and rated["feedbackId"].startswith("vfb_")
    history = await voice_api_call(gateway, {"type": "voice_history", "userId": "u1"})
    assert [h["feedbackRating"] for h in history["history"] if h["id"] == entry["id"]] == [4]

    stats = await voice_api_call(gateway, {"type": "voice_stats", "userId": "u1", "period": "day"})
    shapes.check(stats, {**shapes.VOICE_USER_STATS, "period": str, "zmq": dict}, exact=True)
    assert stats["userId"] == "u1" and stats["totalTranslations"] == history["total"] and stats["period"] == "day"
    assert stats["languagesUsed"] == ["en", "es", "fr"] and stats["feedbackCount"] == 1
    assert stats["averageFeedbackRating"] == 4 and stats["profileCount"] == 0
    assert stats["totalAudioMinutes"] == pytest.approx(stats["totalTranslations"] / 60, abs=1e-3)  # 1 s each
    assert stats["averageProcessingTimeMs"] >= 400 and stats["periodStart"] < stats["periodEnd"]


async def test_voice_job_cancel(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "voice_translate_async", "taskId": task, "userId": "u1",
                        "audioBase64": b64(AUDIO), "targetLanguages": ["en"]})
    ack = await gateway.wait_for(lambda e: e.get("taskId") == task and e.type == "voice_api_success", 5)
    job_id = ack["result"]["jobId"]
    answer = await voice_api_call(gateway, {"type": "voice_job_cancel", "userId": "u1", "jobId": job_id})
    shapes.check(answer, {**shapes.VOICE_JOB_CANCEL, "jobId": str, "status": str}, exact=True)
    assert answer["success"] is True and answer["status"] == "cancelled" and answer["message"]
    final = await gateway.wait_for(lambda e: e.get("taskId") == task and e.type.startswith("voice_translation_"), 5)
    assert final.type == "voice_translation_failed" and final["status"] == "cancelled"
    again = await voice_api_call(gateway, {"type": "voice_job_cancel", "userId": "u1", "jobId": job_id})
    assert again["success"] is False and again["status"] == "cancelled"
    status = await voice_api_call(gateway, {"type": "voice_job_status", "userId": "u1", "jobId": job_id})
    assert status["status"] == "cancelled" and "completedAt" in status and "result" not in status


async def test_voice_languages_is_an_array_of_supported_languages(gateway: GatewayClient) -> None:
    languages = await voice_api_call(gateway, {"type": "voice_languages"})
    assert isinstance(languages, list) and len(languages) > 100
    for lang in languages:
        shapes.check(lang, shapes.VOICE_SUPPORTED_LANGUAGE, exact=True)
        shapes.check(lang["supportedFeatures"], shapes.VOICE_SUPPORTED_LANGUAGE["supportedFeatures"], exact=True)
    by_code = {lang["code"]: lang for lang in languages}
    assert {"en", "fr", "es", "de"} <= set(by_code)
    assert (by_code["fr"]["name"], by_code["fr"]["nativeName"]) == ("French", "français")
    assert by_code["de"]["nativeName"] == "Deutsch" and by_code["ja"]["nativeName"] == "日本語"
    assert by_code["fr"]["supportedFeatures"] == {"transcription": True, "translation": True, "tts": True,
                                                  "voiceClone": True}
    # Whisper does not know Akan; Hawaiian has no NLLB code.
    assert by_code["ak"]["supportedFeatures"]["transcription"] is False
    assert by_code["haw"]["supportedFeatures"]["translation"] is False


async def test_voice_health_is_the_gateways_health_status(gateway: GatewayClient) -> None:
    await voice_api_call(gateway, {"type": "voice_translate", "audioBase64": b64(AUDIO), "targetLanguages": ["en"]})
    health = await voice_api_call(gateway, {"type": "voice_health"})
    shapes.check(health, {**shapes.VOICE_HEALTH_STATUS, "ready": bool, "components": dict, "zmq": dict}, exact=True)
    shapes.check(health["services"], shapes.VOICE_HEALTH_STATUS["services"], exact=True)
    shapes.check(health["latency"], {**shapes.VOICE_HEALTH_STATUS["latency"], "sampleCounts": dict}, exact=True)
    assert health["status"] == "healthy" and all(health["services"].values())
    latency = health["latency"]
    assert latency["transcriptionMs"] >= 150 and latency["translationMs"] >= 150 and latency["ttsMs"] >= 150
    assert all(n >= 1 for n in latency["sampleCounts"].values())
    assert set(health["components"]) == {"transcriber", "translator", "synthesizer", "voice_cloner"}


async def test_voice_stats_and_admin_metrics(gateway: GatewayClient) -> None:
    stats = await voice_api_call(gateway, {"type": "voice_stats", "userId": "nobody"})
    shapes.check(stats, {**shapes.VOICE_USER_STATS, "period": str, "zmq": dict}, exact=True)
    assert (stats["totalTranslations"], stats["averageProcessingTimeMs"], stats["averageFeedbackRating"]) == (0, 0, 0)
    assert stats["period"] == "all" and stats["zmq"]["received"]["voice_stats"] >= 1
    assert stats["zmq"]["loopAlive"] is True

    await voice_api_call(gateway, {"type": "voice_translate", "audioBase64": b64(AUDIO), "targetLanguages": ["en"]})
    metrics = await voice_api_call(gateway, {"type": "voice_admin_metrics", "userId": "admin"})
    shapes.check(metrics, {**shapes.VOICE_SYSTEM_METRICS, "zmq": dict, "health": dict, "cache": dict,
                           "profiles": dict}, exact=True)
    assert metrics["completedToday"] >= 1 and metrics["failedToday"] == 0 and metrics["averageProcessingTimeMs"] >= 400
    assert {"fake-whisper", "fake:fake-translator", "tts:fake", "fake-encoder"} <= set(metrics["modelsLoaded"])
    assert metrics["memoryUsageMb"] > 10 and metrics["cpuUsage"] >= 0 and metrics["uptime"] >= 0
    assert metrics["health"]["ready"] is True and metrics["zmq"]["loopAlive"] is True


async def test_voice_analyze_is_the_gateways_voice_analysis_result(gateway: GatewayClient) -> None:
    result = await voice_api_call(gateway, {"type": "voice_analyze", "userId": "u1", "audioBase64": b64(AUDIO)})
    shapes.check(result, shapes.VOICE_ANALYSIS_RESULT)
    shapes.check(result, shapes.LEGACY_VOICE_ANALYSIS)
    pitch = result["pitch"]
    assert pitch["mean"] == pytest.approx(200, abs=2) and pitch["mean_hz"] == pitch["mean"]  # a 200 Hz tone
    assert pitch["min"] <= pitch["mean"] <= pitch["max"] and len(pitch["contour"]) == 11  # every 100 ms of 1 s
    assert len(result["mfcc"]["coefficients"]) == len(result["mfcc"]["std"]) == 13
    assert 0 < result["energy"]["rms"] <= result["energy"]["peak"] == pytest.approx(0.2, abs=0.01)
    assert result["timbre"]["spectralCentroid"] == pytest.approx(200, abs=60)
    assert result["spectral"]["centroid_hz"] == result["timbre"]["spectralCentroid"]
    assert (result["classification"]["voiceType"], result["classification"]["gender"]) == ("medium", "female")
    assert result["metadata"]["confidence"] == result["classification"]["confidence"]
    assert result["prosody"]["speechRateWpm"] == result["prosody"]["speech_rate_wpm"] > 0  # "bonjour": 1 word
    assert result["userId"] == "u1" and result["embeddingDimension"] == 256
    assert result["signatureShort"] == result["fingerprint"]["signatureShort"] and result["embeddingData"]
    transcription = result["transcription"]
    assert transcription["text"] == "bonjour" and transcription["durationMs"] == 1000
    assert isinstance(transcription["processingTimeMs"], int) and transcription["processingTimeMs"] >= 150


async def test_voice_compare_is_the_gateways_voice_comparison_result(gateway: GatewayClient) -> None:
    result = await voice_api_call(gateway, {"type": "voice_compare", "audioBase64_1": b64(AUDIO),
                                            "audioBase64_2": b64(sine_wav_bytes(1.5))})
    shapes.check(result, shapes.VOICE_COMPARISON_RESULT)
    shapes.check(result, shapes.LEGACY_VOICE_COMPARISON)
    assert result["verdict"] == "same_speaker" and result["is_likely_same_speaker"] is True  # one fake embedding
    assert result["overallSimilarity"] == result["similarityScore"] == result["overall_score"] == 1.0
    assert result["confidence"] == 1.0 and result["isMatch"] is True and result["threshold"] == 0.8
    assert result["pitchSimilarity"] == pytest.approx(1.0, abs=0.01) == result["components"]["pitch_similarity"]
    assert all(0 <= result[k] <= 1 for k in ("timbreSimilarity", "mfccSimilarity", "energySimilarity"))
    assert result["voiceCharacteristics1"]["pitchMeanHz"] == pytest.approx(200, abs=2)


async def test_voice_profile_crud_answers_the_gateways_voice_profile(gateway: GatewayClient) -> None:
    extras = {"profileId": str, "audioCount": int, "totalDurationMs": shapes.MS, "qualityScore": shapes.NUM,
              "version": int, "embeddingModel": str, "embeddingDimension": int, "fingerprint": dict,
              "measuredCharacteristics": dict, "nextRecalibrationAt": shapes.ISO}
    created = await voice_api_call(gateway, {"type": "voice_profile_create", "userId": "u-crud",
                                             "audioBase64": b64(PROFILE_AUDIO)})
    shapes.check(created, {**shapes.VOICE_PROFILE, **extras}, exact=True)
    assert created["id"] == created["profileId"] and created["userId"] == "u-crud" and created["name"] == "default"
    assert (created["sampleCount"], created["version"], created["totalDurationMs"]) == (1, 1, 10_500)
    assert created["averageQuality"] == created["qualityScore"] and "voiceCharacteristics" not in created
    assert created["measuredCharacteristics"]["pitchMeanHz"] == pytest.approx(200, abs=2)

    got = await voice_api_call(gateway, {"type": "voice_profile_get", "userId": "u-crud"})
    assert got == created
    updated = await voice_api_call(gateway, {"type": "voice_profile_update", "userId": "u-crud",
                                             "audioBase64": b64(PROFILE_AUDIO)})
    shapes.check(updated, {**shapes.VOICE_PROFILE, **extras}, exact=True)
    assert (updated["id"], updated["sampleCount"], updated["version"]) == (created["id"], 2, 2)
    assert updated["updatedAt"] >= created["updatedAt"]
    listed = await voice_api_call(gateway, {"type": "voice_profile_list", "limit": 10})
    shapes.check(listed, {**shapes.VOICE_PROFILE_LIST, "limit": int, "offset": int}, exact=True)
    assert listed["total"] == 1 and listed["profiles"] == [updated] and listed["limit"] == 10
    stats = await voice_api_call(gateway, {"type": "voice_stats", "userId": "u-crud"})
    assert stats["profileCount"] == 1
    deleted = await voice_api_call(gateway, {"type": "voice_profile_delete", "userId": "u-crud"})
    shapes.check(deleted, {**shapes.VOICE_PROFILE_DELETED, "deleted": bool, "userId": str}, exact=True)
    assert deleted == {"success": True, "deleted": True, "userId": "u-crud"}


async def test_voice_profile_analyze_with_transcription_and_previews(gateway: GatewayClient) -> None:
    request_id = new_id("r")
    await gateway.send({"type": "voice_profile_analyze", "request_id": request_id, "user_id": "u-prof",
                        "audio_data": b64(PROFILE_AUDIO), "audio_format": "wav", "is_update": False,
                        "existing_fingerprint": None, "include_transcription": True, "generate_previews": True,
                        "preview_languages": ["en", "es", "xx"]})
    event = await gateway.wait_for(lambda e: e.get("request_id") == request_id, 10)
    assert event.type == "voice_profile_analyze_result", event.body
    body = event.body
    shapes.check(body, shapes.required({k: v for k, v in shapes.VOICE_PROFILE_ANALYZE_RESULT.items()
                                        if k not in ("fingerprint_id", "embedding_path", "error")}))
    assert body["success"] is True and body["user_id"] == "u-prof" and body["profile_id"].startswith("vfp_")
    assert body["audio_duration_ms"] == 10_500 and body["embedding_dimension"] == 256
    assert isinstance(body["timestamp"], float)

    transcription = body["transcription"]
    shapes.check(transcription, shapes.VOICE_PROFILE_TRANSCRIPTION, exact=True)
    assert (transcription["text"], transcription["language"], transcription["source"]) == ("bonjour", "fr", "whisper")
    assert transcription["duration_ms"] == 1000 and transcription["segments"] == []  # what the fake Whisper says
    assert transcription["processing_time_ms"] >= 150  # ms: the fake Whisper takes 0.2 s
    for camel in ("durationMs", "startMs", "endMs", "processingTimeMs"):
        assert camel not in json.dumps(transcription)

    previews = body["voice_previews"]
    assert [p["language"] for p in previews] == ["en", "es"]
    for p in previews:
        shapes.check(p, {**shapes.VOICE_PREVIEW_SAMPLE, "voice_cloned": bool, "voice_similarity": shapes.NUM},
                     exact=True)
        assert p["original_text"] == "bonjour" and p["translated_text"] == f"bonjour->{p['language']}"
        assert p["audio_format"] == "mp3" and p["duration_ms"] == 500 and base64.b64decode(p["audio_base64"])
        assert p["generated_at"].endswith("Z") and p["voice_cloned"] is True
    assert [f["language"] for f in body["voice_previews_failed"]] == ["xx"]
    assert body["voice_previews_failed"][0]["error_code"] == "unsupported_language"


async def test_voice_profile_verify_and_compare_results(gateway: GatewayClient) -> None:
    request_id = new_id("r")
    await gateway.send({"type": "voice_profile_analyze", "request_id": request_id, "user_id": "u-v",
                        "audio_data": b64(PROFILE_AUDIO), "include_transcription": False})
    analyzed = await gateway.wait_for(lambda e: e.get("request_id") == request_id, 10)
    assert analyzed.type == "voice_profile_analyze_result" and "transcription" not in analyzed.body
    assert "voice_previews" not in analyzed.body
    fingerprint = analyzed["fingerprint"]
    await gateway.send({"type": "voice_profile_verify", "request_id": request_id + "v", "user_id": "u-v",
                        "audio_data": b64(PROFILE_AUDIO), "existing_fingerprint": fingerprint})
    verified = await gateway.wait_for(lambda e: e.get("request_id") == request_id + "v", 10)
    assert verified.type == "voice_profile_verify_result"
    shapes.check(verified.body, shapes.required({k: v for k, v in shapes.VOICE_PROFILE_VERIFY_RESULT.items()
                                                 if k != "error"}))
    assert verified["is_match"] is True and verified["threshold"] == 0.8
    await gateway.send({"type": "voice_profile_compare", "request_id": request_id + "c", "fingerprint_a": fingerprint,
                        "fingerprint_b": fingerprint})
    compared = await gateway.wait_for(lambda e: e.get("request_id") == request_id + "c", 10)
    assert compared.type == "voice_profile_compare_result"
    shapes.check(compared.body, shapes.required({k: v for k, v in shapes.VOICE_PROFILE_COMPARE_RESULT.items()
                                                 if k != "error"}))
    assert compared["similarity_score"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "voice_compare", "audioBase64_1": "AAAA", "audioBase64_2": "AAAA"}, "INVALID_REQUEST"),
        ({"type": "voice_profile_get", "userId": "u1"}, "NOT_FOUND"),
        ({"type": "voice_profile_create", "userId": "u1", "audioBase64": "AAAA"}, "INVALID_REQUEST"),
        ({"type": "voice_profile_update", "userId": "u1", "audioBase64": "AAAA"}, "INVALID_REQUEST"),
        ({"type": "voice_profile_delete", "userId": "u1"}, "NOT_FOUND"),
        ({"type": "voice_profile_get"}, "INVALID_REQUEST"),
        ({"type": "voice_job_status", "jobId": "vjob_nope"}, "NOT_FOUND"),
        ({"type": "voice_job_cancel", "jobId": "vjob_nope"}, "NOT_FOUND"),
        ({"type": "voice_feedback", "userId": "u1", "translationId": "t", "rating": 9}, "INVALID_REQUEST"),
        ({"type": "voice_translate", "audioBase64": "not base64!", "targetLanguages": ["en"]}, "INVALID_REQUEST"),
        ({"type": "voice_translate", "targetLanguages": ["en"]}, "INVALID_REQUEST"),
        ({"type": "voice_translate", "audioBase64": base64.b64encode(AUDIO).decode(), "targetLanguages": ["xx"]},
         "INVALID_REQUEST"),
    ],
)
async def test_voice_api_types_always_answer(gateway: GatewayClient, body: dict[str, Any], code: str) -> None:
    """Unknown profiles and jobs are NOT_FOUND, corrupt audio and bad fields INVALID_REQUEST: each answers."""
    event = await gateway.ask(body, 5)
    assert event.type == "voice_api_error"
    assert event["requestType"] == body["type"] and event["errorCode"] == code and event["error"]
    assert isinstance(event["timestamp"], float)


def _analysis_ok(result: dict[str, Any]) -> None:
    assert result["userId"] == "u1" and result["embeddingDimension"] == 256
    assert result["signatureShort"] == result["fingerprint"]["signatureShort"] and result["embeddingData"]
    shapes.check(result, shapes.VOICE_ANALYSIS_RESULT)


def _empty_list(result: dict[str, Any]) -> None:
    assert result == {"profiles": [], "total": 0, "limit": 50, "offset": 0}


def _recorded(result: dict[str, Any]) -> None:
    assert result["success"] is True and result["recorded"] is True and result["feedbackId"]


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ({"type": "voice_analyze", "audioBase64": base64.b64encode(AUDIO).decode(), "userId": "u1"}, _analysis_ok),
        ({"type": "voice_profile_list"}, _empty_list),
        ({"type": "voice_feedback", "userId": "u1", "translationId": "t", "rating": 4}, _recorded),
    ],
)
async def test_voice_api_profile_operations_run_on_the_real_pipeline(
    gateway: GatewayClient, body: dict[str, Any], check: Any
) -> None:
    """The pipeline is the real one over fake stages and a file store: analyze, list and feedback
    succeed with their own results (camelCase on this API)."""
    event = await gateway.ask(body, 5)
    assert event.type == "voice_api_success" and event["requestType"] == body["type"]
    check(event["result"])


@pytest.mark.parametrize(
    "body",
    [
        {"type": "voice_profile_analyze", "user_id": "u1", "audio_data": base64.b64encode(AUDIO).decode(),
         "audio_format": "wav", "include_transcription": True, "generate_previews": True,
         "preview_languages": ["en"]},
        {"type": "voice_profile_verify", "user_id": "u1", "audio_data": base64.b64encode(AUDIO).decode(),
         "existing_fingerprint": {}},
        {"type": "voice_profile_compare", "fingerprint_a": {}, "fingerprint_b": {}},
        {"type": "voice_profile_analyze", "user_id": "u1"},  # invalid: no audio
    ],
)
async def test_voice_profile_family_is_routed_and_answers(gateway: GatewayClient, body: dict[str, Any]) -> None:
    request_id = new_id("r")
    await gateway.send({**body, "request_id": request_id})
    event = await gateway.wait_for(lambda e: e.get("request_id") == request_id, 5)
    assert event.type == "voice_profile_error"
    assert event["success"] is False and event["requestType"] == body["type"] and event["error"]


# ---- error paths: the loop survives, the gateway hears back ----

async def test_bad_json_and_random_bytes_keep_the_loop(server: GatewayServer, gateway: GatewayClient) -> None:
    await gateway.send(b'{"type": "translation", "taskId": ')
    bad = await gateway.wait_for(lambda e: e.type == "error" and e["errorCode"] == "invalid_json", 5)
    assert bad["error"] and isinstance(bad["timestamp"], float)
    await gateway.send(os.urandom(4096), os.urandom(100))
    await gateway.wait_for(lambda e: e.type == "error" and e["errorCode"] == "invalid_json", 5)
    await gateway.send(b"[1, 2, 3]")  # JSON but not an object
    await gateway.wait_for(lambda e: e.type == "error" and e["errorCode"] == "invalid_json", 5)
    await pong_after(gateway)
    assert server.stats()["malformed"] == 3 and server.stats()["loopAlive"] is True


async def test_unknown_type_answers_with_its_ids(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "teleport", "taskId": task, "messageId": "m9"})
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "error" and event["errorCode"] == "unknown_type"
    assert event["requestType"] == "teleport" and event["messageId"] == "m9"
    await pong_after(gateway)


async def test_wrongly_typed_fields_answer_with_the_type_error_event(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "translation", "taskId": task, "text": 42, "targetLanguages": "en"})
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "translation_error" and event["errorCode"] == "invalid_request"


async def test_frame_index_out_of_range(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(audio_process(["en"], taskId=task, binaryFrames={"audio": 3}), AUDIO)
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "audio_process_error" and event["errorCode"] == "invalid_request"
    assert "binaryFrames.audio=3" in event["error"]
    assert (event["messageId"], event["attachmentId"]) == ("m1", "a1")


async def test_missing_required_ids_still_answer(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send({"type": "audio_process", "taskId": task, "targetLanguages": ["en"],
                        "binaryFrames": {"audio": 1}}, AUDIO)
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "audio_process_error" and event["errorCode"] == "invalid_request"


async def test_bad_forwarded_voice_profile_frame(gateway: GatewayClient) -> None:
    task = new_id()
    body = audio_process(["en"], taskId=task, existingVoiceProfile={"profileId": "vfp_x", "userId": "u0"},
                         binaryFrames={"audio": 1, "voiceProfile": 2, "voiceProfileSize": 7})
    await gateway.send(body, AUDIO, b"garbage")
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "audio_process_error" and event["errorCode"] == "invalid_request"


async def test_sixty_megabyte_frame_is_refused_and_the_loop_lives(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(audio_process(["en"], taskId=task), b"\x00" * (60 * 1024 * 1024))
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 20)
    assert event.type == "audio_process_error" and event["errorCode"] == "invalid_request"
    assert "limit" in event["error"]
    await pong_after(gateway)


async def test_corrupt_audio_is_invalid_request(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(audio_process(["en"], taskId=task), b"\x00\x01garbage" * 500)
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "audio_process_error" and event["errorCode"] == "invalid_request"


async def test_over_long_text_is_skipped(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(translation(task, ["en"], text="x" * 12_000))
    event = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert event.type == "translation_skipped"
    assert (event["reason"], event["length"], event["max_length"]) == ("message_too_long", 12_000, 10_000)
    assert event["messageId"] == f"m-{task}" and event["conversationId"] == "conv"


async def test_unknown_language_fails_alone(gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(translation(task, ["en", "xx", "es"]))
    events = [await gateway.wait_for(lambda e: e.get("taskId") == task, 5) for _ in range(3)]
    by_lang = {e["targetLanguage"]: e for e in events}
    assert by_lang["xx"].type == "translation_error" and by_lang["xx"]["errorCode"] == "unsupported_language"
    assert by_lang["xx"]["messageId"] == f"m-{task}" and by_lang["xx"]["conversationId"] == "conv"
    assert by_lang["en"].type == by_lang["es"].type == "translation_completed"
    # The error is published at once, not after the others.
    assert events[0].type == "translation_error"


async def test_repushed_task_id_is_deduplicated_while_in_flight(server: GatewayServer, gateway: GatewayClient) -> None:
    task = new_id()
    await gateway.send(translation(task, ["en", "es"]))
    await gateway.send(translation(task, ["en", "es"]))
    events = await gateway.no_event_for(task, 1.5)
    assert sorted(e["targetLanguage"] for e in events) == ["en", "es"]
    assert {e.type for e in events} == {"translation_completed"}
    assert server.stats()["deduplicated"] == 1
    # Once done, a retry is served again (the gateway retries missing languages after 30 s).
    await gateway.send(translation(task, ["en"]))
    again = await gateway.wait_for(lambda e: e.get("taskId") == task, 5)
    assert again.type == "translation_completed"


async def test_flood_gets_busy_answers_never_silence(server: GatewayServer, gateway: GatewayClient) -> None:
    n = 5 * MAX_IN_FLIGHT
    tasks = [new_id("flood") for _ in range(n)]
    for task in tasks:
        await gateway.send(translation(task, ["en", "es"]))
    voice_tasks = [new_id("vflood") for _ in range(3)]
    for task in voice_tasks:
        await gateway.send({"type": "voice_stats", "taskId": task})
    # A ping while every slot is taken is still answered.
    pong = await pong_after(gateway)
    assert pong["in_flight"] >= 1

    answers: dict[str, list[Event]] = {t: [] for t in tasks}
    while any(len(v) < 2 for v in answers.values()):
        event = await gateway.wait_for(lambda e: e.get("taskId") in answers, 10)
        answers[event["taskId"]].append(event)
    busy = [t for t, evs in answers.items() if all(e.type == "translation_error" for e in evs)]
    served = [t for t, evs in answers.items() if all(e.type == "translation_completed" for e in evs)]
    assert len(busy) + len(served) == n
    assert len(served) >= MAX_IN_FLIGHT and busy
    for t in busy:
        assert {e["errorCode"] for e in answers[t]} == {"busy"}
        assert sorted(e["targetLanguage"] for e in answers[t]) == ["en", "es"]
        assert all(e["messageId"] == f"m-{t}" for e in answers[t])
    voice = [await gateway.wait_for(lambda e, t=t: e.get("taskId") == t, 10) for t in voice_tasks]
    assert all(e.type == "voice_api_error" and e["errorCode"] == "RATE_LIMITED" for e in voice), [
        e.body for e in voice]
    assert server.stats()["rejectedBusy"] >= len(busy) + len(voice_tasks)
    await pong_after(gateway)


async def test_busy_audio_process_answers_with_generated_ids(gateway: GatewayClient) -> None:
    tasks = [new_id("a") for _ in range(MAX_IN_FLIGHT)]
    for task in tasks:
        await gateway.send(audio_process(["en"], taskId=task), AUDIO)
    await gateway.send(audio_process(["en"], messageId="m-busy", attachmentId="a-busy"), AUDIO)
    event = await gateway.wait_for(lambda e: e.get("messageId") == "m-busy", 5)
    assert event.type == "audio_process_error" and event["errorCode"] == "busy"
    assert event["attachmentId"] == "a-busy" and event["taskId"]
    for task in tasks:
        await gateway.events_for(task, is_type("audio_process_completed"), 20)


async def test_check_fails_once_the_loop_is_dead(server: GatewayServer) -> None:
    server.check()
    assert server.loop_task is not None
    server.loop_task.cancel()
    await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match="stopped"):
        server.check()
    assert server.stats()["loopAlive"] is False


async def test_check_fails_before_start() -> None:
    s = gateway_settings(zmq_max_in_flight=MAX_IN_FLIGHT)
    gw = build_gateway(VoicePipeline(FakeStages(), s), s)
    try:
        with pytest.raises(RuntimeError, match="not started"):
            gw.check()
    finally:
        gw.close()


async def test_a_gateway_that_reconnects_is_served_again(tmp_path: Path) -> None:
    """The gateway restarts or reconnects: every new connection pair gets its pong (the PUB socket's
    subscriber monitor, used once at start, must not stall later handshakes)."""
    async with running_gateway(tmp_path) as server:
        for _ in range(3):
            client = await connected_client(server.settings.zmq_pull_port, server.settings.zmq_pub_port, timeout_s=10)
            client.close()
            await asyncio.sleep(0.2)


async def test_drain_hands_the_ports_to_a_new_door_without_losing_an_answer(
    server: GatewayServer, gateway: GatewayClient
) -> None:
    """A redeploy's handover, on one gateway client that never reconnects by hand: the old door answers
    what it had taken, the message sent while it drains is served by the new door on the same ports."""
    await gateway.send(audio_process(["en", "es"]), AUDIO)
    await asyncio.sleep(0.2)  # taken: in flight in the old door
    drain = asyncio.create_task(server.shutdown(10))
    await asyncio.sleep(0.05)
    task = new_id()
    await gateway.send(translation(task, ["en"]))  # the old door has let go of PULL: queued, then delivered
    successor = GatewayServer(server.router, server.settings)  # the next replica (same pipeline behind it)
    try:
        await successor.start()  # binds once the old door has released the ports
        await drain
        done = await gateway.wait_for(lambda e: e.get("messageId") == "m1" and e.type.startswith("audio_process_"), 10)
        assert done.type == "audio_process_completed", done.body
        answer = await gateway.wait_for(lambda e: e.get("taskId") == task, 10)
        assert answer.type == "translation_completed", answer.body
        assert server.pull is not None and server.pull.closed and successor.loop_task is not None
        assert not successor.loop_task.done()
    finally:
        successor.close()
