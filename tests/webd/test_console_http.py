"""The officer's console over real HTTP, against a real mosquitto, the real hub and webd.

Stories from the counter PC: an officer logs in and lands on their counter; a double click
calls once; a number is called out of order with a reason; "citizen arrived" then Finish gives
the report its walk and service times; a click while the hub or the broker is away is answered
"not done" and never done later; counter 3's officer cannot drive counter 2 — not through
webd, and not even with the web account's own MQTT password.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from webharness import HEAD_PASSWORD, HEAD_USER, OFFICER_PASSWORD, SITE, http_get, login, post_form, wait_for

from xephang.bus import Bus
from xephang.contract import CallNext, ReportRequest, new_request_id
from xephang.settings import BrokerSettings

pytestmark = [pytest.mark.broker]

JSON = {"x-requested-with": "xephang"}


class Events:
    """The hall's events as the board would see them (a technician's subscription)."""

    def __init__(self, centre) -> None:
        self.got: list[dict] = []
        self.lock = threading.Lock()
        centre.tech.subscribe(centre.tech.topics.all_events(), self._on)
        self.centre = centre

    def _on(self, msg) -> None:
        with self.lock:
            self.got.append(json.loads(msg.payload))

    def pump_until(self, cond, timeout: float = 10.0, what: str = "events") -> None:
        def step() -> bool:
            self.centre.tech.process(timeout=0.02)
            return bool(cond())
        wait_for(step, timeout, what)

    def kinds(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for e in self.got if e.get("kind") == kind]


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]  # type: ignore[index]


def _console(centre, cookie: str, n: int) -> str:
    st, body, _ = http_get(f"{centre.base}/counter/{n}", headers={"Cookie": cookie})
    assert st == 200, st
    return body.decode()


def _act(centre, cookie: str, n: int, action: str, csrf: str, rid: str | None = None, **fields: str) -> tuple[int, dict]:
    data = {"csrf": csrf, "action": action, "rid": rid or new_request_id()[:32], **fields}
    st, body, _ = post_form(f"{centre.base}/counter/{n}/act", data, cookie, headers=JSON)
    return st, json.loads(body)


def _officer(centre, user: str) -> tuple[str, str]:
    cookie, where = login(centre.base, user, OFFICER_PASSWORD)
    assert where == "/counter"
    st, _, h = http_get(centre.base + "/counter", headers={"Cookie": cookie})
    assert st == 303
    n = int(h["location"].rsplit("/", 1)[1])
    page = _console(centre, cookie, n)
    return cookie, _csrf(page)


def test_an_officer_lands_on_their_counter_and_only_there(centre):
    lan, csrf = _officer(centre, "lan")
    page = _console(centre, lan, 1)
    assert "Quầy 1 — Nguyễn Thị Lan" in page and "Gọi số tiếp theo" in page
    assert http_get(centre.base + "/counter/2", headers={"Cookie": lan})[0] == 403
    assert http_get(centre.base + "/counter/2/events", headers={"Cookie": lan})[0] == 403
    st, _, h = http_get(centre.base + "/head", headers={"Cookie": lan})
    assert st == 303 and h["location"] == "/counter"  # the head's pages are not an officer's
    head, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)
    assert http_get(centre.base + "/counter/1", headers={"Cookie": head})[0] == 403  # nor the console the head's


def test_counter_3s_session_cannot_drive_counter_2_through_webd_or_the_broker(centre):
    ev = Events(centre)
    centre.issue("chung-thuc")
    tuan, csrf = _officer(centre, "tuan")
    st, ans = _act(centre, tuan, 2, "call-next", csrf)
    assert st == 403 and ans["ok"] is False
    # a forged form (no token, or another session's) is refused before anything is asked
    lan, lan_csrf = _officer(centre, "lan")
    assert _act(centre, tuan, 3, "call-next", lan_csrf)[0] == 403
    # the web account's own MQTT password, speaking for tuan at counter 2: the hub refuses
    web = Bus(site=SITE, node="web", role="web", broker=BrokerSettings(port=centre.mosquitto.port))
    web.start()
    try:
        assert web.wait_connected(10)
        for officer in ("tuan", None):
            r = web.request_sync(CallNext(request_id=new_request_id(), source="web", counter=2, officer=officer),
                                 timeout_s=3, attempts=1)
            assert r is not None and r.status == "error" and r.error.code == "forbidden", r
    finally:
        web.stop()
    time.sleep(0)  # nothing to wait for: a call would have been an event before the refusal reply
    ev.pump_until(lambda: True, 1)
    assert ev.kinds("called") == []
    assert centre.web.web.snapshot.counter(2).serving is None


def test_a_double_click_calls_once_and_both_clicks_hear_the_same_answer(centre):
    ev = Events(centre)
    first = centre.issue("ho-tich")["ticket"]
    centre.issue("ho-tich")
    lan, csrf = _officer(centre, "lan")
    rid = "click-" + new_request_id()[:20]
    answers: list[tuple[int, dict]] = []
    clicks = [threading.Thread(target=lambda: answers.append(_act(centre, lan, 1, "call-next", csrf, rid)))
              for _ in range(2)]
    for c in clicks:
        c.start()
    for c in clicks:
        c.join(20)
    assert [a[0] for a in answers] == [200, 200]
    assert answers[0][1] == answers[1][1] and answers[0][1]["ok"] is True
    assert answers[0][1]["text"] == f"Đã gọi số {first['display']}."
    ev.pump_until(lambda: ev.kinds("called"), what="the call")
    ev.pump_until(lambda: True, 1)
    assert [e["ticket"]["display"] for e in ev.kinds("called")] == [first["display"]]  # one call, not two
    # the same click again later (a browser retrying the POST) is still that one call
    assert _act(centre, lan, 1, "call-next", csrf, rid)[1] == answers[0][1]
    wait_for(lambda: (c := centre.web.web.snapshot.counter(1)) and c.serving and c.serving.id == first["id"], 10,
             "counter 1 serving the first ticket on the console's model")


def test_call_a_number_out_of_order_then_arrived_then_finish_reaches_the_report(centre):
    ev = Events(centre)
    a = centre.issue("ho-tich")["ticket"]
    b = centre.issue("ho-tich")["ticket"]
    lan, csrf = _officer(centre, "lan")
    wait_for(lambda: f'data-ticket="{b["id"]}"' in _console(centre, lan, 1), 10, "B on the waiting list")
    st, ans = _act(centre, lan, 1, "call-ticket", csrf, ticket_id=str(b["id"]), reason="")
    assert st == 400 and ans["text"] == "Thông tin chưa hợp lệ: reason: cần ít nhất 1 ký tự"  # said; nothing asked
    st, ans = _act(centre, lan, 1, "call-ticket", csrf, ticket_id=str(b["id"]), reason="x" * 81)
    assert st == 400 and ans["text"] == "Thông tin chưa hợp lệ: reason: tối đa 80 ký tự"
    st, ans = _act(centre, lan, 1, "call-ticket", csrf, ticket_id=str(b["id"]), reason="Người cao tuổi")
    assert ans == {"ok": True, "code": "", "text": f"Đã gọi số {b['display']}.", "rev": ans["rev"]}
    ev.pump_until(lambda: ev.kinds("called"))
    (called,) = ev.kinds("called")
    assert called["ticket"]["id"] == b["id"] and called["out_of_order"] is True and called["reason"] == "Người cao tuổi"
    wait_for(lambda: "Gọi ngoài thứ tự: Người cao tuổi" in (p := _console(centre, lan, 1))
             and "Chưa ghi nhận công dân đến" in p, 10, "the visit's timeline on the console")
    assert _act(centre, lan, 1, "arrived", csrf)[1]["text"] == f"Đã ghi nhận công dân số {b['display']} đến quầy."
    assert _act(centre, lan, 1, "arrived", csrf)[1]["text"] == "Đã ghi nhận đến quầy từ trước."
    assert _act(centre, lan, 1, "finish", csrf)[1]["ok"] is True
    ev.pump_until(lambda: ev.kinds("finished"))
    (arrived,) = ev.kinds("arrived")
    (finished,) = ev.kinds("finished")
    r = centre.ask(ReportRequest(request_id=new_request_id(), source="tech", period="today"))
    t = r.data["totals"]
    assert t["walk"]["n"] == 1 and t["walk"]["mean"] == pytest.approx(arrived["at"] - called["at"], abs=0.051)  # the report rounds to 0.1 s
    assert t["service_from_arrival"]["mean"] == pytest.approx(finished["at"] - arrived["at"], abs=0.051)  # the report rounds to 0.1 s
    assert t["service_time"]["mean"] == pytest.approx(finished["at"] - called["at"], abs=0.051)  # the report rounds to 0.1 s
    assert (t["out_of_order_calls"], t["no_arrival"]) == (1, 0)
    assert a["id"] != b["id"]  # A still waits: the exception did not move the call order


def test_every_answer_names_what_was_done_and_a_pause_that_ends_a_service_says_so(centre):
    """Transfer, pause and resume answered "Đã thực hiện." and a pause (or a call) while serving
    closed the citizen at the counter as served (inferred) without a word (a newcomer's walk):
    each answer now names the number and what happened to it."""
    a = centre.issue("ho-tich")["ticket"]
    b = centre.issue("ho-tich")["ticket"]
    c = centre.issue("ho-tich")["ticket"]
    lan, csrf = _officer(centre, "lan")
    wait_for(lambda: f'data-ticket="{c["id"]}"' in _console(centre, lan, 1), 10, "the waiting list")
    assert "Tạm dừng khi đang phục vụ" not in _console(centre, lan, 1)
    assert _act(centre, lan, 1, "call-next", csrf)[1]["text"] == f"Đã gọi số {a['display']}."
    wait_for(lambda: "Tạm dừng khi đang phục vụ sẽ tính công dân này là đã xong." in _console(centre, lan, 1), 10,
             "the pause button's warning while a citizen is served")
    assert _act(centre, lan, 1, "recall", csrf)[1]["text"] == f"Đã gọi lại số {a['display']} (lần 1)."
    assert _act(centre, lan, 1, "transfer", csrf, to_service="dat-dai")[1]["text"] == \
        f"Đã chuyển số {a['display']} sang Đất đai."
    assert _act(centre, lan, 1, "call-next", csrf)[1]["text"] == f"Đã gọi số {b['display']}."
    assert _act(centre, lan, 1, "no-show", csrf)[1]["text"] == \
        f"Số {b['display']} vắng mặt: đã đưa về cuối hàng chờ, sẽ được gọi lại sau."
    assert _act(centre, lan, 1, "call-next", csrf)[1]["text"] == f"Đã gọi số {c['display']}."
    assert _act(centre, lan, 1, "pause", csrf, reason="Họp")[1]["text"] == \
        f"Quầy đã tạm dừng. Số {c['display']} đang phục vụ đã được tính là xong vì chưa bấm Hoàn thành."
    assert _act(centre, lan, 1, "resume", csrf)[1]["text"] == "Quầy đã mở lại."
    st, ans = _act(centre, lan, 1, "call-next", csrf)
    assert ans["text"] == f"Đã gọi số {b['display']}."  # the one sent back
    st, ans = _act(centre, lan, 1, "call-next", csrf)
    assert ans["text"] == f"Không còn ai đang chờ. Số {b['display']} đang phục vụ đã được tính là xong vì chưa bấm " \
        "Hoàn thành."
    en = login(centre.base, "hung", OFFICER_PASSWORD)[0]
    csrf_en = _csrf(http_get(f"{centre.base}/counter/2?lang=en", headers={"Cookie": en})[1].decode())
    st, body, _ = post_form(f"{centre.base}/counter/2/act?lang=en", {"csrf": csrf_en, "action": "pause", "reason": "x",
                                                                      "rid": "r" * 12}, en,
                            headers={**JSON, "Cookie": en + "; lang=en"})
    assert json.loads(body)["text"] == "The counter is paused.", body


def test_a_citizen_sent_on_and_called_again_shows_the_first_wait_as_the_report_counts_it(centre):
    """The timeline's 'đã chờ' is the report's wait (the first call − the ticket taken); a call after a
    transfer is named apart, so a visit's service elsewhere is never counted as waiting."""
    a = centre.issue("ho-tich")["ticket"]
    lan, csrf = _officer(centre, "lan")
    assert _act(centre, lan, 1, "call-next", csrf)[1]["ok"] is True
    wait_for(lambda: "(đã chờ" in _console(centre, lan, 1), 10, "the first call on the timeline")
    assert "Gọi lần đầu" not in _console(centre, lan, 1)
    assert _act(centre, lan, 1, "transfer", csrf, to_service="chung-thuc")[1]["ok"] is True
    assert _act(centre, lan, 1, "call-next", csrf)[1]["ok"] is True  # counter 1 serves chứng thực too
    wait_for(lambda: "Gọi đến quầy này" in _console(centre, lan, 1), 10, "the second call")
    p = _console(centre, lan, 1)
    timeline = p.split('id="timeline"', 1)[1].split("</ol>", 1)[0]
    assert f'id="current-number">{a["display"]}' in p
    assert timeline.count("đã chờ") == 1 and "Gọi lần đầu" in timeline.split("đã chờ")[0]


def test_a_click_while_the_hub_is_away_is_not_done_now_and_never_later(centre):
    ev = Events(centre)
    centre.issue("ho-tich")
    lan, csrf = _officer(centre, "lan")
    centre.stop_hub()
    t0 = time.monotonic()
    st, ans = _act(centre, lan, 1, "call-next", csrf)
    assert st == 200 and ans["ok"] is False and ans["code"] == "timeout"
    assert "sẽ không được thực hiện về sau" in ans["text"]
    assert time.monotonic() - t0 >= 6.0  # answered only once the hub would refuse it anyway
    centre.start_hub()  # the request may still be queued for the hub: it must not act on it now
    wait_for(lambda: http_get(centre.base + "/healthz")[0] == 200, 20, "the hub back")
    ev.pump_until(lambda: True, 2)
    assert ev.kinds("called") == []
    assert centre.web.web.snapshot.counter(1).serving is None


def test_a_click_while_the_broker_restarts_is_sent_once_or_not_at_all(centre):
    ev = Events(centre)
    first = centre.issue("ho-tich")["ticket"]
    lan, csrf = _officer(centre, "lan")
    centre.mosquitto.stop()
    wait_for(lambda: not centre.web.bus.connected.is_set(), 10, "webd sees the broker gone")
    st, ans = _act(centre, lan, 1, "call-next", csrf)
    assert ans["code"] == "unreachable" and "chưa gửi gì" in ans["text"]  # nothing sent, at once
    centre.mosquitto.start()
    wait_for(lambda: http_get(centre.base + "/healthz")[0] == 200, 30, "webd synced again")
    assert centre.tech.wait_connected(20)
    st, ans = _act(centre, lan, 1, "call-next", csrf)
    assert ans["ok"] is True, ans
    ev.pump_until(lambda: ev.kinds("called"))
    ev.pump_until(lambda: True, 1)
    assert [e["ticket"]["id"] for e in ev.kinds("called")] == [first["id"]]
