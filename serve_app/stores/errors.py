"""Store errors, in the service's ServiceError hierarchy so both ingresses render them unchanged.

A store that cannot be reached is a 503 the caller may retry, never a hang and never a 500 with a
driver traceback; profile rule violations are client errors with their own stable codes.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from serve_app.errors import InvalidRequestError, NotFoundError, ServiceError, logged_failure

log = logging.getLogger(__name__)
E = TypeVar("E", bound=ServiceError)


class StoreUnavailableError(ServiceError):
    """The backing server (MongoDB, a profile folder) did not answer in time or refused us."""

    code = "store_unavailable"
    status = 503


class StoreError(ServiceError):
    """The server answered but rejected the operation (a bug or a misconfigured server)."""

    code = "store_error"
    status = 500


class ProfileExistsError(ServiceError):
    code = "profile_exists"
    status = 409


class ProfileNotFoundError(NotFoundError):
    code = "profile_not_found"
    status = 404


class ProfileConflictError(ServiceError):
    """Optimistic-concurrency retries ran out: too many writers on one profile at once."""

    code = "profile_conflict"
    status = 409


class ProfileTooShortError(InvalidRequestError):
    """An explicit profile creation needs at least the minimum amount of speech (10 s)."""

    code = "invalid_request"
    status = 400


def store_failure(cls: type[E], message: str, exc: BaseException | None = None, *, detail: str = "") -> E:
    """`cls(message)` for the client, with an `error_id`; what the driver or the OS said (hosts,
    paths, server messages) goes only to the log, under that id."""
    level = logging.WARNING if cls is StoreUnavailableError else logging.ERROR
    return logged_failure(cls, message, exc, detail=detail, level=level)
