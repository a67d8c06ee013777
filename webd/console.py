"""The officer's console: the counter's call box in a browser on the counter PC.

Pages are rendered here from the latest ``Snapshot`` (the hub's retained counter state, and
the waiting tickets webd saw issued today). Every action is one form with the session's CSRF
token and a request id made for that click (``rid``): a double click or a retry of the same
click sends the same id, and the hub acts once per id. What the hub answered is turned into a
short sentence here (``result_text``), Vietnamese first.

Who may act for which counter is decided twice, never by the page: webd lets an officer's
session act only for the counters whose retained state names that officer (``officer_id``),
and the hub acts only when its site seats that officer at that counter (``hubd.main.may_act``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from webd.live import LiveTicket, Snapshot
from webd.pages import _counter_label, _service_name, e, t
from xephang.contract import CONSOLE_ACTIONS, CounterState
from xephang.site import Site

RID_CHARS = 40
PAUSE_REASONS = (("Nghỉ giải lao", "Break"), ("Họp", "Meeting"), ("Hỗ trợ công dân ngoài quầy", "Helping a citizen elsewhere"),
                 ("Sự cố thiết bị", "Equipment problem"))
CALL_REASONS = (("Người cao tuổi", "Elderly citizen"), ("Người khuyết tật", "Citizen with a disability"),
                ("Phụ nữ mang thai", "Pregnant woman"), ("Hồ sơ bổ sung theo hẹn", "Documents by appointment"))
WAITING_SHOWN = 30  # per service at most; the rest is counted

T: dict[str, tuple[str, str]] = {
    "console": ("Quầy của tôi", "My counter"),
    "not_seated": ("Hôm nay bạn chưa được xếp ngồi quầy nào. Vui lòng liên hệ trưởng bộ phận.",
                   "You are not seated at any counter today. Please ask the head of the centre."),
    "choose_counter": ("Chọn quầy", "Choose a counter"),
    "not_yours": ("Bạn không được thao tác cho quầy này.", "You may not act for this counter."),
    "now_serving": ("Đang phục vụ", "Now serving"),
    "nobody": ("Chưa gọi ai", "Nobody called"),
    "call_next": ("Gọi số tiếp theo", "Call next"),
    "recall": ("Gọi lại", "Recall"),
    "arrived": ("Công dân đã đến", "Citizen arrived"),
    "finish": ("Hoàn thành", "Finish"),
    "no_show": ("Vắng mặt", "No-show"),
    "pause": ("Tạm dừng", "Pause"),
    "resume": ("Tiếp tục", "Resume"),
    "transfer": ("Chuyển lĩnh vực", "Transfer"),
    "to_service": ("Chuyển sang", "To"),
    "reason": ("Lý do", "Reason"),
    "reason_first": ("Hãy ghi lý do gọi số này trước thứ tự (ví dụ: Người cao tuổi).",
                     "Write why this number is called out of order first (e.g. Elderly citizen)."),
    "call_this": ("Gọi số này", "Call this number"),
    "waiting_list": ("Danh sách chờ", "Waiting"),
    "number": ("Số", "Number"),
    "taken": ("Lấy số lúc", "Taken at"),
    "waited": ("Đã chờ", "Waited"),
    "priority": ("Ưu tiên", "Priority"),
    "none_waiting": ("Không có ai đang chờ.", "Nobody is waiting."),
    "more_waiting": ("… và {n} số khác", "… and {n} more"),
    "unseen": ("{n} số lấy trước khi trang này khởi động không có trong danh sách (vẫn được gọi theo thứ tự).",
               "{n} numbers taken before this page started are not listed (they are still called in order)."),
    "order_note": ("Thứ tự gọi thật do máy chủ quyết định (ưu tiên, chờ quá lâu).",
                   "The server decides the real call order (priority, overdue waits)."),
    "tl_issued": ("Lấy số", "Taken"),
    "tl_called": ("Gọi", "Called"),
    "tl_first_called": ("Gọi lần đầu", "First called"),
    "tl_called_here": ("Gọi đến quầy này", "Called to this counter"),
    "tl_recalled": ("Gọi lại {n} lần", "Recalled {n}×"),
    "tl_arrived": ("Đến quầy", "Arrived"),
    "tl_walk": ("đi {m}", "walk {m}"),
    "tl_out_of_order": ("Gọi ngoài thứ tự: {r}", "Called out of order: {r}"),
    "tl_no_arrival": ("Chưa ghi nhận công dân đến", "Arrival not recorded yet"),
    "state_paused": ("Tạm dừng", "Paused"),
    "state_open": ("Đang mở", "Open"),
    "state_closed": ("Đóng", "Closed"),
    # answers
    "ok": ("Đã thực hiện.", "Done."),
    "ok_call": ("Đã gọi số {d}.", "Called {d}."),
    "ok_empty": ("Không còn ai đang chờ.", "Nobody is waiting."),
    "ok_finish": ("Đã hoàn thành số {d}. Mời công dân đánh giá.", "{d} finished. The citizen may rate now."),
    "ok_arrived": ("Đã ghi nhận công dân số {d} đến quầy.", "{d} arrived at the counter."),
    "ok_recall": ("Đã gọi lại số {d} (lần {n}).", "Called {d} again (recall {n})."),
    "ok_no_show": ("Số {d} vắng mặt.", "{d} marked absent."),
    "ok_no_show_requeued": ("Số {d} vắng mặt: đã đưa về cuối hàng chờ, sẽ được gọi lại sau.",
                            "{d} absent: sent to the back of the queue, to be called again later."),
    "ok_transfer": ("Đã chuyển số {d} sang {s}.", "{d} transferred to {s}."),
    "ok_pause": ("Quầy đã tạm dừng.", "The counter is paused."),
    "ok_resume": ("Quầy đã mở lại.", "The counter is open again."),
    "ok_finished_too": ("Số {d} đang phục vụ đã được tính là xong vì chưa bấm Hoàn thành.",
                        "{d}, being served, counts as finished (Finish was not pressed)."),
    "pause_while_serving": ("Tạm dừng khi đang phục vụ sẽ tính công dân này là đã xong.",
                            "Pausing now counts the citizen being served as finished."),
    "ok_already": ("Đã ghi nhận đến quầy từ trước.", "The arrival was already recorded."),
    "unreachable": ("Không kết nối được máy chủ hàng đợi: chưa gửi gì, chưa thực hiện gì.",
                    "No connection to the queue server: nothing was sent, nothing was done."),
    "timeout": ("Máy chủ hàng đợi không trả lời: thao tác này sẽ không được thực hiện về sau. "
                "Xem trạng thái quầy ở trên trước khi bấm lại.",
                "The queue server did not answer: this click will not be acted on later. "
                "Check the counter's state above before trying again."),
    "web_unreachable": ("Trang không liên lạc được với máy chủ web. Nếu thao tác đã đi, nó chỉ có thể được thực hiện "
                        "trong vài giây tới; xem trạng thái quầy trước khi bấm lại.",
                        "The page cannot reach the web server. If the click got through, it can only be acted on in "
                        "the next few seconds; check the counter's state before trying again."),
    "refused": ("Không thực hiện: {m}", "Not done: {m}"),
    "bad_input": ("Thông tin chưa hợp lệ: {m}", "Not valid: {m}"),
}

# the hub's error codes in words (anything else: its own message)
CODES: dict[str, tuple[str, str]] = {
    "not-serving": ("quầy chưa gọi ai.", "the counter is not serving anyone."),
    "not-waiting": ("số này không còn chờ.", "that number is no longer waiting."),
    "not-served-here": ("quầy không phục vụ lĩnh vực của số này.", "this counter does not serve that number's service."),
    "reason-required": ("cần ghi lý do.", "a reason is needed."),
    "forbidden": ("bạn không được xếp ngồi quầy này.", "you are not seated at this counter."),
    "same-service": ("số này đã ở lĩnh vực đó.", "the number is already in that service."),
    "unknown-service": ("không có lĩnh vực này.", "no such service."),
    "no-counter": ("không quầy nào gọi lĩnh vực này, nên không chuyển được.",
                   "no counter calls that service, so nothing can be sent there."),
    "expired": ("yêu cầu đến quá muộn nên không thực hiện.", "the request came too late and was not done."),
    "recall-limit": ("đã gọi lại số này nhiều lần; nếu công dân không đến, bấm Vắng mặt.",
                     "this number has been recalled many times; if the citizen does not come, press No-show."),
    "transfer-limit": ("số này đã được chuyển quá nhiều lần; hãy phục vụ tại đây hoặc bấm Vắng mặt.",
                       "this number has been transferred too many times; serve it here or press No-show."),
    "rate-limited": ("quầy bấm quá nhiều lần liên tiếp; chờ ít giây rồi bấm lại.",
                     "too many presses at this counter in a row; wait a few seconds and press again."),
}


def tr(key: str, lang: str, **kw: object) -> str:
    vi, en = T[key]
    return (en if lang == "en" else vi).format(**kw)


@dataclass(frozen=True)
class ActResult:
    """What one click came to: ``ok``; ``code`` is the hub's error code, ``unreachable`` or
    ``timeout``; ``text`` the sentence the officer reads."""

    ok: bool
    code: str
    text: str
    rev: int | None = None


def new_rid() -> str:
    return secrets.token_urlsafe(18)[:RID_CHARS]


def valid_rid(rid: str) -> bool:
    return 8 <= len(rid) <= RID_CHARS and rid.isascii() and all(c.isalnum() or c in "-_" for c in rid)


def counters_of(snap: Snapshot, site: Site, officer: str) -> list[int]:
    """The counters this officer may act for now: the hub's retained counter states (which follow
    a roster pushed today) when webd has them, else the site file."""
    if snap.counters:
        return [c.number for c in snap.counters if c.officer_id == officer]
    return site.counters_of(officer)


def _hm(ts: float | None, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M") if ts else "—"


def _dur(seconds: float, lang: str) -> str:
    m = max(0, round(seconds / 60))
    return f"{m} {'min' if lang == 'en' else 'phút'}"


def _state(c: CounterState, lang: str) -> str:
    return tr(f"state_{c.state}", lang) + (f" — {c.pause_reason}" if c.state == "paused" and c.pause_reason else "")


def _form(n: int, csrf: str, action: str, label: str, *, inner: str = "", cls: str = "", disabled: bool = False) -> str:
    assert action in CONSOLE_ACTIONS
    return (f'<form method="post" action="/counter/{n}/act" class="act {cls}" data-action="{e(action)}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="rid" value="{new_rid()}">'
            f'<input type="hidden" name="action" value="{e(action)}">{inner}'
            f'<button type="submit" id="btn-{e(action)}"{" disabled" if disabled else ""}>{e(label)}</button></form>')


def _reasons(options: tuple[tuple[str, str], ...], lang: str, list_id: str) -> str:
    return f'<datalist id="{list_id}">' + "".join(
        f'<option value="{e(en if lang == "en" else vi)}">' for vi, en in options) + "</datalist>"


def console_fragment(snap: Snapshot, site: Site, n: int, lang: str, csrf: str, now: float) -> str:
    """The live part of the console for counter ``n``: state, the current visit's timeline,
    the actions that make sense now, and the waiting list of the counter's services."""
    tz = ZoneInfo(site.site.timezone)
    c = snap.counter(n)
    if c is None:
        return f'<div class="banner wait">{e(t("syncing", lang))}</div>'
    warn = "" if snap.synced else f'<div class="banner wait">{e(t("hub_offline", lang))}</div>'
    head = (f'<div class="console-head" data-state="{e(c.state)}"><h1>{e(_counter_label(site, n, lang))}'
            f' — {e(c.officer or "—")}</h1><span class="cstate" id="counter-state">{e(_state(c, lang))}</span></div>')
    serving = c.serving
    if serving is None:
        current = (f'<div class="current" id="current"><span class="muted">{e(tr("now_serving", lang))}</span>'
                   f'<span class="big" id="current-number">—</span><span>{e(tr("nobody", lang))}</span></div>')
    else:
        steps = [f'<li>{e(tr("tl_issued", lang))} {_hm(serving.issued_at, tz)}</li>']
        called = c.visit_called_at or serving.called_at
        first = serving.called_at or called
        if first:  # the wait as the report counts it: the first call − the ticket taken
            waited = f' ({e(tr("waited", lang).lower())} {_dur(first - serving.issued_at, lang)})'
            if called and called != first:  # sent on or back, called again here
                steps.append(f'<li>{e(tr("tl_first_called", lang))} {_hm(first, tz)}{waited}</li>')
                steps.append(f'<li>{e(tr("tl_called_here", lang))} {_hm(called, tz)}</li>')
            else:
                steps.append(f'<li>{e(tr("tl_called", lang))} {_hm(first, tz)}{waited}</li>')
        if c.call_reason:
            steps.append(f'<li class="exception">{e(tr("tl_out_of_order", lang, r=c.call_reason))}</li>')
        if serving.recalls:
            steps.append(f'<li>{e(tr("tl_recalled", lang, n=serving.recalls))}</li>')
        if c.arrived_at:
            walk = _dur(c.arrived_at - called, lang) if called else ""
            steps.append(f'<li id="tl-arrived">{e(tr("tl_arrived", lang))} {_hm(c.arrived_at, tz)}'
                         f'{" (" + e(tr("tl_walk", lang, m=walk)) + ")" if walk else ""}</li>')
        else:
            steps.append(f'<li class="muted">{e(tr("tl_no_arrival", lang))}</li>')
        current = (f'<div class="current" id="current"><span class="muted">{e(tr("now_serving", lang))}</span>'
                   f'<span class="big" id="current-number">{e(serving.display)}</span>'
                   f'<span>{e(_service_name(site, serving.service, lang))}</span>'
                   f'<ol class="timeline" id="timeline">{"".join(steps)}</ol></div>')
    busy = serving is not None
    acts = [_form(n, csrf, "call-next", tr("call_next", lang), cls="primary")]
    acts.append(_form(n, csrf, "recall", tr("recall", lang), disabled=not busy))
    acts.append(_form(n, csrf, "arrived", tr("arrived", lang), disabled=not busy or bool(c.arrived_at)))
    acts.append(_form(n, csrf, "finish", tr("finish", lang), cls="primary", disabled=not busy))
    acts.append(_form(n, csrf, "no-show", tr("no_show", lang), disabled=not busy))
    others = [s for s in site.services if not serving or s.id != serving.service]
    opts = "".join(f'<option value="{e(s.id)}">{e(s.label(lang))}</option>' for s in others)
    acts.append(_form(n, csrf, "transfer", tr("transfer", lang), disabled=not busy,
                      inner=f'<label>{e(tr("to_service", lang))}<select name="to_service">{opts}</select></label>'))
    if c.state == "paused":
        acts.append(_form(n, csrf, "resume", tr("resume", lang), cls="primary"))
    else:
        acts.append(_form(n, csrf, "pause", tr("pause", lang), inner=(
            f'<label>{e(tr("reason", lang))}<input name="reason" maxlength="80" list="pause-reasons" '
            f'value="{e(PAUSE_REASONS[0][1] if lang == "en" else PAUSE_REASONS[0][0])}"></label>'
            + (f'<small class="muted">{e(tr("pause_while_serving", lang))}</small>' if busy else ""))))
    lists = []
    for sid in c.services:
        ws = snap.waiting_in(sid)
        rows = []
        for tk in ws[:WAITING_SHOWN]:
            rows.append(_waiting_row(n, csrf, tk, lang, tz, now))
        svc = snap.service(sid)
        unseen = max(0, (svc.waiting if svc else 0) - len(ws))
        more = f'<p class="muted">{e(tr("more_waiting", lang, n=len(ws) - WAITING_SHOWN))}</p>' if len(ws) > WAITING_SHOWN else ""
        if unseen:
            more += f'<p class="muted">{e(tr("unseen", lang, n=unseen))}</p>'
        table = (f'<div class="scroll"><table class="waiting" data-service="{e(sid)}"><thead><tr>'
                 f'<th>{e(tr("number", lang))}</th><th>{e(tr("taken", lang))}</th><th>{e(tr("waited", lang))}</th>'
                 f'<th>{e(tr("priority", lang))}</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
                 if rows
                 else f'<p class="muted">{e(tr("none_waiting", lang))}</p>')
        lists.append(f'<h3>{e(_service_name(site, sid, lang))} ({svc.waiting if svc else len(ws)})</h3>{table}{more}')
    return (f'{warn}{head}{current}<div class="actions" id="actions">{"".join(acts)}</div>'
            f'{_reasons(PAUSE_REASONS, lang, "pause-reasons")}{_reasons(CALL_REASONS, lang, "call-reasons")}'
            f'<h2>{e(tr("waiting_list", lang))}</h2><p class="muted">{e(tr("order_note", lang))}</p>{"".join(lists)}')


