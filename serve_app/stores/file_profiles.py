"""Voice profiles as JSON files: the embedded default when no MongoDB is configured.

One file per user (named by a hash of the userId, so any id is a safe file name) under
``profiles/``, pending samples likewise under ``pending/``.  Every read-modify-write holds a per-user
``asyncio.Lock`` (tasks in this process) *and* a ``filelock.FileLock`` (other processes: Ray replicas
share the folder), and every write is atomic (temporary file, fsync, ``os.replace``), so a crash
leaves the old file or the new one and concurrent writers never lose an update.  The blocking file
work runs in a thread so the event loop stays free.

Pending samples expire ``pending_ttl`` after ``addedAt``: reads ignore expired ones, every write of a
user's pending file drops them, and `purge_expired_pending` (the maintenance pass) sweeps the rest.
Folder paths and OS messages go to the log under the error's ``error_id``, never to a client.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout
from pydantic import TypeAdapter, ValidationError

from serve_app.stores.errors import ProfileExistsError, StoreError, StoreUnavailableError, store_failure
from serve_app.stores.voice_profiles import PendingSample, VoiceProfile, utcnow

T = TypeVar("T")
_PENDING_LIST = TypeAdapter(list[PendingSample])


class FileVoiceProfileStore:
    def __init__(
        self,
        directory: Path | str,
        *,
        lock_timeout_s: float = 10.0,
        pending_ttl: timedelta | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.directory = Path(directory)
        self._lock_timeout_s = lock_timeout_s
        self._locks: dict[str, asyncio.Lock] = {}
        self.pending_ttl = pending_ttl
        self._clock = clock

    # -- paths and locking ----------------------------------------------------------------------

    @staticmethod
    def _name(user_id: str) -> str:
        return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:40]

    def _profile_path(self, user_id: str) -> Path:
        return self.directory / "profiles" / f"{self._name(user_id)}.json"

    def _pending_path(self, user_id: str) -> Path:
        return self.directory / "pending" / f"{self._name(user_id)}.json"

    @contextlib.asynccontextmanager
    async def _locked(self, user_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            # thread_local=False: acquired in a worker thread, released on the loop thread.
            file_lock = FileLock(str(self.directory / "locks" / f"{self._name(user_id)}.lock"), thread_local=False)
            try:
                await asyncio.to_thread(file_lock.acquire, timeout=self._lock_timeout_s)
            except Timeout as exc:
                raise store_failure(StoreUnavailableError, "voice profile store is busy for this user, try again",
                                    exc, detail=f"file lock for {self._name(user_id)}") from exc
            try:
                yield
            finally:
                file_lock.release()

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise store_failure(StoreUnavailableError, "voice profile store is unavailable", exc,
                                detail=f"folder {self.directory}") from exc

    # -- blocking helpers (run in a thread) -----------------------------------------------------

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @staticmethod
    def _write_atomic(path: Path, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False

    def _load_profile(self, path: Path) -> VoiceProfile | None:
        text = self._read(path)
        if text is None:
            return None
        try:
            return VoiceProfile.model_validate_json(text)
        except ValidationError as exc:
            raise store_failure(StoreError, "a stored voice profile is unreadable", exc, detail=f"file {path}") from exc

    def _load_pending(self, user_id: str) -> builtins.list[PendingSample]:
        """The user's pending samples that have not expired."""
        text = self._read(self._pending_path(user_id))
        return self._unexpired(_PENDING_LIST.validate_json(text)) if text else []

    def _unexpired(self, pending: builtins.list[PendingSample]) -> builtins.list[PendingSample]:
        if self.pending_ttl is None:
            return pending
        cutoff = self._clock() - self.pending_ttl
        return [p for p in pending if p.addedAt >= cutoff]

    def _write_pending(self, user_id: str, pending: builtins.list[PendingSample]) -> None:
        path = self._pending_path(user_id)
        if pending:
            self._write_atomic(path, _PENDING_LIST.dump_json(pending).decode("utf-8"))
        else:
            self._unlink(path)

    def _purge_pending_file(self, path: Path) -> int:
        """Drop a pending file's expired samples (the whole file when none is left); how many went."""
        text = self._read(path)
        if not text:
            return 0
        try:
            pending = _PENDING_LIST.validate_json(text)
        except ValidationError:
            return 0  # left for a person to look at; reads of it already fail loudly
        keep = self._unexpired(pending)
        if len(keep) == len(pending):
            return 0
        if keep:
            self._write_atomic(path, _PENDING_LIST.dump_json(keep).decode("utf-8"))
        else:
            self._unlink(path)
        return len(pending) - len(keep)

    def _all_profiles(self) -> builtins.list[VoiceProfile]:
        folder = self.directory / "profiles"
        profiles = [self._load_profile(p) for p in sorted(folder.glob("*.json"))]
        return sorted((p for p in profiles if p is not None), key=lambda p: p.userId)

    # -- the store interface --------------------------------------------------------------------

    async def start(self) -> None:
        def make() -> None:
            for sub in ("profiles", "pending", "locks"):
                (self.directory / sub).mkdir(parents=True, exist_ok=True)

        await self._io(make)

    async def ping(self) -> None:
        if not await self._io(os.access, self.directory, os.W_OK):
            raise store_failure(StoreUnavailableError, "voice profile store is not writable",
                                detail=f"folder {self.directory}")

    async def get(self, user_id: str) -> VoiceProfile | None:
        # os.replace makes a file appear whole, so a reader needs no lock.
        return await self._io(self._load_profile, self._profile_path(user_id))

    async def list(self, limit: int = 50, skip: int = 0) -> builtins.list[VoiceProfile]:
        profiles = await self._io(self._all_profiles)
        return profiles[max(0, skip) : max(0, skip) + limit]

    async def count(self) -> int:
        return await self._io(lambda: sum(1 for _ in (self.directory / "profiles").glob("*.json")))

    async def create(self, profile: VoiceProfile) -> None:
        path = self._profile_path(profile.userId)
        async with self._locked(profile.userId):
            if await self._io(path.exists):
                raise ProfileExistsError(f"user {profile.userId} already has a voice profile")
            await self._io(self._write_atomic, path, profile.model_dump_json())

    async def replace(self, profile: VoiceProfile, expected_version: int) -> bool:
        path = self._profile_path(profile.userId)
        async with self._locked(profile.userId):
            current = await self._io(self._load_profile, path)
            if current is None or current.version != expected_version:
                return False
            await self._io(self._write_atomic, path, profile.model_dump_json())
            return True

    async def delete(self, user_id: str) -> bool:
        async with self._locked(user_id):
            await self._io(self._unlink, self._pending_path(user_id))
            return await self._io(self._unlink, self._profile_path(user_id))

    async def add_pending_sample(self, user_id: str, sample: PendingSample) -> builtins.list[PendingSample]:
        """Add (once per attachment); the file is rewritten without the samples that have expired."""
        async with self._locked(user_id):
            pending = await self._io(self._load_pending, user_id)
            if all(p.attachmentId != sample.attachmentId for p in pending):
                pending.append(sample)
            await self._io(self._write_pending, user_id, pending)
            return pending

    async def pending_samples(self, user_id: str) -> builtins.list[PendingSample]:
        return await self._io(self._load_pending, user_id)

    async def clear_pending(self, user_id: str, attachment_ids: builtins.list[str] | None = None) -> None:
        async with self._locked(user_id):
            path = self._pending_path(user_id)
            if attachment_ids is None:
                await self._io(self._unlink, path)
                return
            drop = set(attachment_ids)
            keep = [p for p in await self._io(self._load_pending, user_id) if p.attachmentId not in drop]
            await self._io(self._write_pending, user_id, keep)

    async def purge_expired_pending(self) -> int:
        """Sweep every user's pending file for expired samples (users who never came back)."""
        if self.pending_ttl is None:
            return 0
        removed = 0
        for path in await self._io(lambda: sorted((self.directory / "pending").glob("*.json"))):
            user_lock = FileLock(str(self.directory / "locks" / f"{path.stem}.lock"), thread_local=False)
            try:
                await asyncio.to_thread(user_lock.acquire, timeout=min(1.0, self._lock_timeout_s))
            except Timeout:
                continue  # a writer holds it, and drops the expired samples itself
            try:
                removed += await self._io(self._purge_pending_file, path)
            finally:
                user_lock.release()
        return removed

    async def due_for_recalibration(self, now: datetime, limit: int = 100) -> builtins.list[VoiceProfile]:
        profiles = await self._io(self._all_profiles)
        due = sorted((p for p in profiles if p.nextRecalibrationAt <= now), key=lambda p: p.nextRecalibrationAt)
        return due[:limit]

    async def close(self) -> None:
        self._locks.clear()
