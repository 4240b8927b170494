"""Clients get a stable code, a short message and a reference; internals go only to the log under
that reference: `as_service_error`, and the stores' own errors (MongoDB, file store, feedback)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from serve_app.errors import InvalidRequestError, ServiceError, TranscriptionError, as_service_error, new_error_id
from serve_app.settings import Settings
from serve_app.stores.errors import StoreError, StoreUnavailableError, store_failure
from serve_app.stores.feedback import FeedbackLog
from serve_app.stores.file_profiles import FileVoiceProfileStore
from serve_app.stores.mongo_profiles import MongoVoiceProfileStore

SECRET = "mongodb://admin:hunter2@db7.internal:27017 /srv/secret/path"
REF = re.compile(r"^internal error \(ref (err_[0-9a-f]{12})\)$")


class RayTaskErrorLike(Exception):
    """What Ray raises in the caller: the remote exception is `.cause`."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"task failed: {cause}")
        self.cause = cause


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - a real traceback for the log
        return caught


def test_an_unexpected_exception_becomes_a_reference_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    exc = raised(KeyError(SECRET))
    with caplog.at_level(logging.ERROR, logger="serve_app.errors"):
        err = as_service_error(exc, "translation_failed")
    match = REF.match(err.message)
    assert match and err.error_id == match.group(1)
    assert (err.code, err.status) == ("translation_failed", 500)
    assert "hunter2" not in err.message and "KeyError" not in err.message
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    logged = record.getMessage()
    assert err.error_id in logged and "KeyError" in logged and "hunter2" in logged
    assert record.exc_info is not None and record.exc_info[1] is exc  # the traceback goes with it


def test_the_same_exception_keeps_one_reference_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    exc = raised(RuntimeError("boom"))
    with caplog.at_level(logging.ERROR, logger="serve_app.errors"):
        first = as_service_error(exc)
        second = as_service_error(exc, "tts_failed")
    assert first.error_id == second.error_id and second.code == "tts_failed"
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert as_service_error(raised(RuntimeError("boom"))).error_id != first.error_id


def test_service_errors_keep_their_own_message_code_and_status(caplog: pytest.LogCaptureFixture) -> None:
    mine = InvalidRequestError("text is empty")
    with caplog.at_level(logging.ERROR, logger="serve_app.errors"):
        assert as_service_error(mine) is mine
        wrapped = as_service_error(RayTaskErrorLike(TranscriptionError("no speech", status=422)))
    assert (wrapped.message, wrapped.code, wrapped.status) == ("no speech", "transcription_failed", 422)
    assert mine.error_id is None and wrapped.error_id is None and not caplog.records


def test_a_ray_wrapper_around_an_unexpected_error_logs_the_cause(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="serve_app.errors"):
        err = as_service_error(RayTaskErrorLike(ValueError(SECRET)), "voice_clone_failed")
    assert REF.match(err.message) and err.code == "voice_clone_failed" and "hunter2" not in err.message
    assert "ValueError" in caplog.records[0].getMessage() and "hunter2" in caplog.records[0].getMessage()


def test_service_error_takes_an_error_id() -> None:
    ref = new_error_id()
    assert re.fullmatch(r"err_[0-9a-f]{12}", ref) and new_error_id() != ref
    assert ServiceError("x", error_id=ref).error_id == ref and ServiceError("x").error_id is None


def test_store_failure_logs_details_and_returns_a_short_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="serve_app.stores.errors"):
        err = store_failure(StoreUnavailableError, "voice profile store did not answer", OSError(SECRET),
                            detail="folder /srv/secret")
    assert err.status == 503 and err.code == "store_unavailable" and err.error_id
    assert err.message == f"voice profile store did not answer (ref {err.error_id})"
    logged = caplog.records[0].getMessage()
    assert err.error_id in logged and "hunter2" in logged and "/srv/secret" in logged


async def test_mongo_driver_messages_stay_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    store = MongoVoiceProfileStore("mongodb://127.0.0.1:9", timeout_ms=100)  # constructed, never reached
    try:
        with caplog.at_level(logging.WARNING, logger="serve_app.stores.errors"):
            with pytest.raises(StoreUnavailableError) as down:
                async with store._guard("get"):
                    raise ServerSelectionTimeoutError(f"db7.internal:27017: timed out ({SECRET})")
            with pytest.raises(StoreError) as refused:
                async with store._guard("replace"):
                    raise OperationFailure(f"not authorized on {SECRET}", code=13)
    finally:
        await store.close()
    for info in (down, refused):
        assert "db7" not in info.value.message and "hunter2" not in info.value.message and info.value.error_id
        assert info.value.error_id in info.value.message
    assert all("hunter2" in r.getMessage() for r in caplog.records) and len(caplog.records) == 2


async def test_file_store_paths_stay_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="serve_app.stores.errors"):
        with pytest.raises(StoreUnavailableError) as down:
            await FileVoiceProfileStore(blocker / "profiles").start()
    assert str(tmp_path) not in down.value.message and down.value.error_id
    assert str(blocker) in caplog.records[0].getMessage()

    store = FileVoiceProfileStore(tmp_path / "store")
    await store.start()
    store._profile_path("u1").write_text("{not json")
    with pytest.raises(StoreError) as corrupt:
        await store.get("u1")
    assert str(tmp_path) not in corrupt.value.message and "json" not in corrupt.value.message.lower()


async def test_feedback_write_failures_hide_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    log = FeedbackLog(Settings(cache_dir=blocker))  # its folder is a file: the append fails
    with pytest.raises(StoreUnavailableError) as info:
        await log.record({"userId": "u1", "translationId": "t1", "rating": 4})
    assert str(tmp_path) not in info.value.message and info.value.error_id
