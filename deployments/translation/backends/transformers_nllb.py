"""NLLB through PyTorch/transformers: the reference backend, and the GPU path without conversion.

Loads by hub name (from the local hub cache) or by folder path. It never downloads unless the
operator passes allow_download=True, so a missing model fails in seconds with a clear message
instead of hanging on a network that is not there.
"""

from __future__ import annotations

import threading
from pathlib import Path

from deployments.translation.translator import BackendOutput, confidence_from_logprob
from serve_app.errors import PrerequisiteError
from serve_app.languages import to_nllb


class TransformersNllbBackend:
    """AutoModelForSeq2SeqLM; the target language is forced as the first generated token."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        num_beams: int = 2,
        max_new_tokens: int = 256,
        max_batch_size: int = 16,
        allow_download: bool = False,
        hf_cache_dir: str | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError as exc:
            raise PrerequisiteError(
                "the transformers backend needs 'torch' and 'transformers' installed"
            ) from exc
        self._torch = torch
        self.model_id = model
        self.device = device
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens
        self.max_batch_size = max_batch_size
        kwargs = {"local_files_only": not allow_download, "cache_dir": hf_cache_dir}
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
            dtype = torch.float16 if device.startswith("cuda") else torch.float32
            self._model = AutoModelForSeq2SeqLM.from_pretrained(model, dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            raise PrerequisiteError(
                f"cannot load NLLB model {model!r} from local files: {exc}. Put the checkpoint "
                "in the Hugging Face cache (HF_HOME) or pass a folder path as the model; "
                "allow_download=True lets it download where a hub is reachable"
            ) from exc
        self._model.to(device).eval()
        self._tok_lock = threading.Lock()  # src_lang is tokenizer state

    def translate(self, texts: list[str], source: str, target: str) -> list[BackendOutput]:
        outputs: list[BackendOutput] = []
        for start in range(0, len(texts), self.max_batch_size):
            outputs.extend(self._batch(texts[start : start + self.max_batch_size], source, target))
        return outputs

    def _batch(self, texts: list[str], source: str, target: str) -> list[BackendOutput]:
        if not texts:
            return []
        torch = self._torch
        target_code = to_nllb(target)
        with self._tok_lock:
            self._tokenizer.src_lang = to_nllb(source)
            enc = self._tokenizer(
                texts, return_tensors="pt", padding=True, truncation=True, max_length=1024
            )
        forced = self._tokenizer.convert_tokens_to_ids(target_code)
        with torch.inference_mode():
            gen = self._model.generate(
                **enc.to(self.device),
                forced_bos_token_id=forced,
                num_beams=self.num_beams,
                max_new_tokens=self.max_new_tokens,
                output_scores=True,
                return_dict_in_generate=True,
            )
            mean_logprobs = self._mean_logprobs(gen)
        texts_out = self._tokenizer.batch_decode(gen.sequences, skip_special_tokens=True)
        return [
            BackendOutput(t.strip(), confidence_from_logprob(lp))
            for t, lp in zip(texts_out, mean_logprobs, strict=True)
        ]

    def _mean_logprobs(self, gen: object) -> list[float]:
        """Length-normalised log-probability of each returned sequence."""
        scores = getattr(gen, "sequences_scores", None)
        if scores is not None:  # beam search already normalises by length
            return [float(s) for s in scores]
        transition = self._model.compute_transition_scores(
            gen.sequences, gen.scores, normalize_logits=True
        )
        pad = self._tokenizer.pad_token_id
        # sequences = [decoder_start, generated...]; transition covers the generated part.
        generated = gen.sequences[:, -transition.shape[1] :]
        mask = generated != pad
        counts = mask.sum(dim=1).clamp(min=1)
        return [float(x) for x in (transition.masked_fill(~mask, 0).sum(dim=1) / counts)]


def from_config(
    model: str | None, cache_dir: Path, device: str = "cpu", **opts: object
) -> TransformersNllbBackend:
    if not model:
        raise PrerequisiteError(
            "the transformers backend needs a model name or folder, e.g. "
            "facebook/nllb-200-distilled-600M (already in the local Hugging Face cache)"
        )
    path = Path(model).expanduser()
    if path.is_absolute() or model.startswith("."):
        if not path.is_dir():
            raise PrerequisiteError(f"NLLB model folder {path} does not exist")
        model = str(path)
    return TransformersNllbBackend(model, device=device, **opts)  # type: ignore[arg-type]