def _waiting_row(n: int, csrf: str, tk: LiveTicket, lang: str, tz: ZoneInfo, now: float) -> str:
    call = _form(n, csrf, "call-ticket", tr("call_this", lang), cls="call-this", inner=(
        f'<input type="hidden" name="ticket_id" value="{tk.id}">'
        f'<input name="reason" maxlength="80" required list="call-reasons" placeholder="{e(tr("reason", lang))}" '
        f'data-missing="{e(tr("reason_first", lang))}" '
        f'aria-label="{e(tr("reason", lang))}">'))
    prio = e(tk.priority_group or "✓") if tk.priority else ""
    return (f'<tr data-ticket="{tk.id}"><td class="big">{e(tk.display)}</td><td>{_hm(tk.issued_at, tz)}</td>'
            f'<td class="n">{_dur(now - tk.issued_at, lang)}</td><td>{prio}</td><td>{call}</td></tr>')


def choose_page_body(numbers: list[int], site: Site, lang: str) -> str:
    if not numbers:
        return f'<div class="banner warn" id="not-seated">{e(tr("not_seated", lang))}</div>'
    links = "".join(f'<li><a href="/counter/{n}">{e(_counter_label(site, n, lang))}</a></li>' for n in numbers)
    return f'<h1>{e(tr("choose_counter", lang))}</h1><ul class="menu">{links}</ul>'


