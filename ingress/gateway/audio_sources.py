"""Where a gateway request's audio comes from: a binary frame, base64, a local path or a URL.

PROTOCOL.md §1 fixes the priority: binary frame first, then `audioBase64`/`audioData`, `audioPath`,
`audioUrl`. Every source is size-checked before it is read in full, so a 60 MB frame or a huge
download is refused with a clear error instead of being decoded. `audioPath` reads only inside
`audio_path_roots` (none configured = refused); `audioUrl` goes through the outbound guard
(serve_app/security/outbound.py: public addresses only, pinned, redirects re-checked, one deadline).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import stat
from pathlib import Path

from ingress.gateway.protocol.requests import AudioSource, VoiceAudioRequest
from serve_app.errors import InvalidRequestError, PayloadTooLargeError
from serve_app.security.outbound import fetch_bytes
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


AUDIO_PATH_REFUSED = "audioPath is not an allowed readable file"


class _PathRefused(Exception):
    """Internal reason an audioPath is refused; the caller only ever sees AUDIO_PATH_REFUSED."""


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _read_path(path_text: str, settings: Settings) -> bytes:
    """The file, if it lies inside one of `audio_path_roots` once symlinks are resolved; none configured = refused.

    Every refusal (no roots, outside them, missing, unreadable, not a regular file, over the size cap) has
    the same text, so the answer never tells a caller whether a path exists.
    """
    roots = [Path(root).expanduser().resolve() for root in settings.audio_path_roots if root]
    try:
        if not roots:
            raise _PathRefused("audio_path_roots is not configured")
        path = Path(path_text).resolve(strict=True)
        if not _inside(path, roots):
            raise _PathRefused("outside audio_path_roots")
        # O_NOFOLLOW: the checked file may not be swapped for a symlink between the check and the open;
        # O_NONBLOCK: a FIFO never blocks the open (it is refused as not a regular file just below).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            opened = Path(f"/proc/self/fd/{fd}")
            if opened.is_symlink() and not _inside(Path(os.readlink(opened)), roots):
                raise _PathRefused("a folder on the path was swapped after the check")  # Linux: what was opened
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > settings.max_audio_bytes:
                raise _PathRefused("not a regular file, or over max_audio_bytes")
            data = handle.read(settings.max_audio_bytes + 1)  # a file growing after fstat is still capped
        if len(data) > settings.max_audio_bytes:
            raise _PathRefused("over max_audio_bytes")
        return data
    except (_PathRefused, OSError, ValueError, RuntimeError) as exc:  # ValueError: NUL byte; RuntimeError: loop
        raise InvalidRequestError(AUDIO_PATH_REFUSED) from exc


async def _download(url: str, settings: Settings) -> bytes:
    return await fetch_bytes(url, what="audioUrl", allowed_hosts=settings.outbound_allowed_hosts,
                             max_bytes=settings.max_audio_bytes, timeout_s=settings.audio_url_timeout_s)


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
