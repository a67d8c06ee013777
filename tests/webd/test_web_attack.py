"""An attacker on the centre's LAN against webd's HTTP surface (real hub, webd and mosquitto).

Every route with every kind of visitor — a citizen without login, counter 1's officer, the
head — must be refused where it is not theirs; every POST without the session's CSRF token,
or with a token or body that is not even text, is a 403 and never a 500; redirects stay on
our own paths; path parameters never reach a file or a header unchecked; an upload far
larger than a take, or a WAV or multipart body built to hurt, is refused with a reason and
webd keeps serving.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import struct
import time
import urllib.parse
from typing import Any

import pytest
from webharness import HEAD_PASSWORD, HEAD_USER, OFFICER_PASSWORD, browser, http_get, login, wait_for  # noqa: F401 - fixture

pytestmark = [pytest.mark.broker]

JSON = {"x-requested-with": "xephang"}  # the console answers a script in JSON (else a redirect with the answer)
HEAD_POSTS = ("/head/roster", "/head/voice/take", "/head/voice/install", "/head/voice/rollback", "/head/voice/score")
HEAD_GETS = ("/head", "/head/reports", "/head/report.csv", "/head/report.xlsx", "/head/roster", "/head/voice",
             "/head/voice/clip/mot.wav")


def raw(base: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
        timeout: float = 20) -> tuple[int, bytes, dict[str, str]]:
    """One request exactly as given (bytes that are not UTF-8, latin-1 headers), no redirect followed."""
    u = urllib.parse.urlsplit(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        hs = {k.lower(): v for k, v in {"content-type": "application/x-www-form-urlencoded", **(headers or {})}.items()}
        c.putrequest(method, path, skip_accept_encoding=True)
        for k, v in hs.items():
            c.putheader(k, v.encode("latin-1"))
        if method == "POST":
            c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        if body:
            c.send(body)
        r = c.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def page_csrf(base: str, cookie: str, path: str) -> str:
    st, body, _ = http_get(base + path, headers={"Cookie": cookie})
    assert st == 200, (path, st)
    return re.search(r'name="csrf" value="([^"]+)"', body.decode())[1]


def test_every_route_refuses_whoever_it_is_not_for(centre):
    base = centre.base
    officer, _ = login(base, "lan", OFFICER_PASSWORD)  # lan sits at counter 1
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    for path in HEAD_GETS:
        st, _, h = raw(base, "GET", path)
        assert st == 303 and h["location"].startswith("/login?next="), ("citizen", path, st)
        st, _, h = raw(base, "GET", path, headers={"Cookie": officer})
        assert (st, h.get("location")) == (303, "/counter"), ("officer", path, st)
    for path in HEAD_POSTS:
        for who in ("", officer):
            st, _, h = raw(base, "POST", path, b"csrf=x", headers={"Cookie": who})
            assert st == 303 and h["location"] in ("/counter", "/login?next=" + urllib.parse.quote(path, safe="")), \
                (who[:8], path, st)
    for who in ("", officer):
        assert raw(base, "GET", "/head/events", headers={"Cookie": who})[0] == 401
    # the citizen reaches no console; the officer no other counter; the head no console at all
    assert raw(base, "GET", "/counter/1")[0] == 303 and raw(base, "GET", "/counter/1/events")[0] == 403
    assert raw(base, "POST", "/counter/1/act", b"action=call-next")[0] == 303
    csrf = page_csrf(base, officer, "/counter/1")
    assert raw(base, "GET", "/counter/99999999999999999999", headers={"Cookie": officer})[0] == 404  # no such route
    for path in ("/counter/2", "/counter/2/events", "/counter/999999999"):
        assert raw(base, "GET", path, headers={"Cookie": officer})[0] == 403, path
    st, body, _ = raw(base, "POST", "/counter/2/act", f"action=call-next&csrf={csrf}".encode(),
                      headers={"Cookie": officer, "x-requested-with": "xephang"})
    assert st == 403 and b'"forbidden"' in body
    for path in ("/counter", "/counter/1"):
        assert raw(base, "GET", path, headers={"Cookie": head})[0] == 403, path
    hcsrf = page_csrf(base, head, "/head")
    assert raw(base, "POST", "/counter/1/act", f"action=call-next&csrf={hcsrf}".encode(),
               headers={"Cookie": head, "x-requested-with": "xephang"})[0] == 403
    # the pack by checksum and the clip by name: nothing but a checksum or a clip id is a file name
    for path in ("/voice/pack/..%2F..%2Fweb-accounts.json.zip", "/voice/pack/" + "A" * 64 + ".zip",
                 "/voice/pack/" + "0" * 63 + "%2F.zip", "/static/..%2Fapp.py", "/fonts/..%2F..%2Fapp.py"):
        assert raw(base, "GET", path)[0] == 404, path
    for clip in ("..%2Fdraft", "..%2F..%2Fweb-accounts", "mot%00", "m%C3%B4t"):
        assert raw(base, "GET", f"/head/voice/clip/{clip}.wav", headers={"Cookie": head})[0] == 404, clip


BAD_TOKENS = [b"", b"csrf=", b"csrf=wrong", "csrf=Đ".encode(), b"csrf=%C4%90", b"csrf=\xff\xfe", b"csrf=%00",
              b"csrf=x&csrf=y&" + b"a=1&" * 50]


@pytest.mark.parametrize("body", BAD_TOKENS, ids=range(len(BAD_TOKENS)))
def test_a_post_without_the_sessions_token_is_a_403_whatever_it_carries(centre, body):
    """Missing, wrong, non-ASCII, not UTF-8, NUL, too many fields: refused, never a server error."""
    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    officer, _ = login(base, "lan", OFFICER_PASSWORD)
    for path in ("/logout", *HEAD_POSTS):
        st, _, _ = raw(base, "POST", path, body, headers={"Cookie": head})
        assert st == 403, (path, st)
    for path in ("/logout", "/counter/1/act"):
        st, _, _ = raw(base, "POST", path, body + b"&action=call-next", headers={"Cookie": officer, **JSON})
        assert st == 403, (path, st)
    # the voice script's token travels in a header (latin-1 on the wire)
    token = urllib.parse.unquote_to_bytes(body.partition(b"=")[2].split(b"&")[0]).decode("latin-1")
    st, _, _ = (403, 0, 0) if "\x00" in token else raw(base, "POST", "/head/voice/take?clip=mot", b"RIFF", headers={
        "Cookie": head, "content-type": "audio/wav", "x-csrf": token, "x-requested-with": "xephang"})
    assert st == 403
    # the login form's double submit: a forged or junk cookie, a junk token
    _, lbody, h = http_get(base + "/login")
    cookie = h["set-cookie"].split(";", 1)[0]
    for jar in (cookie, "xephang_login=Đ.x".encode().decode("latin-1"), "xephang_login=" + "a." * 3000):
        st, _, _ = raw(base, "POST", "/login", body + f"&username={HEAD_USER}&password={HEAD_PASSWORD}".encode(),
                       headers={"Cookie": jar})
        assert st == 403, (jar[:20], st)
    st, hbody, _ = http_get(base + "/healthz")
    assert st == 200 and set(json.loads(hbody)) == {"synced", "rev"}  # nothing else for a stranger


@pytest.mark.parametrize("jar", ["xephang_session=Đ".encode().decode("latin-1"), "xephang_session=" + "x" * 6000,
                                 "xephang_session=;xephang_session=a", "lang=<script>", 'lang="en\\"', "=;;=;x"])
def test_junk_cookies_are_nobody(centre, jar):
    for path in ("/", "/hall", "/head", "/counter", "/login"):
        st, _, _ = raw(centre.base, "GET", path, headers={"Cookie": jar})
        assert st in (200, 303), (path, st)


@pytest.mark.parametrize("nxt", ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
                                 "/\r\nSet-Cookie: a=b", "/%0d%0aSet-Cookie:a=b", " //evil.example", "/\t/evil.example",
                                 "http:evil.example", "%2F%2Fevil.example", "/" + "a" * 5000])
def test_redirects_stay_on_our_own_paths(centre, nxt):
    base = centre.base
    q = urllib.parse.urlencode({"next": nxt})
    st, _, h = raw(base, "GET", f"/lang/en?{q}")
    loc = h["location"]
    assert st == 303 and loc.startswith("/") and not loc.startswith("//") and "\\" not in loc and len(loc) < 1000
    assert "set-cookie" not in h or "a=b" not in h["set-cookie"]
    st, body, _ = raw(base, "GET", f"/login?{q}")
    hidden = re.search(r'name="next" value="([^"]*)"', body.decode())
    assert st == 200 and (hidden is None or hidden[1].startswith("/") and not hidden[1].startswith("//"))
    st, lbody, h = raw(base, "GET", "/login")  # a fresh form: its cookie and token go together
    token = re.search(r'name="csrf" value="([^"]+)"', lbody.decode())[1]
    form = urllib.parse.urlencode({"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": token, "next": nxt})
    st, _, h = raw(base, "POST", "/login", form.encode(), headers={"Cookie": h["set-cookie"].split(";", 1)[0]})
    loc = h["location"]
    assert st == 303 and loc.startswith("/") and not loc.startswith("//") and "\r" not in loc and len(loc) < 1000


def test_a_crafted_link_cannot_put_words_on_the_console_or_the_heads_pages(centre):
    """The console once showed its ``?msg=`` under the counter's state: a link sent to an officer,
    ``/counter/1?msg=Đã gọi số 1042``, said a number was called that was not. The voice page said
    "now speaks with the new voice (X)" for any ``?done=installed&name=X``, the roster page
    "applied (version N)" for any ``?done=N``. Now a page shows only the answer its own session's
    click left for it, once; the link carries a key, never the words."""
    base = centre.base
    officer, _ = login(base, "lan", OFFICER_PASSWORD)
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    spoof = "Đã gọi số 1042."
    for q in ({"msg": spoof}, {"note": spoof}, {"msg": spoof, "note": ""}):
        st, body, _ = raw(base, "GET", "/counter/1?" + urllib.parse.urlencode(q), headers={"Cookie": officer})
        assert st == 200 and "1042" not in body.decode(), q
    for path, q, words in (("/head/voice", {"done": "installed", "name": "giong-gia-mao"}, "giong-gia-mao"),
                           ("/head/voice", {"done": "rolled_back", "name": "giong-gia-mao"}, "giong-gia-mao"),
                           ("/head/voice", {"done": "take"}, "Đã giữ bản thu"),
                           ("/head/roster", {"done": "999"}, "phiên bản 999")):
        st, body, _ = raw(base, "GET", f"{path}?{urllib.parse.urlencode(q)}", headers={"Cookie": head})
        assert st == 200 and words not in body.decode(), (path, q)
    # a click without JavaScript still reads its answer above the console, in the officer's language
    a, b = centre.issue()["ticket"], centre.issue()["ticket"]
    # (the second call ends the first's service, and says so)
    for lang, said in (("vi", f"Đã gọi số {a['display']}."),
                       ("en", f"Called {b['display']}. {a['display']}, being served, counts as finished (Finish was "
                              "not pressed).")):
        csrf = page_csrf(base, officer, "/counter/1")
        form = urllib.parse.urlencode({"csrf": csrf, "action": "call-next", "rid": f"nojs-{lang}-0001"})
        st, _, h = raw(base, "POST", "/counter/1/act", form.encode(), headers={"Cookie": f"{officer}; lang={lang}"})
        where = h["location"]
        assert st == 303 and where.startswith("/counter/1?note=") and "gọi" not in urllib.parse.unquote(where), where
        page = raw(base, "GET", where, headers={"Cookie": f"{officer}; lang={lang}"})[1].decode()
        assert 'role="status" aria-live="polite" data-unreachable="' in page and f">{said}</p>" in page, said
        again = raw(base, "GET", where, headers={"Cookie": officer})[1].decode()
        assert said not in again  # once: a reload, or the link sent on, shows nothing
    # the key is the session's own: the same officer's other session (another PC) reads nothing with it
    csrf = page_csrf(base, officer, "/counter/1")
    form = urllib.parse.urlencode({"csrf": csrf, "action": "recall", "rid": "nojs-recall-0001"})
    where = raw(base, "POST", "/counter/1/act", form.encode(), headers={"Cookie": officer})[2]["location"]
    other, _ = login(base, "lan", OFFICER_PASSWORD)
    assert 'aria-live="polite"' in (p := raw(base, "GET", where, headers={"Cookie": other})[1].decode())
    recalled = f"Đã gọi lại số {b['display']} (lần 1)."
    assert recalled not in p
    assert recalled in raw(base, "GET", where, headers={"Cookie": officer})[1].decode()


def test_logging_in_over_and_over_keeps_at_most_20_sessions_and_then_is_throttled(centre):
    """Whoever holds a password could log in in a loop, each login a session kept in webd's memory
    for 8 hours and a password check (scrypt) taken from everyone else. An account keeps its 20
    newest sessions (a head on many devices stays in); the oldest ends, and nobody else's. The
    30th login in 15 minutes from one address locks that address out for 5 minutes
    (``login_max_successes``); the sessions already open go on."""
    from webharness import post_form

    base = centre.base
    officer, _ = login(base, "lan", OFFICER_PASSWORD)
    heads = [login(base, HEAD_USER, HEAD_PASSWORD)[0] for _ in range(23)]
    assert len(centre.web.web.sessions) == 1 + 20
    assert [raw(base, "GET", "/head", headers={"Cookie": c})[0] for c in heads] == [303] * 3 + [200] * 20
    assert raw(base, "GET", "/counter/1", headers={"Cookie": officer})[0] == 200
    for _ in range(6):  # logins 25–30 from this address
        login(base, HEAD_USER, HEAD_PASSWORD)
    st, body, h = http_get(base + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', body.decode())[1]
    st, page, _ = post_form(base + "/login", {"username": "hung", "password": OFFICER_PASSWORD, "csrf": csrf},
                            h["set-cookie"].split(";", 1)[0])
    assert st == 429 and "Đăng nhập quá nhiều lần" in page  # another account, the same address
    assert raw(base, "GET", "/counter/1", headers={"Cookie": officer})[0] == 200


def test_guesses_sent_all_at_once_get_no_more_password_checks_than_the_limit(centre):
    """The lockout was checked before the password check and the failure written after it: sixty
    guesses sent at once from one address were all checked (two at a time), and the right password,
    the last of them, logged in as the head (red team). A check in flight now counts as a failure
    until it ends: at most ``login_max_failures`` (5) are checked, the rest are told to wait."""
    import concurrent.futures

    from webharness import post_form

    base = centre.base
    st, body, h = http_get(base + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', body.decode())[1]
    cookie = h["set-cookie"].split(";", 1)[0]
    guesses = [f"doan-sai-{i:02d}-mat-khau" for i in range(23)] + [HEAD_PASSWORD]
    checked = []
    verify = centre.web.web.accounts.verify

    def counting(user, password):
        checked.append(password)
        return verify(user, password)

    centre.web.web.accounts.verify = counting
    try:
        with concurrent.futures.ThreadPoolExecutor(len(guesses)) as pool:
            answers = list(pool.map(lambda pw: post_form(base + "/login", {"username": HEAD_USER, "password": pw,
                                                                           "csrf": csrf}, cookie)[0], guesses))
    finally:
        centre.web.web.accounts.verify = verify
    assert len(checked) <= 5, len(checked)
    assert sorted(answers).count(401) + answers.count(303) == len(checked) and answers.count(429) >= len(guesses) - 5
    assert answers[-1] != 303 or HEAD_PASSWORD in checked[:5]  # only if it was among the five checked
    st, *_ = post_form(base + "/login", {"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": csrf}, cookie)
    assert st == 429 or answers.count(303) == 1


def test_an_officers_good_login_does_not_wipe_an_addresss_guesses_at_other_names(centre):
    """A good password forgot every failure of its address: an officer guessing at other accounts,
    logging in with their own password after every four, made 120 guesses from one address (red
    team). It forgets only the failures of its own name now."""
    from webharness import post_form

    base = centre.base
    st, body, h = http_get(base + "/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', body.decode())[1]
    cookie = h["set-cookie"].split(";", 1)[0]

    def attempt(user: str, password: str) -> int:
        return post_form(base + "/login", {"username": user, "password": password, "csrf": csrf}, cookie)[0]

    assert [attempt(u, "doan-sai-mat-khau") for u in ("hung", "tuan", "hoa", HEAD_USER)] == [401] * 4
    assert attempt("lan", OFFICER_PASSWORD) == 303  # lan's own login …
    assert attempt("hung", "doan-sai-mat-khau-2") == 401  # … the address's fifth failure
    assert attempt("tuan", "doan-sai-mat-khau-3") == 429  # locked out, as after five failures in a row


def test_every_answer_carries_the_security_headers_redirects_and_errors_included(centre, monkeypatch):
    """A redirect, a 404, a 405, a refusal and the 500 page are framed, sniffed and leak a Referer
    as easily as a page: the headers go on every answer, not only on the pages that remember them."""
    from webd import pages
    from webd.app import SECURITY_HEADERS

    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    officer, _ = login(base, "lan", OFFICER_PASSWORD)
    asks = [("GET", "/lang/en?next=/hall", "", 303), ("GET", "/lang/xx", "", 303), ("GET", "/no/such/page", "", 404),
            ("POST", "/hall", "", 405), ("POST", "/lang/en", "", 405), ("GET", "/static/nope.js", "", 404),
            ("GET", "/static/app.js", "", 200), ("GET", "/healthz", "", 200), ("GET", "/hall", "", 200),
            ("GET", "/head", "", 303), ("GET", "/head/events", "", 401), ("POST", "/logout", "", 403),
            ("GET", "/counter", officer, 303), ("GET", "/counter/2/events", officer, 403),
            ("GET", "/head", officer, 303), ("GET", "/head/report.exe", head, 404), ("GET", "/q/x/y/1/z", "", 404),
            ("GET", "/voice/pack/" + "0" * 64 + ".zip", "", 404)]
    for method, path, who, want in asks:
        st, _, h = raw(base, method, path, b"csrf=x" if method == "POST" else b"", headers={"Cookie": who})
        assert st == want, (method, path, st)
        assert {k: h.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, (method, path, st)

    def broken(*a, **k):
        raise RuntimeError("a page that fails")

    monkeypatch.setattr(pages, "page", broken)  # the home page now fails: Starlette's own 500 answer
    st, _, h = raw(base, "GET", "/")
    assert st == 500 and {k: h.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, st


def test_report_downloads_name_their_file_from_checked_words_only(centre):
    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    for period, group_by in (('today"; x=".exe', "service"), ("today", 'service"\r\nX-Evil: 1'), ("today", "../../x"),
                             ("2026-11-01..2026-11-30\x00", "service"), ("today", "service\n"), ("x" * 5000, "service")):
        q = urllib.parse.urlencode({"period": period, "group_by": group_by})
        for fmt in ("csv", "html"):
            st, _, h = raw(base, "GET", f"/head/report.{fmt}?{q}", headers={"Cookie": head})
            assert st == 400 and "x-evil" not in h, (period[:20], group_by, st)
        st, body, _ = raw(base, "GET", f"/head/reports?{q}", headers={"Cookie": head})
        assert st == 400 and b"<script" not in body.lower().replace(b"<script src=", b"")
    st, _, h = raw(base, "GET", "/head/report.csv?period=2026-11-01..2026-11-30&group_by=counter",
                   headers={"Cookie": head})
    assert st == 200 and h["content-disposition"] == 'attachment; filename="bao-cao-2026-11-01--2026-11-30-counter.csv"'
    for fmt in ("exe", "csv%00", "csv.exe"):
        assert raw(base, "GET", f"/head/report.{fmt}", headers={"Cookie": head})[0] == 404, fmt


def _wav(channels: int, rate: int, data: bytes, claim: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (b"RIFF" + struct.pack("<I", min(36 + claim, 2**32 - 1)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", claim) + data)


def test_uploads_built_to_hurt_are_refused_and_webd_keeps_serving(centre):
    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    csrf = page_csrf(base, head, "/head/voice")
    script = {"Cookie": head, "content-type": "audio/wav", "x-csrf": csrf, "x-requested-with": "xephang"}
    # 50 MB "take": refused once the cap is passed, without reading the rest
    t0 = time.monotonic()
    try:
        st, body, _ = raw(base, "POST", "/head/voice/take?clip=mot", b"\0" * (50 * 1024 * 1024), headers=script)
    except (BrokenPipeError, ConnectionResetError):  # webd may close before the client is done sending
        st, body = 413, b"closed"
    assert st in (400, 413), st
    assert time.monotonic() - t0 < 15
    # a WAV header claiming 2^31 frames over one second of audio: read as what is there, no more
    st, body, _ = raw(base, "POST", "/head/voice/take?clip=mot", _wav(1, 24000, b"\0\1" * 24000, 2**31), headers=script)
    assert st in (200, 422) and json.loads(body)["seconds"] in (None, 1.0), (st, body[:200])
    # multipart: a file far over the cap, and parts nested thousands deep (the stdlib parser recurses)
    b = "xx"
    pre = f'--{b}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n--{b}\r\nContent-Disposition: form-data; name="clip"\r\n\r\nmot\r\n'
    big = (pre + f'--{b}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n').encode() + \
        _wav(1, 24000, b"\0\1" * (5 * 1024 * 1024), 10 * 1024 * 1024) + f"\r\n--{b}--\r\n".encode()
    nested = pre.encode() + b"".join(f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode()
                                     for i in range(3000)).replace(b"--b0", b"--xx", 1)
    # 3 MB of empty parts: the parser took 29 s and 100 MB over them; refused uncounted, unparsed
    empty = pre.encode() + f'--{b}\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n'.encode() * 60_000
    for body, want in ((big, 400), (nested, 403), (empty, 403)):  # too big; unreadable, so no token either
        st, page, _ = raw(base, "POST", "/head/voice/take", body,
                          headers={"Cookie": head, "content-type": f"multipart/form-data; boundary={b}"})
        assert st == want and ("Tệp quá lớn" if want == 400 else "Biểu mẫu") in page.decode(), st
    # a form far over its cap is not parsed
    assert raw(base, "POST", "/logout", b"csrf=" + b"a" * (2 * 1024 * 1024), headers={"Cookie": head})[0] == 403
    assert http_get(base + "/healthz")[0] == 200
    assert http_get(base + "/head", headers={"Cookie": head})[0] == 200  # still logged in: the session was not ended


def rogue(centre, site, node: str, role: str):
    """A client with a board's own broker account (what an attacker holding its password has), connected."""
    from xephang.bus import Bus
    from xephang.settings import BrokerSettings

    bus = Bus(site=site.site.slug, node=node, role=role, broker=BrokerSettings(port=centre.mosquitto.port))
    bus.start()
    assert bus.wait_connected(10)
    return bus