def result_text(action: str, status: str, code: str, message: str, data: dict[str, object], lang: str,
                site: Site | None = None) -> str:
    """The hub's answer to one click, in a sentence or two naming what was done: a call or a pause
    that ended the service of the citizen at the counter says so (it counts as served, inferred; the
    answer was "Đã thực hiện." and the officer never learnt it)."""
    if status == "ok":
        tk = data.get("ticket") if isinstance(data.get("ticket"), dict) else None
        d = str(tk.get("display", "")) if tk else ""  # type: ignore[union-attr]
        fin = data.get("finished") if isinstance(data.get("finished"), dict) else None
        fin_tk = fin.get("ticket") if fin and isinstance(fin.get("ticket"), dict) else None  # type: ignore[union-attr]
        also = (" " + tr("ok_finished_too", lang, d=str(fin_tk.get("display", "")))) if fin_tk else ""
        if action in ("call-next", "call-ticket"):
            return (tr("ok_empty", lang) if tk is None else tr("ok_call", lang, d=d)) + also
        if action == "finish":
            return tr("ok_finish", lang, d=d)
        if action == "arrived":
            return tr("ok_already", lang) if data.get("already") else tr("ok_arrived", lang, d=d)
        if action == "recall" and tk:
            return tr("ok_recall", lang, d=d, n=data.get("recalls", "?"))
        if action == "no-show" and tk:
            return tr("ok_no_show_requeued" if data.get("requeued") else "ok_no_show", lang, d=d)
        if action == "transfer" and tk:
            sid = str(tk.get("service", ""))  # type: ignore[union-attr]
            return tr("ok_transfer", lang, d=d, s=_service_name(site, sid, lang) if site is not None else sid)
        if action == "pause":
            return tr("ok_pause", lang) + also
        if action == "resume":
            return tr("ok_resume", lang)
        return tr("ok", lang)
    if code in ("unreachable", "timeout"):
        return tr(code, lang)
    words = CODES.get(code)
    return tr("refused", lang, m=(words[1] if lang == "en" else words[0]) if words else message or code)
