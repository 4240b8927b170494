"""Unit tests for the voice cloning stage: serialisation, cloner logic with a fake encoder, and
the WORLD backend on synthetic harmonic signals (pyworld is a small C library, no weights)."""

from __future__ import annotations

import base64
import io
import sys

import numpy as np
import pytest

from deployments.voice_cloning import ConvertedSpeech, VoiceCloner
from deployments.voice_cloning.backends import make_backend
from deployments.voice_cloning.backends import world as world_module
from deployments.voice_cloning.backends.world import WorldBackend, WorldOptions
from deployments.voice_cloning.speaker import SpeakerEncoder
from serve_app.domain.speaker import ENVELOPE_HZ, SpeakerReference, cosine, embedding_from_npy, embedding_to_npy
from serve_app.errors import (
    InvalidRequestError,
    PrerequisiteError,
    ServiceError,
    VoiceCloneError,
)

SR = 16_000


def harmonic(f0: float, seconds: float = 1.5, sr: int = SR, formant: float = 1.0) -> np.ndarray:
    """A voiced, vowel-like test signal: harmonics of f0 shaped by a few formant peaks."""
    t = np.arange(int(seconds * sr)) / sr
    f0_track = f0 * (1.0 + 0.03 * np.sin(2 * np.pi * 3.0 * t))  # gentle vibrato
    phase = 2 * np.pi * np.cumsum(f0_track) / sr
    out = np.zeros_like(t)
    for k in range(1, int(0.45 * sr / f0)):
        freq = k * f0
        amp = sum(np.exp(-(((freq - fc * formant) / 120.0) ** 2)) for fc in (700, 1200, 2600))
        out += (amp + 0.02) * np.sin(k * phase) / k**0.5
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def full_reference(dim: int = 8) -> SpeakerReference:
    env = np.linspace(-20, -60, ENVELOPE_HZ.size).astype(np.float32)
    env[-3:] = np.nan  # above a low-rate reference's Nyquist frequency
    return SpeakerReference(
        embedding=np.arange(1, dim + 1, dtype=np.float32),
        embedding_model="fake-encoder",
        duration_ms=1234,
        log_f0_mean=5.3,
        log_f0_std=0.12,
        envelope_db=env,
        envelope_hz=ENVELOPE_HZ,
    )


# -- serialisation ------------------------------------------------------------------------------
def test_npz_round_trip_keeps_every_field_without_pickle() -> None:
    ref = full_reference()
    blob = ref.to_npz_bytes()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:  # would raise on object arrays
        assert all(npz[name].dtype != object for name in npz.files)
    back = SpeakerReference.from_npz_bytes(blob)
    np.testing.assert_allclose(back.embedding, ref.embedding)
    np.testing.assert_allclose(back.envelope_db, ref.envelope_db, equal_nan=True)
    np.testing.assert_allclose(back.envelope_hz, ENVELOPE_HZ)
    assert np.isnan(back.envelope_db[-1])
    assert (back.log_f0_mean, back.log_f0_std) == pytest.approx((5.3, 0.12))
    assert back.duration_ms == 1234 and back.embedding_model == "fake-encoder"
    assert back.tone_color is None and back.has_world_stats


def test_base64_round_trip_and_embedding_only_reference() -> None:
    ref = SpeakerReference(embedding=[3.0, 4.0])
    assert not ref.has_world_stats
    back = SpeakerReference.from_base64(ref.to_base64())
    np.testing.assert_allclose(back.embedding, [0.6, 0.8], rtol=1e-6)  # stored L2-normalised
    assert back.log_f0_mean is None and back.envelope_db is None and back.duration_ms is None


def test_embedding_bytes_are_plain_npy_float32() -> None:
    ref = full_reference()
    data = ref.embedding_bytes()
    assert data.startswith(b"\x93NUMPY")
    vec = embedding_from_npy(data)
    assert vec.dtype == np.float32
    np.testing.assert_allclose(vec, ref.embedding)
    np.testing.assert_allclose(embedding_from_npy(embedding_to_npy([1.0, 2.0])), [1.0, 2.0])


def test_pickled_payloads_are_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, embedding=np.array([{"x": 1}], dtype=object))  # needs pickle to load
    with pytest.raises(InvalidRequestError):
        SpeakerReference.from_npz_bytes(buf.getvalue())
    obj = io.BytesIO()
    np.save(obj, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InvalidRequestError):
        embedding_from_npy(obj.getvalue())


