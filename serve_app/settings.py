"""Service settings, read from the environment (prefix `TRANSLATOR_`) and the config's `args.settings`.

Grouped in sections, one per concern, so each model deployment reads and receives only its own
(`WhisperSettings`, `TranslatorSettings`, `TtsSettings`, `VoiceCloneSettings`, each on top of
`RuntimeSettings`); the Pipeline and the two doors read the whole `Settings`, which is every section
at once. Field names are the documented flat names (`TRANSLATOR_WHISPER_MODEL` is `whisper_model`),
so env variables and config files are the same in every section. Ray Serve options (replicas, CPUs,
GPUs) live in the serve config files. `REDIS_URL` and `MONGODB_URL` keep their conventional
unprefixed names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from serve_app.observability.logs import configure_replica_logging

DEFAULT_TTS_CHAINS: dict[str, list[str]] = {
    "en": ["piper", "kokoro", "espeak"],
    "*": ["kokoro", "espeak"],
}
_CONFIG = SettingsConfigDict(env_prefix="TRANSLATOR_", extra="ignore")
SectionT = TypeVar("SectionT", bound=BaseSettings)


def _comma_separated(value: Any) -> Any:
    """`a, b` (what an operator types in an env variable) or a JSON list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_separated)]


class StageDeadlineSettings(BaseSettings):
    """How long the Pipeline waits on each stage call before it cancels it and answers `stage_timeout`
    (base + a per-unit allowance where the work grows with the input); the model deployments read the
    same figures, so their watchdog calls a call stalled exactly when the Pipeline has given up on it.
    Defaults fit the 2-core CPU graph with room (README "Deadlines")."""

    model_config = _CONFIG

    transcribe_timeout_s: float = Field(default=30.0, gt=0, description="Transcribe: base seconds.")
    transcribe_timeout_per_audio_s: float = Field(default=1.0, ge=0, description="... plus this per audio second.")
    speaker_reference_timeout_s: float = Field(default=15.0, gt=0, description="Speaker embedding: base seconds.")
    speaker_reference_timeout_per_audio_s: float = Field(default=0.5, ge=0, description="... per audio second.")
    translate_timeout_s: float = Field(
        default=20.0, gt=0, description="Translate (one language): base seconds; under the gateway's 30 s retry."
    )
    translate_timeout_per_char_s: float = Field(default=0.005, ge=0, description="... plus this per character.")
    detect_language_timeout_s: float = Field(default=10.0, gt=0, description="Language detection, seconds.")
    synthesize_timeout_s: float = Field(default=30.0, gt=0, description="Synthesize (one language): base seconds.")
    synthesize_timeout_per_char_s: float = Field(default=0.1, ge=0, description="... plus this per character.")
    convert_timeout_s: float = Field(default=20.0, gt=0, description="Voice conversion: base seconds.")
    convert_timeout_per_audio_s: float = Field(default=0.5, ge=0, description="... plus this per clip second.")
    deadline_speech_chars_per_s: float = Field(
        default=20.0, gt=0, description="Transcript characters per audio second assumed for a voice message's "
        "worst-case deadline (fast speech); translations are assumed to speak at most twice as long."
    )
    deadline_overhead_s: float = Field(
        default=10.0, ge=0, description="Decode, encode and hops, added to a voice message's worst case."
    )
    watchdog_grace_s: float = Field(
        default=10.0, ge=0, description="A model call counts as stalled this long after its own deadline, "
        "if no other call finished meanwhile (the replica's check_health then fails)."
    )


class RuntimeSettings(StageDeadlineSettings):
    """What every model deployment needs: where weights are cached, which device, and the stage
    deadlines its watchdog measures calls against."""

    model_config = _CONFIG

    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "voice-translator",
        description="Assembled and converted model weights live here (created on first run).",
    )
    device: str = Field(default="auto", description="auto | cpu | cuda")


