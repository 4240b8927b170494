"""Frame 0 of a gateway message, bounded before it is parsed (PROTOCOL.md §1: UTF-8 JSON, an object).

The receive loop parses frame 0 itself, so what it costs must not depend on what a peer sends: a
frame whose JSON structure (everything but its string values) is over `max_json_frame_bytes` is
refused unread. String values are cheap to decode and the JSON-only requests carry their audio as
base64 strings (the voice API, the voice profile family: up to two clips of `max_audio_bytes`), so
strings get that much on top: a 1 MB bound on the whole frame would cap the voice API's audio at
~750 kB, far below the upload limit. A frame nested deeper than `max_json_depth`
is refused by an iterative bracket count (strings removed first, so brackets inside text do not
count) instead of reaching the recursive JSON decoder. A refused frame is still answered: `sniff`
reads the type and ids from its first and last few kilobytes with bounded patterns that only match
well-formed ids, so the answer can be the type's own error event rather than an anonymous one.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from ingress.gateway.protocol.requests import ID_CHARS, MAX_ID_CHARS
from serve_app.errors import InvalidRequestError, PayloadTooLargeError

SNIFF_BYTES = 8 * 1024
# Possessive, and an unterminated string runs to the end: a match never fails and backtracks, so
# stripping is linear whatever the bytes (a failing string pattern retried at each quote is quadratic).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)
_ID_KEYS = ("taskId", "messageId", "attachmentId", "request_id", "postId", "conversationId")
_ID_PATTERNS = {
    key: re.compile(rb'"' + key.encode() + rb'"\s*:\s*"([' + ID_CHARS.encode() + rb"]{1,%d})\"" % MAX_ID_CHARS)
    for key in _ID_KEYS
}
_TYPE = re.compile(rb'"type"\s*:\s*"([a-z_]{1,64})"')
_TARGETS = re.compile(rb'"targetLanguages"\s*:\s*\[([^\[\]]{0,1024})\]')
_LANGUAGE = re.compile(rb'"([A-Za-z0-9_-]{1,32})"')


class TooDeepError(InvalidRequestError):
    """Well-formed or not, nested beyond `max_json_depth`: refused before the recursive decoder sees it."""

    code = "invalid_json"


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays/objects, without recursion: strings are cut out, then brackets counted."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = np.where(np.isin(np.frombuffer(brackets, dtype=np.uint8), _OPENERS), 1, -1)
    return int(np.cumsum(steps, dtype=np.int64).max())


def base64_allowance(max_audio_bytes: int) -> int:
    """What frame 0 may hold in strings beyond `max_json_frame_bytes`: two base64 clips (voice_compare)."""
    return 2 * 4 * -(-max_audio_bytes // 3)


def parse_frame0(frame: bytes, max_bytes: int, max_depth: int, string_allowance: int = 0) -> dict[str, Any]:
    """The request object; PayloadTooLargeError / InvalidRequestError (`invalid_json`) otherwise."""
    limit = max_bytes + string_allowance
    if len(frame) > limit:
        raise PayloadTooLargeError(f"frame 0 is {len(frame)} bytes; the limit is {limit} "
                                   "(max_json_frame_bytes + base64 audio of max_audio_bytes)")
    structure = frame
    if len(frame) > max_bytes:  # only then is it worth cutting the strings out (linear, see _STRING)
        structure = _STRING.sub(b'""', frame)
        if len(structure) > max_bytes:
            raise PayloadTooLargeError(f"frame 0 has {len(structure)} bytes outside its strings; the limit is "
                                       f"{max_bytes} (max_json_frame_bytes)")
    # Fast path: a frame with no more brackets than the limit cannot nest deeper (most requests).
    depth = json_depth(structure) if len(frame.translate(None, _NOT_BRACKETS)) > max_depth else 0
    if depth > max_depth:
        raise TooDeepError(f"frame 0 is nested {depth} levels deep; the limit is {max_depth} (max_json_depth)")
    try:
        raw = json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidRequestError(f"frame 0 is not UTF-8 JSON: {exc}", code="invalid_json") from exc
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"frame 0 must be a JSON object, got {type(raw).__name__}", code="invalid_json")
    return raw


def refused_unread(exc: InvalidRequestError) -> bool:
    """Refused for its size or depth, not its syntax: the frame may well say what it is (see `sniff`)."""
    return isinstance(exc, PayloadTooLargeError | TooDeepError)


def sniff(frame: bytes) -> dict[str, Any]:
    """Type, ids and targets found near either end of an unparsed frame; {} when none (an anonymous error).

    Only well-formed values can match, so whatever is found is safe to echo. A key may match inside a
    nested object; the answer then carries an id the sender itself wrote, which is all it can cost.
    """
    ends = [frame[:SNIFF_BYTES], frame[-SNIFF_BYTES:]] if len(frame) > SNIFF_BYTES else [frame]
    found: dict[str, Any] = {}
    for part in ends:
        for key, pattern in _ID_PATTERNS.items():
            if key not in found and (m := pattern.search(part)):
                found[key] = m.group(1).decode("ascii")
        if "targetLanguages" not in found and (m := _TARGETS.search(part)):
            found["targetLanguages"] = [t.decode("ascii") for t in _LANGUAGE.findall(m.group(1))]
        if "type" not in found and (m := _TYPE.search(part)):
            found["type"] = m.group(1).decode("ascii")
    ids = {k for k in found if k in _ID_KEYS and k != "conversationId"}
    return found if ids or "type" in found else {}
