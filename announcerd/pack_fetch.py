"""A voice pack installed by a config push: fetched from webd by URL, checked by its SHA-256.

webd (on the hub's Pi) serves each pack it built as one zip at
``{public_url}/voice/pack/{sha256}.zip``; the push names the URL and the checksum, and the
announcer (on the hall's Pi, maybe another machine) downloads it, checks the checksum, unpacks
and validates it *before* the push applies (a bad or unreachable pack is refused with the
reason, the old voice keeps speaking). Installed packs stay in ``state_dir/voice/installed/``
under their checksum, so going back to the previous pack is a push that needs no download.
Why a URL and not the bytes over MQTT: see docs/voice-packs.md ("Installing from the web").
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from xephang_voice.numbers import DEFAULT_OPTIONS, ReadingOptions
from xephang_voice.voicepack import ARCHIVE_MAX_BYTES, InvalidPack, PackProblem, unpack_archive, validate_pack

log = logging.getLogger(__name__)

KEEP = 3  # installed packs kept (the one in use, the previous one for rollback, one more)


class PackFetchError(RuntimeError):
    """The pack could not be fetched (unreachable, too big, wrong checksum)."""


def installed_dir(state_dir: Path | str, sha256: str) -> Path:
    return Path(state_dir) / "voice" / "installed" / sha256[:16]


def fetch_pack(url: str, sha256: str, state_dir: Path | str, *, options: ReadingOptions = DEFAULT_OPTIONS,
               letters: str = "", timeout_s: float = 15.0, ca_file: Path | str | None = None) -> Path:
    """The installed folder of the pack ``sha256``: already there and valid, or fetched from ``url``.

    ``ca_file``: the CA that signed webd's HTTPS certificate (``xephang web cert``), when the
    URL is ``https://`` and the hall's Pi does not trust it system-wide.
    Raises :class:`PackFetchError` or :class:`InvalidPack` (with every reason)."""
    dest = installed_dir(state_dir, sha256)
    if dest.is_dir() and not validate_pack(dest, options=options, letters=letters):
        dest.touch()  # recently used: kept by the pruning below
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file)) if ca_file and url.startswith("https:") else None
        with urllib.request.urlopen(url, timeout=timeout_s, context=ctx) as r:  # noqa: S310 - http(s) only (config pattern)
            data = r.read(ARCHIVE_MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PackFetchError(f"cannot fetch the voice pack from {url}: {exc}") from None
    if len(data) > ARCHIVE_MAX_BYTES:
        raise PackFetchError(f"the voice pack at {url} is over {ARCHIVE_MAX_BYTES} bytes")
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise PackFetchError(f"the voice pack at {url} has checksum {got[:16]}…, the push says {sha256[:16]}…")
    dest.parent.mkdir(parents=True, exist_ok=True)
    unpack_archive(data, dest, options=options, letters=letters)
    log.info("voice pack %s fetched from %s (%d bytes)", sha256[:16], url, len(data))
    _prune(dest.parent, keep=dest)
    return dest


def _prune(folder: Path, *, keep: Path) -> None:
    dirs = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.endswith(".tmp")),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for d in dirs[KEEP:]:
        if d != keep:
            shutil.rmtree(d, ignore_errors=True)


def fetch_problems(url: str, sha256: str, state_dir: Path | str, *, options: ReadingOptions = DEFAULT_OPTIONS,
                   letters: str = "", ca_file: Path | str | None = None) -> list[str]:
    """:func:`fetch_pack` as a list of refusals (empty: installed and valid)."""
    try:
        fetch_pack(url, sha256, state_dir, options=options, letters=letters, ca_file=ca_file)
    except PackFetchError as exc:
        return [str(exc)]
    except InvalidPack as exc:
        return [f"voice pack {sha256[:16]}…: {p}" for p in exc.problems[:20]]
    return []


__all__ = ["PackFetchError", "PackProblem", "fetch_pack", "fetch_problems", "installed_dir"]
