"""Voice profile routes: CRUD per user, analyze, verify, compare (the same operations the ZMQ voice
API uses, rendered snake_case). A `user` key reaches only its own profile (`ingress.http.access`)."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from ingress.http.access import ANY_CALLER, OPERATOR, PATH_USER, NamedUser, OptionalUser
from ingress.http.api import PipelineDep, SettingsDep
from ingress.http.protocol import FingerprintCompareBody
from ingress.http.uploads import read_upload
from serve_app.errors import InvalidRequestError

router = APIRouter(tags=["voice profiles"])


@router.get("/api/v1/voice/profiles", dependencies=[OPERATOR])
async def list_profiles(pipeline: PipelineDep, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Every user's profiles: admin or service keys only."""
    if not 1 <= limit <= 500 or offset < 0:
        raise InvalidRequestError("limit must be 1-500 and offset >= 0")
    return await pipeline.profile_list(limit, offset)


@router.get("/api/v1/voice/profiles/{user_id}", dependencies=[PATH_USER])
async def get_profile(pipeline: PipelineDep, user_id: str) -> dict[str, Any]:
    return await pipeline.profile_get(user_id)


@router.post("/api/v1/voice/profiles/{user_id}", dependencies=[PATH_USER], status_code=201)
async def create_profile(
    pipeline: PipelineDep, settings: SettingsDep, user_id: str, audio: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    """Create from at least 10 s of speech."""
    return await pipeline.profile_create(user_id, await read_upload(audio, settings.max_audio_bytes))


@router.put("/api/v1/voice/profiles/{user_id}", dependencies=[PATH_USER])
async def update_profile(
    pipeline: PipelineDep, settings: SettingsDep, user_id: str, audio: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    """Improve with a new sample: 0.7 old / 0.3 new, version + 1."""
    return await pipeline.profile_update(user_id, await read_upload(audio, settings.max_audio_bytes))


@router.delete("/api/v1/voice/profiles/{user_id}", dependencies=[PATH_USER])
async def delete_profile(pipeline: PipelineDep, user_id: str) -> dict[str, Any]:
    return await pipeline.profile_delete(user_id)


@router.post("/api/v1/voice/analyze")
async def analyze_voice(
    pipeline: PipelineDep,
    settings: SettingsDep,
    actor: OptionalUser,
    audio: Annotated[UploadFile, File()],
    include_transcription: Annotated[bool, Form()] = True,
) -> dict[str, Any]:
    """Embedding, fingerprint (with embedding_data for verify/compare), characteristics; with
    `user_id`, that user's profile id."""
    analysis = await pipeline.profile_analyze(
        await read_upload(audio, settings.max_audio_bytes), user_id=actor.user_id,
        include_transcription=include_transcription,
    )
    return analysis.to_wire()


@router.post("/api/v1/voice/verify")
async def verify_voice(
    pipeline: PipelineDep,
    settings: SettingsDep,
    actor: NamedUser,
    audio: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    """Is this the stored profile's voice (of `user_id`)? Cosine similarity, threshold 0.80."""
    assert actor.user_id is not None  # a required form field
    verification = await pipeline.profile_verify(await read_upload(audio, settings.max_audio_bytes), actor.user_id)
    return verification.to_wire()


@router.post("/api/v1/voice/compare", dependencies=[ANY_CALLER])
async def compare_fingerprints(pipeline: PipelineDep, body: FingerprintCompareBody) -> dict[str, Any]:
    return (await pipeline.profile_compare(body.fingerprint_a, body.fingerprint_b)).to_wire()
