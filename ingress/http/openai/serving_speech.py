"""Sentence clips from the pipeline encoded for `/v1/audio/speech`: one file, a chunked stream, or SSE.

Formats whose encoded sentences play back to back (mp3, ADTS aac, raw pcm) stream one sentence per
chunk as soon as it is spoken; the containers that cannot be concatenated (wav, flac, ogg/opus) are
encoded once at the end. With `stream_format=sse` every `speech.audio.delta` holds one sentence,
encoded on its own in the asked format (so each delta decodes by itself), then `speech.audio.done`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import numpy as np

from ingress.http.openai.protocol import SpeechUsage
from ingress.http.rendering import sse_data
from serve_app.audio import MIME_TYPES, encode_audio, pcm_from_bytes, resample
from serve_app.domain.voice import SpeechClip

CONCATENABLE = frozenset({"mp3", "aac", "pcm"})


async def encode_clip(clip: SpeechClip, fmt: str, chunk: bool = False) -> bytes:
    return await asyncio.to_thread(encode_audio, pcm_from_bytes(clip.pcm), clip.sample_rate, fmt, chunk)


def joined(clips: list[SpeechClip]) -> tuple[np.ndarray, int]:
    rate = clips[0].sample_rate
    return np.concatenate([resample(pcm_from_bytes(c.pcm), c.sample_rate, rate) for c in clips]), rate


async def audio_chunks(first: SpeechClip, rest: AsyncIterator[SpeechClip], fmt: str) -> AsyncIterator[bytes]:
    if fmt in CONCATENABLE:
        yield await encode_clip(first, fmt, chunk=True)
        async for clip in rest:
            yield await encode_clip(clip, fmt, chunk=True)
        return
    clips = [first] + [clip async for clip in rest]
    samples, rate = joined(clips)
    yield await asyncio.to_thread(encode_audio, samples, rate, fmt)


async def speech_events(first: SpeechClip, rest: AsyncIterator[SpeechClip], fmt: str, text: str) -> AsyncIterator[str]:
    clip: SpeechClip | None = first
    while clip is not None:
        yield sse_data({"type": "speech.audio.delta", "audio": base64.b64encode(await encode_clip(clip, fmt)).decode()})
        clip = await anext(rest, None)
    tokens = len(text.split())
    usage = SpeechUsage(input_tokens=tokens, total_tokens=tokens)
    yield sse_data({"type": "speech.audio.done", "usage": usage.model_dump()})


def media_type(fmt: str) -> str:
    return MIME_TYPES[fmt]
