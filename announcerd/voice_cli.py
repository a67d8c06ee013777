"""``xephang voice build | record | check``: voice packs from the command line.

The ``xephang`` CLI calls :func:`register` to add the ``voice`` command; the functions
``voice_build_cmd``/``voice_record_cmd``/``voice_check_cmd`` take the parsed arguments and
return an exit code.  ``python -m announcerd.voice_cli`` runs the same without the main CLI.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from xephang_voice.numbers import ReadingOptions
from xephang_voice.voicepack import InvalidPack, validate_pack

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/xephang")


def default_pack_dir(state_dir: Path | str | None = None, *, language: str = "vi", dialect: str = "north") -> Path:
    """Where the generated default pack lives: ``<state_dir>/voice/espeak-<lang>[-<dialect>]``.

    Generated packs are state, never part of the repository.
    """
    base = Path(state_dir or os.environ.get("XEPHANG_STATE_DIR") or DEFAULT_STATE_DIR)
    return base / "voice" / (f"espeak-{language}-{dialect}" if language == "vi" else f"espeak-{language}")


def ensure_default_pack(path: Path | str, *, language: str = "vi", dialect: str = "north") -> Path:
    """Build the default pack at ``path`` if it is missing or invalid (install, daemon start)."""
    from xephang_voice.voice_build import build_default_pack

    return build_default_pack(path, language=language, dialect=dialect)  # type: ignore[arg-type]


def _options(args: argparse.Namespace) -> ReadingOptions:
    return ReadingOptions(dialect=args.dialect, zero_word=getattr(args, "zero_word", None),
                          four_as_tu=getattr(args, "four_as_tu", False))


def voice_build_cmd(args: argparse.Namespace) -> int:
    """Generate the default espeak-ng pack."""
    from xephang_voice.voice_build import VoiceBuildError, build_default_pack

    out = Path(args.out) if args.out else default_pack_dir(args.state_dir, language=args.language, dialect=args.dialect)
    try:
        path = build_default_pack(out, language=args.language, dialect=args.dialect, force=args.force,
                                  loudness_dbfs=args.loudness)
    except VoiceBuildError as exc:
        print(f"xephang voice build: {exc}", file=sys.stderr)
        return 1
    print(f"Gói giọng đã sẵn sàng / voice pack ready: {path}")
    return 0


def voice_record_cmd(args: argparse.Namespace) -> int:
    """Guided recording of a human voice pack."""
    from xephang_voice.voice_record import (
        AplayPlayback,
        ArecordRecorder,
        ConsolePrompter,
        RecordingAborted,
        RecordingError,
        record_pack,
    )

    try:
        record_pack(args.out, recorder=ArecordRecorder(device=args.mic, sample_rate=args.mic_rate),
                    playback=AplayPlayback(device=args.speaker), prompter=ConsolePrompter(),
                    language=args.language, dialect=args.dialect, options=_options(args), letters=args.letters,
                    only=args.only.split(",") if args.only else None, name=args.name, sample_rate=args.rate)
    except RecordingAborted:
        print("Đã dừng; các từ đã giữ vẫn còn. / Stopped; kept clips remain.", file=sys.stderr)
        return 130
    except (RecordingError, InvalidPack) as exc:
        print(f"xephang voice record: {exc}", file=sys.stderr)
        return 1
    return 0


def voice_check_cmd(args: argparse.Namespace) -> int:
    """Validate a pack; print every problem."""
    problems = validate_pack(args.pack, options=_options(args), letters=args.letters)
    for p in problems:
        print(f"✗ [{p.code}] {p.text('vi')} / {p.message}" if p.vi else f"✗ [{p.code}] {p}")
    if not problems:
        print(f"✓ {args.pack}: hợp lệ / valid")
    return 1 if problems else 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``voice build|record|check`` to a CLI's subparsers; each sets ``func``."""
    voice = subparsers.add_parser("voice", help="voice packs for the hall speaker")
    sub = voice.add_subparsers(dest="voice_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--language", choices=["vi", "en"], default="vi")
        p.add_argument("--dialect", choices=["north", "south"], default="north",
                       help="north: nghìn, lẻ; south: ngàn, linh")

    b = sub.add_parser("build", help="generate the default pack with espeak-ng")
    common(b)
    b.add_argument("--out", help="pack folder (default: <state_dir>/voice/espeak-<lang>-<dialect>)")
    b.add_argument("--state-dir", help="default: $XEPHANG_STATE_DIR or /var/lib/xephang")
    b.add_argument("--force", action="store_true", help="rebuild even if a valid pack is there")
    b.add_argument("--loudness", type=float, default=-20.0, help="clip loudness, dBFS (gated RMS)")
    b.set_defaults(func=voice_build_cmd)

    r = sub.add_parser("record", help="record a human voice pack with a USB microphone")
    common(r)
    r.add_argument("out", help="pack folder to write")
    r.add_argument("--mic", default="default", help="ALSA capture device, e.g. plughw:1,0")
    r.add_argument("--mic-rate", type=int, default=48000)
    r.add_argument("--speaker", default="default", help="ALSA playback device for listening back")
    r.add_argument("--rate", type=int, default=24000, help="pack sample rate")
    r.add_argument("--letters", default="", help="prefix letters the site uses, e.g. AB")
    r.add_argument("--only", default="", help="comma-separated clip ids to (re)record")
    r.add_argument("--name", default="")
    r.add_argument("--zero-word", choices=["lẻ", "linh"], default=None)
    r.add_argument("--four-as-tu", action="store_true")
    r.set_defaults(func=voice_record_cmd)

    c = sub.add_parser("check", help="validate a voice pack")
    common(c)
    c.add_argument("pack")
    c.add_argument("--letters", default="")
    c.add_argument("--zero-word", choices=["lẻ", "linh"], default=None)
    c.add_argument("--four-as-tu", action="store_true")
    c.set_defaults(func=voice_check_cmd)
    return voice


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry: ``python -m announcerd.voice_cli voice build``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="xephang")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