@pytest.mark.parametrize(
    "payload",
    ["not base64 at all!", base64.b64encode(b"garbage").decode(), base64.b64encode(b"").decode()],
)
def test_corrupt_reference_is_a_client_error(payload: str) -> None:
    with pytest.raises(InvalidRequestError):
        SpeakerReference.from_base64(payload)


def test_npz_without_embedding_is_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, log_f0_mean=np.array(5.0))
    with pytest.raises(InvalidRequestError, match="no embedding"):
        SpeakerReference.from_npz_bytes(buf.getvalue())


@pytest.mark.parametrize(
    "fields",
    [
        {"embedding": [0.0, 0.0]},
        {"embedding": [1.0, np.nan]},
        {"embedding": []},
        {"embedding": [1.0], "log_f0_mean": 5.0},
        {"embedding": [1.0], "envelope_db": [1.0, 2.0]},
        {"embedding": [1.0], "envelope_db": [1.0, 2.0], "envelope_hz": [100.0]},
        {"embedding": [1.0], "log_f0_mean": float("inf"), "log_f0_std": 0.1},
    ],
)
def test_reference_validation(fields: dict) -> None:
    with pytest.raises(ValueError):
        SpeakerReference(**fields)


def test_json_dump_is_plain_lists() -> None:
    dumped = full_reference().model_dump(mode="json")
    assert isinstance(dumped["embedding"], list) and dumped["envelope_db"][-1] is None


# -- cloner logic with fakes ---------------------------------------------------------------------
class FakeEncoder:
    """Deterministic 'speaker' features: energy in 8 frequency bands (so timbre changes it)."""

    name = "fake-encoder"
    dim = 8

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        self.calls += 1
        spec = np.abs(np.fft.rfft(samples, n=4096))
        edges = np.linspace(0, spec.size, self.dim + 1).astype(int)
        vec = np.array([spec[a:b].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)])
        vec = vec + 1e-3
        return (vec / np.linalg.norm(vec)).astype(np.float32)


class FakeBackend:
    name = "fake"

    def __init__(self, outputs: list[np.ndarray] | None = None, error: Exception | None = None):
        self.outputs = outputs
        self.error = error

    def describe(self, samples: np.ndarray, sample_rate: int) -> dict:
        return {
            "log_f0_mean": 5.0,
            "log_f0_std": 0.1,
            "envelope_db": np.zeros(ENVELOPE_HZ.size),
            "envelope_hz": ENVELOPE_HZ,
        }

    def can_convert(self, reference: SpeakerReference) -> str | None:
        return None if reference.has_world_stats else "embedding only"

    def candidates(self, samples, sample_rate, reference):
        if self.error is not None:
            raise self.error
        return [(o, sample_rate) for o in (self.outputs if self.outputs is not None else [samples])]


def tone(freq: float, seconds: float = 1.2) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_convert_keeps_the_candidate_closest_by_measured_cosine() -> None:
    target, near, far = tone(3000), tone(2900), tone(300)
    encoder = FakeEncoder()
    cloner = VoiceCloner(encoder, FakeBackend(outputs=[far, near]))
    ref = cloner.reference_from_audio(target, SR)
    assert ref.duration_ms == 1200 and ref.embedding_model == "fake-encoder"
    out = cloner.convert(far, SR, ref)
    assert isinstance(out, ConvertedSpeech) and out.converted and out.backend == "fake"
    np.testing.assert_array_equal(out.samples, near)
    assert out.detail == "candidate 2/2"
    assert out.similarity == pytest.approx(cosine(encoder.embed(near, SR), ref.embedding))
    assert out.base_similarity == pytest.approx(cosine(encoder.embed(far, SR), ref.embedding))
    assert out.similarity > out.base_similarity
    assert out.similarity == pytest.approx(cloner.similarity(near, SR, ref))


