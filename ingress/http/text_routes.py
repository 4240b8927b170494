"""Text routes (PROTOCOL.md §3 compatibility): translate, batch, detect language, languages."""

from typing import Any

from fastapi import APIRouter

from ingress.http.access import ANY_CALLER
from ingress.http.api import PipelineDep
from ingress.http.protocol import DetectLanguageBody, DetectLanguageResponse, TranslateBody, TranslateResponse
from ingress.http.rendering import translate_response
from serve_app.errors import InvalidRequestError
from serve_app.languages import SUPPORTED_LANGUAGES

MAX_BATCH = 10
router = APIRouter(tags=["text"], dependencies=[ANY_CALLER])  # no user's data here: any valid key


@router.post("/translate", response_model=TranslateResponse)
async def translate(pipeline: PipelineDep, body: TranslateBody) -> TranslateResponse:
    [out] = await pipeline.translate_text(body.text, body.source_language, [body.target_language])
    return translate_response(body, out)


@router.post("/translate/batch", response_model=list[TranslateResponse])
async def translate_batch(pipeline: PipelineDep, bodies: list[TranslateBody]) -> list[TranslateResponse]:
    if not bodies:
        raise InvalidRequestError("the batch is empty")
    if len(bodies) > MAX_BATCH:
        raise InvalidRequestError(f"a batch holds at most {MAX_BATCH} items, got {len(bodies)}")
    # One after the other, each awaited before the next is made: a failed item leaves no coroutine un-awaited.
    return [translate_response(b, (await pipeline.translate_text(b.text, b.source_language, [b.target_language]))[0])
            for b in bodies]


@router.post("/detect-language", response_model=DetectLanguageResponse)
async def detect_language(pipeline: PipelineDep, body: DetectLanguageBody) -> DetectLanguageResponse:
    language, confidence = await pipeline.detect_language(body.text)
    return DetectLanguageResponse(language=language, confidence=round(confidence, 4))


@router.get("/languages")
async def languages() -> dict[str, Any]:
    return {
        "languages": [
            {"code": lang.code, "name": lang.name, "nllb_code": lang.nllb}
            for lang in sorted(SUPPORTED_LANGUAGES.values(), key=lambda item: item.code)
        ],
        "count": len(SUPPORTED_LANGUAGES),
    }
