"""announcerd: the hall speaker.  Chime + Vietnamese phrase for every call, one at a time.

Listens to ``event/ticket/called`` and ``event/ticket/recalled`` only (events are never
retained, so a rebooting speaker never replays old calls), feeds the pure
:class:`~announcerd.scheduler.Scheduler`, composes each announcement into one buffer and hands
it to the :class:`~announcerd.player.Player`.  No audio device → a retained ``audio-missing``
alert; the daemon stays up, retries, and plays again when the device appears.

Besides the calls it reads the hub's retained ``state/service/+`` (and the site file, when
there is one) for the prefix letters the services print, so the voice pack is validated
against them.  On every connect it asks the hub for a ``resync``: the reply's ``hall.at`` is
the hub's clock, from which (and from every call) it learns how far the hall's own clock is
off (a call's age is judged on the hub's clock, see :class:`~announcerd.scheduler.HubClock`).

    announcerd --config /etc/xephang/announcerd.toml
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from announcerd.pack_fetch import PackFetchError, PackInstall, fetch_pack, installed_dir
from announcerd.player import AudioError, AudioMissing, Player
from announcerd.scheduler import CallEvent, QuietHours, Scheduler
from announcerd.voice_cli import default_pack_dir, ensure_default_pack
from xephang.bus import Inbound
from xephang.checktext import both
from xephang.contract import (
    BadPayload,
    ConfigSet,
    Reply,
    Resync,
    ResyncData,
    ServiceState,
    TicketEvent,
    decode,
    new_request_id,
    reply_data,
)
from xephang.daemon import Daemon
from xephang.nodeconfig import ConfigRefused, deep_merge
from xephang.settings import DaemonSettings, SettingsError
from xephang.terminal import NOT_IN_A_LINE_CLASS
from xephang_voice.numbers import ReadingOptions
from xephang_voice.voicepack import (
    Composer,
    InvalidPack,
    VoicePack,
    blocking,
    load_pack,
    phrase_parts,
    validate_pack,
)

log = logging.getLogger(__name__)

CALL_KINDS = ("called", "recalled")
PACK_READING_KEYS = ("language", "dialect", "zero_word", "four_as_tu")  # a change of one loads the pack again
WEB_KEYS = {"voice_pack_url", "voice_pack_sha256"}  # what the web account may push (the head's recorded pack)
WEB_PORTS = {"http": 80, "https": 443}  # webd's `port` by default, and the `https_port` `xephang web cert` sets

Origin = tuple[str, str, int]  # (scheme, host, port) as a request to it would connect


ONLY_WEBD_PACKS = both("trang web chỉ được cài gói giọng do webd phục vụ: …/voice/pack/<voice_pack_sha256>.zip",
                       "the web may install only a pack webd serves: …/voice/pack/<voice_pack_sha256>.zip")


class QuietPeriod(BaseModel):
    """A time of day when the hall speaker is quieter (lunch, early morning)."""

    model_config = ConfigDict(extra="forbid")
    start: dtime = Field(description="local time, e.g. \"11:30\"")
    end: dtime = Field(description="local time; may be earlier than start (wraps midnight)")
    volume: float = Field(ge=0, le=1)


def _url_path(url: str) -> str:
    """The path of ``url`` ("" when it is not a URL at all)."""
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


def url_origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL, the port filled in. None for a URL that a parser
    and the downloader could read two ways (a user part ``good@evil``, a ``#``, ``?``, ``\\`` or
    ``%`` anywhere, spaces) or that names no host: nothing webd ever pushes looks like that."""
    if any(c in url for c in "@\\%?#") or any(c.isspace() or not c.isprintable() for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, a broken [IPv6]
        return None
    scheme = parts.scheme.lower()
    if scheme not in WEB_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname, WEB_PORTS[scheme] if port is None else port


def show_origin(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if port == WEB_PORTS[scheme] else f":{port}")


class AnnouncerConfig(BaseModel):
    """The announcer's node config (local file, or pushed by a technician over MQTT)."""

    model_config = ConfigDict(extra="forbid")
    voice_pack: Path | None = Field(default=None, description="pack folder; empty = the generated espeak-ng pack in state_dir/voice")
    voice_pack_url: str | None = Field(default=None, max_length=300, pattern=r"^https?://[^\s]+$",
                                       description="a pack installed from the web (the head's recorded voice): "
                                       "fetched from this URL before the push applies; overrides voice_pack")
    voice_pack_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                          description="SHA-256 of the pack archive at voice_pack_url")
    voice_pack_ca_file: Path | None = Field(default=None, description="CA of webd's HTTPS certificate (`xephang web "
                                            "cert`'s ca.crt), when voice_pack_url is https:// and this Pi does not "
                                            "trust it system-wide")
    web_origin: str | None = Field(default=None, max_length=200,
                                   description="where webd serves packs, `http(s)://host[:port]` (webd's public_url): "
                                   "the web account may name a pack there only; empty = the broker's host on ports "
                                   "80 and 443. Set by a technician (the web account cannot)")
    language: Literal["vi", "en"] = "vi"
    dialect: Literal["north", "south"] = Field(default="north", description="north: nghìn, lẻ; south: ngàn, linh")
    zero_word: Literal["lẻ", "linh"] | None = Field(default=None, description="101 = một trăm lẻ/linh một; empty = by dialect")
    four_as_tu: bool = Field(default=False, description="24 = hai mươi tư")
    digit_by_digit: bool = Field(default=False, description="1023 = một không hai ba")
    repeats: int = Field(default=2, ge=1, le=5, description="times the phrase is said")
    chime_each_repeat: bool = False
    max_age_s: float = Field(default=90, ge=5, le=3600,
                             description="a call older than this (on the hub's clock, as learned) is dropped, not said late")
    volume: float = Field(default=1.0, gt=0, le=1, description="0 < volume ≤ 1: the speaker is how citizens learn "
                          "their turn, a pushed 0 silenced the hall with no alert; quiet_hours lower it when the "
                          "hall is closed")
    quiet_hours: list[QuietPeriod] = Field(default_factory=list)
    word_gap_ms: int | None = Field(default=None, ge=0, le=1000, description="empty = the pack's own")
    phrase_gap_ms: int | None = Field(default=None, ge=0, le=2000, description="empty = the pack's own")
    # SDL reads these through the environment and its C API: a NUL in either raised ValueError out of
    # the mixer's open, and the speaker fell silent (in sim, the call stayed "playing" for good)
    audio_driver: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_,]*$",
                                     description="SDL audio driver (alsa, pulseaudio, pipewire); empty = SDL's choice")
    audio_device: str | None = Field(default=None, max_length=200, pattern=f"^[^{NOT_IN_A_LINE_CLASS}]*$",
                                     description="SDL audio device name; empty = default")
    retry_s: float = Field(default=10, ge=1, le=600, description="retry a missing audio device this often")

    @field_validator("voice_pack_ca_file")
    @classmethod
    def _no_nul(cls, v: Path | None) -> Path | None:
        if v is not None and "\x00" in str(v):  # (voice_pack's is refused by check_node_config, with the reason)
            raise ValueError(both("đường dẫn không được có ký tự NUL", "a path has no NUL character"))
        return v

    @field_validator("web_origin")
    @classmethod
    def _origin_only(cls, v: str | None) -> str | None:
        if v is None:
            return v
        origin = url_origin(v)
        if origin is None or _url_path(v) not in ("", "/"):
            raise ValueError(both("web_origin chỉ là http(s)://máy[:cổng] (public_url của webd), không có người dùng, "
                                  "đường dẫn hay truy vấn",
                                  "web_origin is http(s)://host[:port] only (webd's public_url), no user, path or query"))
        return v

    @model_validator(mode="after")
    def _check(self) -> AnnouncerConfig:
        if self.language == "en" and self.dialect == "south":
            raise ValueError(both("dialect chỉ dùng cho tiếng Việt", "dialect applies to Vietnamese only"))
        if (self.voice_pack_url is None) != (self.voice_pack_sha256 is None):
            raise ValueError(both("voice_pack_url và voice_pack_sha256 phải đi cùng nhau",
                                  "voice_pack_url and voice_pack_sha256 go together"))
        return self

    def reading(self) -> ReadingOptions:
        return ReadingOptions(dialect=self.dialect, zero_word=self.zero_word, four_as_tu=self.four_as_tu,
                              digit_by_digit=self.digit_by_digit)