def test_a_boards_password_cannot_speak_for_the_hub_or_flood_the_dashboard(centre, site):
    """counter-1's broker account may write its own status and its role's alert topics (the ACL below).
    What it says there of another node is not believed: a retained "hub offline" on its own status
    topic would grey every phone's page; an alert named for the hub would show under the hub's name;
    a thousand retained alert ids would swamp the dashboard. Each is dropped, logged and counted.
    (The site's ACL refuses alert ids a role does not raise, tests/tools/test_broker_acl.py; this
    centre's broker has no ACL, as one configured by hand: webd's own limits hold.)"""
    from xephang.contract import Alert, NodeStatus
    from xephang_ops.brokerconf import acl_text, site_accounts

    acl = acl_text(site.site.slug, site_accounts(site))
    assert "pattern readwrite xephang/v1/" in acl and "/node/%u/status" in acl and "/alert/+" not in acl
    assert "topic write xephang/v1/tuong-linh/node/counter-1/alert/counter-config" in acl
    from xephang.limits import RateLimit

    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    stats = centre.web.bus.stats
    centre.web._node_limit = RateLimit(burst=10_000, per_minute=60)  # the pace per node: the next test
    centre.web.watcher.pace = RateLimit(burst=10_000, per_minute=60)  # … and as it comes (web-watch)
    board = rogue(centre, site, "counter-1", "counter")
    try:
        t = board.topics
        board.publish(t.status("counter-1"), NodeStatus(node="hub", online=False, session=10**12), retain=True)
        board.publish(t.alert("counter-1", "paper-out"), Alert(node="hub", id="paper-out", severity="critical",
                                                              message_vi="Máy chủ hỏng"), retain=True)
        for i in range(200):  # the first one's text as long as the bus allows
            board.publish(t.alert("counter-1", f"a{i}"), Alert(node="counter-1", id=f"a{i}",
                                                               message_vi=f"rác {i}" + "x" * (60000 if i == 0 else 0)),
                          retain=True)
        wait_for(lambda: stats.dropped_by_code.get("too-many", 0) >= 200 - 32, 10, "the alerts over 32 dropped")
        assert stats.dropped_by_code["wrong-sender"] >= 2 and stats.dropped_by_code["too-many"] == 200 - 32
        assert http_get(base + "/healthz")[0] == 200  # still synced: the hub is online
        st, body, _ = raw(base, "GET", "/head", headers={"Cookie": head})
        page = body.decode()
        assert st == 200 and "Máy chủ hỏng" not in page and page.count("rác ") == 32
        assert "rác 0" + "x" * 294 + "…" in page and len(body) < 60000  # one alert cannot fill the page
        # the board clears what it raised: the dashboard follows (nothing it was owed is lost)
        for i in range(200):
            board.publish(t.alert("counter-1", f"a{i}"), b"", retain=True)
        wait_for(lambda: "rác " not in raw(base, "GET", "/head", headers={"Cookie": head})[1].decode(), 10,
                 "the dashboard without the cleared alerts")
    finally:
        for i in range(200):
            board.publish(board.topics.alert("counter-1", f"a{i}"), b"", retain=True)
        board.publish(board.topics.alert("counter-1", "paper-out"), b"", retain=True)
        board.stop()


