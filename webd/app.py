"""The Starlette app: routes, the live streams (Server-Sent Events), logins, reports.

Every page is rendered on the server from the latest ``Snapshot``; a live page opens
``…/events`` and gets its fragment again whenever it changes (and a comment line every
``sse_heartbeat_s``). The stream always starts with the current fragment, so a phone that
slept, lost Wi-Fi or outlived a hub restart shows the truth as soon as it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webd import console, pages, roster, voice
from webd.auth import USERNAME_RE, Accounts, Session, Sessions, Throttle, same_token, sign, unsign
from webd.config import WebSettings
from webd.live import LiveHall, Snapshot
from xephang.checktext import plain_message, vi_text
from xephang.clock import VN_TZ
from xephang.contract import CONSOLE_ACTIONS, REQUEST_MODELS, Reply, ReportRequest, new_request_id
from xephang.site import Site
from xephang.ticketlink import LinkSecretError, check_token, load_secret
from xephang_reports.build import unpack_report

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "xephang_session"
LOGIN_COOKIE = "xephang_login"
# "this browser logged in as {user} before" (a signed random token, per account name): its
# failures count apart from the name's, so a stranger typing wrong passwords for a name (which
# locks the name) does not lock out the person at their own PC (OWASP's device cookies)
DEVICE_COOKIE = "xephang_device_"
DEVICE_DAYS = 90
LANG_COOKIE = "lang"
MAX_FORM_BYTES = 4096
REPORTS_KEPT = 32  # report answers cached at most
STAFF_STREAMS = 50  # live streams kept for logged-in pages (at most 5 % of max_streams)
# … of which one session holds at most this many, one account (its sessions together) this many: one
# officer's password opening 50 console streams took every slot kept for the head's dashboard
STREAMS_PER_SESSION = 8
STREAMS_PER_ACCOUNT = 16
PASSWORD_CHECKS = 2  # password hashes computed at once at most
SECURITY_HEADERS = {
    # our own files only; no inline script; the page's own connection for the live stream
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # a ticket's link (its token) never leaves in a Referer
    "x-frame-options": "DENY",
}

Ask = Callable[[str, dict[str, Any], Callable[[Reply | None], None]], None]
HEAD_ROLES = ("head", "technician")
ACT_ATTEMPT_S = 2.0  # a console click: each try waits this long for the hub …
ACT_ATTEMPTS = 3  # … this many times (same request id); then the click is answered "not done"
ACT_MARGIN_S = 0.3  # … and a little more, so the hub has passed the request's valid_until
ACTS_KEPT = 500  # answers to recent clicks, for a retry of the same click
NOTES_KEPT = 8  # one-shot answers kept per session for the page a redirect goes to


def _empty_snapshot() -> Snapshot:
    return LiveHall().snapshot()


class SecurityHeaders:
    """ASGI middleware: ``SECURITY_HEADERS`` on every HTTP answer — pages, redirects, 404s, 405s,
    the 500 page — unless the answer names one itself. One place, so no route can forget them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {bytes(k).lower() for k, _ in headers}
                message = {**message, "headers": headers + [(k, v) for k, v in self.extra if k not in have]}
            await send(message)

        await self.app(scope, receive, send_guarded)


async def _body(request: Request, limit: int) -> bytes | None:
    """The request's body, read until ``limit`` bytes (then what came so far, longer than ``limit``),
    or None when the client went while it was coming (it hung up, or webd/server.py closed a body
    that stopped coming): nobody to answer. Each such one was an "Exception in ASGI application" and
    ~2.7 KB of traceback in webd's log, as fast as a stranger liked (1,000 in 2.3 s)."""
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                break
    except ClientDisconnect:
        return None
    return body


