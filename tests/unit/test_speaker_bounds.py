"""A forwarded voiceProfile/embedding frame is bounded before it is decoded: frame size, the npz
members' declared uncompressed sizes (zip bombs), each .npy header against the bytes present, and the
embedding's dimension; and the pipeline decodes it in a worker thread with the settings' limits."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from serve_app.domain.speaker import (
    EMBEDDING_DIM,
    ENVELOPE_HZ,
    SpeakerReference,
    array_from_npy,
    embedding_from_npy,
    reference_from_wire,
)
from serve_app.domain.voice import VoiceJob
from serve_app.errors import InvalidRequestError, PayloadTooLargeError
from serve_app.pipeline import voice as voice_module
from serve_app.pipeline.voice_pipeline import VoicePipeline
from serve_app.settings import Settings
from tests.fixtures.fake_stages import FakeStages
from tests.unit.test_pipeline_stores import speech_like

LIMITS = {"max_bytes": 64 * 1024, "max_decompressed_bytes": 256 * 1024}
TEN_MB = 10 * 1024 * 1024


def reference() -> SpeakerReference:
    return SpeakerReference(embedding=np.random.default_rng(3).normal(size=EMBEDDING_DIM), log_f0_mean=5.0,
                            log_f0_std=0.2, envelope_db=np.full(ENVELOPE_HZ.size, -40.0), envelope_hz=ENVELOPE_HZ)


def npz_bomb() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, embedding=np.zeros(TEN_MB // 4, dtype=np.float32))
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def lying_zip(member: bytes, declared: int) -> bytes:
    """One deflated member whose local header and central directory both claim `declared` bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("embedding.npy", member)
    data = bytearray(buf.getvalue())
    assert data[:4] == b"PK\x03\x04"
    struct.pack_into("<I", data, 22, declared)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory: uncompressed size
    return bytes(data)


def peak_bytes_while(fn) -> int:  # noqa: ANN001 - any callable that raises
    tracemalloc.start()
    try:
        with pytest.raises(InvalidRequestError):
            fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_our_own_forms_are_accepted() -> None:
    ref = reference()
    back = reference_from_wire(ref.to_npz_bytes(), **LIMITS)
    np.testing.assert_allclose(back.embedding, ref.embedding, rtol=1e-6)
    assert back.log_f0_mean == pytest.approx(5.0) and back.envelope_db is not None
    from_npy = reference_from_wire(ref.embedding_bytes(), **LIMITS)
    raw = reference_from_wire(ref.embedding.astype("<f4").tobytes(), **LIMITS)
    np.testing.assert_allclose(from_npy.embedding, ref.embedding, rtol=1e-6)
    np.testing.assert_allclose(raw.embedding, ref.embedding, rtol=1e-6)


def test_a_zip_bomb_is_refused_from_its_directory_without_inflating() -> None:
    bomb = npz_bomb()
    assert len(bomb) < LIMITS["max_bytes"]  # small on the wire: only the directory gives it away
    with pytest.raises(PayloadTooLargeError) as info:
        reference_from_wire(bomb, **LIMITS)
    assert info.value.status == 413 and info.value.code == "payload_too_large"
    assert "unpacks to" in info.value.message
    assert peak_bytes_while(lambda: reference_from_wire(bomb, **LIMITS)) < 1024 * 1024