class AnnouncerSettings(DaemonSettings):
    announcer: AnnouncerConfig = AnnouncerConfig()


class Announcer(Daemon[AnnouncerSettings, AnnouncerConfig]):
    """announcerd — the hall speaker."""

    role = "announcer"
    settings_cls = AnnouncerSettings
    node_config_model = AnnouncerConfig
    node_config_senders = ("web",)  # the head installs a recorded pack from the web (R/config/{node}/set/web)
    node_config_yielding = ("web",)  # a technician's push stops the web's install (a stalled URL cannot lock them out)
    tick_interval_s = 0.2

    def __init__(self, settings: AnnouncerSettings, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.pack: VoicePack | None = None
        self.composer: Composer | None = None
        self.player: Player | None = None
        self.scheduler = Scheduler()
        self.latencies: deque[float] = deque(maxlen=200)  # event handled → buffer handed to the device, s
        self.compose_ms: deque[float] = deque(maxlen=200)
        self._received: dict[int, float] = {}
        self.last_played: list[CallEvent] = []  # for tests and health (bounded)
        self.prefixes: dict[str, str] = {}  # service id → the letter it prints before the number
        self._pack_letters = ""  # the letters the loaded pack was validated for
        self._pack_install: PackInstall | None = None  # a pushed pack fetched and loaded off the loop

    @classmethod
    def default_node(cls, settings: DaemonSettings) -> str:
        return "announcer-hall"

    @property
    def config(self) -> AnnouncerConfig:
        return self.node_config.current if self.node_config else self.settings.announcer  # type: ignore[return-value]

    def initial_node_config(self) -> dict[str, Any]:
        return self.settings.announcer.model_dump(mode="json")

    # ---- setup -----------------------------------------------------------------------------
    def setup(self) -> None:
        self.prefixes.update(self._site_prefixes())
        self._configure(self.config, None)
        for kind in CALL_KINDS:
            # retained=False: a retained call would replay on every reconnect; the bus drops and counts it
            self.bus.subscribe(self.bus.topics.event("ticket", kind), self._on_call, retained=False)
        self.bus.subscribe(self.bus.topics.all_service_states(), self._on_service)
        self.bus.add_connect_hook(self._ask_hub_clock)

    def _site_prefixes(self) -> dict[str, str]:
        if not self.settings.site_file:
            return {}
        try:
            site = self.settings.load_site()
        except SettingsError as exc:
            log.error("site file unreadable, prefix letters come from the hub only: %s", exc)
            return {}
        return {s.id: s.prefix for s in site.services if s.prefix}

    def letters(self) -> str:
        """Every prefix letter the site's services print (site file, hub state, calls heard)."""
        return "".join(sorted({p.upper() for p in self.prefixes.values() if p}))

    def _pack_path(self, cfg: AnnouncerConfig) -> Path:
        if cfg.voice_pack_sha256:
            return installed_dir(self.settings.state_dir, cfg.voice_pack_sha256)
        if cfg.voice_pack:
            return cfg.voice_pack
        return default_pack_dir(self.settings.state_dir, language=cfg.language, dialect=cfg.dialect)

    def _load_pack(self, cfg: AnnouncerConfig) -> VoicePack | None:
        path = self._pack_path(cfg)
        letters = self.letters()
        self._pack_letters = letters
        prepared = self._prepared_pack(cfg, letters)
        if prepared is not None:
            self.clear_alert("voice-pack")
            return prepared
        try:
            if cfg.voice_pack_url and cfg.voice_pack_sha256:  # installed from the web: fetched again if it went
                path = fetch_pack(cfg.voice_pack_url, cfg.voice_pack_sha256, self.settings.state_dir,
                                  options=cfg.reading(), letters=letters, ca_file=cfg.voice_pack_ca_file)
            elif not cfg.voice_pack:
                ensure_default_pack(path, language=cfg.language, dialect=cfg.dialect)
            pack = load_pack(path, options=cfg.reading(), letters=letters)
        except InvalidPack as exc:
            log.error("voice pack unusable: %s", exc)
            missing = sorted(p.clip.removeprefix("letter_").upper() for p in exc.problems
                             if p.code == "clip-missing" and p.clip.startswith("letter_"))
            if missing:
                services = sorted(s for s, p in self.prefixes.items() if p.upper() in missing)
                vi = (f"Gói giọng đọc thiếu chữ cái {', '.join(missing)} mà dịch vụ {', '.join(services)} in trước "
                      f"số thứ tự: loa không gọi số. Thu thêm (xephang voice record --only "
                      f"{','.join('letter_' + m.lower() for m in missing)}) hoặc dùng gói mặc định.")
                en = f"Voice pack lacks the prefix letter(s) {', '.join(missing)} the site prints: {str(exc)[:160]}"
            else:
                vi, en = f"Gói giọng đọc không dùng được: {exc.text_vi()[:200]}", f"Voice pack unusable: {str(exc)[:200]}"
            self.raise_alert("voice-pack", vi, en, "critical")
            return None
        except (RuntimeError, OSError, PackFetchError) as exc:
            log.error("voice pack unusable: %s", exc)
            self.raise_alert("voice-pack", f"Gói giọng đọc không dùng được: {str(exc)[:200]}",
                             f"Voice pack unusable: {str(exc)[:200]}", "critical")
            return None
        self.clear_alert("voice-pack")
        return pack

    def _configure(self, cfg: AnnouncerConfig, old: AnnouncerConfig | None, *, reload_pack: bool = False) -> None:
        pack_changed = reload_pack or old is None or any(getattr(cfg, k) != getattr(old, k) for k in
                                                         ("voice_pack", "voice_pack_sha256", *PACK_READING_KEYS))
        if pack_changed:
            self.pack = self._load_pack(cfg)
        quiet = tuple(QuietHours(start=q.start, end=q.end, volume=q.volume) for q in cfg.quiet_hours)
        self.scheduler = self.scheduler.with_policy(max_age_s=cfg.max_age_s, volume=cfg.volume, quiet_hours=quiet)
        self.composer = None
        if self.pack is not None:
            self.composer = Composer(self.pack, repeats=cfg.repeats, chime_each_repeat=cfg.chime_each_repeat,
                                     word_gap_ms=cfg.word_gap_ms, phrase_gap_ms=cfg.phrase_gap_ms)
        rate = self.pack.sample_rate if self.pack else 22050
        device_changed = old is None or (cfg.audio_driver, cfg.audio_device) != (old.audio_driver, old.audio_device)
        if self.player is None or device_changed or self.player.sample_rate != rate:
            if self.player is not None and self.player.busy():
                self.scheduler.requeue_playing()
            if self.player is not None:
                self.player.close()
            sim_dir = None
            if self.settings.sim:
                sim_dir = (self.settings.sim_out or Path(self.settings.state_dir) / "sim") / self.node
            self.player = Player(sample_rate=rate, driver=cfg.audio_driver, device=cfg.audio_device,
                                 sim_dir=sim_dir, retry_s=cfg.retry_s)
            if not self.settings.sim:
                self.player.ensure_open(self.clock.monotonic())
                self._sync_audio_alert()
        else:
            self.player.retry_s = cfg.retry_s

    def _learn_prefix(self, service: str, prefix: str) -> None:
        """A service's prefix letter, from the hub's state or a call: re-validate the pack on a new letter."""
        prefix = prefix.upper()
        if not service or self.prefixes.get(service, "") == prefix:
            return
        if prefix:
            self.prefixes[service] = prefix
        else:
            self.prefixes.pop(service, None)
        if self.letters() != self._pack_letters:
            log.info("prefix letters of the site now %r (service %s prints %r): re-validating the voice pack",
                     self.letters(), service, prefix)
            self._configure(self.config, self.config, reload_pack=True)

    def web_origins(self) -> list[Origin]:
        """Where webd serves packs, as far as the announcer knows: ``web_origin``, or else the
        broker's host (webd runs on the hub's Pi next to Mosquitto) on webd's usual ports."""
        if self.config.web_origin:
            origin = url_origin(self.config.web_origin)
            return [origin] if origin else []
        host = self.settings.broker.host.lower().strip("[]")
        return [(scheme, host, port) for scheme, port in WEB_PORTS.items()]

    def merge_node_config(self, current: dict[str, Any], push: ConfigSet, sender: str | None) -> dict[str, Any]:
        """The web account may only install a pack webd serves (or go back to one): nothing else of
        the speaker, and no URL but webd's own, so its password cannot make the speaker probe the LAN."""
        if sender == "web":
            other = sorted(set(push.config) - WEB_KEYS)
            if other:
                raise ConfigRefused([both(f"trang web chỉ được đặt {sorted(WEB_KEYS)}, không được đặt {other}",
                                          f"the web may set only {sorted(WEB_KEYS)}, not {other}")])
            if set(push.config) != WEB_KEYS:  # else the pushed checksum would be fetched from a technician's URL
                raise ConfigRefused([both("trang web phải đẩy voice_pack_url và voice_pack_sha256 cùng nhau",
                                          "the web must push voice_pack_url and voice_pack_sha256 together")])
            url, sha = push.config["voice_pack_url"], push.config["voice_pack_sha256"]
            if url is not None:
                self._check_web_url(url, sha)
        return deep_merge(current, push.config)

    def _check_web_url(self, url: object, sha: object) -> None:
        """ConfigRefused unless ``url`` is webd's {origin}/…/voice/pack/<sha>.zip (checked before any request)."""
        if not isinstance(url, str):
            raise ConfigRefused([ONLY_WEBD_PACKS])
        allowed = self.web_origins()
        origin = url_origin(url)
        if origin not in allowed:
            where = (f"web_origin {self.config.web_origin}" if self.config.web_origin else
                     f"web_origin unset, so the broker's host {self.settings.broker.host} on ports 80/443")
            named = show_origin(origin) if origin else f"{url[:80]!r}, which is no plain http(s)://host[:port]/… URL"
            webd = " or ".join(map(show_origin, allowed))
            raise ConfigRefused([both(f"trang web chỉ được cài gói giọng từ webd ở {webd} ({where}), không phải từ "
                                      f"{named}; nếu public_url của webd gọi máy chủ bằng tên khác, kỹ thuật viên đặt "
                                      "web_origin trong cấu hình của loa",
                                      f"the web may install a pack only from webd at {webd} "
                                      f"({where}), not from {named}; if webd's public_url names the hub otherwise, "
                                      "a technician sets web_origin in the announcer's config")])
        if not (isinstance(sha, str) and _url_path(url).endswith(f"/voice/pack/{sha}.zip")):
            raise ConfigRefused([ONLY_WEBD_PACKS])

    def check_node_config(self, new: AnnouncerConfig) -> list[str]:
        """A push that would load a pack folder is checked before it applies, and refused with every
        problem while the speaker goes on in the voice it has (it used to be applied, and a folder
        missing a clip left the hall silent with a critical alert):

        - another folder than the one configured: as `xephang voice check` and a web install check a
          pack, every problem (the advisory untrimmed and too-long too);
        - the folder configured, read anew (other reading options or language, the head's rollback
          from a web pack to it, or nothing loaded now): only what it cannot be played with, as at a
          start, so an older hand-made pack the speaker has stays usable and a push can repair it.

        The pack already loaded for the same folder and reading is not read again."""
        if new.voice_pack_url or not new.voice_pack:
            return []  # the web's pack is checked as it is fetched; the generated one is built here
        old = self.config
        try:  # a technician's path: a NUL in it or a symlink loop is a refusal, not a failed handler
            path = Path(new.voice_pack).resolve()
            reading_same = all(getattr(old, k) == getattr(new, k) for k in PACK_READING_KEYS)
            if self.pack is not None and self.pack.path.resolve() == path and reading_same:
                return []
            problems = validate_pack(path, options=new.reading(), letters=self.letters())
            if old.voice_pack is not None and Path(old.voice_pack).resolve() == path:
                problems = blocking(problems)
        except (OSError, RuntimeError, ValueError) as exc:
            return [f"voice_pack {str(new.voice_pack)[:200]!r}: " + both("không đọc được", "cannot be read") + f": {exc}"]
        shown = [f"voice_pack {new.voice_pack}: [{p.code}] {p.bilingual()}" for p in problems[:30]]
        more = len(problems) - 30
        return shown + ([both(f"… và {more} lỗi khác (xephang voice check {new.voice_pack})",
                              f"… and {more} more (xephang voice check {new.voice_pack})")] if more > 0 else [])

    def prepare_node_config(self, new: AnnouncerConfig) -> PackInstall | None:
        """A pack installed from the web is fetched, validated and loaded before the push applies,
        on the node config's worker thread: calls go on being spoken in the old voice meanwhile."""
        if not (new.voice_pack_url and new.voice_pack_sha256):
            return None
        self._pack_install = PackInstall(new.voice_pack_url, new.voice_pack_sha256, Path(self.settings.state_dir),
                                         options=new.reading(), letters=self.letters(),
                                         ca_file=new.voice_pack_ca_file)
        return self._pack_install

    def _prepared_pack(self, cfg: AnnouncerConfig, letters: str) -> VoicePack | None:
        """The pack the worker loaded for this config, if it is done and nothing changed since."""
        job = self._pack_install
        preparing = self.node_config is not None and self.node_config.preparing is not None
        if job is None or not job.done.is_set() or preparing:
            return None  # none, or a worker still runs (this one, or one stopped): never read what it is writing
        self._pack_install = None
        if job.pack is None or (job.sha256, job.letters, job.options) != (cfg.voice_pack_sha256, letters, cfg.reading()):
            return None
        return job.pack

    def apply_node_config(self, new: AnnouncerConfig, old: AnnouncerConfig | None) -> bool:
        self._configure(new, old)
        self._pack_install = None  # used or not, not kept in memory
        return False  # everything applies live

    def teardown(self) -> None:
        if self.player is not None:
            self.player.close()

    # ---- events ----------------------------------------------------------------------------
    def _on_service(self, msg: Inbound) -> None:
        if not msg.payload:  # a service removed from the site (retained state cleared)
            service = msg.topic.rsplit("/", 1)[-1]
            if service in self.prefixes and not self._site_prefixes().get(service):
                self._learn_prefix(service, "")
            return
        state = decode(ServiceState, msg.payload)
        self._learn_prefix(state.id, state.prefix)

    def _ask_hub_clock(self) -> None:
        """On every connect: a resync, whose reply carries the hub's clock (``hall.at``)."""
        req = Resync(request_id=new_request_id(), source=self.node)
        self.bus.request(req, on_reply=self._on_resync_reply, timeout_s=2.0, attempts=3)

    def _on_resync_reply(self, reply: Reply | None) -> None:
        at = 0.0
        if reply is not None and reply.status == "ok":
            try:
                at = reply_data(reply, ResyncData).hall.at
            except BadPayload as exc:
                log.warning("resync reply does not read: %s", exc)
        if at <= 0:
            log.warning("the hub did not say its clock (resync %s): call ages rest on the calls alone",
                        "unanswered" if reply is None else reply.status)
            return
        self.scheduler.observe_hub(float(at), self.clock.monotonic())
        log.info("hub clock learned: this speaker's clock is %+.1f s from the hub's",
                 self.clock.now() - self.scheduler.hub.hub_time(self.clock.monotonic()))
        self._play_next()  # calls held until the hub's clock was known

    def _on_call(self, msg: Inbound) -> None:
        received = time.monotonic()
        event = decode(TicketEvent, msg.payload)
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind not in CALL_KINDS or (event.kind and event.kind != kind):
            raise BadPayload("wrong-kind", f"event kind {event.kind!r} on topic {msg.topic}")
        call = _call_from_event(event, kind)  # type: ignore[arg-type]
        if call.prefix and call.prefix not in self.letters():
            self._learn_prefix(call.service, call.prefix)  # the hub's state had not said so yet
        verdict = self.scheduler.offer(call, self.clock.monotonic())
        log.info("%s ticket %s counter %s (rev %s): %s", kind, event.ticket.display, call.counter, call.rev, verdict)
        if verdict == "queued":
            self._received[call.rev] = received
            while len(self._received) > 200:  # calls dropped as stale never pop theirs
                self._received.pop(next(iter(self._received)))
        self._play_next()

    def _device_usable(self) -> bool:
        """Is the speaker there?  Retries a missing one (every ``retry_s``) and keeps the alert in step."""
        if self.player is None:
            return False
        if self.player.busy():
            return True
        usable = self.player.ensure_open(self.clock.monotonic())
        self._sync_audio_alert()  # raised when it went, cleared as soon as it is back
        return usable

    def _play_next(self) -> None:
        now = self.clock.monotonic()
        usable = self._device_usable()
        if self.composer is None:  # no usable voice pack: nothing can be said, keep nothing stale
            self.scheduler.drop_stale(now)
            return
        if self.player is None or self.player.busy():
            return
        if not usable:
            self.scheduler.drop_stale(now)  # never say them late when the device returns
            return
        job = self.scheduler.next_job(now)
        if job is None:
            return
        call = job.call
        t0 = time.perf_counter()
        try:
            parts = phrase_parts(self.config.language, number=call.number, counter=call.counter, prefix=call.prefix,
                                 options=self.config.reading())
            ann = self.composer.compose(parts)
        except (KeyError, ValueError) as exc:
            log.error("cannot compose ticket %s%s counter %s: %s", call.prefix, call.number, call.counter, exc)
            self.scheduler.finished()
            return
        self.compose_ms.append((time.perf_counter() - t0) * 1000)
        try:
            started = self.player.start(ann, volume=job.volume, label=f"{call.prefix}{call.number}-quay-{call.counter}")
        except AudioMissing:
            self.scheduler.requeue_playing()
            self._sync_audio_alert()
            return
        except AudioError as exc:
            log.error("audio error: %s", exc)
            self.scheduler.requeue_playing()
            return
        except Exception:  # never left "playing" for good: this call is dropped, the next ones are said
            log.exception("cannot play ticket %s%s counter %s", call.prefix, call.number, call.counter)
            self.scheduler.finished()
            return
        received = self._received.pop(call.rev, None)
        if received is not None:
            self.latencies.append(started.monotonic - received)
        self._sync_audio_alert()
        self.last_played = (self.last_played + [call])[-50:]
        log.info("speaking ticket %s%s → counter %s (%.1f s, volume %.2f)", call.prefix, call.number, call.counter,
                 ann.duration_s, job.volume)

    def _sync_audio_alert(self) -> None:
        if self.player is None:
            return
        if self.player.state == "audio-missing":
            self.raise_alert("audio-missing", "Không có thiết bị âm thanh: loa gọi số không phát được.",
                             f"No audio device: the hall speaker cannot play ({self.player.last_error[:120]}).",
                             "critical")
        else:
            self.clear_alert("audio-missing")

    # ---- the loop --------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        if self.player is not None:
            if self.player.device_lost(self.clock.monotonic()):
                self.scheduler.requeue_playing()  # cut off: said again when the device is back, if still fresh
                self._sync_audio_alert()
            elif self.player.poll():
                self.scheduler.finished()
        self._play_next()

    def wait_for_work(self, timeout: float) -> None:
        # while speaking, look more often for the end so the next call follows promptly
        busy = self.player is not None and self.player.state == "playing"
        self.bus.process(timeout=min(timeout, 0.02) if busy else timeout)

    def health_details(self) -> dict[str, Any]:
        st = self.scheduler.stats
        lat = sorted(self.latencies)
        return {
            "audio": self.player.state if self.player else "none",
            "audio_error": self.player.last_error if self.player else "",
            "voice_pack": self.pack.manifest.name if self.pack else None,
            "prefix_letters": self.letters(),
            "clock_ahead_of_hub_s": None if self.scheduler.hub.offset is None else
            round(self.clock.now() - self.scheduler.hub.hub_time(self.clock.monotonic()), 1),
            "waiting": len(self.scheduler.waiting),
            "played": st.played, "stale": st.stale, "duplicate": st.duplicate, "merged": st.merged,
            "superseded": st.superseded,
            "latency_p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
        }


def _call_from_event(event: TicketEvent, kind: Literal["called", "recalled"]) -> CallEvent:
    t = event.ticket
    counter = event.counter if event.counter is not None else t.counter
    if counter is None:
        raise BadPayload("no-counter", f"{kind} event rev {event.rev} names no counter")
    prefix = t.display[:1] if t.display[:1].isalpha() else ""
    return CallEvent(event_id=event.event_id, rev=event.rev, at=event.at, kind=kind, number=t.number,
                     counter=counter, service=t.service, prefix=prefix.upper())


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``announcerd``."""
    return Announcer.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