def test_embedding_only_reference_returns_input_unconverted_but_measured() -> None:
    encoder = FakeEncoder()
    cloner = VoiceCloner(encoder, FakeBackend(outputs=[tone(3000)]))
    source = cloner.reference_from_audio(tone(3000), SR)
    ref = cloner.reference_from_embedding(source.embedding_bytes())
    assert not ref.has_world_stats
    speech = tone(500)
    out = cloner.convert(speech, SR, ref)
    assert out.converted is False and "embedding only" in out.detail
    np.testing.assert_array_equal(out.samples, speech)
    measured = cosine(encoder.embed(speech, SR), source.embedding)
    assert out.similarity == pytest.approx(measured) and out.base_similarity == out.similarity
    assert measured < 0.99  # a real, non-trivial number, not a constant 1.0


@pytest.mark.parametrize(
    ("samples", "sr", "message"),
    [
        (np.zeros(0, np.float32), SR, "too short"),
        (tone(500, 0.1), SR, "too short"),
        (np.zeros(SR, np.float32), SR, "silent"),
        (np.full(SR, np.nan, np.float32), SR, "NaN"),
        (np.zeros((2, SR), np.float32), SR, "mono"),
        (tone(500), 100, "sample rate"),
        (tone(500), 16000.0, "sample rate"),
        (np.array(["a"] * SR), SR, "float"),
        ((tone(500) * 32767).astype(np.int16), SR, "float"),
    ],
)
def test_bad_audio_is_a_client_error(samples, sr, message) -> None:
    cloner = VoiceCloner(FakeEncoder(), FakeBackend())
    ref = SpeakerReference(embedding=np.ones(8), embedding_model="fake-encoder")
    with pytest.raises(InvalidRequestError, match=message):
        cloner.convert(samples, sr, ref)


def test_reference_needs_a_second_of_audio() -> None:
    cloner = VoiceCloner(FakeEncoder(), FakeBackend())
    with pytest.raises(InvalidRequestError, match="too short"):
        cloner.reference_from_audio(tone(500, 0.5), SR)


def test_reference_from_other_encoder_or_size_is_refused() -> None:
    cloner = VoiceCloner(FakeEncoder(), FakeBackend())
    with pytest.raises(InvalidRequestError, match="re-create"):
        cloner.convert(tone(500), SR, SpeakerReference(embedding=np.ones(8)))
    with pytest.raises(InvalidRequestError, match="expected 8"):
        cloner.reference_from_embedding(np.ones(256))
    with pytest.raises(InvalidRequestError):
        cloner.reference_from_embedding(b"not npy")
    with pytest.raises(InvalidRequestError):
        cloner.reference_from_embedding(np.zeros(8))


@pytest.mark.parametrize("error", [RuntimeError("boom"), VoiceCloneError("clear message")])
def test_backend_failures_become_stage_errors(error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    cloner = VoiceCloner(FakeEncoder(), FakeBackend(error=error))
    ref = cloner.reference_from_audio(tone(3000), SR)
    with pytest.raises(VoiceCloneError) as info:
        cloner.convert(tone(500), SR, ref)
    assert info.value.code == "voice_clone_failed"
    if isinstance(error, VoiceCloneError):  # written for clients: passed on as it is
        assert str(error) in str(info.value)
    else:  # a library's own words stay in the log, under the reference the client gets
        assert str(error) not in info.value.message and info.value.error_id in info.value.message
        assert any(info.value.error_id in r.getMessage() and str(error) in r.getMessage() for r in caplog.records)


def test_backend_without_output_is_an_error() -> None:
    cloner = VoiceCloner(FakeEncoder(), FakeBackend(outputs=[]))
    ref = cloner.reference_from_audio(tone(3000), SR)
    with pytest.raises(VoiceCloneError, match="no output"):
        cloner.convert(tone(500), SR, ref)


# -- prerequisites fail fast -----------------------------------------------------------------
def test_unknown_backend_is_a_prerequisite_error(tmp_path) -> None:
    with pytest.raises(PrerequisiteError, match="world"):
        make_backend("xtts", cache_dir=tmp_path)


def test_openvoice_backend_fails_fast_with_install_hint(tmp_path) -> None:
    try:
        import openvoice  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only where OpenVoice is installed
        pytest.skip("openvoice is installed here; the missing-checkpoint path is tested instead")
    with pytest.raises(PrerequisiteError, match="OpenVoice") as info:
        VoiceCloner.from_config(backend="openvoice", cache_dir=tmp_path, warmup=False)
    assert "checkpoint" in info.value.message and info.value.status == 503


def test_missing_pyworld_or_resemblyzer_is_a_prerequisite_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(world_module, "pyworld", None)
    with pytest.raises(PrerequisiteError, match="pyworld"):
        VoiceCloner.from_config(backend="world", cache_dir=tmp_path, warmup=False)
    monkeypatch.undo()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))  # the encoder would set it otherwise
    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # makes `import resemblyzer` fail
    with pytest.raises(PrerequisiteError, match="resemblyzer"):
        SpeakerEncoder(cache_dir=tmp_path)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        WorldOptions(max_warp=3.0)
    with pytest.raises(ValueError):
        WorldOptions(strengths=())
    with pytest.raises(ValueError):
        WorldOptions(unknown=1)


