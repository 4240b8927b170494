"""Service errors with a stable machine-readable code and an HTTP status.

Every failure that can reach a client is one of these, so both ingresses (HTTP and ZMQ) can render
the same error without guessing: the code maps onto PROTOCOL.md's `errorCode` values and the status
onto an HTTP 4xx/5xx.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: `code` is what the wire reports, `status` what HTTP answers."""

    code: str = "processing_failed"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequestError(ServiceError):
    """The caller sent something we will never be able to process as is (4xx)."""

    code = "invalid_request"
    status = 400


class UnsupportedLanguageError(InvalidRequestError):
    code = "unsupported_language"


class AudioDecodeError(InvalidRequestError):
    """Corrupt, empty or undecodable audio."""

    code = "invalid_audio"
    status = 422


class PayloadTooLargeError(InvalidRequestError):
    code = "payload_too_large"
    status = 413


class AudioTooLongError(InvalidRequestError):
    code = "audio_too_long"
    status = 413


class TextTooLongError(InvalidRequestError):
    code = "message_too_long"
    status = 413


class PrerequisiteError(ServiceError):
    """A package, weight file or device a backend needs is missing; raised at start-up.

    The message always says what to install or configure, so an operator can fix it without
    reading code.
    """

    code = "pipeline_unavailable"
    status = 503


class StageUnavailableError(ServiceError):
    code = "pipeline_unavailable"
    status = 503


class BusyError(ServiceError):
    code = "busy"
    status = 429


class AuthenticationError(ServiceError):
    """No key, or a key nobody issued (HTTP 401)."""

    code = "unauthorized"
    status = 401


class ForbiddenError(ServiceError):
    """A known caller asking for what its role or user does not cover (HTTP 403)."""

    code = "forbidden"
    status = 403


class RateLimitedError(ServiceError):
    """Too many requests for this principal or user; `retry_after_s` says when to come back."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = max(0.0, float(retry_after_s))


class TranscriptionError(ServiceError):
    code = "transcription_failed"


class TranslationError(ServiceError):
    code = "translation_failed"


class SynthesisError(ServiceError):
    code = "tts_failed"


class VoiceCloneError(ServiceError):
    code = "voice_clone_failed"


class NotFoundError(ServiceError):
    """A job, profile or other record the request names does not exist."""

    code = "not_found"
    status = 404


def as_service_error(exc: BaseException, default_code: str = "processing_failed") -> ServiceError:
    """Unwrap Ray's task errors so the original code and status survive the hop between replicas."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ServiceError):
        return cause
    if isinstance(exc, ServiceError):
        return exc
    return ServiceError(f"{type(exc).__name__}: {exc}", code=default_code)