class WhisperSettings(RuntimeSettings):
    """Speech-to-text (the Transcriber deployment)."""

    whisper_model: str = Field(
        default="base",
        description="'base' = the registry-shipped Whisper base; otherwise a CTranslate2 model folder "
        "or a faster-whisper model name already in the local hub cache.",
    )
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = Field(default=5, ge=1, le=10)
    whisper_vad: bool = True
    whisper_cpu_threads: int = Field(default=0, ge=0, description="0 = library default")
    whisper_log_prob_threshold: float | None = Field(
        default=None, description="Re-decode at a higher temperature below this mean log-prob (None = never; "
        "faster-whisper's own default is -1.0, measured slower and no more accurate: bench/whisper_decoding.py).",
    )
    whisper_repetition_penalty: float = Field(default=1.1, ge=1.0)


class TranslatorSettings(RuntimeSettings):
    """Text translation (the Translator deployment); the Pipeline names the model in cache keys."""

    translator_backend: str = Field(default="gemma", description="gemma | ctranslate2 | transformers")
    translator_model: str | None = Field(
        default=None, description="Path or name of the NLLB model (ctranslate2/transformers backends)."
    )
    translator_options: dict[str, Any] = Field(
        default_factory=dict, description="Backend options, e.g. {intra_threads: 2, beam_size: 2}."
    )
    translator_max_batch_size: int = Field(default=8, ge=1)
    translator_batch_wait_s: float = Field(default=0.02, ge=0)
    max_text_chars: int = Field(default=10_000, ge=1)


class TtsSettings(RuntimeSettings):
    """Speech synthesis (the Synthesizer deployment): ISO 639-1 -> ordered backend names; "*" is every
    other language."""

    tts_chains: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_TTS_CHAINS))
    tts_backend_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per backend, e.g. {kokoro: {threads: 1, voice: jf_gongitsune}}."
    )
    tts_concurrency: int = Field(
        default=0, ge=0, description="Languages of one Pipeline replica synthesizing at once (0 = no limit): "
        "on few cores, taking turns lets the first language's audio leave early instead of all late together.",
    )
    tts_split_sentences: bool = Field(
        default=True, description="The Pipeline asks for each sentence of a translation apart (each its own "
        "TTS turn), so the work spreads evenly over the replicas' cores; joined with the usual pause.",
    )


class VoiceCloneSettings(RuntimeSettings):
    """Voice cloning (the VoiceCloner deployment)."""

    voice_clone_backend: str = Field(default="world", description="world | openvoice")


class LimitsSettings(BaseSettings):
    """Bounds on what a request may ask (bad input gets a clear 4xx, never a crash) and the voice
    output format."""

    model_config = _CONFIG

    max_audio_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_audio_seconds: float = Field(default=45.0, gt=0)
    max_target_languages: int = Field(default=16, ge=1, description="Per message, on every message type.")
    min_audio_seconds: float = Field(default=0.3, ge=0)
    output_format: str = Field(default="mp3", description="mp3 | ogg | wav")
    max_preview_languages: int = Field(default=5, ge=1, description="Voice previews one analysis may ask for.")
    max_http_body_bytes: int = Field(
        default=12 * 1024 * 1024, ge=1024, description="Whole HTTP request body, refused before it is spooled."
    )
    max_json_frame_bytes: int = Field(default=1024 * 1024, ge=1024, description="ZMQ frame 0, checked before parsing.")
    max_json_depth: int = Field(default=32, ge=2, description="Nesting depth of ZMQ frame 0, checked before parsing.")
    max_voice_profile_frame_bytes: int = Field(
        default=64 * 1024, ge=1024, description="A forwarded voiceProfile/embedding frame, before decoding."
    )
    max_voice_profile_decompressed_bytes: int = Field(
        default=256 * 1024, ge=1024, description="The same frame once decompressed (npz members summed)."
    )
    max_feedback_comment_chars: int = Field(default=2000, ge=0)


