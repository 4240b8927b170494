"""The pipeline's logic over fake stages: concurrency, streaming order, per-language failure."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from serve_app.audio import decode_audio, encode_audio, pcm_from_bytes, pcm_to_bytes
from serve_app.domain.transcription import MobileTranscription
from serve_app.domain.voice import VoiceJob
from serve_app.errors import InvalidRequestError, TextTooLongError, UnsupportedLanguageError
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings
from tests.fixtures.fake_stages import DELAY, FakeStages


def job(targets: list[str], **kw: Any) -> VoiceJob:
    audio = encode_audio(np.sin(np.linspace(0, 800, 16_000)).astype(np.float32) * 0.3, 16_000, "wav")
    return VoiceJob(audio=audio, target_languages=targets, **kw)


async def test_languages_run_concurrently_and_stream_in_order_of_completion() -> None:
    pipe = VoicePipeline(FakeStages(), Settings())
    started = time.perf_counter()
    events = [e async for e in pipe.process_voice(job(["en", "es", "de"]))]
    elapsed = time.perf_counter() - started
    assert [e.kind for e in events] == ["transcription", "language", "language", "language", "completed"]
    # transcription || embedding, then translate -> tts -> convert per language, all languages at once
    assert elapsed < 7 * DELAY, elapsed  # sequential would take ~11 x DELAY; slack for a loaded machine
    result = events[-1].result
    assert result is not None and [t.target_language for t in result.translations] == ["en", "es", "de"]
    assert result.voice_cloned and all(t.voice_similarity == 0.7 for t in result.translations)
    assert decode_audio(result.translations[0].audio).duration_s == pytest.approx(0.5, abs=0.06)


async def test_one_failing_language_does_not_sink_the_others() -> None:
    pipe = VoicePipeline(FakeStages(fail_tts_for="es"), Settings())
    result = await pipe.run_voice(job(["en", "es"], output_format="ogg"))
    assert [t.target_language for t in result.translations] == ["en"]
    assert result.translations[0].audio_mime_type == "audio/ogg"
    assert [(f.target_language, f.error_code) for f in result.failed] == [("es", "tts_failed")]


async def test_mobile_transcription_replaces_whisper() -> None:
    stages = FakeStages()
    pipe = VoicePipeline(stages, Settings())
    mobile = MobileTranscription(text="salut", language="fr-FR", confidence=0.95)
    result = await pipe.run_voice(job(["en"], mobile_transcription=mobile, generate_voice_clone=False))
    assert "transcribe" not in stages.calls and "reference" not in stages.calls
    assert result.transcription.source == "mobile" and result.transcription.language == "fr"
    assert result.translations[0].translated_text == "salut->en" and not result.voice_cloned


async def test_input_errors_raise_before_any_event() -> None:
    pipe = VoicePipeline(FakeStages(), Settings(max_target_languages=10))
    with pytest.raises(UnsupportedLanguageError):
        await pipe.run_voice(job(["en", "xx"]))
    with pytest.raises(InvalidRequestError):
        await pipe.run_voice(job(["en", "fr", "de", "es", "it", "pt", "nl", "pl", "ru", "ja", "ko"]))
    with pytest.raises(TextTooLongError):
        await pipe.translate_text("x" * 10_001, "fr", ["en"])


async def test_text_translation_reports_per_language() -> None:
    pipe = VoicePipeline(FakeStages(), Settings())
    out = await pipe.translate_text("bonjour", "fr", ["en", "EN", "es"])
    assert [o.target_language for o in out] == ["en", "es"]  # normalized and de-duplicated
    assert all(o.ok for o in out) and out[0].translated_text == "bonjour->en"


def test_pcm_is_plain_float32() -> None:
    data = pcm_to_bytes(np.array([0.5, -0.5], np.float32))
    assert len(data) == 8 and list(pcm_from_bytes(data)) == [0.5, -0.5]


class CountingStages(FakeStages):
    """Records how many synthesize calls overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.active = self.peak = 0

    async def synthesize(self, text: str, language: str) -> Any:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await super().synthesize(text, language)
        finally:
            self.active -= 1


@pytest.mark.parametrize(("limit", "peak"), [(0, 3), (1, 1), (2, 2)])
async def test_tts_concurrency_lets_languages_take_turns(limit: int, peak: int) -> None:
    stages = CountingStages()
    pipe = VoicePipeline(stages, Settings(tts_concurrency=limit))
    result = await pipe.run_voice(job(["en", "es", "de"]))
    assert sorted(t.target_language for t in result.translations) == ["de", "en", "es"]
    assert stages.peak == peak


class TwoSentenceStages(CountingStages):
    """Whisper heard two sentences, so every translation has two."""

    async def transcribe(self, pcm: bytes, language: str | None, options: Any = None) -> Any:
        heard = await super().transcribe(pcm, language, options)
        return heard.model_copy(update={"text": "Bonjour. Ça va ?"})


@pytest.mark.parametrize(("split", "calls", "duration_ms"), [(True, 4, 1250), (False, 2, 500)])
async def test_each_sentence_is_spoken_apart_and_joined_with_a_pause(split: bool, calls: int, duration_ms: int) -> None:
    stages = TwoSentenceStages()
    pipe = VoicePipeline(stages, Settings(tts_concurrency=2, tts_split_sentences=split))
    result = await pipe.run_voice(job(["en", "es"]))
    assert len([c for c in stages.calls if c.startswith("tts:")]) == calls
    assert stages.peak == 2  # the sentences take turns like whole languages do
    # the fake speaks 0.5 s per call; two sentences + the Synthesizer's 0.25 s pause = 1.25 s
    assert [t.duration_ms for t in result.translations] == [duration_ms, duration_ms]


async def test_a_failing_sentence_fails_its_language_only() -> None:
    stages = TwoSentenceStages()
    stages.fail_tts_for = "es"
    pipe = VoicePipeline(stages, Settings(tts_concurrency=2))
    result = await pipe.run_voice(job(["en", "es"]))
    assert [t.target_language for t in result.translations] == ["en"]
    assert [(f.target_language, f.error_code) for f in result.failed] == [("es", "tts_failed")]
