"""Service errors with a stable machine-readable code and an HTTP status.

Every failure that can reach a client is one of these, so both ingresses (HTTP and ZMQ) can render
the same error without guessing: the code maps onto PROTOCOL.md's `errorCode` values and the status
onto an HTTP 4xx/5xx.
"""

from __future__ import annotations

import logging
import secrets
from typing import TypeVar

log = logging.getLogger(__name__)


def new_error_id() -> str:
    """A short reference a client can quote and an operator can grep the logs for."""
    return "err_" + secrets.token_hex(6)


class ServiceError(Exception):
    """Base class: `code` is what the wire reports, `status` what HTTP answers.

    `message` is written for clients: it never carries a driver's or the OS's own text (hosts,
    paths, stack traces). When something internal went wrong, `error_id` names the log line that
    holds the details; the doors render it as the answer's `requestId`. None for an ordinary
    client error, whose message says all there is.
    """

    code: str = "processing_failed"
    status: int = 500
    error_id: str | None = None

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, error_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if error_id is not None:
            self.error_id = error_id


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


class DeadlineError(ServiceError):
    """Work that did not finish within its stated deadline (HTTP 504): the caller gets this instead of
    waiting on a hung or dead replica; `code` says which deadline."""

    code = "timeout"
    status = 504


class StageTimeoutError(DeadlineError):
    """One stage call (transcribe, translate, ...) ran past its deadline; the call was cancelled.

    `stage` names it; `family_code` is the stage's own failure code, for wire formats whose
    errorCode list is closed (audio_process) and cannot carry `stage_timeout`.
    """

    code = "stage_timeout"
    FAMILY = {
        "transcribe": "transcription_failed", "translate": "translation_failed",
        "detect_language": "translation_failed", "synthesize": "tts_failed",
        "speaker_reference": "voice_clone_failed", "convert": "voice_clone_failed",
    }

    def __init__(self, stage: str, timeout_s: float) -> None:
        super().__init__(f"stage {stage} timed out after {timeout_s:.1f} s")
        self.stage = stage
        self.timeout_s = timeout_s
        self.family_code = self.FAMILY.get(stage, "processing_failed")

    def __reduce__(self) -> tuple[type[StageTimeoutError], tuple[str, float]]:
        return StageTimeoutError, (self.stage, self.timeout_s)  # crosses Ray hops intact


class RequestTimeoutError(DeadlineError):
    """A door gave up waiting for the Pipeline (a hung or lost Pipeline replica): its own bound, above
    every stage deadline, so it only fires when the Pipeline itself does not answer."""

    code = "request_timeout"


class JobTimeoutError(DeadlineError):
    """An async voice job ran past `voice_job_timeout_s` as a whole."""

    code = "job_timeout"


class NotFoundError(ServiceError):
    """A job, profile or other record the request names does not exist."""

    code = "not_found"
    status = 404


_LOGGED_ID = "_service_error_id"


E = TypeVar("E", bound=ServiceError)


def logged_failure(
    cls: type[E], message: str, exc: BaseException | None = None, *, detail: str = "", level: int = logging.ERROR
) -> E:
    """`cls(message)` for the client, with an `error_id`; what a library, a driver or the OS said
    (paths, hosts, internal messages) goes only to the log, under that id."""
    error_id = new_error_id()
    cause = f"{type(exc).__name__}: {exc}" if exc is not None else ""
    log.log(level, "%s (ref %s)%s%s", message, error_id, f" [{detail}]" if detail else "",
            f": {cause}" if cause else "")
    return cls(f"{message} (ref {error_id})", error_id=error_id)


def as_service_error(exc: BaseException, default_code: str = "processing_failed") -> ServiceError:
    """What a client may see of `exc`.

    A ServiceError (also one that crossed a Ray hop, as the `.cause` of a task error) keeps its own
    code, status and message. Anything else is unexpected: the client gets
    ``internal error (ref <id>)`` with `default_code`, status 500 and `error_id` set, and the whole
    exception (type, message, traceback) is logged at ERROR under that id, once per exception
    however many layers convert it.
    """
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ServiceError):
        return cause
    if isinstance(exc, ServiceError):
        return exc
    error_id = getattr(exc, _LOGGED_ID, None)
    if not isinstance(error_id, str):
        error_id = new_error_id()
        inner = cause if isinstance(cause, BaseException) else exc
        log.error("internal error %s: %s: %s", error_id, type(inner).__name__, inner,
                  exc_info=(type(exc), exc, exc.__traceback__))
        try:
            setattr(exc, _LOGGED_ID, error_id)
        except (AttributeError, TypeError):  # pragma: no cover - an exception type with __slots__
            pass
    return ServiceError(f"internal error (ref {error_id})", code=default_code, error_id=error_id)