def test_a_boards_password_flooding_its_own_status_does_not_deafen_webd(centre, site):
    """display-hall's password wrote its own retained status, online and offline by turns, as fast as
    it could: every message rebuilt what every open page reads and woke every stream, and webd
    stopped hearing the hub's replies for minutes (ended only by a restart). Then webd took what a
    node says of itself at QoS 0 and at most NODE_BURST at once then NODE_PER_MINUTE (the rest
    dropped and counted, `flood`), but on its one connection: from `mosquitto_pub` (a C publisher,
    as an attacker's would be; the test's own Python flooder was slower) a call still reached webd
    44 s late, behind the flood. Now `web-watch` (web.watch_password_file, xephang/reader.py) reads
    the boards' statuses and alerts, and a call made during the flood reaches webd at once. And
    paced per node as they come (red team, 2026-12-07): the flood filled webd's one queue of what
    boards say (2,000), and dispenser 1's alert raised during it, or its clear, was dropped with the
    flood and never shown. Faster than web-watch reads (this flood), the broker itself drops what
    comes behind; once the flood is over webd reads the retained statuses and alerts again and the
    dashboard shows what the boards hold."""
    from webd.main import NODE_BURST
    from xephang.contract import Alert, NodeStatus
    from xephang_faults.flood import LineFlood

    if not LineFlood.available():
        pytest.skip("mosquitto_pub is not installed")
    assert centre.web.watcher is not None and centre.web.watcher.connected
    topic = centre.web.bus.topics.status("display-hall")
    lines = [NodeStatus(node="display-hall", online=bool(i % 2), session=i + 1).to_json().decode() for i in range(2000)]
    flood = LineFlood(centre.mosquitto.port, "display-hall", topic, lines, qos=0, retain=True).start()
    try:
        wait_for(lambda: _dropped(centre) > 10 * NODE_BURST, 60, "the flood paced")
        centre.issue()
        r = centre.call(1)  # during the flood
        assert r.status == "ok"
        wait_for(lambda: centre.web.model.rev >= r.rev, 5, "webd hears the hub's call during the flood")
        assert http_get(centre.base + "/healthz")[0] == 200
        # dispenser 1 raises an alert and clears it, and raises another, during the flood: what
        # reaches webd meanwhile is luck (the broker's queue for web-watch may be full and drop
        # them), but once the flood is over webd reads the retained ones again and shows the truth
        printer = rogue(centre, site, "dispenser-1", "dispenser")
        try:
            def raise_(aid: str) -> None:
                printer.publish(printer.topics.alert("dispenser-1", aid),
                                Alert(node="dispenser-1", id=aid, severity="critical", message_vi="Máy in",
                                      message_en="Printer"), retain=True)

            raise_("paper-out")
            printer.publish(printer.topics.alert("dispenser-1", "paper-out"), b"", retain=True)
            raise_("printer-offline")
        finally:
            printer.stop()  # its offline status acknowledged: so is what it published before
        rereads = centre.web.rereads
    finally:
        flood.stop()
        board = rogue(centre, site, "display-hall", "display")
        board.publish(topic, b"", retain=True)
        board.stop()
    assert _dropped(centre) > 10 * NODE_BURST
    truth = {("dispenser-1", "printer-offline")}
    # read again once the flood is over. On a loaded machine the flooder may stall for longer than
    # FLOOD_QUIET_S: a reread then starts during the flood, its alerts are paced again, and webd reads
    # once more later. Asserting right after the first reread is the likely cause of one failure in
    # a full run (not reproduced alone, nor with the whole file)
    wait_for(lambda: centre.web.rereads > rereads and centre.web._reread_from is None
             and {k for k in centre.web.model.alerts if k[0] == "dispenser-1"} == truth, 40,
             "read again after the flood, as the broker holds them")