# -- WORLD backend on synthetic voices -----------------------------------------------------------
def measured_f0(samples: np.ndarray, sr: int) -> float:
    import pyworld

    x = samples.astype(np.float64)
    f0, t = pyworld.dio(x, sr, f0_floor=60, f0_ceil=700)
    f0 = pyworld.stonemask(x, f0, t, sr)
    return float(np.exp(np.mean(np.log(f0[f0 > 0]))))


def test_world_describe_measures_pitch_and_envelope() -> None:
    stats = WorldBackend().describe(harmonic(220.0), SR)
    assert np.exp(stats["log_f0_mean"]) == pytest.approx(220.0, rel=0.05)
    assert 0.005 < stats["log_f0_std"] < 0.1  # the 3 % vibrato
    env = stats["envelope_db"]
    assert env.shape == ENVELOPE_HZ.shape and np.all(np.isfinite(env))
    # the envelope peaks near a formant, not in the empty high band
    assert ENVELOPE_HZ[np.argmax(env)] < 3000 and env[-1] < env.max() - 20


def test_world_describe_marks_bands_above_nyquist_and_skips_unvoiced() -> None:
    stats = WorldBackend().describe(harmonic(200.0, sr=8000), 8000)
    env = stats["envelope_db"]
    assert np.isnan(env[ENVELOPE_HZ > 3800]).all() and np.isfinite(env[ENVELOPE_HZ < 3500]).all()
    blip = np.zeros(SR, np.float32)  # 50 ms of voice in a second of silence: too little to measure
    blip[: SR // 20] = harmonic(200.0, 0.05)
    assert WorldBackend().describe(blip, SR) == {}


def test_world_conversion_moves_pitch_and_keeps_length_and_loudness() -> None:
    backend = WorldBackend()
    stats = backend.describe(harmonic(240.0, formant=1.2), SR)
    ref = SpeakerReference(embedding=np.ones(8), **stats)
    source = harmonic(120.0)
    [(out, sr)] = backend.candidates(source, SR, ref)
    assert sr == SR and out.dtype == np.float32 and out.size == source.size
    assert measured_f0(source, SR) == pytest.approx(120.0, rel=0.05)
    assert measured_f0(out, SR) == pytest.approx(240.0, rel=0.08)
    rms = float(np.sqrt(np.mean(out**2)))
    assert rms == pytest.approx(float(np.sqrt(np.mean(source**2))), rel=0.05)
    assert np.max(np.abs(out)) <= 1.0


def test_world_strengths_give_one_candidate_each_and_high_rates_are_resampled() -> None:
    backend = WorldBackend(WorldOptions(strengths=(0.0, 1.0)))
    ref = SpeakerReference(embedding=np.ones(8), **backend.describe(harmonic(240.0), SR))
    source = harmonic(120.0, sr=48_000)
    outs = backend.candidates(source, 48_000, ref)
    assert [sr for _, sr in outs] == [24_000, 24_000]
    assert all(abs(o.size - source.size // 2) <= 1 for o, _ in outs)
    assert measured_f0(outs[0][0], 24_000) == pytest.approx(120.0, rel=0.08)  # strength 0
    assert measured_f0(outs[1][0], 24_000) == pytest.approx(240.0, rel=0.08)


def test_world_refuses_embedding_only_reference() -> None:
    backend = WorldBackend()
    ref = SpeakerReference(embedding=np.ones(8))
    assert "embedding only" in backend.can_convert(ref)
    with pytest.raises(ServiceError):
        backend.candidates(harmonic(120.0), SR, ref)


# -- OpenVoice plumbing against a stand-in `openvoice` package -----------------------------------
class _FakeHps:
    class data:  # noqa: N801 - mirrors OpenVoice's hps.data attribute
        sampling_rate = 22_050


class _FakeBase:
    def __init__(self, config_path: str, device: str = "cuda:0") -> None:
        self.config_path, self.device, self.hps = config_path, device, _FakeHps()

    def load_ckpt(self, ckpt_path: str) -> None:
        self.ckpt = ckpt_path


class _FakeToneColorConverter(_FakeBase):
    """Like OpenVoice's: forwards enable_watermark to a base class that rejects it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)

    def extract_se(self, ref_wav_list, se_save_path=None):
        import soundfile
        import torch

        audio, _ = soundfile.read(ref_wav_list[0], dtype="float32")
        spec = np.abs(np.fft.rfft(audio, n=1024))[:256]
        return torch.from_numpy(spec / np.linalg.norm(spec)).float().reshape(1, 256, 1)

    def convert(self, audio_src_path, src_se, tgt_se, output_path=None, tau=0.3, message=""):
        import soundfile

        assert tuple(tgt_se.shape) == (1, 256, 1) and tuple(src_se.shape) == (1, 256, 1)
        audio, _ = soundfile.read(audio_src_path, dtype="float32")
        return np.roll(audio, 1) * 0.5


@pytest.fixture
def fake_openvoice(monkeypatch, tmp_path):
    import types

    package = types.ModuleType("openvoice")
    api = types.ModuleType("openvoice.api")
    api.OpenVoiceBaseClass, api.ToneColorConverter = _FakeBase, _FakeToneColorConverter
    package.api = api
    monkeypatch.setitem(sys.modules, "openvoice", package)
    monkeypatch.setitem(sys.modules, "openvoice.api", api)
    folder = tmp_path / "openvoice" / "converter"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "checkpoint.pth").write_bytes(b"")
    return tmp_path


def test_openvoice_path_stores_its_tone_colour_and_converts(fake_openvoice, tmp_path) -> None:
    backend = make_backend("openvoice", cache_dir=fake_openvoice, options={"tau": 0.5})
    assert backend.model_name == "openvoice:converter/checkpoint.pth"
    assert backend._converter.watermark_model is None  # no hub download for the watermark
    encoder = FakeEncoder()
    cloner = VoiceCloner(encoder, backend)
    ref = SpeakerReference.from_base64(cloner.reference_from_audio(tone(3000), SR).to_base64())
    assert ref.tone_color.shape == (256,) and ref.tone_color_model == backend.model_name
    speech = tone(500)
    out = cloner.convert(speech, SR, ref)
    assert out.converted and out.sample_rate == 22_050 and out.backend == "openvoice"
    measured = cosine(encoder.embed(out.samples, 22_050), ref.embedding)
    assert out.similarity == pytest.approx(measured)
    forwarded = cloner.reference_from_embedding(ref.embedding)
    skipped = cloner.convert(speech, SR, forwarded)
    assert not skipped.converted and "tone-colour" in skipped.detail
    other = ref.model_copy(update={"tone_color_model": "openvoice:v1/checkpoint.pth"})
    assert "not openvoice:converter" in backend.can_convert(other)


def test_openvoice_missing_checkpoint_fails_fast(fake_openvoice) -> None:
    (fake_openvoice / "openvoice" / "converter" / "checkpoint.pth").unlink()
    with pytest.raises(PrerequisiteError, match="checkpoint.pth"):
        make_backend("openvoice", cache_dir=fake_openvoice)


def test_input_without_voiced_speech_is_delivered_unconverted() -> None:
    encoder = FakeEncoder()
    cloner = VoiceCloner(encoder, WorldBackend())
    ref = cloner.reference_from_audio(harmonic(240.0), SR)
    clip = np.zeros(SR // 2, np.float32)
    clip[: SR // 20] = harmonic(150.0, 0.05)  # 50 ms of voice: below min_voiced_frames
    out = cloner.convert(clip, SR, ref)
    assert out.converted is False and "voiced" in out.detail
    np.testing.assert_array_equal(out.samples, clip)
    assert out.similarity == pytest.approx(cosine(encoder.embed(clip, SR), ref.embedding))
