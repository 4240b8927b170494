"""Command line: `voice-translator prepare` readies every model cache once (what `make setup`
runs), so replicas start in seconds instead of converting weights on the request path.
`voice-translator hash-key` makes a keys-file entry, so the file never holds a key itself.
`translate`, `transcribe` and `say` talk to a running service (`serve_app.client`)."""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import time

from pydantic import ValidationError

from serve_app.client.commands import COMMANDS as CLIENT_COMMANDS
from serve_app.client.commands import add_client_commands, run_client_command
from serve_app.errors import PrerequisiteError
from serve_app.security.keys import KeyEntry, key_digest
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


def hash_key(name: str, role: str, user_id: str | None, generate: bool) -> int:
    """Print `{name, sha256, role[, user_id]}` for TRANSLATOR_API_KEYS_FILE. The key is read from
    stdin (not argv, which shell history and `ps` keep), or generated and shown once on stderr."""
    key = secrets.token_urlsafe(32) if generate else sys.stdin.readline().strip()
    if not key:
        log.error("no key on stdin (or pass --generate)")
        return 2
    try:
        entry = KeyEntry(name=name, sha256=key_digest(key), role=role, user_id=user_id)  # type: ignore[arg-type]
    except ValidationError as exc:
        log.error("%s", exc.errors(include_url=False)[0]["msg"])
        return 2
    if generate:
        print(f"new API key (shown once, give it to the caller): {key}", file=sys.stderr)
    print(json.dumps(entry.model_dump(exclude_none=True)))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="voice-translator")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="assemble and convert model weights into the cache folder")
    hk = sub.add_parser("hash-key", help="print a keys-file entry for the API key on stdin (or --generate)")
    hk.add_argument("--name", required=True, help="safe to log: who holds the key")
    hk.add_argument("--role", choices=["admin", "service", "user"], default="service")
    hk.add_argument("--user-id", help="the one user a `user` key acts for")
    hk.add_argument("--generate", action="store_true", help="make a new random key instead of reading stdin")
    add_client_commands(sub)
    args = parser.parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return run_client_command(args)
    if args.command == "hash-key":
        return hash_key(args.name, args.role, args.user_id, args.generate)
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