class GuardedStarlette(Starlette):
    """Starlette with ``SecurityHeaders`` outside even its error middleware (its 500 page gets them too)."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


class StreamSlot:
    """One of ``max_streams``, counted in ``app.streams`` from the moment a stream is let in, given
    back exactly once however the stream ends."""

    def __init__(self, app: WebApp, owners: tuple[str, ...] = ()) -> None:
        self.app = app
        self.held = True
        self.owners = owners  # the session's and the account's keys in ``app.streams_of``
        app.streams += 1
        for k in owners:
            app.streams_of[k] = app.streams_of.get(k, 0) + 1

    def release(self) -> None:
        if self.held:
            self.held = False
            self.app.streams -= 1
            for k in self.owners:
                left = self.app.streams_of.get(k, 0) - 1
                if left > 0:
                    self.app.streams_of[k] = left
                else:
                    self.app.streams_of.pop(k, None)


class LiveStream(StreamingResponse):
    """A live stream that gives its slot back when the answer ends, even when its body never ran:
    a client gone before the first byte makes Starlette cancel the sending task while it waits on
    the headers (ASGI 2.4: that send fails), and a generator that never started has no ``finally``."""

    def __init__(self, content: AsyncIterator[bytes], slot: StreamSlot, **kw: Any) -> None:
        super().__init__(content, **kw)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()



class _Number(Convertor[int]):
    regex = "[0-9]{1,15}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("num", _Number())

class WebApp:
    """The web side of webd. ``publish`` is the only method called from the owner thread."""

    def __init__(self, settings: WebSettings, site: Site, *, ask: Ask, now: Callable[[], float] = time.time,
                 watch: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.site = site
        self.ask = ask
        self.watch = watch or (lambda ticket_id: None)  # a phone shows this ticket: keep its wait fresh
        self.now = now
        w = settings.web
        self.snapshot: Snapshot = _empty_snapshot()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.streams = 0
        self.streams_of: dict[str, int] = {}  # live streams held per session ("s:") and account ("a:")
        self.accounts = Accounts(settings.accounts_path())
        self.sessions = Sessions(idle_s=w.session_idle_min * 60)
        self.throttle = Throttle(max_failures=w.login_max_failures, lockout_s=w.login_lockout_s,
                                 max_successes=w.login_max_successes)
        self.form_secret = secrets.token_bytes(32)  # signs the login form's CSRF cookie
        self.link_secret: bytes | None = None
        self.site_rev: int | None = None  # the hub's site config rev (None: not heard yet)
        if w.link_secret_file is not None:
            try:
                self.link_secret = load_secret(w.link_secret_file)
            except LinkSecretError as exc:
                log.error("%s: ticket pages cannot open", exc)
        # device cookies outlive a restart when a link secret exists (a key of their own, derived from it)
        self.device_secret = (hmac.new(self.link_secret, b"xephang device cookie", hashlib.sha256).digest()
                              if self.link_secret else secrets.token_bytes(32))
        self._reports: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None, str]] = {}
        self._report_wait: dict[tuple[str, str, str], asyncio.Future[Reply | None]] = {}
        self._frag_cache: dict[tuple[Any, ...], str] = {}
        self._acts: dict[str, asyncio.Future[console.ActResult]] = {}  # request id → the click's answer
        self._frag_version = -1
        from webd.catalogue import load_catalogue_or_none

        self.catalogue = load_catalogue_or_none(w.catalogue_file)
        self.studio = voice.VoiceStudio(Path(settings.state_dir) / "voice-web", recogniser=voice.recogniser_from(w))
        self.announcer_config: dict[str, Any] | None = None  # the hall speaker's retained config (None: not heard)
        self.asgi = GuardedStarlette(routes=self._routes(), lifespan=self._lifespan,
                                     exception_handlers={404: self._not_found})

    # ------------------------------------------------------------------ owner thread → web
    def set_site(self, site: Site, rev: int) -> None:
        """The hub's live site (a roster pushed today): one reference swap; fragments re-render."""
        self.site, self.site_rev = site, rev
        self._frag_version = -1

    def set_announcer_config(self, config: dict[str, Any]) -> None:
        """The hall speaker's config as it last said (its voice pack): one reference swap."""
        self.announcer_config = config

    def publish(self, snap: Snapshot) -> None:
        """A new snapshot from the owner thread: swap it in and wake every live stream."""
        loop = self.loop
        if loop is None:
            self.snapshot = snap
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._set_snapshot, snap)

    def _set_snapshot(self, snap: Snapshot) -> None:
        self.snapshot = snap
        if self._changed is not None:
            ev, self._changed = self._changed, asyncio.Event()
            ev.set()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._checks = asyncio.Semaphore(PASSWORD_CHECKS)
        yield
        self.loop = None

    # ------------------------------------------------------------------ plumbing
    def _routes(self) -> list[Route]:
        # numbers in paths: {x:num}, at most 15 digits (a ticket id: 10 since a new ledger starts after the
        # hub's clock; a counter; below 2**53, exact in the pages' JavaScript); Starlette's {x:int}
        # took 5000 nines and ended in a 500 with a traceback in the log (Python's 4300-digit limit)
        return [
            Route("/", self.home),
            Route("/q/{day}/{display}/{tid:num}/{token}", self.ticket_page),
            Route("/q/{day}/{display}/{tid:num}/{token}/events", self.ticket_events),
            Route("/hall", self.hall_page),
            Route("/hall/events", self.hall_events),
            Route("/guide", self.guide_index),
            Route("/guide/{service}", self.guide_page),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login_post, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/head", self.dashboard),
            Route("/head/events", self.dashboard_events),
            Route("/head/reports", self.reports_page),
            Route("/head/report.{fmt}", self.report_download),
            Route("/head/roster", self.roster_page, methods=["GET"]),
            Route("/head/roster", self.roster_post, methods=["POST"]),
            Route("/head/voice", self.voice_page, methods=["GET"]),
            Route("/head/voice/take", self.voice_take, methods=["POST"]),
            Route("/head/voice/clip/{clip}.wav", self.voice_clip),
            Route("/head/voice/install", self.voice_install, methods=["POST"]),
            Route("/head/voice/rollback", self.voice_rollback, methods=["POST"]),
            Route("/head/voice/score", self.voice_score, methods=["POST"]),
            Route("/voice/pack/{sha}.zip", self.voice_pack),
            Route("/counter", self.console_home),
            Route("/counter/{n:num}", self.console_page),
            Route("/counter/{n:num}/events", self.console_events),
            Route("/counter/{n:num}/act", self.console_act, methods=["POST"]),
            Route("/lang/{lang}", self.set_lang),
            Route("/static/{name}", self.static),
            Route("/fonts/{name}", self.font),
            Route("/healthz", self.healthz),
        ]

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        """A path webd has no page for (a mistyped or cut link): the page's language, not Starlette's
        plain-text English "Not Found"."""
        lang = self.lang(request)
        return self.html(pages.message_page("xephang", pages.t("not_found", lang), lang=lang), status=404)

    def lang(self, request: Request) -> str:
        q = request.query_params.get("lang")
        if q in ("vi", "en"):
            return q
        c = request.cookies.get(LANG_COOKIE)
        return c if c in ("vi", "en") else self.settings.lang

    def tls_only(self, request: Request) -> bool:
        """Cookies go ``Secure``: this request came over TLS and webd serves nothing in the clear (a
        certificate on ``port``, no ``https_port`` beside it). Without it a session made over HTTPS went
        in the clear to any http:// URL of the host a LAN attacker got the browser to open. (HTTP beside
        HTTPS shares the cookie's name with the http side, which could no longer log in: not there.)"""
        return request.url.scheme == "https" and self.settings.web.https_port is None

    def html(self, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
        return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store", **(headers or {})})

    def session(self, request: Request) -> Session | None:
        s = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        return s if s is not None and self.account_holds(s) else None

    def account_holds(self, s: Session) -> bool:
        """The session's account is as it was at login. `xephang web user remove`, a new role or a new
        password (a stolen one changed) end every session of it: at its next request, and at the next
        turn of a live stream it holds open (which makes no request)."""
        acc = self.accounts.get(s.username)
        if acc is None or acc.role != s.role or acc.password_hash != s.password_hash:
            self.sessions.end_user(s.username)
            return False
        return True

    def stream_alive(self, s: Session, also: Callable[[], bool] = lambda: True) -> Callable[[], bool]:
        """A live stream's ``alive``: its session and account still hold (and ``also``)."""
        return lambda: self.sessions.get(s.id) is not None and self.account_holds(s) and also()

    def note(self, s: Session, text: str) -> str:
        """Keep ``text`` in the session for the page a redirect goes to; returns its key for the
        link (``?note=``). A link carries no words of its own: a crafted one shows nothing."""
        key = secrets.token_urlsafe(12)
        s.notes[key] = text
        while len(s.notes) > NOTES_KEPT:
            del s.notes[next(iter(s.notes))]
        return key

    def take_note(self, s: Session, request: Request) -> str:
        """The answer the redirect left for this page, once (a reload shows it no more)."""
        return s.notes.pop(request.query_params.get("note", ""), "")

    def _frag(self, key: tuple[Any, ...], snap: Snapshot, build: Callable[[], str]) -> str:
        """Fragments are rendered once per snapshot and shared by every stream that shows them."""
        if snap.version != self._frag_version:
            self._frag_cache.clear()
            self._frag_version = snap.version
        v = self._frag_cache.get(key)
        if v is None:
            v = self._frag_cache[key] = build()
        return v

    async def _stream(self, request: Request, render: Callable[[Snapshot], str],
                      refresh: Callable[[], Any] | None = None, alive: Callable[[], bool] | None = None, *,
                      staff: Session | None = None) -> Response:
        """A Server-Sent Events stream of ``render(snapshot)``, sent whenever it changes.

        Streams without a login (phones' tickets, the hall) leave the last ``STAFF_STREAMS`` of
        ``max_streams`` free: anyone on the LAN holding them open cannot stop the head's dashboard
        and the officers' consoles from following the hall. A logged-in page's (``staff``: its
        session) holds at most ``STREAMS_PER_SESSION`` per session and ``STREAMS_PER_ACCOUNT`` per
        account: one password cannot take the slots kept for the others."""
        most = self.settings.web.max_streams
        if self.streams >= (most if staff else most - max(1, min(STAFF_STREAMS, most // 20))):
            return Response("busy", status_code=503, headers={"retry-after": "5"})
        owners: tuple[str, ...] = ()
        if staff is not None:
            owners = (f"s:{staff.id}", f"a:{staff.username}")
            if self.streams_of.get(owners[0], 0) >= STREAMS_PER_SESSION or \
                    self.streams_of.get(owners[1], 0) >= STREAMS_PER_ACCOUNT:
                log.warning("live streams of %s: at its limit (%s a session, %s an account), one more refused",
                            staff.username, STREAMS_PER_SESSION, STREAMS_PER_ACCOUNT)
                return Response("too many live pages open for this account", status_code=429,
                                headers={"retry-after": "5"})
        slot = StreamSlot(self, owners)  # taken now, before any await: a burst cannot all pass the checks above
        heartbeat = self.settings.web.sse_heartbeat_s

        async def gen() -> AsyncIterator[bytes]:
            last = None
            try:
                yield b"retry: 2000\n\n"
                while alive is None or alive():
                    snap = self.snapshot
                    changed = self._changed
                    if refresh is not None:
                        await refresh()
                    data = render(snap)
                    if data != last:
                        last = data
                        yield f"data: {data}\n\n".encode()
                    if changed is None:
                        await asyncio.sleep(heartbeat)
                        continue
                    if self.snapshot is not snap:
                        continue
                    try:
                        await asyncio.wait_for(changed.wait(), timeout=heartbeat)
                    except TimeoutError:
                        yield b"event: ping\ndata: \n\n"  # the page's watchdog hears the server is there
            finally:
                slot.release()

        return LiveStream(gen(), slot, media_type="text/event-stream",
                          headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    # ------------------------------------------------------------------ citizens
    async def home(self, request: Request) -> Response:
        lang = self.lang(request)
        links = [f'<li><a href="/hall">{pages.e(pages.t("hall", lang))}</a></li>',
                 f'<li><a href="/guide">{pages.e(pages.t("guides", lang))}</a></li>',
                 f'<li><a href="/head">{pages.e(pages.t("dashboard", lang))}</a></li>']
        name = self.site.site.name_en if lang == "en" and self.site.site.name_en else self.site.site.name_vi
        return self.html(pages.page(name, f"<ul class=menu>{''.join(links)}</ul>", lang=lang, path="/", script=False))

    def _ticket_ok(self, request: Request) -> tuple[str, str, int] | None:
        p = request.path_params
        day, display, tid, token = str(p["day"]), str(p["display"]), int(p["tid"]), str(p["token"])
        if self.link_secret is None or not check_token(self.link_secret, self.site.site.slug, day, tid, display, token):
            return None
        return day, display, tid

    def _ticket_json(self, snap: Snapshot, day: str, display: str, tid: int, lang: str) -> str:
        t = snap.tickets.get(tid)
        if t is not None and t.state == "waiting":
            self.watch(tid)  # every render and heartbeat of an open page keeps its ticket's range fresh

        def build() -> str:
            v = snap.ticket_view(tid, day, display)
            frag = pages.ticket_fragment(v, self.site, snap, lang, day)
            return json.dumps({"html": frag, "state": v.state, "kind": v.last_kind, "counter": v.counter,
                               "recalls": v.recalls}, ensure_ascii=False)
        return self._frag(("ticket", tid, day, display, lang), snap, build)

    async def ticket_page(self, request: Request) -> Response:
        lang = self.lang(request)
        ok = self._ticket_ok(request)
        if ok is None:
            log.info("refused a ticket link (bad token) from %s", request.client.host if request.client else "?")
            return self.html(pages.message_page("xephang", pages.t("bad_link", lang), lang=lang), status=404)
        day, display, tid = ok
        self.watch(tid)
        snap = self.snapshot
        v = snap.ticket_view(tid, day, display)
        frag = pages.ticket_fragment(v, self.site, snap, lang, day)
        guide = f"/guide/{v.service}" if v.service and self.catalogue is not None and \
            self.catalogue.for_service(v.service) else None  # no link to a guide with nothing in it
        title = f"{pages.t('your_number', lang)} {display}"
        return self.html(pages.ticket_page(frag, lang=lang, path=request.url.path, stream=f"{request.url.path}/events?lang={lang}",
                                           wifi=self.settings.web.wifi_name, guide=guide, title=title,
                                           hb=self.settings.web.sse_heartbeat_s, state=v.state))

    async def ticket_events(self, request: Request) -> Response:
        ok = self._ticket_ok(request)
        if ok is None:
            return Response("forbidden", status_code=403)
        day, display, tid = ok
        lang = self.lang(request)
        return await self._stream(request, lambda snap: self._ticket_json(snap, day, display, tid, lang))

    def _hall_json(self, snap: Snapshot, lang: str) -> str:
        return self._frag(("hall", lang), snap, lambda: json.dumps(
            {"html": pages.hall_fragment(snap, self.site, lang)}, ensure_ascii=False))

    async def hall_page(self, request: Request) -> Response:
        lang = self.lang(request)
        frag = pages.hall_fragment(self.snapshot, self.site, lang)
        return self.html(pages.live_page(pages.t("hall", lang), frag, lang=lang, path="/hall", stream=f"/hall/events?lang={lang}",
                                         kind="hall", hb=self.settings.web.sse_heartbeat_s))

    async def hall_events(self, request: Request) -> Response:
        lang = self.lang(request)
        return await self._stream(request, lambda snap: self._hall_json(snap, lang))

    async def guide_index(self, request: Request) -> Response:
        from webd.catalogue import index_html

        lang = self.lang(request)
        q = request.query_params.get("counter", "")
        counter = int(q) if q.isascii() and q.isdigit() and len(q) <= 3 else None
        return self.html(pages.page(pages.t("guides", lang), index_html(self.catalogue, self.site, lang, counter),
                                    lang=lang, path="/guide" if counter is None else f"/guide?counter={counter}",
                                    script=False))

    async def guide_page(self, request: Request) -> Response:
        from webd.catalogue import service_html

        lang = self.lang(request)
        sid = str(request.path_params["service"])
        body = service_html(self.catalogue, self.site, sid, lang)
        if body is None:  # a poster's old QR, a typed address: the way to the guides that exist
            return self.html(pages.message_page(pages.t("guides", lang), pages.t("no_such_guide", lang), lang=lang,
                                                path="/guide", back=("/guide", pages.t("all_guides", lang))),
                             status=404)
        return self.html(pages.page(pages.t("guide_for", lang, s=pages._service_name(self.site, sid, lang)), body,
                                    lang=lang, path=f"/guide/{sid}", script=False))

    # ------------------------------------------------------------------ logins
    def _client(self, request: Request) -> str:
        return request.client.host if request.client else "?"

    async def login_form(self, request: Request, *, error: str = "", status: int = 200) -> Response:
        lang = self.lang(request)
        token = secrets.token_urlsafe(24)
        nxt = request.query_params.get("next", "/head")
        resp = self.html(pages.login_page(lang=lang, csrf=token, error=error, next_url=_safe_next(nxt)), status=status)
        resp.set_cookie(LOGIN_COOKIE, sign(self.form_secret, token), max_age=3600, httponly=True, samesite="strict",
                        path="/login", secure=self.tls_only(request))
        return resp

    async def _form(self, request: Request, max_fields: int = 10) -> dict[str, str]:
        limit = MAX_FORM_BYTES * (1 + max_fields // 10)
        body = await _body(request, limit)
        if body is None or len(body) > limit:
            return {}  # gone (the answer goes nowhere), or too long
        try:
            q = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
        except (UnicodeDecodeError, ValueError):
            return {}
        return {k: v[0] for k, v in q.items()}

    async def login_post(self, request: Request) -> Response:
        lang = self.lang(request)
        form = await self._form(request)
        want = unsign(self.form_secret, request.cookies.get(LOGIN_COOKIE))
        if not want or not same_token(want, form.get("csrf", "")):
            return await self.login_form(request, error=pages.t("bad_form", lang), status=403)
        user = form.get("username", "").strip().lower()[:40]
        device = self._device(request, user)
        # a browser that logged in as this name before counts its failures apart from the name's
        keys = (f"ip:{self._client(request)}", f"device:{device}" if device else f"user:{user}")
        left = self.throttle.begin(*keys)  # counted from now, not once the check is done
        if left:
            log.warning("login throttled for %r from %s (%.0f s left)", user, self._client(request), left)
            return await self.login_form(request, error=pages.t("throttled", lang, n=max(1, round(left / 60))), status=429)
        try:
            async with self._checks:  # scrypt takes 16 MiB a check: a burst of logins must not take the Pi's memory
                acc = await asyncio.to_thread(self.accounts.verify, user, form.get("password", "")[:200])
            if acc is None:
                self.throttle.failed(*keys, name=user)
            else:
                self.throttle.succeeded(*keys, name=user)
        finally:
            self.throttle.end(*keys)
        if acc is None:
            log.warning("failed login for %r from %s", user, self._client(request))
            return await self.login_form(request, error=pages.t("bad_login", lang), status=401)
        s = self.sessions.new(acc)
        log.info("login: %s (%s) from %s", acc.username, acc.role, self._client(request))
        nxt = _safe_next(form.get("next", "/head"))
        if acc.role == "officer" and not nxt.startswith("/counter"):
            nxt = "/counter"  # an officer's PC opens on their counter
        resp = RedirectResponse(nxt, status_code=303)
        secure = self.tls_only(request)
        resp.set_cookie(SESSION_COOKIE, s.id, httponly=True, samesite="strict", path="/", secure=secure)
        resp.delete_cookie(LOGIN_COOKIE, path="/login", secure=secure)
        resp.set_cookie(DEVICE_COOKIE + acc.username, sign(self.device_secret, f"{acc.username}|{device or secrets.token_urlsafe(12)}"),
                        max_age=DEVICE_DAYS * 86400, httponly=True, samesite="strict", path="/login", secure=secure)
        return resp

    def _device(self, request: Request, user: str) -> str | None:
        """The token of this browser's device cookie for ``user``, when it carries a valid one."""
        if not USERNAME_RE.fullmatch(user):  # a cookie name of the account's own characters, dots included
            return None
        value = unsign(self.device_secret, request.cookies.get(DEVICE_COOKIE + user))
        name, _, token = (value or "").partition("|")
        return token if value and name == user and token else None

    async def logout(self, request: Request) -> Response:
        s = self.session(request)
        form = await self._form(request)
        if s is None or not same_token(s.csrf, form.get("csrf", "")):
            return Response("forbidden", status_code=403)
        self.sessions.end(s.id)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/", secure=self.tls_only(request))
        return resp

    def _need_login(self, request: Request, roles: tuple[str, ...] = HEAD_ROLES) -> Session | Response:
        """The session, if it may see this page; else where to go (login) or a refusal. An
        officer's session sees only the console; the head's and technicians' pages are theirs."""
        s = self.session(request)
        if s is None:
            return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
        if s.role not in roles:
            if s.role == "officer":
                return RedirectResponse("/counter", status_code=303)
            lang = self.lang(request)
            return self.html(pages.message_page("xephang", console.tr("not_yours", lang), lang=lang), status=403)
        return s

    def _head_view(self, request: Request) -> tuple[Session, str] | Response:
        """A head's page: the session and the page's language, or where to go instead (login, refusal)."""
        s = self._need_login(request)
        if isinstance(s, Response):
            return s
        return s, self.lang(request)

    def _head_page(self, request: Request, s: Session, lang: str, title: str, body: str, path: str, *,
                   status: int = 200, **extra: Any) -> Response:
        """A head's page in the common frame, with the head's navigation (pages, language, logout)."""
        return self.html(pages.page(title, body, lang=lang, path=path, nav=self.head_nav(request, lang, s), **extra),
                         status=status)

    # ------------------------------------------------------------------ the head
    async def today_report(self, lang: str) -> dict[str, Any] | None:
        rep, _ = await self.report("today", "service", lang, max_age=self.settings.web.report_refresh_s)
        return rep

    async def report(self, period: str, group_by: str, lang: str, *, max_age: float = 5.0) -> tuple[dict[str, Any] | None, str]:
        """The hub's report (asked over MQTT through the owner thread), cached ``max_age`` s and
        asked once however many pages want it. Returns (report, error)."""
        key = (period, group_by, lang)
        now = time.monotonic()
        cached = self._reports.get(key)
        if cached is not None and now - cached[0] < max_age:
            return cached[1], cached[2]
        fut = self._report_wait.get(key)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._report_wait[key] = fut

            def done(reply: Reply | None, fut: asyncio.Future[Reply | None] = fut) -> None:
                loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(reply))

            self.ask("report", {"period": period, "group_by": group_by, "lang": lang}, done)
        try:
            reply = await asyncio.shield(fut)
        finally:
            if self._report_wait.get(key) is fut and fut.done():
                del self._report_wait[key]
        if reply is None:
            rep, err = (cached[1] if cached else None), pages.report_problem("timeout", "", lang)
        elif reply.status != "ok":
            rep, err = None, pages.report_problem(reply.error.code if reply.error else "error",
                                                 reply.error.message if reply.error else "", lang)
        else:
            try:  # rows packed as one table when the report would not fit one reply otherwise
                rep, err = unpack_report(reply.data or {}), ""
            except ValueError as exc:
                rep, err = None, pages.report_problem("error", str(exc), lang)
        self._reports[key] = (time.monotonic(), rep, err)
        while len(self._reports) > REPORTS_KEPT:  # many periods asked: forget the oldest answers
            del self._reports[min(self._reports, key=lambda k: self._reports[k][0])]
        return rep, err

    async def dashboard(self, request: Request) -> Response:
        view = self._head_view(request)
        if isinstance(view, Response):
            return view
        s, lang = view
        report = await self.today_report(lang)
        frag = pages.dashboard_fragment(self.snapshot, self.site, lang, report)
        return self.html(pages.live_page(pages.t("dashboard", lang), frag, lang=lang, path="/head",
                                         stream=f"/head/events?lang={lang}", kind="dashboard", nav=self.head_nav(request, lang, s),
                                         hb=self.settings.web.sse_heartbeat_s))

    async def dashboard_events(self, request: Request) -> Response:
        s = self._need_login(request)
        if isinstance(s, Response):
            return Response("login needed", status_code=401)
        lang = self.lang(request)
        box: dict[str, Any] = {}

        async def refresh() -> None:
            box["report"] = await self.today_report(lang)

        def render(snap: Snapshot) -> str:
            return json.dumps({"html": pages.dashboard_fragment(snap, self.site, lang, box.get("report"))},
                              ensure_ascii=False)

        # the stream ends when the session does (logout, expiry)
        return await self._stream(request, render, refresh=refresh, alive=self.stream_alive(s), staff=s)

    def _report_params(self, request: Request, lang: str) -> dict[str, str] | None:
        params = {"period": request.query_params.get("period", "today") or "today",
                  "group_by": request.query_params.get("group_by", "service") or "service", "lang": lang}
        try:  # the contract's own checks: a period or grouping that could not even be asked is refused here
            ReportRequest(request_id="web-check", source="web", **params)
        except ValidationError:
            return None
        return params

    async def reports_page(self, request: Request) -> Response:
        view = self._head_view(request)
        if isinstance(view, Response):
            return view
        s, lang = view
        params = self._report_params(request, lang)
        title = pages.t("reports", lang)
        period = request.query_params.get("period", "today") or "today"
        today = datetime.fromtimestamp(self.now(), VN_TZ).date()
        problem = pages.period_problem(period, today, lang)  # in the head's language, not the hub's English
        if params is None or problem is not None:
            problem = problem or pages.t("report_error", lang, e="group_by")
            body = pages.report_form(lang, period[:40], request.query_params.get("group_by", "service")) + \
                f'<div class="banner warn" id="report-error">{pages.e(problem)}</div>'
            return self._head_page(request, s, lang, title, body, "/head/reports", status=400)
        body = pages.report_form(lang, params["period"], params["group_by"])
        rep, err = await self.report(params["period"], params["group_by"], lang)
        if rep is None:
            body += f'<div class="banner warn" id="report-error">{pages.e(err)}</div>'
        else:
            from xephang_reports.charts import chart_pngs

            charts = await asyncio.to_thread(chart_pngs, rep)
            query = urlencode({"period": params["period"], "group_by": params["group_by"], "lang": lang})
            body += pages.report_body(rep, charts, query, lang)
        return self._head_page(request, s, lang, title, body, "/head/reports")

    async def report_download(self, request: Request) -> Response:
        s = self._need_login(request)
        if isinstance(s, Response):
            return s
        fmt = str(request.path_params["fmt"])
        if fmt not in ("csv", "xlsx", "html"):
            return Response("not found", status_code=404)
        lang = self.lang(request)
        params = self._report_params(request, lang)
        today = datetime.fromtimestamp(self.now(), VN_TZ).date()
        if params is None or pages.period_problem(params["period"], today, lang) is not None:
            return Response("bad period or grouping", status_code=400)
        rep, err = await self.report(params["period"], params["group_by"], lang)
        if rep is None:
            return Response(f"report unavailable: {err}", status_code=503)
        data = await asyncio.to_thread(_render_file, rep, fmt)
        name = f"bao-cao-{_file_part(params['period'])}-{params['group_by']}.{fmt}"
        mime = {"csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
                "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}[fmt]
        return Response(data, media_type=mime, headers={"cache-control": "no-store",
                                                        "content-disposition": f'attachment; filename="{name}"'})

    async def _head_form(self, request: Request, page: Callable[..., Awaitable[Response]], *,
                         max_fields: int = 10) -> tuple[Session, str, dict[str, str]] | Response:
        """A head's form post: the session (or where to log in), the page's language and the form,
        its CSRF token checked (a bad one gets ``page`` again with "bad form", 403)."""
        view = self._head_view(request)
        if isinstance(view, Response):
            return view
        s, lang = view
        form = await self._form(request, max_fields=max_fields)
        if not same_token(s.csrf, form.get("csrf", "")):
            return await page(request, errors=[pages.t("bad_form", lang)], status=403)
        return s, lang, form

    # ------------------------------------------------------------------ the roster (who sits where today)
    async def roster_page(self, request: Request, *, msg: str = "", errors: list[str] | None = None,
                          status: int = 200) -> Response:
        view = self._head_view(request)
        if isinstance(view, Response):
            return view
        s, lang = view
        msg = msg or self.take_note(s, request)
        body = roster.page_body(self.site, self.site_rev, lang, s.csrf, msg=msg, errors=errors or [])
        return self._head_page(request, s, lang, roster.tr("roster", lang), body, "/head/roster", status=status)

    async def roster_post(self, request: Request) -> Response:
        """The head's change of who sits at which counter and which services it calls, pushed to
        the hub as the web account (the hub accepts nothing else from it), answered with the hub's
        own ack: applied, or every reason it was refused."""
        checked = await self._head_form(request, self.roster_page, max_fields=400)
        if isinstance(checked, Response):
            return checked
        s, lang, form = checked
        if self.site_rev is None:
            return await self.roster_page(request, errors=[roster.tr("no_site", lang)], status=503)
        counters, errors = roster.read_form(form, self.site, lang)
        base = form.get("base_rev", "")
        if not (base.isascii() and base.isdigit() and len(base) <= 15):  # isdigit() alone takes '²' and '١٢';
            # past 4300 digits int() raises (a 500)
            errors.append(roster.tr("bad_form", lang))
        if errors:
            return await self.roster_page(request, errors=errors, status=400)
        loop = asyncio.get_running_loop()
        box: asyncio.Future[Reply | None] = loop.create_future()

        def done(reply: Reply | None) -> None:
            loop.call_soon_threadsafe(lambda: box.done() or box.set_result(reply))

        self.ask("site", {"request_id": new_request_id(), "by": s.username[:80], "base_rev": int(base),
                          "counters": counters}, done)
        reply = await box
        if reply is None:
            return await self.roster_page(request, errors=[roster.tr("no_answer", lang)], status=504)
        if reply.status != "ok":
            code = reply.error.code if reply.error else "error"
            lines = (reply.error.message if reply.error else "").split("\n")
            head = roster.tr("stale" if code == "stale" else "unreachable" if code == "unreachable" else "refused", lang)
            log.info("roster change by %s refused (%s): %s", s.username, code, lines[:3])
            return await self.roster_page(request, errors=[head, *[x for x in lines if x]], status=409)
        changed = reply.data.get("changed", True) is not False
        log.info("roster change by %s %s: site rev %s", s.username, "applied" if changed else "changed nothing", reply.rev)
        note = self.note(s, " ".join([roster.tr("applied" if changed else "unchanged", lang, rev=reply.rev),
                                      *roster.seating_notes(counters, self.site, lang)]))
        return RedirectResponse("/head/roster?" + urlencode({"note": note}), status_code=303)

    # ------------------------------------------------------------------ the centre's own voice
    def _voice_plan(self) -> tuple[list[tuple[str, str]], Any, str]:
        options = voice.reading_options(self.announcer_config)
        return self.studio.plan(self.site, options), options, self.studio.letters(self.site)

    def _voice_previous(self, lang: str) -> tuple[voice.Install | None, str | None]:
        """The pack one click goes back to: the install before the current one, else the default voice."""
        hist = self.studio.installs()
        cur = (self.announcer_config or {}).get("voice_pack_sha256") if self.announcer_config is not None else \
            (hist[-1].sha256 if hist else "")
        before = [i for i in hist if i.sha256 != (cur or "")]
        if before:
            target = before[-1]
            return target, target.name if target.sha256 else voice.tr("default_voice", lang)
        if cur:
            return voice.Install("", "default", "", 0), voice.tr("default_voice", lang)
        return None, None

    def voice_href(self, request: Request) -> str:
        """Where the head's pages link the recording page: over HTTPS when webd serves it beside
        HTTP (the microphone needs a secure origin), at the host name the browser already uses."""
        base = self.settings.web.https_base(request.url.hostname)
        return "/head/voice" if base is None or request.url.scheme == "https" else base + "/head/voice"

    def head_nav(self, request: Request, lang: str, s: Session) -> str:
        return pages.head_nav(lang, s.csrf, s.username, voice_href=self.voice_href(request))

    async def voice_page(self, request: Request, *, msg: str = "", errors: list[str] | None = None,
                         status: int = 200) -> Response:
        view = self._head_view(request)
        if isinstance(view, Response):
            return view
        s, lang = view
        msg = msg or self.take_note(s, request)
        plan, _, _ = self._voice_plan()
        _, previous = self._voice_previous(lang)
        body = voice.page_body(plan, self.studio.recorded(), lang=lang, csrf=s.csrf,
                               current=voice.current_name(self.announcer_config, self.studio, lang),
                               previous=previous, msg=msg, errors=errors, can_score=self.studio.recogniser is not None,
                               score=self.studio.last_score(), https_href=self.voice_href(request))
        head = f'<script src="/static/voice.js?v={pages.ASSET_VERSION}" defer></script>'
        return self._head_page(request, s, lang, voice.tr("voice", lang), body, "/head/voice", status=status,
                               head_extra=head, script=False)

    async def voice_take(self, request: Request) -> Response:
        """One take of one clip: a WAV the page's script made (raw body, ``?clip=``, CSRF in a
        header) or a file from the form without script (multipart). Answered in JSON to the script,
        else by the page again with the verdict."""
        s = self._need_login(request)
        if isinstance(s, Response):
            return s
        lang = self.lang(request)
        wants_json = request.headers.get("x-requested-with") == "xephang"
        ctype = request.headers.get("content-type", "")
        body = await _body(request, voice.MAX_UPLOAD_BYTES + 65536)
        if body is None:
            return Response(status_code=400)  # the client went: nobody to answer
        if ctype.startswith("multipart/form-data"):
            fields, data = await asyncio.to_thread(voice.multipart_file, body, ctype, "audio")
            csrf, clip = fields.get("csrf", ""), fields.get("clip", "")
        else:
            data, csrf, clip = body, request.headers.get("x-csrf", ""), request.query_params.get("clip", "")

        async def answer(ok: bool, text: str, status: int, take: Any = None, heard: Any = None) -> Response:
            """JSON to the page's script; without script, the page again (a refusal shown above the list)."""
            if wants_json:
                plan, _, _ = self._voice_plan()
                have = self.studio.recorded()
                done = sum(1 for c, _ in plan if c in have)
                payload = {"ok": ok, "clip": clip, "text": text, "done": done, "total": len(plan),
                           "problem": take.problem if take else "",
                           "seconds": round(len(take.samples) / take.sample_rate, 2) if take and ok else None,
                           "snr_db": None if not take or take.snr_db is None else round(take.snr_db, 1),
                           "heard": heard.text if heard else None, "understood": heard.understood if heard else None,
                           "progress": voice.tr("progress", lang, n=done, total=len(plan)),
                           "url": f"/head/voice/clip/{clip}.wav?v={int(time.time() * 1000)}" if ok else ""}
                return Response(json.dumps(payload, ensure_ascii=False), status_code=status,
                                media_type="application/json", headers={"cache-control": "no-store"})
            if ok:
                note = self.note(s, voice.tr("take_kept", lang))
                return RedirectResponse("/head/voice?" + urlencode({"note": note}) + f"#clip-{clip}", status_code=303)
            said = texts.get(clip)
            return await self.voice_page(request, errors=[f"«{said}»: {text}" if said else text], status=status)

        texts: dict[str, str] = {}
        if not same_token(s.csrf, csrf):
            return await answer(False, pages.t("bad_form", lang), 403)
        texts = dict(self._voice_plan()[0])
        if clip not in texts:
            return await answer(False, voice.tr("unknown_clip", lang), 400)
        try:
            if data is None:
                raise voice.UploadError("bad_audio")
            samples, rate = await asyncio.to_thread(voice.decode_wav, data)  # 8 MB held every page 0.3 s
        except voice.UploadError as exc:
            return await answer(False, voice.tr(exc.key, lang), 400)
        take = await asyncio.to_thread(self.studio.save_take, clip, texts[clip], samples, rate, by=s.username[:40])
        if not take.ok:
            return await answer(False, take.message_en if lang == "en" else take.message_vi, 422, take)
        text = voice.tr("kept", lang, s=len(take.samples) / take.sample_rate)
        heard = await asyncio.to_thread(self.studio.hear, clip, texts[clip])
        if heard is not None:
            text += " " + voice.heard_text(texts[clip], heard.text, heard.understood, lang)
        return await answer(True, text, 200, take, heard)

    async def voice_score(self, request: Request) -> Response:
        """The draft pack said in 20 random calls and heard by the recogniser (when one is configured)."""
        checked = await self._head_form(request, self.voice_page)
        if isinstance(checked, Response):
            return checked
        s, lang, form = checked
        plan, options, letters = self._voice_plan()
        missing = [c for c, _ in plan if c not in self.studio.recorded()]
        if missing or self.studio.recogniser is None:
            return await self.voice_page(request, errors=[voice.tr("install_need", lang, total=len(plan), n=len(missing))],
                                         status=409)
        counters = max((c.number for c in self.site.counters), default=12)
        result = await asyncio.to_thread(self.studio.score, plan, options=options, letters=letters, counters=counters)
        if result is None:
            return await self.voice_page(request, errors=[voice.tr("pack_bad", lang)], status=422)
        log.info("voice draft scored by %s: %d/%d both exact", s.username, result.both, result.calls)
        return RedirectResponse("/head/voice#voice-scored", status_code=303)

    async def voice_clip(self, request: Request) -> Response:
        s = self._need_login(request)
        if isinstance(s, Response):
            return s
        path = self.studio.clip_path(str(request.path_params["clip"]))
        if path is None:
            return Response("not found", status_code=404)
        return Response(path.read_bytes(), media_type="audio/wav", headers={"cache-control": "no-store"})

    async def voice_pack(self, request: Request) -> Response:
        """A built pack, by its checksum, for the hall's announcer to fetch (no login: the name is
        the SHA-256 of a pack only the head's pages make, and the announcer checks it)."""
        data = self.studio.archive(str(request.path_params["sha"]))
        if data is None:
            return Response("not found", status_code=404)
        return Response(data, media_type="application/zip", headers={"cache-control": "no-store"})

    async def _push_voice(self, sha: str, by: str) -> Reply | None:
        loop = asyncio.get_running_loop()
        box: asyncio.Future[Reply | None] = loop.create_future()

        def done(reply: Reply | None) -> None:
            loop.call_soon_threadsafe(lambda: box.done() or box.set_result(reply))

        url = f"{self.settings.web.public_url}/voice/pack/{sha}.zip" if sha else None
        before = self._speaker_pack()
        rid = new_request_id()
        self.ask("voice", {"request_id": rid, "by": by[:80],
                           "config": {"voice_pack_url": url, "voice_pack_sha256": sha or None}}, done)
        reply = await box
        now = self._speaker_pack()
        if reply is None and now is not None and now == sha and before != sha:
            # its ack travels at QoS 0 beside its state (webd's reading connection) and may be lost
            # while webd reconnects; the speaker's own retained state saying it changed to this pack
            # is its answer (the same account writes both)
            log.info("voice pack %s: no ack from the hall speaker, but its config state names it", (sha or "default")[:12])
            return Reply(request_id=rid, action="config", status="ok", data={"from": "state"})
        return reply

    def _speaker_pack(self) -> str | None:
        """The pack the hall speaker's retained config names ("" the default voice; None not heard)."""
        if self.announcer_config is None:
            return None
        return self.announcer_config.get("voice_pack_sha256") or ""

    def _voice_refusal(self, reply: Reply | None, lang: str) -> list[str]:
        if reply is None:
            return [voice.tr("no_answer", lang)]
        code = reply.error.code if reply.error else "error"
        # the speaker's own words (its password writes its acks, and reads the push's request id): shown as
        # a device's, cut and with control and direction characters as '?' (20 KB and a U+202E came through)
        lines = [pages.device_text(x) for x in (reply.error.message if reply.error else "").split("\n") if x]
        return [voice.tr("unreachable" if code == "unreachable" else "refused", lang), *lines[:20]]

    async def voice_install(self, request: Request) -> Response:
        """Build the pack from the draft (the wizard's own writing and checks) and push it to the
        hall's announcer, which fetches it by URL, checks its checksum and validates it."""
        checked = await self._head_form(request, self.voice_page)
        if isinstance(checked, Response):
            return checked
        s, lang, form = checked
        plan, options, letters = self._voice_plan()
        missing = [c for c, _ in plan if c not in self.studio.recorded()]
        if missing:
            return await self.voice_page(request, errors=[voice.tr("install_need", lang, total=len(plan), n=len(missing))],
                                         status=409)
        name = f"giong-{self.settings.site}-{time.strftime('%Y%m%d-%H%M', time.localtime(self.now()))}"[:80]
        sha, problems = await asyncio.to_thread(self.studio.build, plan, options=options, letters=letters, name=name)
        if problems:
            return await self.voice_page(request, errors=[voice.tr("pack_bad", lang), *problems[:20]], status=422)
        reply = await self._push_voice(sha, s.username)
        if reply is None or reply.status != "ok":
            log.info("voice pack %s by %s not installed: %s", sha[:12], s.username, reply.error if reply else "no answer")
            return await self.voice_page(request, errors=self._voice_refusal(reply, lang), status=409)
        # a worker thread: it waits for a build under way (another install's), which must not hold the pages
        await asyncio.to_thread(self.studio.record_install, sha, name, s.username)
        log.info("voice pack %s (%s) installed by %s", name, sha[:12], s.username)
        note = self.note(s, voice.tr("installed", lang, name=name))
        return RedirectResponse("/head/voice?" + urlencode({"note": note}), status_code=303)

    async def voice_rollback(self, request: Request) -> Response:
        """One click back to the voice before the current one (the previous recorded pack, or the default)."""
        checked = await self._head_form(request, self.voice_page)
        if isinstance(checked, Response):
            return checked
        s, lang, form = checked
        target, label = self._voice_previous(lang)
        if target is None:
            return await self.voice_page(request, errors=[voice.tr("nothing_back", lang)], status=409)
        reply = await self._push_voice(target.sha256, s.username)
        if reply is None or reply.status != "ok":
            return await self.voice_page(request, errors=self._voice_refusal(reply, lang), status=409)
        await asyncio.to_thread(self.studio.record_install, target.sha256, target.name, s.username)
        log.info("voice rolled back to %s by %s", target.name, s.username)
        note = self.note(s, voice.tr("rolled_back", lang, name=label or ""))
        return RedirectResponse("/head/voice?" + urlencode({"note": note}), status_code=303)

    # ------------------------------------------------------------------ the officer's console
    def _officer(self, request: Request, n: int | None = None) -> Session | Response:
        s = self._need_login(request, ("officer",))
        if isinstance(s, Response) or n is None:
            return s
        if n not in console.counters_of(self.snapshot, self.site, s.username):
            log.warning("officer %s refused for counter %s (from %s)", s.username, n, self._client(request))
            lang = self.lang(request)
            return self.html(pages.message_page("xephang", console.tr("not_yours", lang), lang=lang), status=403)
        return s

    def _console_nav(self, s: Session, lang: str) -> str:
        return (f'<nav><a href="/counter">{pages.e(console.tr("console", lang))}</a> '
                f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{pages.e(s.csrf)}">'
                f'<button type="submit">{pages.e(pages.t("logout", lang))} ({pages.e(s.username)})</button></form></nav>')

    async def console_home(self, request: Request) -> Response:
        s = self._officer(request)
        if isinstance(s, Response):
            return s
        lang = self.lang(request)
        numbers = console.counters_of(self.snapshot, self.site, s.username)
        if len(numbers) == 1:
            return RedirectResponse(f"/counter/{numbers[0]}", status_code=303)
        return self.html(pages.page(console.tr("console", lang), console.choose_page_body(numbers, self.site, lang),
                                    lang=lang, path="/counter", nav=self._console_nav(s, lang), script=False))

    def _console_json(self, snap: Snapshot, n: int, s: Session, lang: str) -> str:
        return json.dumps({"html": console.console_fragment(snap, self.site, n, lang, s.csrf, self.now())},
                          ensure_ascii=False)

    async def console_page(self, request: Request) -> Response:
        n = int(request.path_params["n"])
        s = self._officer(request, n)
        if isinstance(s, Response):
            return s
        lang = self.lang(request)
        frag = console.console_fragment(self.snapshot, self.site, n, lang, s.csrf, self.now())
        msg = self.take_note(s, request)  # the answer to the click that led here (without JavaScript)
        after = (f'<p class="act-msg" id="act-msg" role="status" aria-live="polite" '
                 f'data-unreachable="{pages.e(console.tr("web_unreachable", lang))}">{pages.e(msg)}</p>')
        return self.html(pages.live_page(console.tr("console", lang), frag, lang=lang, path=f"/counter/{n}",
                                         stream=f"/counter/{n}/events?lang={lang}", kind="console",
                                         nav=self._console_nav(s, lang), before=after,
                                         hb=self.settings.web.sse_heartbeat_s))

    async def console_events(self, request: Request) -> Response:
        n = int(request.path_params["n"])
        s = self._officer(request, n)
        if isinstance(s, Response):
            return Response("forbidden", status_code=403)
        lang = self.lang(request)
        # the stream ends with the session, and when the roster moves the officer off this counter
        return await self._stream(request, lambda snap: self._console_json(snap, n, s, lang),
                                  alive=self.stream_alive(s, lambda: n in console.counters_of(self.snapshot, self.site,
                                                                                         s.username)),
                                  staff=s)

    async def console_act(self, request: Request) -> Response:
        """One click of the console. The form carries the session's CSRF token and the click's
        ``rid``; webd asks the hub in the officer's name and answers with what the hub said."""
        n = int(request.path_params["n"])
        lang = self.lang(request)
        wants_json = request.headers.get("x-requested-with") == "xephang"
        s = self._officer(request, n)
        if isinstance(s, Response):
            other = self.session(request)  # logged in, not at this counter
            return self._act_answer(n, console.ActResult(False, "forbidden", console.tr("not_yours", lang)),
                                    wants_json, other, status=403) if other else s
        form = await self._form(request)
        if not same_token(s.csrf, form.get("csrf", "")):
            return self._act_answer(n, console.ActResult(False, "bad-form", pages.t("bad_form", lang)), wants_json, s,
                                    status=403)
        action = form.get("action", "")
        if action not in CONSOLE_ACTIONS:
            return self._act_answer(n, console.ActResult(False, "invalid", console.tr("bad_input", lang, m=action[:40])),
                                    wants_json, s, status=400)
        rid = form.get("rid", "")
        if not console.valid_rid(rid):
            rid = console.new_rid()  # a form without a usable id: this click gets its own
        # the session's mark in the id: two sessions can never share a request id at the hub
        request_id = f"w{hashlib.sha256(s.id.encode()).hexdigest()[:8]}-{rid}"
        fields: dict[str, Any] = {"counter": n, "officer": s.username}
        if action == "transfer":
            fields["to_service"] = form.get("to_service", "")
        if action in ("pause", "call-ticket"):
            fields["reason"] = form.get("reason", "").strip()
        if action == "call-ticket":
            tid = form.get("ticket_id", "")
            # the form sends text; ASCII digits only ('²' passes isdigit() and fails int())
            fields["ticket_id"] = int(tid) if tid.isascii() and tid.isdigit() and len(tid) <= 15 else tid
        try:  # the contract's own checks, before anything is sent: a readable message, nothing asked
            REQUEST_MODELS[action](request_id=request_id, source="web", **fields)
        except ValidationError as exc:
            why = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: "
                            f"{(vi_text(err) if lang == 'vi' else None) or plain_message(err)}" for err in exc.errors())
            return self._act_answer(n, console.ActResult(False, "invalid", console.tr("bad_input", lang, m=why[:200])),
                                    wants_json, s, status=400)
        result = await self.act(action, request_id, fields, lang)
        log.info("console: %s at counter %s: %s %s (%s)", s.username, n, action, result.code or "ok", request_id)
        return self._act_answer(n, result, wants_json, s)

    async def act(self, action: str, request_id: str, fields: dict[str, Any], lang: str) -> console.ActResult:
        """Ask the hub once per click: the same ``request_id`` again (a double click, a retried
        POST) waits for, or gets, the first answer."""
        fut = self._acts.get(request_id)
        if fut is None:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._acts[request_id] = fut
            while len(self._acts) > ACTS_KEPT:
                old = next(iter(self._acts))
                if not self._acts[old].done():
                    break
                del self._acts[old]
            reply_box: asyncio.Future[Reply | None] = loop.create_future()

            def done(reply: Reply | None) -> None:
                loop.call_soon_threadsafe(lambda: reply_box.done() or reply_box.set_result(reply))

            # the owner thread sets the request's valid_until to when it stops waiting (webd.main._act)
            self.ask("act", {"action": action, "request_id": request_id, **fields}, done)
            reply = await reply_box
            if reply is None:  # asked, never answered: past valid_until now, so the hub will refuse it
                await asyncio.sleep(ACT_MARGIN_S)
                res = console.ActResult(False, "timeout", console.tr("timeout", lang))
            else:
                err = reply.error
                res = console.ActResult(reply.status == "ok", "" if reply.status == "ok" else (err.code if err else "error"),
                                        console.result_text(action, reply.status, err.code if err else "",
                                                            err.message if err else "", reply.data, lang, self.site),
                                        reply.rev)
            fut.set_result(res)
        return await asyncio.shield(fut)

    def _act_answer(self, n: int, res: console.ActResult, wants_json: bool, s: Session, status: int = 200) -> Response:
        if wants_json:
            return Response(json.dumps({"ok": res.ok, "code": res.code, "text": res.text, "rev": res.rev},
                                       ensure_ascii=False), status_code=status, media_type="application/json",
                            headers={"cache-control": "no-store"})
        # without JavaScript: back to the console, the answer shown above it (a fresh page: fresh click
        # ids); the answer waits in the session, the link names only its key
        return RedirectResponse(f"/counter/{n}?" + urlencode({"note": self.note(s, res.text)}), status_code=303)

    # ------------------------------------------------------------------ misc
    async def set_lang(self, request: Request) -> Response:
        lang = str(request.path_params["lang"])
        resp = RedirectResponse(_safe_next(request.query_params.get("next", "/")), status_code=303)
        if lang in ("vi", "en"):
            resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/", secure=self.tls_only(request))
        return resp

    async def static(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        files = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
                 "voice.js": "text/javascript; charset=utf-8"}
        if name not in files:
            return Response("not found", status_code=404)
        return Response((STATIC / name).read_bytes(), media_type=files[name],
                        headers={"cache-control": "public, max-age=86400"})

    async def font(self, request: Request) -> Response:
        from webd.fonts import FONT_FILES, font_woff

        name = str(request.path_params["name"])
        if name not in FONT_FILES:
            return Response("not found", status_code=404)
        data = await asyncio.to_thread(font_woff, FONT_FILES[name])
        return Response(data, media_type="font/woff", headers={"cache-control": "public, max-age=31536000, immutable"})

    async def healthz(self, request: Request) -> Response:
        """For monitoring, with no login: synced with the hub or not, and nothing more a stranger could
        use (how many phones are watching is in webd's health on MQTT, for technicians)."""
        snap = self.snapshot
        return Response(json.dumps({"synced": snap.synced, "rev": snap.rev}),
                        media_type="application/json", status_code=200 if snap.synced else 503)


def _safe_next(url: str) -> str:
    """Only our own paths (no //host, no scheme): a login cannot send anyone elsewhere."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url or any(ord(c) < 32 for c in url):
        return "/head"
    return url[:200]


def _file_part(period: str) -> str:
    """The period as part of a download's file name: ASCII letters, digits and hyphens (the header is
    latin-1; "hôm nay" → "hom-nay")."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", period.replace("đ", "d").replace("Đ", "D"))
    return "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in plain
                   if not unicodedata.combining(c))[:40]


def _render_file(report: dict[str, Any], fmt: str) -> bytes:
    """CSV, XLSX or HTML of the report, written by the report code itself (``xephang_reports.render``)."""
    from xephang_reports import render as report_render

    with tempfile.TemporaryDirectory(prefix="webd-report-") as d:
        path = Path(d) / f"report.{fmt}"
        {"csv": report_render.write_csv, "xlsx": report_render.write_xlsx, "html": report_render.write_html}[fmt](report, path)
        return path.read_bytes()