def _dropped(centre) -> int:
    """What webd dropped of the boards' own words: paced as it came (web-watch), at the handler
    (``flood``), or with its queue full (``backlog``)."""
    by = centre.web.bus.stats.dropped_by_code
    return centre.web.watcher.stats.paced + by.get("flood", 0) + by.get("backlog", 0)


def test_the_speakers_password_flooding_its_config_state_does_not_deafen_webd(centre, site):
    """announcer-hall's password may write its own config state (`config/announcer-hall/state`: the
    voice page shows the pack it runs). Flooded with 53 KB states from `mosquitto_pub` (red team,
    2026-12-07), webd read them on the connection the hub's events and replies come on, unpaced, in
    an unbounded queue: it fell 10-30 s behind the hub, officers were told "not done" of clicks the
    hub had done, and it grew from 73 to 600 MB. Now `web-watch` reads the speaker's config state
    and acks too, at QoS 0 into the bounded queue and paced like its status: a call made during the
    flood reaches webd at once, and a legitimate state after it is still shown."""
    from webd.main import NODE_BURST
    from xephang.contract import ConfigState
    from xephang_faults.flood import LineFlood

    if not LineFlood.available():
        pytest.skip("mosquitto_pub is not installed")
    stats = centre.web.bus.stats
    topic = centre.web.bus.topics.config_state("announcer-hall")
    lines = [ConfigState(node="announcer-hall", rev=i + 1, config={"voice_pack": f"p{i}-" + "x" * 53_000}).to_json()
             .decode() for i in range(100)]
    flood = LineFlood(centre.mosquitto.port, "announcer-hall", topic, lines, qos=1).start()
    dropped = lambda: _dropped(centre)  # noqa: E731
    try:
        base = stats.received
        wait_for(lambda: stats.received - base + dropped() > 5000, 60, "webd took 5,000 of the flood")
        for _ in range(3):
            centre.issue()
            r = centre.call(1)  # during the flood
            assert r.status == "ok"
            wait_for(lambda r=r: centre.web.model.rev >= r.rev, 5, "webd hears the hub's call during the flood")
        assert http_get(centre.base + "/healthz")[0] == 200
    finally:
        flood.stop()
    assert dropped() > 10 * NODE_BURST


