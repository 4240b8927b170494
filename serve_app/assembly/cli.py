"""Command line: `voice-translator prepare` readies every model cache once (what `make setup`
runs), so replicas start in seconds instead of converting weights on the request path."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from serve_app.errors import PrerequisiteError
from serve_app.settings import Settings, resolve_device

log = logging.getLogger("voice-translator")


def prepare(settings: Settings) -> None:
    """Load each stage once with the configured backends; conversions are cached under cache_dir."""
    from deployments.synthesis.synthesizer import Synthesizer
    from deployments.transcription.transcriber import Transcriber
    from deployments.translation.translator import Translator
    from deployments.voice_cloning.voice_cloner import VoiceCloner

    device = resolve_device(settings.device)
    steps = [
        ("whisper", lambda: Transcriber(settings.whisper_model, cache_dir=settings.cache_dir, device=device)),
        ("translator", lambda: Translator.from_config(
            settings.translator_backend, settings.translator_model, cache_dir=settings.cache_dir, device=device,
            **settings.translator_options)),
        ("tts", lambda: Synthesizer.from_config(
            settings.tts_chains, cache_dir=settings.cache_dir, device=device,
            backend_options=settings.tts_backend_options, warmup=True)),
        ("voice clone", lambda: VoiceCloner.from_config(
            settings.voice_clone_backend, cache_dir=settings.cache_dir, device=device)),
    ]
    for name, build in steps:
        started = time.perf_counter()
        build()
        log.info("%-12s ready in %.1f s", name, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="voice-translator")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="assemble and convert model weights into the cache folder")
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        if args.command == "prepare":
            prepare(settings)
    except PrerequisiteError as exc:
        log.error("%s", exc.message)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
