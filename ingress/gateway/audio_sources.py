"""Where a gateway request's audio comes from: a binary frame, base64, a local path or a URL.

PROTOCOL.md §1 fixes the priority: binary frame first, then `audioBase64`/`audioData`, `audioPath`,
`audioUrl`. Every source is size-checked before it is read in full, so a 60 MB frame or a huge
download is refused with a clear error instead of being decoded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path

import httpx

from ingress.gateway.protocol.requests import AudioSource, VoiceAudioRequest
from serve_app.errors import InvalidRequestError, PayloadTooLargeError
from serve_app.settings import Settings


def binary_frame(frames: list[bytes], index: int | None, what: str) -> bytes | None:
    """`frames[1:][index-1]`, or a clear error when the index points past the message."""
    if index is None:
        return None
    extra = len(frames) - 1
    if not isinstance(index, int) or index < 1 or index > extra:
        raise InvalidRequestError(f"binaryFrames.{what}={index!r} but the message has {extra} binary frame(s)")
    return frames[index]


def _check_size(size: int, settings: Settings, what: str) -> None:
    if size > settings.max_audio_bytes:
        raise PayloadTooLargeError(f"{what} is {size} bytes; the limit is {settings.max_audio_bytes}")


def decode_base64(text: str, settings: Settings, what: str = "audio") -> bytes:
    _check_size(len(text) * 3 // 4, settings, f"{what} (base64)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError(f"{what} is not valid base64: {exc}") from exc


def _read_path(path_text: str, settings: Settings) -> bytes:
    path = Path(path_text).expanduser().resolve()
    roots = [Path(r).expanduser().resolve() for r in settings.audio_path_roots]
    if roots and not any(path.is_relative_to(root) for root in roots):
        raise InvalidRequestError(f"audioPath {path_text!r} is outside the allowed folders (audio_path_roots)")
    if not path.is_file():
        raise InvalidRequestError(f"audioPath {path_text!r} is not a readable file")
    _check_size(path.stat().st_size, settings, "audioPath file")
    return path.read_bytes()


async def _download(url: str, settings: Settings) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise InvalidRequestError(f"audioUrl must be http(s), got {url[:80]!r}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with httpx.AsyncClient(timeout=settings.audio_url_timeout_s, follow_redirects=True) as client:
            async with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise InvalidRequestError(f"audioUrl answered HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    _check_size(size, settings, "audioUrl download")
                    chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise InvalidRequestError(f"audioUrl could not be fetched: {type(exc).__name__}: {exc}") from exc
    return b"".join(chunks)


async def resolve_audio(source: AudioSource, frames: list[bytes], settings: Settings) -> bytes:
    refs = source.binaryFrames
    audio = binary_frame(frames, refs.audio if refs else None, "audio")
    if audio is not None:
        _check_size(len(audio), settings, "the audio frame")
        return audio
    text = source.audioBase64 or source.audioData
    if text:
        return decode_base64(text, settings)
    if source.audioPath:
        return await asyncio.to_thread(_read_path, source.audioPath, settings)
    if source.audioUrl:
        return await _download(source.audioUrl, settings)
    raise InvalidRequestError("no audio: send a binary frame (binaryFrames.audio), audioBase64, audioPath or audioUrl")


async def voice_api_audio(req: VoiceAudioRequest, settings: Settings) -> bytes:
    """The voice API is JSON only: base64 first, then a path or URL; there are no binary frames to read."""
    text = req.audioBase64 or req.audioData
    if text:
        return decode_base64(text, settings)
    if req.audioPath or req.audioUrl:
        return await resolve_audio(AudioSource(audioPath=req.audioPath, audioUrl=req.audioUrl), [], settings)
    raise InvalidRequestError("audioBase64 is required")