class GatewaySettings(BaseSettings):
    """The ZMQ door (the chat gateway's protocol, PROTOCOL.md §1), its audio fetches and async jobs."""

    model_config = _CONFIG

    zmq_host: str = Field(default="0.0.0.0", description="Interface the PULL and PUB sockets bind on.")
    zmq_pull_port: int = Field(default=5555, ge=1, le=65535)
    zmq_pub_port: int = Field(default=5558, ge=1, le=65535)
    zmq_max_in_flight: int = Field(default=64, ge=1, description="Requests handled at once; more get a busy error.")
    zmq_high_water_mark: int = Field(default=10_000, ge=1, description="Messages queued per socket.")
    zmq_max_message_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024, description="Hard cap per message; a larger one drops the connection."
    )
    zmq_bind_timeout_s: float = Field(default=60.0, gt=0, description="Keep retrying a busy port this long at start.")
    audio_url_timeout_s: float = Field(default=15.0, gt=0)
    audio_path_roots: CommaList = Field(
        default_factory=list, description="Folders `audioPath` may read from; empty = audioPath is refused."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_attempts: int = Field(default=3, ge=1, le=10)
    max_jobs: int = Field(default=1000, ge=1, description="Async voice jobs remembered for status queries.")
    job_record_ttl_s: int = Field(
        default=7 * 86400, ge=1, description="How long a finished async job's record (status) is kept in the job store."
    )
    job_result_ttl_s: int = Field(
        default=86400, ge=1, description="How long a finished job's result (its audio) is kept, stored apart."
    )
    job_lease_s: float = Field(
        default=30.0, gt=0, description="A running job's lease, renewed every third of it by its replica; a job "
        "whose lease ran out (its replica died) is reported failed with errorCode job_interrupted.",
    )
    job_store_dir: Path | None = Field(
        default=None, description="File job store folder when neither REDIS_URL nor MONGODB_URL is set "
        "(default cache_dir/voice_jobs).",
    )
    voice_job_timeout_s: float = Field(
        default=600.0, gt=0, description="An async voice job as a whole (webhook excluded); past it the job "
        "fails with errorCode job_timeout."
    )
    zmq_drain_timeout_s: float = Field(
        default=45.0, ge=0, description="On shutdown, in-flight ZMQ requests get this long to finish (a voice "
        "message takes ~20 s on 2 cores); the "
        "rest are answered with an error event. Keep under graceful_shutdown_timeout_s."
    )
    zmq_allowed_peers: CommaList = Field(
        default_factory=list,
        description="CIDRs whose ZMQ connections are accepted (ZAP, NULL mechanism); empty = loopback binds only.",
    )
    zmq_curve_secret_key_file: Path | None = Field(
        default=None, description="Server CURVE key pair (zmq.auth certificate file with the secret key)."
    )
    zmq_curve_clients_dir: Path | None = Field(
        default=None, description="Folder of allowed client public certificates; unset = any client with CURVE."
    )
    outbound_allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Hosts audioUrl and webhooks may reach even on loopback/private/link-local addresses.",
    )
    webhook_secret: str | None = Field(
        default=None, description="Standard Webhooks signing secret (whsec_<base64>); unset = webhooks are refused."
    )


class SecuritySettings(BaseSettings):
    """Who may call: API keys and their roles, CORS, rate limits (SECURITY.md)."""

    model_config = _CONFIG

    auth: Literal["required", "optional", "disabled"] = Field(
        default="required",
        description="required: refuse to start without keys; optional: enforce keys when configured, run open "
        "(and say so) when none are (the embedded loopback profile); disabled: never check (on purpose only).",
    )
    api_keys: CommaList = Field(
        default_factory=list, description="Comma-separated keys with the `service` role (like vLLM's --api-key)."
    )
    api_keys_file: Path | None = Field(
        default=None, description="JSON keys file: [{name, sha256, role: admin|service|user, user_id?}]."
    )
    cors_allowed_origins: CommaList = Field(
        default_factory=list, description="Browser origins allowed (comma-separated); none by default."
    )
    rate_limit: str = Field(default="600/minute", description="Per principal (a key, or a ZMQ peer), `limits` syntax.")
    rate_limit_per_user: str = Field(default="120/minute", description="Per userId a service acts for.")


