"""Give freed heap memory back to the OS when a model replica goes idle.

glibc keeps what a model call freed (CTranslate2's decode buffers, onnxruntime's intermediate
tensors, numpy audio) in its arenas for reuse, so every replica sits at its own high-water mark
for ever, and on a 2-core laptop the sum of those marks is most of the service's memory. Measured
on the Gemma translator: 498 MiB loaded, 1,132 MiB after one 16-text batch, 661 MiB after
`malloc_trim(0)`. A trim takes milliseconds; it runs only when no call is in flight, so it never
slows a call down.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_heap() -> bool:
    """True when the C library's free memory was offered back to the OS (glibc only)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
