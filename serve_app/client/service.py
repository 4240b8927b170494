"""The HTTP calls the CLI makes, with the service's answers parsed into models and every failure
turned into one `ClientError` that says what to do and carries the exit code.

Exit codes: 0 everything delivered; 1 the service refused the request or some language failed;
2 bad usage (a missing file); 3 the service cannot be reached; 4 the API key was refused.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from serve_app.domain.transcription import Transcription
from serve_app.domain.voice import OutputFormat

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH = 1, 2, 3, 4
DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV, KEY_ENV = "VOICE_TRANSLATOR_URL", "VOICE_TRANSLATOR_API_KEY"
EXTENSIONS = {"audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/ogg": "ogg", "audio/opus": "ogg", "audio/wav": "wav",
              "audio/x-wav": "wav", "audio/wave": "wav", "audio/flac": "flac", "audio/aac": "aac"}

logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the progress bars


class ClientError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class LanguageAudioOut(BaseModel):
    """One delivered language, as the stream's `language` event carries it."""

    target_language: str
    translated_text: str
    audio_base64: str
    audio_mime_type: str
    duration_ms: int = 0
    voice_cloned: bool = False
    voice_similarity: float | None = None
    base_voice_similarity: float | None = None

    def audio(self) -> bytes:
        return base64.b64decode(self.audio_base64)


class LanguageFailureOut(BaseModel):
    target_language: str
    error: str
    error_code: str = ""


class VoiceEvent(BaseModel):
    """One server-sent event of `/api/v1/voice/translate/stream`."""

    kind: Literal["transcription", "language", "language_failed", "completed", "error"]
    transcription: Transcription | None = None
    translation: LanguageAudioOut | None = None
    failure: LanguageFailureOut | None = None
    processing_time_ms: int = 0
    error: str | None = None
    errorCode: str | None = None


class SpeechOut(BaseModel):
    audio: bytes
    mime_type: str


def extension_for(mime_type: str, fallback: str) -> str:
    return EXTENSIONS.get(mime_type.split(";")[0].strip().lower(), fallback)


def _refusal(response: httpx.Response) -> ClientError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error or response.reason_phrase
    code = (error.get("code") if isinstance(error, dict) else body.get("errorCode")) or response.status_code
    ref = f" (request {body['requestId']})" if isinstance(body, dict) and body.get("requestId") else ""
    if response.status_code in (401, 403):
        return ClientError(f"the service refused the API key ({response.status_code} {code}: {message}); "
                           f"pass --api-key or set {KEY_ENV}", EXIT_AUTH)
    return ClientError(f"the service answered {response.status_code} {code}: {message}{ref}")


class ServiceClient:
    """One connection pool to the service; `with ServiceClient(url, key) as client: ...`."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float = 600) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10))

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _unreachable(self, exc: httpx.TransportError) -> ClientError:
        return ClientError(f"cannot reach the service at {self.url} ({exc.__class__.__name__}: {exc}); is it running "
                           f"(`make run`)? Point --url or {URL_ENV} at it", EXIT_UNREACHABLE)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise _refusal(response)
        return response

    def transcribe(self, audio: Path, language: str | None = None) -> Transcription:
        data = {"language": language} if language else {}
        with audio.open("rb") as f:
            response = self._request("POST", "/api/v1/audio/transcribe", files={"audio": (audio.name, f)}, data=data)
        return Transcription.model_validate(response.json())

    def speak(self, text: str, language: str, fmt: OutputFormat, voice: str | None = None) -> SpeechOut:
        """In the base voice (`/api/v1/tts`), or with `voice` (a user id or profile id) in that person's
        cloned voice through the OpenAI-compatible `/v1/audio/speech`."""
        if voice is None:
            response = self._request("POST", "/api/v1/tts", json={"text": text, "language": language, "format": fmt})
        else:
            body = {"model": "tts-1", "input": text, "voice": voice, "language": language,
                    "response_format": "opus" if fmt == "ogg" else fmt}
            response = self._request("POST", "/v1/audio/speech", json=body)
        return SpeechOut(audio=response.content, mime_type=response.headers.get("content-type", ""))

    def translate_stream(self, audio: Path, targets: list[str], *, fmt: OutputFormat = "mp3",
                         source_language: str | None = None, user_id: str | None = None,
                         clone_voice: bool = True) -> Iterator[VoiceEvent]:
        """The voice message's events as the service sends them: transcription, one per language, completed."""
        data = {"target_languages": ",".join(targets), "output_format": fmt,
                "generate_voice_clone": "true" if clone_voice else "false"}
        if source_language:
            data["source_language"] = source_language
        if user_id:
            data["user_id"] = user_id
        try:
            with audio.open("rb") as f, self._http.stream(
                "POST", "/api/v1/voice/translate/stream", files={"audio": (audio.name, f)}, data=data
            ) as response:
                if response.is_error:
                    response.read()
                    raise _refusal(response)
                yield from _server_events(response.iter_lines())
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc


def _server_events(lines: Iterator[str]) -> Iterator[VoiceEvent]:
    name, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif not line and data:
            payload = json.loads("\n".join(data))
            event = VoiceEvent.model_validate({**payload, "kind": name})
            if event.kind == "error":
                raise ClientError(f"the service failed the message: {event.errorCode}: {event.error}")
            yield event
            name, data = "message", []