class StoreSettings(BaseSettings):
    """Stores: unset URLs = the embedded in-process defaults."""

    model_config = _CONFIG

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    mongodb_url: str | None = Field(default=None, validation_alias=AliasChoices("MONGODB_URL"))
    mongodb_database: str = "voice_translator"
    mongodb_timeout_ms: int = Field(
        default=2000, ge=100, description="Server selection, connect and socket timeout: unreachable = 503 in ~2 s."
    )
    redis_connect_timeout_s: float = Field(default=0.5, gt=0)
    redis_socket_timeout_s: float = Field(default=0.5, gt=0)
    cache_breaker_failures: int = Field(default=3, ge=1, description="Consecutive Redis failures that open it.")
    cache_breaker_cooldown_s: float = Field(default=10.0, ge=0, description="How long Redis is skipped once open.")
    translation_cache_ttl_s: int = Field(default=7 * 86400, ge=1, description="Redis TTL of a translation.")
    transcription_cache_ttl_s: int = Field(default=7 * 86400, ge=1, description="Redis TTL of a transcription.")
    cache_lru_size: int = Field(default=10_000, ge=1, description="Entries in the in-process LRU tier.")
    cache_lru_ttl_s: float = Field(default=3600.0, gt=0, description="TTL of an entry in the in-process tier.")
    voice_profile_dir: Path | None = Field(
        default=None, description="File profile store folder when MONGODB_URL is unset (default cache_dir/...)."
    )
    voice_profile_max_age_days: float = Field(default=30.0, ge=0, description="Younger profiles are reused as is.")
    voice_profile_min_speech_ms: int = Field(default=10_000, ge=0, description="Speech needed to create a profile.")
    voice_profile_old_weight: float = Field(default=0.7, ge=0, le=1, description="Weight of the old embedding.")
    voice_profile_recalibration_days: float = Field(default=30.0, gt=0)
    voice_profile_recalibration_interval_s: float = Field(default=3600.0, gt=0)
    voice_profile_max_training_samples: int = Field(
        default=50, ge=1, description="trainingAudioSamples kept per profile (the most recent)."
    )
    voice_profile_pending_ttl_days: float = Field(default=30.0, gt=0, description="Pending samples expire after this.")


class Settings(
    WhisperSettings,
    TranslatorSettings,
    TtsSettings,
    VoiceCloneSettings,
    LimitsSettings,
    GatewaySettings,
    SecuritySettings,
    StoreSettings,
):
    """The whole service: what the Pipeline and the doors read."""

    model_config = _CONFIG


def section_overrides(section: type[BaseSettings], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The builder args that belong to one section, so a deployment is handed only what it uses."""
    names = set(section.model_fields)
    for field in section.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(str(choice) for choice in field.validation_alias.choices)
    return {key: value for key, value in (overrides or {}).items() if key in names}


def resolve_device(device: str) -> str:
    """`auto` picks CUDA when a GPU is visible to this process (Ray sets CUDA_VISIBLE_DEVICES)."""
    if device != "auto":
        return device
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return "cuda"
    except Exception:  # noqa: BLE001 - any failure to probe means no usable GPU
        pass
    return "cpu"


def replica_settings(
    overrides: Mapping[str, Any] | None = None, section: type[SectionT] = Settings  # type: ignore[assignment]
) -> SectionT:
    """What every replica does first: log like its siblings (through Serve's handlers, JSON, under Serve;
    `observability.logs`), then read its section (the whole
    service by default) from the environment with the application's builder args (the config
    file's `args.settings`) on top."""
    configure_replica_logging()
    return section(**section_overrides(section, overrides))