JUNK = ["%FF", "%00", "..%2F..%2Fweb-accounts.json", "%3Cscript%3E", "a" * 3000, "%C4%90", "-1",
        "99999999999999999999", "%0D%0ALocation:%20//evil", "%D9%A2%D9%A0%D9%A2%D9%A6-11-01", "2026-12-06%0A",
        "9" * 5000]  # Python reads no int of over 4300 digits: a route taking one ended in a 500


def test_every_route_with_junk_in_its_path_is_refused_never_a_server_error(centre):
    """Each path parameter of the route table (ticket day, number, id and token, clip, pack checksum,
    counter, report format, guide, language, static and font names) replaced by bytes that are not
    UTF-8, a NUL, a climb out of the folder, markup, 3000 characters, other digits, a header break:
    whoever asks (citizen, counter 1's officer, the head) gets a refusal, never a 500, never a file."""
    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    officer, _ = login(base, "lan", OFFICER_PASSWORD)
    routes = [r for r in centre.web.web.asgi.routes if "{" in r.path]
    assert len(routes) >= 10
    t = centre.issue()["ticket"]
    good = centre.ticket_url(t)[len(base):].split("/")  # ['', 'q', day, display, id, token]
    seen = set()
    for r in routes:
        for junk in JUNK:
            for i, _ in enumerate(re.findall(r"\{[^}]+\}", r.path)):
                # one parameter junk, the others sensible (a real ticket's, counter 1), so the junk reaches the code
                fill = iter(good[2:] if r.path.startswith("/q/") else ["1", "1", "1", "1"])
                parts = [junk if j == i else next(fill) for j in range(r.path.count("{"))]
                path = re.sub(r"\{[^}]+\}", lambda m, p=iter(parts): next(p), r.path)
                for who in ("", officer, head):
                    for method in sorted(r.methods or {"GET"}):
                        if method == "HEAD":
                            continue
                        st, body, h = raw(base, method, path, b"csrf=x" if method == "POST" else b"",
                                          headers={"Cookie": who}, timeout=5)
                        seen.add(st)
                        assert st < 500 and "evil" not in h.get("location", ""), (method, path[:80], who[:10], st)
                        if st == 200:
                            assert b"web-accounts" not in body and b"scrypt" not in body, path[:80]
    assert 404 in seen and 403 in seen
    assert http_get(base + "/healthz")[0] == 200


@pytest.mark.parametrize("period", ["0001-01-01..9999-12-31", "9999", "9999-12-31", "0001-01-01", "0001..2026"])
def test_a_period_at_the_calendars_ends_is_refused_in_the_heads_words(centre, period):
    """Python's dates stop at year 1 and 9999: a period touching either end must be a refusal on
    the page (and from the hub), not an overflow deep in the report code."""
    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    q = urllib.parse.urlencode({"period": period, "group_by": "day"})
    st, body, _ = raw(base, "GET", f"/head/reports?{q}", headers={"Cookie": head})
    assert st == 400 and "Không đọc được kỳ báo cáo" in body.decode(), st
    assert raw(base, "GET", f"/head/report.csv?{q}", headers={"Cookie": head})[0] == 400
    from xephang.contract import ReportRequest, new_request_id

    reply = centre.ask(ReportRequest(request_id=new_request_id(), source="tech", period=period, group_by="day"))
    assert reply.status == "error" and reply.error.code == "invalid", reply
    assert http_get(base + "/healthz")[0] == 200


@pytest.mark.parametrize("digits", ["²", "١٢", "𝟗", "9" * 5000], ids=["sup", "arabic", "math", "5000-digits"])
def test_digits_of_other_scripts_in_a_number_field_are_a_refusal_not_a_500(centre, digits):
    """str.isdigit() says yes to '²' and '١٢', and int() then says no (or reads another script):
    the roster's base revision and the console's ticket number are refused as bad input."""
    from test_roster_http import _form, _site_page
    from webharness import post_form, wait_for

    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    form = _form(wait_for(lambda: _site_page(centre, head), 15, "the roster page with the hub's site"))
    st, _, _ = raw(base, "POST", "/head/roster", urllib.parse.urlencode({**form, "base_rev": digits}).encode(),
                   headers={"Cookie": head})
    assert st == 400, st
    officer, _ = login(base, "lan", OFFICER_PASSWORD)
    csrf = page_csrf(base, officer, "/counter/1")
    st, body, _ = post_form(base + "/counter/1/act", {"csrf": csrf, "action": "call-ticket", "ticket_id": digits,
                                                      "reason": "người cao tuổi"}, officer, headers=JSON)
    assert st == 400 and '"invalid"' in body, (st, body)


