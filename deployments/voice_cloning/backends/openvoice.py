"""OpenVoice tone-colour converter: the production backend where its checkpoint is installed.

OpenVoice does not use the GE2E embedding: it extracts its own tone-colour embedding (256 values,
``ToneColorConverter.extract_se``) from a reference *clip*.  So a reference meant for this backend
must be built from the sender's audio (``VoiceCloner.reference_from_audio``), which stores that
vector in ``SpeakerReference.tone_color``; an embedding-only reference cannot be converted.

Neither the ``openvoice`` package (install it from https://github.com/myshell-ai/OpenVoice) nor
its checkpoints are on PyPI, so the constructor checks both and fails fast with what to install.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serve_app.domain.speaker import SpeakerReference
from serve_app.errors import PrerequisiteError, VoiceCloneError, logged_failure

INSTALL_HINT = (
    "pip install git+https://github.com/myshell-ai/OpenVoice and put the V2 converter "
    "(checkpoints_v2/converter/config.json + checkpoint.pth) under "
    "<cache_dir>/openvoice/converter or pass config_path/checkpoint_path in the backend options"
)


class OpenVoiceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    config_path: Path | None = None
    checkpoint_path: Path | None = None
    # OpenVoice's sampling temperature for the converter's flow; 0.3 is its default.
    tau: float = Field(0.3, ge=0.0, le=1.0)


class OpenVoiceBackend:
    name = "openvoice"

    def __init__(self, options: OpenVoiceOptions, cache_dir: Path, device: str = "cpu") -> None:
        folder = Path(cache_dir) / "openvoice" / "converter"
        self.config_path = options.config_path or folder / "config.json"
        self.checkpoint_path = options.checkpoint_path or folder / "checkpoint.pth"
        self.tau = options.tau
        self.device = device
        self.check()
        import torch

        self._torch = torch
        self._converter = _load_converter(self.config_path, device)
        # torch>=2.6 loads checkpoints with weights_only=True: tensors only, no code execution.
        self._converter.load_ckpt(str(self.checkpoint_path))
        ckpt = self.checkpoint_path
        self.model_name = f"openvoice:{ckpt.parent.name}/{ckpt.name}"

    def check(self) -> None:
        """Fail in milliseconds, before any model load, when something is missing."""
        try:
            import openvoice.api  # noqa: F401
        except ImportError as exc:
            raise PrerequisiteError(
                f"the 'openvoice' voice clone backend needs the openvoice package ({exc}): "
                + INSTALL_HINT
            ) from exc
        for path in (self.config_path, self.checkpoint_path):
            if not path.is_file():
                raise PrerequisiteError(f"OpenVoice converter file missing: {path}; {INSTALL_HINT}")

    # -- reference side -------------------------------------------------------------------
    def describe(self, samples: np.ndarray, sample_rate: int) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="openvoice-") as tmp:
            path = _write_wav(Path(tmp) / "reference.wav", samples, sample_rate)
            se = self._converter.extract_se([str(path)])
        vec = se.detach().cpu().numpy().astype(np.float32).reshape(-1)
        return {"tone_color": vec, "tone_color_model": self.model_name}

    def can_convert(self, reference: SpeakerReference) -> str | None:
        if reference.tone_color is None:
            return "reference has no OpenVoice tone-colour embedding (build it from audio)"
        if reference.tone_color_model != self.model_name:
            return (
                f"reference tone colour was made by {reference.tone_color_model}, "
                f"not {self.model_name}"
            )
        return None

    # -- conversion -----------------------------------------------------------------------
    def candidates(
        self, samples: np.ndarray, sample_rate: int, reference: SpeakerReference
    ) -> list[tuple[np.ndarray, int]]:
        reason = self.can_convert(reference)
        if reason:
            raise VoiceCloneError(reason)
        torch = self._torch
        tgt_se = torch.from_numpy(np.asarray(reference.tone_color, dtype=np.float32))
        tgt_se = tgt_se.reshape(1, -1, 1).to(self.device)
        try:
            with tempfile.TemporaryDirectory(prefix="openvoice-") as tmp:
                src = _write_wav(Path(tmp) / "source.wav", samples, sample_rate)
                # The base voice's own tone colour, measured on this very clip.
                src_se = self._converter.extract_se([str(src)])
                audio = self._converter.convert(
                    audio_src_path=str(src),
                    src_se=src_se,
                    tgt_se=tgt_se,
                    output_path=None,
                    tau=self.tau,
                )
        except Exception as exc:  # noqa: BLE001 - surface any model failure as a stage error
            raise logged_failure(VoiceCloneError, "OpenVoice conversion failed", exc) from exc
        out_sr = int(self._converter.hps.data.sampling_rate)
        return [(np.asarray(audio, dtype=np.float32).reshape(-1), out_sr)]


def from_config(cache_dir: Path, device: str = "cpu", options: Mapping[str, Any] | None = None) -> OpenVoiceBackend:
    """Registry factory (see ``BACKENDS``): options are ``OpenVoiceOptions`` fields."""
    return OpenVoiceBackend(OpenVoiceOptions(**dict(options or {})), cache_dir=cache_dir, device=device)


def _load_converter(config_path: Path, device: str) -> Any:
    """A ToneColorConverter without the watermark model (wavmark downloads it from a hub).

    ``enable_watermark=False`` is the documented switch, but in OpenVoice's api.py the kwarg is
    also forwarded to the base class, which rejects it; then we build the same object by hand.
    """
    from openvoice.api import OpenVoiceBaseClass, ToneColorConverter

    try:
        return ToneColorConverter(str(config_path), device=device, enable_watermark=False)
    except TypeError:
        converter = ToneColorConverter.__new__(ToneColorConverter)
        OpenVoiceBaseClass.__init__(converter, str(config_path), device=device)
        converter.watermark_model = None
        converter.version = getattr(converter.hps, "_version_", "v1")
        return converter


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    import soundfile

    soundfile.write(
        str(path), np.asarray(samples, dtype=np.float32), int(sample_rate), subtype="PCM_16"
    )
    return path