def test_a_directory_that_understates_the_size_fails_its_crc_without_inflating() -> None:
    member = npy_bytes(np.zeros(TEN_MB // 4, dtype=np.float32))
    liar = lying_zip(member, declared=2048)
    assert len(liar) < LIMITS["max_bytes"]
    with pytest.raises(InvalidRequestError, match="not a valid .npz"):
        reference_from_wire(liar, **LIMITS)
    assert peak_bytes_while(lambda: reference_from_wire(liar, **LIMITS)) < 1024 * 1024


def test_an_npy_header_that_declares_more_than_its_bytes_allocates_nothing() -> None:
    header_only = npy_bytes(np.zeros(4, dtype=np.float32)).replace(b"(4,)", b"(2000000000,)")
    with pytest.raises(InvalidRequestError, match="header declares"):
        embedding_from_npy(header_only)
    assert peak_bytes_while(lambda: embedding_from_npy(header_only)) < 1024 * 1024
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("embedding.npy", header_only)
    with pytest.raises(InvalidRequestError, match="header declares"):
        reference_from_wire(buf.getvalue(), **LIMITS)


def test_frame_size_is_checked_first() -> None:
    big = reference().to_npz_bytes() + b"\0" * LIMITS["max_bytes"]
    with pytest.raises(PayloadTooLargeError, match="voice profile frame is"):
        reference_from_wire(big, **LIMITS)
    with pytest.raises(PayloadTooLargeError):
        reference_from_wire(reference().to_npz_bytes(), max_bytes=1024, max_decompressed_bytes=LIMITS[
            "max_decompressed_bytes"])
    with pytest.raises(PayloadTooLargeError):
        reference_from_wire(reference().to_npz_bytes(), max_bytes=LIMITS["max_bytes"], max_decompressed_bytes=1024)


@pytest.mark.parametrize("size", [0, 4, 255 * 4, 257 * 4, 1023, 10_000 * 4])
def test_raw_frames_must_be_exactly_256_float32(size: int) -> None:
    with pytest.raises(InvalidRequestError, match="neither npz, npy nor 256 float32"):
        reference_from_wire(b"\x01" * size, **LIMITS)


@pytest.mark.parametrize("values", [255, 257, 1])
def test_npy_and_npz_embeddings_must_have_256_values(values: int) -> None:
    vec = np.random.default_rng(1).normal(size=values).astype(np.float32)
    with pytest.raises(InvalidRequestError, match="expected 256"):
        reference_from_wire(npy_bytes(vec), **LIMITS)
    with pytest.raises(InvalidRequestError, match="expected 256"):
        reference_from_wire(SpeakerReference(embedding=vec).to_npz_bytes(), **LIMITS)


def test_unusable_embeddings_are_client_errors() -> None:
    zeros = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    nan = np.full(EMBEDDING_DIM, np.nan, dtype=np.float32)
    for frame in (npy_bytes(zeros), npy_bytes(nan), zeros.tobytes(), nan.tobytes(),
                  npy_bytes(np.arange(EMBEDDING_DIM, dtype=np.int32))):
        with pytest.raises(InvalidRequestError):
            reference_from_wire(frame, **LIMITS)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"x": 1}] * EMBEDDING_DIM, dtype=object), allow_pickle=True)
    with pytest.raises(InvalidRequestError, match="objects"):
        reference_from_wire(pickled.getvalue(), **LIMITS)


def test_npz_oddities_are_client_errors() -> None:
    many = io.BytesIO()
    np.savez(many, embedding=np.ones(EMBEDDING_DIM, np.float32), **{f"x{i}": np.array(i) for i in range(20)})
    with pytest.raises(InvalidRequestError, match="members"):
        reference_from_wire(many.getvalue(), **LIMITS)
    wrong_shape = io.BytesIO()
    np.savez(wrong_shape, embedding=np.ones(EMBEDDING_DIM, np.float32), log_f0_mean=np.ones(3),
             log_f0_std=np.ones(3))
    with pytest.raises(InvalidRequestError, match="wrong shape or type"):
        reference_from_wire(wrong_shape.getvalue(), **LIMITS)
    text_embedding = io.BytesIO()
    np.savez(text_embedding, embedding=np.array(["a"] * EMBEDDING_DIM))
    with pytest.raises(InvalidRequestError, match="must hold numbers"):
        reference_from_wire(text_embedding.getvalue(), **LIMITS)
    corrupt = bytearray(reference().to_npz_bytes())
    corrupt[60:90] = b"\xff" * 30
    with pytest.raises(InvalidRequestError):
        reference_from_wire(bytes(corrupt), **LIMITS)
    with pytest.raises(InvalidRequestError):
        reference_from_wire(b"PK\x03\x04" + zlib.compress(b"junk"), **LIMITS)