def test_the_announcers_retained_config_in_the_wrong_shape_is_dropped_and_the_voice_page_stays_up(centre, site):
    """The hall speaker's account may write its own retained config state, which /head/voice reads
    (the current pack's checksum and name, the reading options). A checksum that is not text once
    made the page a 500; such a state is dropped and counted, the page shows the last good one."""
    from xephang.contract import ConfigState

    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    stats = centre.web.bus.stats
    speaker = rogue(centre, site, "announcer-hall", "announcer")
    try:
        topic = speaker.topics.config_state("announcer-hall")
        speaker.publish(topic, ConfigState(node="announcer-hall", rev=1, config={"voice_pack": "giong-cu"}), retain=True)
        wait_for(lambda: "giong-cu" in raw(base, "GET", "/head/voice", headers={"Cookie": head})[1].decode(), 10,
                 "the speaker's config on the voice page")
        for junk in ({"voice_pack_sha256": 12345}, {"voice_pack_sha256": ["a"] * 3}, {"voice_pack": {"x": 1}},
                     {"voice_pack_url": 7, "voice_pack_sha256": "0" * 64}, {"dialect": 5, "zero_word": []}):
            before = stats.dropped
            speaker.publish(topic, ConfigState(node="announcer-hall", rev=2, config=junk), retain=True)
            if "dialect" in junk:  # not the pack's fields: taken, and the page must bear it
                wait_for(lambda junk=junk: (centre.web.web.announcer_config or {}).get("dialect") == junk["dialect"], 5,
                         "the state taken")
            else:
                wait_for(lambda before=before: stats.dropped > before, 5, f"{junk} dropped")
            st, body, _ = raw(base, "GET", "/head/voice", headers={"Cookie": head})
            assert st == 200, (junk, st)
            assert "dialect" in junk or "giong-cu" in body.decode(), junk  # the last good state stands
        # a name turned around (U+202E) and 20 KB long: shown as a device's words, '?' and cut
        speaker.publish(topic, ConfigState(node="announcer-hall", rev=3, config={"voice_pack": "\u202e" + "x" * 20_000}),
                        retain=True)
        wait_for(lambda: "x" * 50 in raw(base, "GET", "/head/voice", headers={"Cookie": head})[1].decode(), 10,
                 "the long name on the voice page")
        page = raw(base, "GET", "/head/voice", headers={"Cookie": head})[1].decode()
        assert "\u202e" not in page and "?" + "x" * 78 + "…" in page and "x" * 80 not in page
    finally:
        speaker.publish(speaker.topics.config_state("announcer-hall"), b"", retain=True)
        speaker.stop()


def _stream_opener(base: str, held: list) -> Any:
    """``open_stream(path, cookie)``: a live stream opened and held (kept in ``held`` once it has
    begun, so it counts against the caps), or the refusal's status."""
    u = urllib.parse.urlsplit(base)

    def open_stream(path: str, cookie: str = "") -> int:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        c.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        r = c.getresponse()
        if r.status == 200:
            r.read1(64)  # the stream has begun: it counts
            held.append(c)
        else:
            c.close()
        return r.status
    return open_stream


def test_anyone_holding_every_live_stream_open_cannot_blind_the_head_and_the_officers(centre):
    """Live streams are capped (``max_streams``). A LAN client without login opening as many hall
    streams as it may gets "busy" for the next one, but the last 5 % stay free for the head's
    dashboard and the officers' consoles."""
    base = centre.base
    centre.web.web.settings.web.max_streams = 40  # 2 kept for logged-in pages
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    officer, _ = login(base, "lan", OFFICER_PASSWORD)
    held: list[http.client.HTTPConnection] = []
    open_stream = _stream_opener(base, held)

    try:
        assert [open_stream("/hall/events") for _ in range(38)] == [200] * 38
        assert open_stream("/hall/events") == 503
        assert open_stream("/head/events", head) == 200
        assert open_stream("/counter/1/events", officer) == 200
        assert open_stream("/head/events", head) == 503  # the cap itself stands
    finally:
        for c in held:
            c.close()


def test_one_officers_password_cannot_take_the_live_streams_kept_for_the_head(centre):
    """The slots kept for logged-in pages were bounded only by ``max_streams``: one officer's password
    opening 50 console streams from one address left the head's dashboard and the other officers'
    consoles "busy" (red team). A session holds at most ``STREAMS_PER_SESSION``, an account at most
    ``STREAMS_PER_ACCOUNT``; every slot comes back when its stream ends."""
    from webd.app import STREAMS_PER_ACCOUNT, STREAMS_PER_SESSION

    base = centre.base
    app = centre.web.web
    app.settings.web.max_streams = 60  # 50 kept for logged-in pages
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    sessions = [login(base, "lan", OFFICER_PASSWORD)[0] for _ in range(3)]
    held: list[http.client.HTTPConnection] = []
    open_stream = _stream_opener(base, held)

    try:
        got = [open_stream("/counter/1/events", sessions[0]) for _ in range(STREAMS_PER_SESSION + 2)]
        assert got == [200] * STREAMS_PER_SESSION + [429] * 2
        got = [open_stream("/counter/1/events", sessions[1]) for _ in range(STREAMS_PER_SESSION)]
        assert got == [200] * (STREAMS_PER_ACCOUNT - STREAMS_PER_SESSION)  # the account's 16 are taken
        assert open_stream("/counter/1/events", sessions[2]) == 429
        assert app.streams == STREAMS_PER_ACCOUNT
        assert open_stream("/head/events", head) == 200  # the head's dashboard still opens
        for c in held[:3]:  # three of lan's consoles closed: their slots come back
            c.close()
        del held[:3]
        wait_for(lambda: app.streams_of.get("a:lan") == STREAMS_PER_ACCOUNT - 3, 10, "the slots given back")
        assert open_stream("/counter/1/events", sessions[2]) == 200
    finally:
        for c in held:
            c.close()
    wait_for(lambda: app.streams == 0 and app.streams_of == {}, 15, "every slot given back")


@pytest.mark.parametrize("spec", ["2.3", "2.4"])  # uvicorn speaks 2.3 over HTTP; 2.4 is Starlette's other path
def test_a_burst_of_streams_never_holds_more_than_max_streams_and_every_slot_comes_back(tmp_path, site, spec):
    """The cap was checked when a request came in but counted only once its stream's body ran: a
    burst of requests all passed the check before the first body began, and all got a stream. A
    client that hangs up before its body ever runs must give its slot back too (Starlette then never
    iterates the body, so the body's own ``finally`` never runs). Driven through the ASGI app, each
    burst's requests in flight together."""
    import asyncio
    import contextlib

    from starlette.requests import ClientDisconnect

    from webd.app import WebApp
    from webd.config import WebConfig, WebSettings

    app = WebApp(WebSettings(site=site.site.slug, node="web", state_dir=tmp_path,
                             web=WebConfig(max_streams=4, sse_heartbeat_s=1)), site, ask=lambda *a: None)
    citizens = 3  # of 4: the last one kept for logged-in pages
    peak = 0

    async def burst(n: int, *, gone_at_once: bool) -> tuple[list[int | None], asyncio.Event, asyncio.Future]:
        """n hall streams at once; returns their statuses (once each has one, or is over), the
        event that hangs them all up, and the future of their ends."""
        hang_up = asyncio.Event()
        statuses: list[int | None] = [None] * n
        answered = [asyncio.Event() for _ in range(n)]

        async def one(i: int) -> None:
            async def receive() -> dict:
                if not gone_at_once:
                    await hang_up.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict) -> None:
                nonlocal peak
                peak = max(peak, app.streams)
                await asyncio.sleep(0)  # a server's send may wait (its socket's buffer): a hang-up lands here
                if spec == "2.4" and (gone_at_once or hang_up.is_set()):
                    raise OSError("the client is gone")  # ASGI 2.4: a send to a client gone fails
                if message["type"] == "http.response.start":
                    statuses[i] = message["status"]
                    answered[i].set()

            scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": spec}, "http_version": "1.1",
                     "method": "GET", "scheme": "http", "path": "/hall/events", "raw_path": b"/hall/events",
                     "query_string": b"", "root_path": "", "headers": [(b"host", b"xephang.local")],
                     "client": (f"10.0.0.{i}", 40000), "server": ("xephang.local", 80)}
            try:
                with contextlib.suppress(OSError, ClientDisconnect):
                    await app.asgi(scope, receive, send)
            finally:
                answered[i].set()

        ends = asyncio.gather(*(one(i) for i in range(n)))
        await asyncio.wait_for(asyncio.gather(*(a.wait() for a in answered)), 5)
        return statuses, hang_up, ends

    async def story() -> None:
        async with app._lifespan(app.asgi):
            # twenty at once, staying: the cap's three streams, a 503 for the others
            statuses, hang_up, ends = await burst(20, gone_at_once=False)
            assert sorted(statuses) == [200] * citizens + [503] * (20 - citizens), statuses
            assert app.streams == citizens and peak <= citizens, (app.streams, peak)
            hang_up.set()
            await asyncio.wait_for(ends, 5)
            assert app.streams == 0
            # twenty at once, each gone before its stream's body runs: no slot kept by anyone
            _, _, ends = await burst(20, gone_at_once=True)
            await asyncio.wait_for(ends, 5)
            assert app.streams == 0
            # and the cap is whole again
            statuses, hang_up, ends = await burst(5, gone_at_once=False)
            assert sorted(statuses) == [200] * citizens + [503] * 2 and app.streams == citizens
            hang_up.set()
            await asyncio.wait_for(ends, 5)
            assert app.streams == 0 and peak <= citizens

    asyncio.run(story())


