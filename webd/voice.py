"""The head's recording page: the centre's own voice, clip by clip, from a browser.

Every clip the site needs (``xephang_voice.voice_record.clip_plan``: the carriers, the number
words, the letters the site's services print) is recorded in the browser — the page's script
captures the microphone as PCM and uploads a WAV, or a phone's recorder file is chosen and
decoded by the browser — and goes through the same path as the console wizard's takes
(``process_take``: trim, check, even the loudness). Kept clips wait in a draft folder on the
server (a reload or another PC loses nothing); the pack is written and validated by the
wizard's ``finish_pack``, archived by ``voicepack.pack_archive`` and installed on the hall's
announcer by a config push naming its URL and checksum (``announcerd.pack_fetch``).
This module holds no pack logic of its own: only the draft, the page and the upload's decoding.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import logging
import re
import shutil
import threading
import time
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from webd.pages import e
from xephang.nodeconfig import write_atomic
from xephang.site import Site
from xephang_voice import pcm
from xephang_voice.hearing import Heard, PackScore, Recogniser, score_pack
from xephang_voice.numbers import DEFAULT_OPTIONS, Dialect, ReadingOptions, ZeroWord
from xephang_voice.voice_record import Take, clip_plan, finish_pack, is_phrase, process_take
from xephang_voice.voicepack import ClipEntry, load_pack, pack_archive

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # 40 s of 48 kHz stereo WAV: far more than one clip
MAX_TAKE_S = 40.0  # … but nine minutes at 8 kHz mono: a take is refused by its length before it is processed
INSTALLS_KEPT = 5
BUILDS_KEPT = 3  # packs built and not installed (the newest is the one just built)
DIALECTS: tuple[str, ...] = get_args(Dialect)  # the reading options the hall speaker can hold
ZERO_WORDS: tuple[str, ...] = get_args(ZeroWord)

T: dict[str, tuple[str, str]] = {
    "voice": ("Giọng đọc của trung tâm", "The centre's own voice"),
    "intro": ("Thu giọng một cán bộ đọc từng từ dưới đây, một lần. Loa gọi số sẽ ghép các từ này thành lời gọi. "
              "Đọc rõ, chậm, giọng đều, trong phòng yên tĩnh, cách micro khoảng một gang tay. "
              "Bản thu được cắt khoảng lặng, chỉnh độ to và kiểm tra ngay; các từ đã thu được giữ lại trên máy chủ.",
              "Record one officer saying each item below, once. The hall speaker joins them into each call. "
              "Speak clearly, slowly and evenly, in a quiet room, a hand's width from the microphone. "
              "Each take is trimmed, evened and checked at once; kept clips stay on the server."),
    "progress": ("Đã thu {n}/{total} từ.", "{n} of {total} clips recorded."),
    "say": ("Đọc", "Say"),
    "record": ("Ghi âm", "Record"),
    "stop": ("Dừng", "Stop"),
    "redo": ("Thu lại", "Redo"),
    "recording": ("Đang ghi âm… đọc ngay bây giờ", "Recording… speak now"),
    "sending": ("Đang kiểm tra…", "Checking…"),
    "kept": ("Đã giữ ({s:.1f} giây).", "Kept ({s:.1f} s)."),
    "missing": ("Chưa thu", "Not recorded"),
    "take_kept": ("Đã giữ bản thu. Nghe lại bên dưới; chưa ưng thì gửi lại.", "Take kept. Listen below; send again to redo."),
    "file": ("hoặc chọn tệp ghi âm (điện thoại: mở máy ghi âm)", "or choose a recording (phones: open the recorder)"),
    "send": ("Gửi tệp", "Send file"),
    "no_mic": ("Trình duyệt không cho dùng micro trên trang này (cần https:// hoặc http://localhost). "
               "Hãy dùng nút chọn tệp ghi âm, hoặc xem tài liệu docs/voice-packs.md.",
               "This browser gives no microphone to this page (it needs https:// or http://localhost). "
               "Use the file button, or see docs/voice-packs.md."),
    "open_https": ("Mở trang này qua HTTPS để dùng micro", "Open this page over HTTPS for the microphone"),
    "mic_denied": ("Không mở được micro: {err}", "Cannot open the microphone: {err}"),
    "bad_audio": ("Tệp không đọc được: cần tệp WAV 16-bit (trình duyệt có JavaScript tự chuyển các dạng khác).",
                  "Cannot read the file: a 16-bit WAV is needed (with JavaScript the browser converts other formats)."),
    "too_big": ("Tệp quá lớn (tối đa 8 MB cho một từ).", "File too large (8 MB at most for one clip)."),
    "too_long": ("Bản thu quá dài (tối đa 40 giây cho một từ): hãy thu lại chỉ từ này.",
                 "The take is too long (40 s at most for one clip): record just this clip again."),
    "unknown_clip": ("Từ này không có trong danh sách cần thu.", "This clip is not on the list."),
    "install": ("Cài giọng này cho loa gọi số", "Install this voice on the hall speaker"),
    "install_need": ("Cần thu đủ {total} từ trước khi cài (còn thiếu {n}).",
                     "All {total} clips are needed before installing ({n} missing)."),
    "installed": ("Loa gọi số đã dùng giọng mới ({name}).", "The hall speaker now speaks with the new voice ({name})."),
    "rolled_back": ("Loa gọi số đã quay lại giọng trước ({name}).", "The hall speaker went back to the previous voice ({name})."),
    "rollback": ("Quay lại giọng trước", "Back to the previous voice"),
    "rollback_to": ("Giọng trước: {name}", "Previous voice: {name}"),
    "default_voice": ("giọng máy mặc định (espeak-ng)", "the generated default voice (espeak-ng)"),
    "current": ("Loa gọi số đang dùng: {name}", "The hall speaker uses: {name}"),
    "unknown_current": ("Chưa biết loa gọi số đang dùng giọng nào (chưa nhận được trạng thái của loa).",
                        "Not known which voice the hall speaker uses (no word from it yet)."),
    "refused": ("Loa gọi số không nhận gói giọng:", "The hall speaker refused the pack:"),
    "no_answer": ("Loa gọi số không trả lời: chưa biết đã cài hay chưa. Tải lại trang để xem.",
                  "The hall speaker did not answer: reload the page to see whether it was installed."),
    "unreachable": ("Không kết nối được máy chủ tin nhắn: chưa gửi gì.", "No connection to the broker: nothing was sent."),
    "pack_bad": ("Gói giọng chưa hợp lệ:", "The pack is not valid yet:"),
    "nothing_back": ("Không có giọng trước để quay lại.", "There is no previous voice to go back to."),
    "clips": ("Các từ cần thu", "Clips to record"),
    "score": ("Nghe thử {n} lời gọi ngẫu nhiên", "Try {n} random calls"),
    "scored": ("Máy nghe đúng cả số và quầy {both}/{n} lời gọi (số: {number}/{n}, quầy: {counter}/{n}).",
               "The recogniser heard number and counter right in {both} of {n} calls (number {number}, counter {counter})."),
    "scored_hint": ("Giọng máy mặc định được nghe đúng khoảng 1/4 đến 1/3 số lời gọi; giọng người đọc rõ nên cao hơn "
                    "nhiều. Từ nào máy hay nghe sai thì thu lại.",
                    "The generated default voice is heard right in about a quarter to a third of calls; a clear human "
                    "voice should do far better. Redo the words it often mishears."),
    "heard_ok": ("Máy nghe ra: «{heard}».", "The recogniser heard: «{heard}»."),
    "heard_bad": ("Không nghe ra «{want}» (máy nghe thành «{heard}») — hãy đọc lại, rõ từng âm.",
                  "Not heard as «{want}» (heard «{heard}»): say it again, clearly."),
    "heard_none": ("Không nghe ra «{want}» — hãy đọc lại, to và rõ hơn.", "«{want}» was not heard: say it again, louder."),
}


def tr(key: str, lang: str, **kw: object) -> str:
    vi, en = T[key]
    return (en if lang == "en" else vi).format(**kw)


class UploadError(ValueError):
    """An upload that is not audio this server can read; ``key`` names the sentence in ``T``."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def decode_wav(data: bytes) -> tuple[array, int]:
    """A browser's or a recorder's WAV (mono or stereo, 16-bit PCM) → mono samples and rate."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError("too_big")
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            ch, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError, ValueError):
        raise UploadError("bad_audio") from None
    if width != 2 or ch not in (1, 2) or not 8000 <= rate <= 96000:
        raise UploadError("bad_audio")
    if len(raw) / (2 * ch * rate) > MAX_TAKE_S:  # what the data holds, not what the header claims
        raise UploadError("too_long")
    samples = pcm.from_bytes(raw)
    if ch == 2:
        samples = array("h", ((samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples) - 1, 2)))
    return samples, rate


MAX_PARTS = 12  # the form has three (csrf, clip, audio)


def multipart_file(body: bytes, content_type: str, field: str) -> tuple[dict[str, str], bytes | None]:
    """The text fields and one file of a ``multipart/form-data`` body (stdlib parser; its size
    bounded by the caller). A body of more than ``MAX_PARTS`` parts, or with a part that is itself
    multipart (whose parts the count does not see: a review took 5 s with 60,000 of them inside one),
    is refused before it is parsed: 3 MB of empty parts took the parser 29 s and 100 MB (red team)."""
    fields: dict[str, str] = {}
    data: bytes | None = None
    boundary = re.search(r'boundary="?([^";]{1,200})"?', content_type)
    if boundary is None or body.count(b"--" + boundary[1].encode("latin-1", "replace")) > MAX_PARTS + 1 \
            or b"multipart/" in body.lower():  # a part that is itself multipart: its parts were not counted
        log.warning("an upload's multipart body has no boundary, more than %s parts or parts inside a part: "
                    "refused", MAX_PARTS)
        return {}, None
    try:  # the parser recurses into nested parts: a body nested thousands deep must not be a server error
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
        if not msg.is_multipart():
            return fields, None
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True) or b""
            if name == field and part.get_filename() is not None:
                data = payload
            elif len(fields) < 10:
                fields[name] = payload.decode("utf-8", "replace")[:200]
    except (RecursionError, ValueError, LookupError, TypeError) as exc:
        log.warning("an upload's multipart body could not be read (%s): refused", type(exc).__name__)
        return {}, None
    return fields, data


@dataclass(frozen=True)
class Install:
    """One pack the head installed (kept for going back)."""

    sha256: str
    name: str
    by: str
    at: float


class VoiceStudio:
    """The recording draft, the built packs and the install history, in ``root`` (webd's state)."""

    def __init__(self, root: Path, *, sample_rate: int = 24000, loudness_dbfs: float = -20.0,
                 recogniser: Recogniser | None = None) -> None:
        self.root = root
        self.recogniser = recogniser
        self._lock = threading.Lock()  # takes come from worker threads: one draft update at a time
        # one build at a time in a folder: two installs at once (a double click) removed each other's
        # files mid-write and ended in a 500 or a pack missing clips; a score builds in its own folder
        self._build_lock = threading.Lock()
        self._score_lock = threading.Lock()
        self.draft = root / "draft"
        self.packs = root / "packs"
        self.sample_rate = sample_rate
        self.loudness_dbfs = loudness_dbfs

    # ---- what to record
    @staticmethod
    def letters(site: Site) -> str:
        return "".join(sorted({s.prefix.upper() for s in site.services if s.prefix}))

    def plan(self, site: Site, options: ReadingOptions = DEFAULT_OPTIONS) -> list[tuple[str, str]]:
        return clip_plan("vi", options, letters=self.letters(site))

    # ---- the draft
    def _state_path(self) -> Path:
        return self.draft / "draft.json"

    def recorded(self) -> dict[str, dict[str, Any]]:
        """Clip id → what was measured when it was kept (only clips whose WAV is there)."""
        try:
            state = json.loads(self._state_path().read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {c: v for c, v in state.items() if isinstance(v, dict) and (self.draft / f"{c}.wav").is_file()}

    def clip_path(self, clip: str) -> Path | None:
        if not (len(clip) <= 64 and clip.isascii() and clip.replace("_", "").isalnum()):
            return None  # checked before the file system: a 5000-character name is an OSError there
        p = self.draft / f"{clip}.wav"
        return p if p.is_file() else None

    def save_take(self, clip: str, text: str, samples: array, rate: int, *, by: str) -> Take:
        """Process one take the wizard's way; keep it in the draft when it passes."""
        take = process_take(samples, rate, phrase=is_phrase(text), sample_rate=self.sample_rate,
                            loudness_dbfs=self.loudness_dbfs)
        log.info("voice take %s by %s: %s (%.2f s, peak %.1f dBFS, SNR %s)", clip, by, take.problem or "kept",
                 take.duration_s, take.peak_dbfs, "–" if take.snr_db is None else f"{take.snr_db:.0f} dB")
        if not take.ok:
            return take
        with self._lock:
            self._keep(clip, text, take, by)
        return take

    def _keep(self, clip: str, text: str, take: Take, by: str) -> None:
        self.draft.mkdir(parents=True, exist_ok=True)
        pcm.write_wav(self.draft / f"{clip}.wav", take.samples, self.sample_rate)
        state = self.recorded()
        state[clip] = {"text": text, "by": by, "at": round(time.time()), "seconds": round(len(take.samples) / self.sample_rate, 2),
                       "snr_db": None if take.snr_db is None else round(take.snr_db, 1)}
        write_atomic(self._state_path(), json.dumps(state, ensure_ascii=False, indent=1).encode())

    def hear(self, clip: str, text: str) -> Heard | None:
        """The recogniser's verdict on a kept clip (None: no recogniser, or it failed).

        A single word is heard after the draft's own "đến quầy số" when there is one (as in a
        call; alone, a word is too short for the recogniser), and must be the last word heard."""
        if self.recogniser is None or self.clip_path(clip) is None:
            return None
        samples, rate = pcm.read_wav(self.draft / f"{clip}.wav")
        ctx = self.clip_path("den_quay_so")
        at_end = not is_phrase(text) and ctx is not None and clip != "den_quay_so"
        if at_end and ctx is not None:
            samples = pcm.read_wav(ctx)[0] + pcm.silence(220, rate) + samples
        probe = self.root / f"hear-{threading.get_ident()}.wav"
        pcm.write_wav(probe, samples, rate)
        try:
            heard = self.recogniser.hear(probe, text, at_end=at_end)
        except RuntimeError as exc:
            log.warning("recogniser: %s", exc)
            return None
        finally:
            probe.unlink(missing_ok=True)
        with self._lock:
            state = self.recorded()
            if clip in state:
                state[clip] |= {"heard": heard.text, "understood": heard.understood}
                write_atomic(self._state_path(), json.dumps(state, ensure_ascii=False, indent=1).encode())
        return heard

    def score(self, plan: list[tuple[str, str]], *, options: ReadingOptions, letters: str, count: int = 20,
              counters: int = 12) -> PackScore | None:
        """The draft pack said in ``count`` random calls and heard by the recogniser (None: none)."""
        if self.recogniser is None:
            return None
        with self._score_lock:
            return self._score(plan, options=options, letters=letters, count=count, counters=counters)

    def _score(self, plan: list[tuple[str, str]], *, options: ReadingOptions, letters: str, count: int,
               counters: int) -> PackScore | None:
        assert self.recogniser is not None
        sha, problems = self.build(plan, options=options, letters=letters, name="draft", folder="build-score")
        if problems:
            return None
        result = score_pack(load_pack(self.root / "build-score", options=options, letters=letters), self.recogniser,
                            self.root / "score", count=count, counters=counters, options=options)
        with self._lock:
            write_atomic(self.root / "score.json", json.dumps(
                {"sha256": sha, "calls": result.calls, "number": result.number, "counter": result.counter,
                 "both": result.both, "examples": result.examples, "at": round(time.time())},
                ensure_ascii=False, indent=1).encode())
        return result

    def last_score(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / "score.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    # ---- the pack
    def build(self, plan: list[tuple[str, str]], *, options: ReadingOptions, letters: str, name: str,
              folder: str = "build") -> tuple[str, list[str]]:
        """Write the pack from the draft with the wizard's ``finish_pack`` in ``folder``; archive it
        under its checksum. One build at a time (the folder is emptied first).

        Returns (sha256, []) or ("", problems)."""
        with self._build_lock:
            return self._build(plan, options=options, letters=letters, name=name, out=self.root / folder)

    def _build(self, plan: list[tuple[str, str]], *, options: ReadingOptions, letters: str, name: str,
               out: Path) -> tuple[str, list[str]]:
        kept = {}
        with self._lock:  # the draft as it is: a take kept meanwhile is not copied half-written
            have = self.recorded()
            missing = [c for c, _ in plan if c not in have]
            if missing:
                return "", [f"{c}: chưa thu / not recorded" for c in missing]
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for clip, text in plan:
                shutil.copyfile(self.draft / f"{clip}.wav", out / f"{clip}.wav")
                kept[clip] = ClipEntry(text=text, file=f"{clip}.wav")
        problems = finish_pack(out, kept, language="vi", dialect=options.dialect, options=options, letters=letters,
                               name=name, sample_rate=self.sample_rate, loudness_dbfs=self.loudness_dbfs,
                               source="recorded in the browser (webd /head/voice)")
        if problems:
            return "", [f"{p.text('vi')} / {p.message}" if p.vi else str(p) for p in problems]
        data = pack_archive(out)
        sha = hashlib.sha256(data).hexdigest()
        self.packs.mkdir(parents=True, exist_ok=True)
        write_atomic(self.packs / f"{sha}.zip", data)
        self._forget_builds(keep=sha)
        return sha, []

    def _forget_builds(self, keep: str) -> None:
        """Packs built and never installed (the speaker refused it or did not answer, a draft scored):
        the newest ``BUILDS_KEPT`` stay (one may be on its way to the speaker), the rest go. Only an
        install pruned them: a head whose speaker was off left a pack on the card per try, without end."""
        listed = {f"{i.sha256}.zip" for i in self.installs()} | {f"{keep}.zip"}
        unlisted = sorted((f for f in self.packs.glob("*.zip") if f.name not in listed),
                          key=lambda f: f.stat().st_mtime, reverse=True)
        for f in unlisted[BUILDS_KEPT - 1:]:
            f.unlink(missing_ok=True)

    def archive(self, sha: str) -> bytes | None:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            return None
        p = self.packs / f"{sha}.zip"
        return p.read_bytes() if p.is_file() else None

    # ---- what was installed
    def installs(self) -> list[Install]:
        try:
            raw = json.loads((self.root / "installs.json").read_text())
            return [Install(**x) for x in raw]
        except (FileNotFoundError, ValueError, TypeError):
            return []

    def record_install(self, sha: str, name: str, by: str) -> None:
        """Remember an install (the newest last); packs no longer listed go, but for the newest built
        (``_forget_builds``: another install's may be on its way to the speaker)."""
        with self._build_lock:  # beside a build: a pack just built for another install stays
            items = [i for i in self.installs() if i.sha256 != sha] + [Install(sha, name, by, round(time.time()))]
            items = items[-INSTALLS_KEPT:]
            write_atomic(self.root / "installs.json",
                         json.dumps([i.__dict__ for i in items], ensure_ascii=False, indent=1).encode())
            if self.packs.is_dir():
                self._forget_builds(keep=sha)


def recogniser_from(web: Any) -> Recogniser | None:
    """The on-the-spot recogniser named by ``[web] recogniser_python`` (None: not configured or not importable)."""
    if web.recogniser_python is None:
        return None
    rec = Recogniser.available(web.recogniser_python)
    if rec is None:
        log.warning("recogniser_python %s does not import viet-asr: clips are not heard on the spot",
                    web.recogniser_python)
    return rec


def reading_options(announcer_config: dict[str, Any] | None) -> ReadingOptions:
    """The announcer's reading options from its retained config state (defaults if not heard)."""
    c = announcer_config or {}
    # each as the speaker itself holds it (announcerd's AnnouncerConfig), else the default: its password
    # writes this state, and a dialect of 5 went into the pack's manifest and ended the head's install in a 500
    dialect = c.get("dialect") if c.get("dialect") in DIALECTS else DEFAULT_OPTIONS.dialect
    zero_word = c.get("zero_word") if c.get("zero_word") in ZERO_WORDS else None
    return ReadingOptions(dialect=dialect, zero_word=zero_word,
                          four_as_tu=c.get("four_as_tu") is True, digit_by_digit=c.get("digit_by_digit") is True)


def odd_reading_options(announcer_config: dict[str, Any]) -> list[str]:
    """The reading options in the speaker's config state that it could not hold (read as the defaults)."""
    fine = {"dialect": lambda v: v in DIALECTS, "zero_word": lambda v: v is None or v in ZERO_WORDS,
            "four_as_tu": lambda v: isinstance(v, bool), "digit_by_digit": lambda v: isinstance(v, bool)}
    return [k for k, ok in fine.items() if k in announcer_config and not ok(announcer_config[k])]


def current_name(announcer_config: dict[str, Any] | None, studio: VoiceStudio, lang: str) -> str | None:
    """The pack the hall speaker says it runs, as the page names it. What the speaker's own account
    wrote is shown as a device's words (cut, control and text-direction characters as '?': a red
    team's 20 KB name with U+202E was shown as sent)."""
    from webd.pages import device_text

    if announcer_config is None:
        return None
    sha = announcer_config.get("voice_pack_sha256")
    if not sha:
        return tr("default_voice", lang) if not announcer_config.get("voice_pack") else \
            device_text(str(announcer_config["voice_pack"]), PACK_NAME_SHOWN)
    for i in studio.installs():
        if i.sha256 == sha:
            return i.name
    return device_text(str(sha)[:12], PACK_NAME_SHOWN)


PACK_NAME_SHOWN = 80  # characters of a pack's name the speaker reports


def heard_text(want: str, heard: str, understood: bool, lang: str) -> str:
    if understood:
        return tr("heard_ok", lang, heard=heard)
    return tr("heard_bad", lang, want=want, heard=heard) if heard.strip() else tr("heard_none", lang, want=want)


def page_body(plan: list[tuple[str, str]], recorded: dict[str, dict[str, Any]], *, lang: str, csrf: str,
              current: str | None, previous: str | None, msg: str = "", errors: list[str] | None = None,
              can_score: bool = False, score: dict[str, Any] | None = None, https_href: str = "") -> str:
    """The recording page's body. ``https_href``: this page on webd's HTTPS listener (offered when
    the browser gives no microphone here)."""
    done = sum(1 for c, _ in plan if c in recorded)
    out = [f'<h1>{e(tr("voice", lang))}</h1><p class="muted">{e(tr("intro", lang))}</p>']
    if msg:
        out.append(f'<div class="banner ok" id="voice-msg">{e(msg)}</div>')
    if errors:
        out.append('<div class="banner warn" id="voice-errors"><ul>' + "".join(f"<li>{e(x)}</li>" for x in errors)
                   + "</ul></div>")
    out.append(f'<p id="voice-current">{e(tr("current", lang, name=current) if current else tr("unknown_current", lang))}</p>')
    out.append(f'<p id="voice-progress" data-total="{len(plan)}">{e(tr("progress", lang, n=done, total=len(plan)))}</p>')
    go = (f' <a id="voice-https" href="{e(https_href)}">{e(tr("open_https", lang))}</a>'
          if https_href.startswith("https://") else "")
    out.append(f'<div id="voice-nomic" class="banner warn" hidden>{e(tr("no_mic", lang))}{go}</div>')
    rows = []
    for i, (clip, text) in enumerate(plan, 1):
        info = recorded.get(clip)
        status = tr("kept", lang, s=info.get("seconds") or 0) if info else tr("missing", lang)
        if info and "heard" in info:
            status += " " + heard_text(text, info["heard"], bool(info.get("understood")), lang)
        player = (f'<audio controls preload="none" src="/head/voice/clip/{e(clip)}.wav?v={info.get("at", 0)}"></audio>'
                  if info else "")
        secs = 5.5 if is_phrase(text) else 3.0
        rows.append(
            f'<li class="clip{" done" if info else ""}" id="clip-{e(clip)}" data-clip="{e(clip)}" data-seconds="{secs}">'
            f'<span class="n">{i}.</span> <span class="say">{e(tr("say", lang))}: <b>«{e(text)}»</b></span> '
            f'<button type="button" class="rec" data-rec="{e(tr("record", lang))}" data-stop="{e(tr("stop", lang))}" '
            f'data-redo="{e(tr("redo", lang))}" hidden>{e(tr("redo" if info else "record", lang))}</button> '
            f'<span class="status" data-recording="{e(tr("recording", lang))}" data-sending="{e(tr("sending", lang))}">'
            f'{e(status)}</span> <span class="play">{player}</span>'
            f'<form method="post" action="/head/voice/take" enctype="multipart/form-data" class="upload">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="clip" value="{e(clip)}">'
            f'<label>{e(tr("file", lang))} <input type="file" name="audio" accept="audio/*" capture></label> '
            f'<button type="submit" class="send">{e(tr("send", lang))}</button></form></li>')
    out.append(f'<h2>{e(tr("clips", lang))}</h2><ol class="voice-clips" id="voice-clips" data-csrf="{e(csrf)}">'
               f'{"".join(rows)}</ol>')
    disabled = "" if done == len(plan) else " disabled"
    if can_score:
        out.append(f'<form method="post" action="/head/voice/score" id="voice-score">'
                   f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                   f'<button type="submit" id="voice-score-btn"{disabled}>{e(tr("score", lang, n=20))}</button></form>')
    if score:
        out.append(f'<p id="voice-scored">{e(tr("scored", lang, both=score["both"], n=score["calls"], number=score["number"], counter=score["counter"]))} '
                   f'<span class="muted">{e(tr("scored_hint", lang))}</span></p>')
    out.append(f'<form method="post" action="/head/voice/install" id="voice-install">'
               f'<input type="hidden" name="csrf" value="{e(csrf)}">'
               f'<button type="submit" id="voice-install-btn"{disabled}>{e(tr("install", lang))}</button></form>')
    if previous:
        out.append(f'<form method="post" action="/head/voice/rollback" id="voice-rollback">'
                   f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                   f'<button type="submit" id="voice-rollback-btn">{e(tr("rollback", lang))}</button> '
                   f'<span class="muted">{e(tr("rollback_to", lang, name=previous))}</span></form>')
    return "".join(out)
