"""A voice pack installed by a config push: fetched from webd by URL, checked by its SHA-256.

webd (on the hub's Pi) serves each pack it built as one zip at
``{public_url}/voice/pack/{sha256}.zip``; the push names the URL and the checksum, and the
announcer (on the hall's Pi, maybe another machine) downloads it, checks the checksum, unpacks
and validates it *before* the push applies (a bad or unreachable pack is refused with the
reason, the old voice keeps speaking). That runs on the node config's worker thread
(:class:`PackInstall`), never in the announcer's loop: calls go on being spoken meanwhile. Installed packs stay in ``state_dir/voice/installed/``
under their checksum, so going back to the previous pack is a push that needs no download.
Why a URL and not the bytes over MQTT: see docs/voice-packs.md ("Installing from the web").
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xephang.checktext import both
from xephang_voice.numbers import DEFAULT_OPTIONS, ReadingOptions
from xephang_voice.voicepack import (
    ARCHIVE_MAX_BYTES,
    InvalidPack,
    PackProblem,
    VoicePack,
    blocking,
    load_pack,
    unpack_archive,
    validate_pack,
)

log = logging.getLogger(__name__)

KEEP = 3  # installed packs kept (the one in use, the previous one for rollback, one more)
FETCH_DEADLINE_S = 20.0  # the whole download; webd waits 30 s for the announcer's answer
SOCKET_TIMEOUT_S = 5.0  # one connect or read; the deadline is checked between reads
CHUNK = 64 * 1024


class PackFetchError(RuntimeError):
    """The pack could not be fetched (unreachable, too big, wrong checksum)."""


def installed_dir(state_dir: Path | str, sha256: str) -> Path:
    return Path(state_dir) / "voice" / "installed" / sha256[:16]


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to http(s): never to ftp:// or anything else urllib knows."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl[:80]!r} refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(url: str, *, ca_file: Path | str | None = None, deadline_s: float = FETCH_DEADLINE_S,
             stop: threading.Event | None = None, max_bytes: int = ARCHIVE_MAX_BYTES) -> bytes:
    """The bytes at ``url`` (http or https), at most ``max_bytes``, within ``deadline_s`` in all:
    a server that sends slowly, or never stops, is given up on (``stop`` set: at once)."""
    if not url.lower().startswith(("http://", "https://")):
        raise PackFetchError(both(f"không tải được gói giọng từ {url[:80]!r}: chỉ http:// và https://",
                                  f"cannot fetch the voice pack from {url[:80]!r}: only http:// and https://"))
    end = time.monotonic() + deadline_s
    data = bytearray()
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        opener = urllib.request.build_opener(_HttpOnlyRedirects(), urllib.request.HTTPSHandler(context=ctx))
        with opener.open(url, timeout=min(SOCKET_TIMEOUT_S, deadline_s)) as r:
            while True:
                if stop is not None and stop.is_set():
                    raise PackFetchError(both(f"việc tải {url} đã dừng (loa đang tắt, hoặc kỹ thuật viên đã đẩy "
                                              "cấu hình khác)",
                                              f"the download of {url} was stopped (the announcer is stopping, "
                                              "or a technician's push took over)"))
                if time.monotonic() > end:
                    raise PackFetchError(both(f"tải gói giọng ở {url} quá {deadline_s:g} giây "
                                              f"(mới được {len(data)} byte)",
                                              f"the voice pack at {url} took over {deadline_s:g} s to download "
                                              f"({len(data)} bytes so far)"))
                chunk = r.read1(CHUNK)  # returns after one read: the deadline is checked between them
                if not chunk:
                    break
                data += chunk
                if len(data) > max_bytes:
                    raise PackFetchError(both(f"gói giọng ở {url} lớn hơn {max_bytes} byte",
                                              f"the voice pack at {url} is over {max_bytes} bytes"))
    except PackFetchError:
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise PackFetchError(both(f"không tải được gói giọng từ {url}", f"cannot fetch the voice pack from {url}")
                             + f": {exc}") from None
    return bytes(data)


#: problems a pack's own archive has whatever its files on the card: the site asks for what it lacks
NOT_IN_THE_ARCHIVE = frozenset({"clip-missing", "language"})


def fetch_pack(url: str, sha256: str, state_dir: Path | str, *, options: ReadingOptions = DEFAULT_OPTIONS,
               letters: str = "", ca_file: Path | str | None = None, deadline_s: float = FETCH_DEADLINE_S,
               stop: threading.Event | None = None) -> Path:
    """The installed folder of the pack ``sha256``: already there and valid, or fetched from ``url``.

    ``ca_file``: the CA that signed webd's HTTPS certificate (``xephang web cert``), when the
    URL is ``https://`` and the hall's Pi does not trust it system-wide.
    Raises :class:`PackFetchError` or :class:`InvalidPack` (with every reason)."""
    dest = installed_dir(state_dir, sha256)
    if dest.is_dir():
        problems = blocking(validate_pack(dest, options=options, letters=letters))  # as load_pack
        if not problems:
            dest.touch()  # recently used: kept by the pruning below
            return dest
        if all(p.code in NOT_IN_THE_ARCHIVE for p in problems):
            # the folder is the archive as checked: the site now asks for clips it never had (a new prefix
            # letter, the other dialect). The same bytes again would lack them too, so it is kept (usable
            # again if the site goes back) and not fetched anew on the speaker's loop, up to 20 s silent
            raise InvalidPack(dest, problems)
    shutil.rmtree(dest, ignore_errors=True)
    data = download(url, ca_file=ca_file, deadline_s=deadline_s, stop=stop)
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise PackFetchError(both(f"gói giọng ở {url} có mã kiểm tra {got[:16]}…, lần đẩy ghi {sha256[:16]}…",
                                  f"the voice pack at {url} has checksum {got[:16]}…, the push says {sha256[:16]}…"))
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
    except (PackFetchError, InvalidPack) as exc:
        return _refusals(exc, sha256)
    return []


def _refusals(exc: PackFetchError | InvalidPack, sha256: str) -> list[str]:
    if isinstance(exc, InvalidPack):
        return [f"voice pack {sha256[:16]}…: {p.bilingual()}" for p in exc.problems[:20]]
    return [str(exc)]


@dataclass
class PackInstall:
    """A pushed pack's slow part, on the node config's worker thread: download, check, load.

    Called with the worker's stop event; returns every refusal (empty: ``pack`` is loaded and
    the push may apply). The announcer's loop reads ``pack`` only once ``done`` is set."""

    url: str
    sha256: str
    state_dir: Path
    options: ReadingOptions
    letters: str
    ca_file: Path | None = None
    deadline_s: float | None = None  # None: FETCH_DEADLINE_S
    pack: VoicePack | None = None
    done: threading.Event = field(default_factory=threading.Event)  # set when the job has ended, however

    def __call__(self, stop: threading.Event) -> list[str]:
        try:
            return self._install(stop)
        finally:
            self.done.set()

    def _install(self, stop: threading.Event) -> list[str]:
        t0 = time.monotonic()
        try:
            path = fetch_pack(self.url, self.sha256, self.state_dir, options=self.options, letters=self.letters,
                              ca_file=self.ca_file, deadline_s=self.deadline_s or FETCH_DEADLINE_S, stop=stop)
            pack = load_pack(path, options=self.options, letters=self.letters, validate=False)  # fetch_pack checked it
        except (PackFetchError, InvalidPack) as exc:
            return _refusals(exc, self.sha256)
        except (OSError, ValueError) as exc:  # a clip that validated but does not read (the disk, a race)
            return [f"voice pack {self.sha256[:16]}…: " + both("không nạp được", "does not load") + f": {exc}"]
        self.pack = pack
        log.info("voice pack %s ready in %.1f s (fetched and checked off the loop)", self.sha256[:16],
                 time.monotonic() - t0)
        return []


__all__ = ["PackFetchError", "PackInstall", "PackProblem", "download", "fetch_pack", "fetch_problems",
           "installed_dir"]
