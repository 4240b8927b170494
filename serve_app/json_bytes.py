"""JSON as UTF-8 bytes for both doors, even when a string holds a lone surrogate.

`"\ud800"` is valid JSON, so a peer can send a lone surrogate, and Python keeps it in a str that has
no UTF-8 encoding. Echoed in an answer (an error naming the bad value, a conversationId) it used to
make the answer itself fail: no ZMQ event at all, an HTTP 500 (found by the doors' fuzz tests,
tests/unit/test_zmq_fuzz.py and test_http_fuzz.py). Such a document goes out ASCII-escaped instead,
which is the same JSON value.
"""

from __future__ import annotations

import json
from typing import Any


def utf8_json(value: Any, *, allow_nan: bool = True) -> bytes:
    text = json.dumps(value, ensure_ascii=False, allow_nan=allow_nan, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, allow_nan=allow_nan, separators=(",", ":")).encode("ascii")
