"""Transcriptions and translations rendered in OpenAI's five response formats, and as SSE deltas."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ingress.http.openai.protocol import SegmentOut, TranscriptionJson, VerboseTranscription, WordOut
from ingress.http.rendering import sse_data
from serve_app.domain.transcription import Segment, Transcription


def _cues(t: Transcription) -> list[Segment]:
    """The timed pieces of a transcription: its segments, or the whole text when Whisper gave none."""
    if t.segments:
        return t.segments
    return [Segment(text=t.text, startMs=0, endMs=t.durationMs, confidence=t.confidence)]


def _clock(ms: int, separator: str) -> str:
    hours, rest = divmod(max(0, ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def srt(t: Transcription) -> str:
    blocks = [f"{i}\n{_clock(s.startMs, ',')} --> {_clock(s.endMs, ',')}\n{s.text}\n"
              for i, s in enumerate(_cues(t), start=1)]
    return "\n".join(blocks)


def vtt(t: Transcription) -> str:
    blocks = [f"{_clock(s.startMs, '.')} --> {_clock(s.endMs, '.')}\n{s.text}\n" for s in _cues(t)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def verbose(t: Transcription, granularities: Iterable[str], task: str = "transcribe",
            text: str | None = None, language: str | None = None) -> VerboseTranscription:
    wanted = set(granularities) or {"segment"}
    segments = words = None
    if "segment" in wanted:
        segments = [
            SegmentOut(id=i, start=s.startMs / 1000, end=s.endMs / 1000, text=s.text,
                       avg_logprob=round(math.log(max(s.confidence, 1e-6)), 4))
            for i, s in enumerate(_cues(t))
        ]
    if "word" in wanted:
        words = [WordOut(word=w.word, start=w.startMs / 1000, end=w.endMs / 1000) for w in t.words or []]
    return VerboseTranscription(task=task, language=language or t.language, duration=t.durationMs / 1000,
                                text=t.text if text is None else text, segments=segments, words=words)


def render(t: Transcription, response_format: str, granularities: Iterable[str] = ()) -> Response:
    if response_format == "text":
        return PlainTextResponse(t.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(srt(t))
    if response_format == "vtt":
        return PlainTextResponse(vtt(t), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(verbose(t, granularities).model_dump(exclude_none=True))
    return JSONResponse(TranscriptionJson(text=t.text).model_dump())


def deltas(t: Transcription) -> list[str]:
    """The text in pieces (one per segment) that concatenate exactly to `t.text`."""
    pieces = [s.text for s in t.segments if s.text] or [t.text]
    out = [pieces[0]] + [" " + p for p in pieces[1:]]
    return out if "".join(out) == t.text else [t.text]


async def transcript_events(t: Transcription) -> AsyncIterator[str]:
    for delta in deltas(t):
        yield sse_data({"type": "transcript.text.delta", "delta": delta})
    yield sse_data({"type": "transcript.text.done", "text": t.text})