def test_unknown_members_are_counted_but_never_read() -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, embedding=np.ones(EMBEDDING_DIM, np.float32), extra=np.zeros(64 * 1024, np.float32))
    with pytest.raises(PayloadTooLargeError):  # 256 KiB of "extra" counts toward the limit
        reference_from_wire(buf.getvalue(), **LIMITS)
    small = io.BytesIO()
    np.savez(small, embedding=np.ones(EMBEDDING_DIM, np.float32), extra=np.zeros(8, np.float32))
    assert reference_from_wire(small.getvalue(), **LIMITS).embedding.size == EMBEDDING_DIM


def test_array_from_npy_keeps_shape_order_and_copies() -> None:
    array = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    back = array_from_npy(npy_bytes(array))
    np.testing.assert_array_equal(back, array)
    back[0, 0] = 42.0  # writable: a copy, not a view on the request's bytes
    assert array_from_npy(npy_bytes(np.array("text"))) == np.array("text")
    with pytest.raises(InvalidRequestError, match="not valid .npy"):
        array_from_npy(b"\x93NUMPY\x03\x00" + b"\0" * 20)
    with pytest.raises(InvalidRequestError, match="header declares"):
        array_from_npy(npy_bytes(np.ones(4, np.float32)) + b"\0")


def test_base64_references_are_bounded_before_decoding() -> None:
    text = reference().to_base64()
    assert SpeakerReference.from_base64(text, **LIMITS).log_f0_mean == pytest.approx(5.0)
    with pytest.raises(PayloadTooLargeError):
        SpeakerReference.from_base64(text, max_bytes=1024)
    import base64

    with pytest.raises(PayloadTooLargeError):
        SpeakerReference.from_base64(base64.b64encode(npz_bomb()).decode(), **LIMITS)


# -- in the pipeline ------------------------------------------------------------------------------


async def test_the_pipeline_refuses_a_forwarded_bomb_with_a_413_before_any_event() -> None:
    pipe = VoicePipeline(FakeStages(), Settings())
    job = VoiceJob(audio=speech_like(1.0), target_languages=["en"], forwarded_reference=npz_bomb())
    events = pipe.process_voice(job)
    with pytest.raises(PayloadTooLargeError) as info:
        await events.__anext__()
    assert info.value.status == 413


async def test_the_pipeline_passes_the_settings_limits() -> None:
    tight = Settings(max_voice_profile_frame_bytes=2048)
    job = VoiceJob(audio=speech_like(1.0), target_languages=["en"], forwarded_reference=reference().to_npz_bytes())
    with pytest.raises(PayloadTooLargeError, match="the limit is 2048"):
        await VoicePipeline(FakeStages(), tight).run_voice(job)
    low = Settings(max_voice_profile_decompressed_bytes=1024)
    with pytest.raises(PayloadTooLargeError, match="the limit is 1024"):
        await VoicePipeline(FakeStages(), low).run_voice(job)
    result = await VoicePipeline(FakeStages(), Settings()).run_voice(job)
    assert result.voice_profile_action == "forwarded" and result.translations[0].voice_cloned


async def test_the_forwarded_frame_is_decoded_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bool, dict[str, int]]] = []
    real = voice_module.reference_from_wire

    def spy(data: bytes, **limits: int) -> SpeakerReference:
        seen.append((threading.current_thread() is threading.main_thread(), limits))
        return real(data, **limits)

    monkeypatch.setattr(voice_module, "reference_from_wire", spy)
    settings = Settings(max_voice_profile_frame_bytes=40_000, max_voice_profile_decompressed_bytes=90_000)
    job = VoiceJob(audio=speech_like(1.0), target_languages=["en"], forwarded_reference=reference().embedding_bytes())
    await VoicePipeline(FakeStages(), settings).run_voice(job)
    assert seen == [(False, {"max_bytes": 40_000, "max_decompressed_bytes": 90_000})]
    assert asyncio.get_running_loop() is not None