def test_a_take_of_minutes_is_refused_before_the_clip_processing_holds_the_server(centre):
    """8 MB of WAV is 40 s at 48 kHz stereo but nine minutes at 8 kHz mono: trimmed and measured
    before the clip's own length check refused it, that took 11 s of one of the Pi's cores (this
    VM). A take over 40 s is refused as it is read, and the hall's pages keep answering meanwhile."""
    import math
    import threading

    base = centre.base
    head, _ = login(base, HEAD_USER, HEAD_PASSWORD)
    csrf = page_csrf(base, head, "/head/voice")
    tone = struct.pack("<256h", *(int(3000 * math.sin(i * 2 * math.pi / 32)) for i in range(256)))
    data = _wav(1, 8000, tone * ((8 * 1024 * 1024 - 100) // len(tone)), 8 * 1024 * 1024 - 100)
    got: dict[str, object] = {}

    def upload() -> None:
        t0 = time.monotonic()
        got["answer"] = raw(base, "POST", "/head/voice/take?clip=mot", data, headers={
            "Cookie": head, "content-type": "audio/wav", "x-csrf": csrf, "x-requested-with": "xephang"}, timeout=60)
        got["took"] = time.monotonic() - t0

    th = threading.Thread(target=upload)
    th.start()
    slowest = 0.0
    while th.is_alive():
        t0 = time.monotonic()
        assert http_get(base + "/hall", timeout=30)[0] == 200
        slowest = max(slowest, time.monotonic() - t0)
    th.join()
    st, body, _ = got["answer"]
    assert st == 400 and "tối đa 40 giây" in json.loads(body)["text"], (st, body[:200])
    assert got["took"] < 4 and slowest < 2, (got["took"], slowest)


def test_a_boards_alert_without_spaces_does_not_widen_the_heads_dashboard_on_a_phone(centre, site, browser):  # noqa: F811
    """An alert text is a board's own words: 300 characters with no space (an attacker's, or a
    dump) wrap inside the dashboard instead of making the whole page scroll sideways (real Chromium,
    412 px wide), and a text-direction override in it does not turn the line around."""
    from selenium.webdriver.common.by import By

    from xephang.contract import Alert

    board = rogue(centre, site, "counter-1", "counter")
    try:
        board.publish(board.topics.alert("counter-1", "long"), Alert(node="counter-1", id="long", severity="warning",
                      message_vi="Lỗi \u202e" + "x" * 2000), retain=True)
        wait_for(lambda: any(a.id == "long" for a in centre.web.web.snapshot.alerts), 10, "the alert at webd")
        browser.get(centre.base + "/login?next=/head")
        browser.find_element(By.NAME, "username").send_keys(HEAD_USER)
        browser.find_element(By.NAME, "password").send_keys(HEAD_PASSWORD)
        browser.find_element(By.ID, "submit").click()
        # read in one script: the live dashboard may redraw the list between a find and a .text (stale element)
        text = wait_for(lambda: browser.execute_script(
            "const li = document.querySelector('ul.alerts li.sev-warning'); return li ? li.innerText : null;"),
            10, "the alert")
        assert "Lỗi ?xxx" in text and "\u202e" not in text and text.count("x") < 310
        widths = browser.execute_script("return [document.documentElement.scrollWidth, "
                                        "document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], widths
    finally:
        board.publish(board.topics.alert("counter-1", "long"), b"", retain=True)
        board.stop()


def _socket_from(address: str, base: str):
    import socket

    host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
    s = socket.socket()
    s.bind((address, 0))  # any 127.x address is this machine: another "device" on the LAN
    s.settimeout(5)
    s.connect((host, port))
    return s


def _closed_by_server(s, timeout: float) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_stranger_holding_connections_open_shuts_out_nobody(centre, monkeypatch):
    """A stranger opened ~1,060 connections and sent nothing: uvicorn kept them for good and
    answered every page 503, the head's and the officers' too. Now one address keeps at most
    PER_ADDRESS connections, and a connection must send its request's headers within
    HEADERS_DEADLINE_S (here 1 s), or it is closed; pages go on for everyone else."""
    from webd import server

    monkeypatch.setattr(server, "HEADERS_DEADLINE_S", 1.0)
    base = centre.base
    held = [_socket_from("127.0.0.7", base) for _ in range(server.PER_ADDRESS)]
    try:
        extra = _socket_from("127.0.0.7", base)
        assert _closed_by_server(extra, 3)  # one more from the same address: closed at once
        # another device is served meanwhile, the head's login page and the hall's board included
        s = _socket_from("127.0.0.8", base)
        s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 200")
        s.close()
        # the stranger's silent connections end after the deadline; a request trickled in one byte
        # at a time ends too
        slow = _socket_from("127.0.0.9", base)
        slow.sendall(b"GET /hall HTTP/1.1\r\nHo")
        assert all(_closed_by_server(h, 5) for h in held[:3])
        assert _closed_by_server(slow, 5)
        assert server.refused["per-address"] >= 1 and server.refused["too-slow"] >= 4
    finally:
        for h in held:
            h.close()
    # a request that began is never cut: a live stream outlives the deadline
    s = _socket_from("127.0.0.10", base)
    s.sendall(b"GET /hall/events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(64).startswith(b"HTTP/1.1 200")
    end = time.monotonic() + 2.5
    while time.monotonic() < end:  # read what the stream sends, for longer than the deadline
        assert not _closed_by_server(s, 0.2)
    s.close()
    assert http_get(base + "/healthz")[0] == 200


def test_a_body_that_never_comes_or_trickles_is_closed_and_a_hang_up_is_no_server_error(centre, monkeypatch,
                                                                                         caplog):
    """Red team, 2026-12-07: 1,049 connections from 17 addresses sent a POST's headers with a
    Content-Length and never the body; the headers' deadline had ended with the headers, so each was
    held for good and every page, the officers' included, answered 503. And a POST that hung up in
    the middle of its body was an "Exception in ASGI application" with its traceback in webd's log
    (1,000 in 2.3 s from one address). Now a body must keep coming (BODY_IDLE_S, here 1 s) and be
    whole within BODY_IDLE_S plus its length at BODY_MIN_RATE, a pipelined request's too; a hang-up
    is answered to nobody and logged as nothing. A form sent in two parts is answered as before."""
    import logging

    from webd import server

    monkeypatch.setattr(server, "BODY_IDLE_S", 1.0)
    base = centre.base
    head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    before = server.refused["body-too-slow"]
    silent = _socket_from("127.0.0.51", base)  # the headers, then nothing
    silent.sendall(head + b"Content-Length: 4000\r\n\r\n")
    trickle = _socket_from("127.0.0.52", base)  # a byte every 0.4 s: never idle, never done
    trickle.sendall(head + b"Content-Length: 4000\r\n\r\n")
    started = time.monotonic()
    closed_at: float | None = None
    while closed_at is None and time.monotonic() - started < 6:
        with contextlib.suppress(OSError):
            trickle.sendall(b"a")
        if _closed_by_server(trickle, 0.4):
            closed_at = time.monotonic() - started
    assert closed_at is not None and closed_at < 3, closed_at  # 1 s + 4000 bytes at 8 KB/s, and a margin
    assert _closed_by_server(silent, 3)
    # a GET and a POST's headers in one packet, then nothing: uvicorn starts the POST once the GET is
    # answered, not from data it receives; its body has the same deadlines (a reviewer found it held)
    piped = _socket_from("127.0.0.55", base)
    piped.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + head + b"Content-Length: 100\r\n\r\n")
    piped.settimeout(4)
    got, end = b"", time.monotonic() + 4
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while time.monotonic() < end and (chunk := piped.recv(4096)):  # the GET's answer, then the close
            got += chunk
    assert got.startswith(b"HTTP/1.1 200") and time.monotonic() < end, got[:80]
    assert server.refused["body-too-slow"] >= before + 3
    # a form in two parts, half a second apart: answered (403: no form token), not closed
    s = _socket_from("127.0.0.53", base)
    s.sendall(head + b"Content-Length: 20\r\nConnection: close\r\n\r\ncsrf=abc&")
    time.sleep(0.5)  # the client's own pause, not a wait for webd
    s.sendall(b"username=x1")
    assert s.recv(64).startswith(b"HTTP/1.1 403")
    s.close()
    # hung up in the middle of the body, twenty times: no server error in the log
    with caplog.at_level(logging.ERROR):
        for i in range(20):
            a = _socket_from("127.0.0.54", base)
            a.sendall((b"POST /login" if i % 2 else b"POST /logout") + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ncsrf=")
            a.close()
        wait_for(lambda: server._open.get("127.0.0.54", 0) == 0, 5, "the hung-up connections gone")
        assert http_get(base + "/healthz")[0] == 200
    assert "Exception in ASGI application" not in caplog.text and "ClientDisconnect" not in caplog.text
    assert centre.web.health_details()["connections_closed"]["body-too-slow"] >= 2


class _Browser:
    """A browser on its own LAN address (127.0.0.x), keeping its cookies."""

    def __init__(self, base: str, address: str) -> None:
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.address = u.hostname, u.port, address
        self.cookies: dict[str, str] = {}

    def _req(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str, Any]:
        c = http.client.HTTPConnection(self.host, self.port, timeout=10, source_address=(self.address, 0))
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        for h in r.headers.get_all("set-cookie") or []:
            name, _, rest = h.partition("=")
            value = rest.split(";", 1)[0]
            if value and "max-age=0" not in h.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        out = r.status, r.read().decode(errors="replace"), r.headers
        c.close()
        return out

    def log_in(self, user: str, password: str) -> int:
        _, page, _ = self._req("GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]  # type: ignore[index]
        body = urllib.parse.urlencode({"username": user, "password": password, "csrf": csrf}).encode()
        return self._req("POST", "/login", body)[0]


@pytest.mark.parametrize("name", ["hoa", "tran.hoa"])  # a head's name may hold a dot (USERNAME_RE)
def test_a_stranger_typing_wrong_passwords_for_a_name_does_not_lock_out_its_owners_pc(centre, name):
    """Five wrong passwords for `hoa` from anywhere locked `hoa` out everywhere, and one more every
    5 minutes kept her out for good. A browser that logged in as `hoa` before now carries a signed
    device cookie: its failures count apart from the name's. The name's lock still holds for any
    other browser (guessing from many addresses stays slow), and a device cookie gives no more
    guesses than the name had."""
    from webd.auth import Accounts

    base = centre.base
    Accounts(centre.web.settings.accounts_path()).set(name, "officer" if "." not in name else "head", OFFICER_PASSWORD)
    pc = _Browser(base, "127.0.0.21")
    assert pc.log_in(name, OFFICER_PASSWORD) == 303  # at her own PC, yesterday
    assert f"xephang_device_{name}" in pc.cookies
    stranger = _Browser(base, "127.0.0.22")
    assert [stranger.log_in(name, f"doan-{i}") for i in range(5)] == [401] * 5
    assert stranger.log_in(name, OFFICER_PASSWORD) == 429  # the name is locked …
    assert _Browser(base, "127.0.0.23").log_in(name, OFFICER_PASSWORD) == 429  # … for a new browser too
    assert pc.log_in(name, OFFICER_PASSWORD) == 303  # but not at her own PC
    # her PC's cookie in a thief's hands: five wrong passwords lock that device as well
    thief = _Browser(base, "127.0.0.24")
    thief.cookies = {k: v for k, v in pc.cookies.items() if k.startswith("xephang_device_")}
    assert [thief.log_in(name, f"doan-{i}") for i in range(5)] == [401] * 5
    assert thief.log_in(name, OFFICER_PASSWORD) == 429
    # a cookie signed for another name, or forged, is just no cookie
    forged = _Browser(base, "127.0.0.25")
    forged.cookies = {f"xephang_device_{name}": f"{name}|abc.AAAAAAAAAAAAAAAAAAAAAA"}
    assert forged.log_in(name, OFFICER_PASSWORD) == 429


def test_a_websocket_upgrade_does_not_use_up_an_addresss_connections(centre):
    """webd serves no websockets. With a websocket library installed, uvicorn handed an upgrade to
    another protocol and the connection's count per address was never taken back: 64 upgrade
    attempts shut their address out until a restart. Now an upgrade is a plain request."""
    from webd import server

    for _ in range(server.PER_ADDRESS + 6):
        s = _socket_from("127.0.0.41", centre.base)
        s.sendall(b"GET /counter HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        s.recv(64)
        s.close()
    wait_for(lambda: server._open.get("127.0.0.41", 0) == 0, 5, "every count taken back")
    s = _socket_from("127.0.0.41", centre.base)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert s.recv(64).startswith(b"HTTP/1.1 200")
    s.close()


@pytest.mark.parametrize("name", ["bob\n", "truong\n", "a\nb"])
def test_a_user_name_ending_in_a_newline_is_refused(tmp_path, name) -> None:
    """`^…$` matched before a final newline: `bob\\n` was an account, and its name a cookie's."""
    from webd.auth import AccountError, Accounts

    accounts = Accounts(tmp_path / "accounts.json")
    with pytest.raises(AccountError):
        accounts.set(name, "head", "a long enough password")
    accounts.set("bob", "head", "a long enough password")
    assert accounts.verify(name, "a long enough password") is None and accounts.verify("bob", "a long enough password")
