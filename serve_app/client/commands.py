"""`voice-translator translate | transcribe | say`: the service's jobs from a terminal.

Progress and messages go to stderr (rich), results to stdout (the transcript, one line per written
file), so the output pipes cleanly. Every failure is one clear line and a nonzero exit code
(`serve_app.client.service`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from serve_app.client.service import (
    DEFAULT_URL,
    EXIT_FAILED,
    EXIT_USAGE,
    KEY_ENV,
    URL_ENV,
    ClientError,
    ServiceClient,
    VoiceEvent,
    extension_for,
)

COMMANDS = ("translate", "transcribe", "say")
FORMATS = ("mp3", "ogg", "wav")


def add_client_commands(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get(URL_ENV, DEFAULT_URL),
                        help=f"the running service (env {URL_ENV}; default {DEFAULT_URL})")
    common.add_argument("--api-key", default=os.environ.get(KEY_ENV), help=f"Bearer key (env {KEY_ENV})")
    tr = sub.add_parser("translate", parents=[common], help="a voice message to voice messages in other languages")
    tr.add_argument("file", type=Path, help="the voice message (m4a, ogg, webm, mp3, wav, flac)")
    tr.add_argument("--to", required=True, help="comma-separated target languages, e.g. en,es,de")
    tr.add_argument("--out", type=Path, default=Path("."), help="folder for <stem>.<lang>.<ext> (default: here)")
    tr.add_argument("--format", choices=FORMATS, default="mp3")
    tr.add_argument("--from", dest="source_language", help="the spoken language (default: detected)")
    tr.add_argument("--user", help="the sender's user id: their voice profile is used and improved")
    tr.add_argument("--no-clone", action="store_true", help="keep the service's base voice")
    tc = sub.add_parser("transcribe", parents=[common], help="print what a voice message says")
    tc.add_argument("file", type=Path)
    tc.add_argument("--language", help="the spoken language (default: detected)")
    tc.add_argument("--json", action="store_true", help="the whole transcription (segments, confidence) as JSON")
    say = sub.add_parser("say", parents=[common], help="speak a text, in the base voice or a user's voice")
    say.add_argument("text")
    say.add_argument("--lang", required=True, help="the text's language, e.g. es")
    say.add_argument("--voice", help="a user id (or profile id): speak in that person's voice")
    say.add_argument("--out", type=Path, help="the audio file (default: say.<lang>.<format>); its extension sets "
                     "the format")
    say.add_argument("--format", choices=FORMATS, help="mp3 (default), ogg or wav")


def run_client_command(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    try:
        with ServiceClient(args.url, args.api_key) as client:
            if args.command == "translate":
                return _translate(client, args, err)
            if args.command == "transcribe":
                return _transcribe(client, args)
            return _say(client, args, err)
    except ClientError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; files already written are kept")
        return 130


def _need_file(path: Path) -> None:
    if not path.is_file():
        raise ClientError(f"no such file: {path}", EXIT_USAGE)


def _transcribe(client: ServiceClient, args: argparse.Namespace) -> int:
    _need_file(args.file)
    transcription = client.transcribe(args.file, args.language)
    print(transcription.model_dump_json(indent=2) if args.json else transcription.text)
    return 0


def _say(client: ServiceClient, args: argparse.Namespace, err: Console) -> int:
    suffix = args.out.suffix.lstrip(".").lower() if args.out else ""
    fmt = args.format or (suffix if suffix in FORMATS else "mp3")
    speech = client.speak(args.text, args.lang, fmt, args.voice)
    out = args.out or Path(f"say.{args.lang}.{extension_for(speech.mime_type, fmt)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(speech.audio)
    print(out)
    return 0


def _translate(client: ServiceClient, args: argparse.Namespace, err: Console) -> int:
    _need_file(args.file)
    targets = [lang.strip() for lang in args.to.split(",") if lang.strip()]
    if not targets:
        raise ClientError("--to needs at least one language, e.g. --to en,es", EXIT_USAGE)
    args.out.mkdir(parents=True, exist_ok=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20),
               TimeElapsedColumn(), TextColumn("{task.fields[state]}"))
    failed: list[str] = []
    with Progress(*columns, console=err, transient=False) as progress:
        heard = progress.add_task("transcribe", total=1, state="")
        tasks = {lang: progress.add_task(lang, total=1, state="waiting for the transcript") for lang in targets}
        events = client.translate_stream(args.file, targets, fmt=args.format, source_language=args.source_language,
                                         user_id=args.user, clone_voice=not args.no_clone)
        for event in events:
            _show(event, progress, heard, tasks, args, failed)
    return EXIT_FAILED if failed else 0


def _show(event: VoiceEvent, progress: Progress, heard: TaskID, tasks: dict[str, TaskID],
          args: argparse.Namespace, failed: list[str]) -> None:
    if event.transcription is not None and event.kind == "transcription":
        progress.update(heard, completed=1, state=f"[{event.transcription.language}] {event.transcription.text}")
        for task in tasks.values():
            progress.update(task, state="translating and speaking")
        print(f"transcript\t{event.transcription.language}\t{event.transcription.text}", flush=True)
    elif event.translation is not None:
        t = event.translation
        path = args.out / f"{args.file.stem}.{t.target_language}.{extension_for(t.audio_mime_type, args.format)}"
        path.write_bytes(t.audio())
        similarity = f", voice similarity {t.voice_similarity:.2f}" if t.voice_similarity is not None else ""
        progress.update(tasks[t.target_language], completed=1, state=f"{path.name}{similarity}")
        print(f"{t.target_language}\t{path}\t{t.translated_text}", flush=True)
    elif event.failure is not None:
        f = event.failure
        failed.append(f.target_language)
        progress.update(tasks[f.target_language], completed=1, state=f"[red]failed: {f.error}[/]")
