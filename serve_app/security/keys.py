"""API keys and the principals they stand for (OpenAI convention: `Authorization: Bearer <key>`).

Roles: `admin` (everything), `service` (the gateway or a backend: acts for any user), `user` (bound
to one `user_id`: its own profile and jobs, nothing else). Keys come from `TRANSLATOR_API_KEYS`
(comma-separated, role `service`) and/or a JSON keys file holding only SHA-256 digests. A presented
key is hashed and compared in constant time against every known digest, so neither the comparison
nor an early exit reveals how much of a key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, TypeAdapter, field_validator, model_validator

from serve_app.errors import AuthenticationError, ForbiddenError, PrerequisiteError
from serve_app.settings import SecuritySettings

Role = Literal["admin", "service", "user"]


def key_digest(key: str) -> str:
    """The SHA-256 hex digest stored in the keys file (`voice-translator` docs: how to make one)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Principal(BaseModel):
    """Who is calling. `name` is safe to log; the key itself never is."""

    name: str
    role: Role
    user_id: str | None = None

    @model_validator(mode="after")
    def _user_needs_id(self) -> Principal:
        if self.role == "user" and not self.user_id:
            raise ValueError("a `user` key must name its user_id")
        return self

    def can_act_for(self, user_id: str | None) -> bool:
        """admin and service act for anyone; a user only for itself (and never for 'nobody')."""
        if self.role in ("admin", "service"):
            return True
        return user_id is not None and user_id == self.user_id

    def require_user(self, user_id: str | None) -> None:
        if not self.can_act_for(user_id):
            raise ForbiddenError("this key may only act for its own user")

    def require_role(self, *roles: Role) -> None:
        if self.role not in roles:
            raise ForbiddenError(f"this operation needs a key with role {' or '.join(roles)}")


ANONYMOUS_ADMIN = Principal(name="anonymous (auth off)", role="admin")


class KeyEntry(BaseModel):
    """One keys-file entry. Checked here, so a bad file stops start-up with the file's name in the
    message (not later, as a bare validation error, when the principals are built)."""

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Role
    user_id: str | None = None

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex_lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value  # `sha256sum` or an uppercase paste

    @model_validator(mode="after")
    def _user_needs_id(self) -> KeyEntry:
        if self.role == "user" and not self.user_id:
            raise ValueError(f"key {self.name!r}: a `user` key must name its user_id")
        return self


_KEY_FILE = TypeAdapter(list[KeyEntry])


class KeyRing:
    """Every key the service accepts, as digests; `authenticate` turns a presented key into a Principal."""

    def __init__(self, entries: list[KeyEntry], mode: str) -> None:
        self.entries = entries
        self.mode = mode
        self.principals = [Principal(name=e.name, role=e.role, user_id=e.user_id) for e in entries]

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> KeyRing:
        entries = [
            KeyEntry(name=f"service-key-{i + 1}", sha256=key_digest(key), role="service")
            for i, key in enumerate(settings.api_keys)
        ]
        if settings.api_keys_file is not None:
            try:
                entries += _KEY_FILE.validate_python(json.loads(Path(settings.api_keys_file).read_text("utf-8")))
            except (OSError, ValueError) as exc:
                raise PrerequisiteError(
                    f"TRANSLATOR_API_KEYS_FILE {settings.api_keys_file} is unreadable or malformed: {exc}"
                ) from exc
        ring = cls(entries, settings.auth)
        if settings.auth == "required" and not entries:
            raise PrerequisiteError(
                "no API keys are configured and TRANSLATOR_AUTH=required: set TRANSLATOR_API_KEYS (service keys) "
                "or TRANSLATOR_API_KEYS_FILE, or TRANSLATOR_AUTH=disabled on purpose (see SECURITY.md)"
            )
        return ring

    @property
    def enforced(self) -> bool:
        """Keys are checked unless auth is disabled, or optional with none configured."""
        return self.mode != "disabled" and bool(self.entries)

    def describe(self) -> str:
        if not self.enforced:
            return f"authentication OFF (TRANSLATOR_AUTH={self.mode}, {len(self.entries)} keys): every caller is admin"
        roles = sorted({e.role for e in self.entries})
        return f"authentication ON: {len(self.entries)} keys (roles {', '.join(roles)})"

    def authenticate(self, presented: str | None) -> Principal:
        """The principal of `presented`; AuthenticationError when keys are enforced and it matches none."""
        if not self.enforced:
            return ANONYMOUS_ADMIN
        if not presented:
            raise AuthenticationError("an API key is required: Authorization: Bearer <key> (or X-API-Key)")
        digest = key_digest(presented)
        found: Principal | None = None
        for entry, principal in zip(self.entries, self.principals, strict=True):
            if hmac.compare_digest(digest, entry.sha256):  # every entry is compared, match or not
                found = found or principal
        if found is None:
            raise AuthenticationError("invalid API key")
        return found


def bearer_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` (OpenAI convention) or `X-API-Key`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key.strip() if x_api_key and x_api_key.strip() else None
