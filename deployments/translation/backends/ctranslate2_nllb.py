"""NLLB-200 converted to CTranslate2: the production translation backend.

CTranslate2 runs NLLB int8 on CPU (float16 on GPU) several times faster than PyTorch and
batches natively, which is what a Serve batch needs. The folder is a CTranslate2 conversion
(`ct2-transformers-converter`) with the Hugging Face tokenizer files copied beside model.bin.
"""

from __future__ import annotations

import threading
from pathlib import Path

from deployments.translation.translator import BackendOutput, confidence_from_logprob
from serve_app.errors import PrerequisiteError
from serve_app.languages import to_nllb

CONVERT_HINT = (
    "convert an NLLB checkpoint once with: ct2-transformers-converter --model "
    "facebook/nllb-200-distilled-600M --output_dir DIR --quantization int8 --copy_files "
    "tokenizer.json tokenizer_config.json special_tokens_map.json sentencepiece.bpe.model; "
    "then pass DIR as the model"
)


def resolve_model_dir(model: str | None, cache_dir: Path) -> Path:
    """A path as given, else a folder named after the model under cache_dir/ctranslate2."""
    if not model:
        raise PrerequisiteError(f"the ctranslate2 backend needs a model folder; {CONVERT_HINT}")
    direct = Path(model).expanduser()
    candidates = [direct, Path(cache_dir) / "ctranslate2" / model.replace("/", "--")]
    for path in candidates:
        if (path / "model.bin").is_file():
            return path
    raise PrerequisiteError(
        f"no CTranslate2 model (model.bin) at {' or '.join(map(str, candidates))}; {CONVERT_HINT}"
    )


class CTranslate2NllbBackend:
    """Batched NLLB inference; the target language is forced via the decoder's target prefix."""

    name = "ctranslate2"

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        compute_type: str | None = None,
        beam_size: int = 2,
        max_batch_size: int = 32,
        max_decoding_length: int = 256,
        intra_threads: int = 0,
        model_id: str | None = None,
    ) -> None:
        try:
            import ctranslate2
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise PrerequisiteError(
                "the ctranslate2 backend needs 'ctranslate2' and 'transformers' installed"
            ) from exc
        self.model_id = model_id or Path(model_dir).name
        self.beam_size = beam_size
        self.max_batch_size = max_batch_size
        self.max_decoding_length = max_decoding_length
        compute = compute_type or ("int8" if device == "cpu" else "float16")
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise PrerequisiteError(
                f"no NLLB tokenizer files in {model_dir}: {exc}; {CONVERT_HINT}"
            ) from exc
        self._model = ctranslate2.Translator(
            str(model_dir), device=device, compute_type=compute, intra_threads=intra_threads
        )
        self._tok_lock = threading.Lock()  # src_lang is tokenizer state

    def _source_tokens(self, texts: list[str], source_code: str) -> list[list[str]]:
        with self._tok_lock:
            self._tokenizer.src_lang = source_code
            ids = self._tokenizer(texts, truncation=True, max_length=1024)["input_ids"]
            return [self._tokenizer.convert_ids_to_tokens(row) for row in ids]

    def translate(self, texts: list[str], source: str, target: str) -> list[BackendOutput]:
        if not texts:
            return []
        target_code = to_nllb(target)
        tokens = self._source_tokens(texts, to_nllb(source))
        results = self._model.translate_batch(
            tokens,
            target_prefix=[[target_code]] * len(tokens),
            beam_size=self.beam_size,
            max_batch_size=self.max_batch_size,
            max_decoding_length=self.max_decoding_length,
            return_scores=True,
        )
        outputs = []
        for result in results:
            hypothesis = result.hypotheses[0]
            if hypothesis and hypothesis[0] == target_code:
                hypothesis = hypothesis[1:]
            ids = self._tokenizer.convert_tokens_to_ids(hypothesis)
            text = self._tokenizer.decode(ids, skip_special_tokens=True).strip()
            # CTranslate2's score is the length-normalised log-probability (length_penalty=1).
            outputs.append(BackendOutput(text, confidence_from_logprob(result.scores[0])))
        return outputs


def from_config(
    model: str | None, cache_dir: Path, device: str = "cpu", **opts: object
) -> CTranslate2NllbBackend:
    model_dir = resolve_model_dir(model, cache_dir)
    return CTranslate2NllbBackend(model_dir, device=device, model_id=model, **opts)  # type: ignore[arg-type]
