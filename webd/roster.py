"""The head's roster page: who sits at which counter today, and which services it calls, in order.

The page reads the hub's live site (its retained ``config/hub/state``) and sends the change as
the web account's config push (``R/config/hub/set/web``): only ``counters[].officer_id``,
``officer`` and ``services``, keyed by counter number. The hub validates the whole site,
refuses what cannot apply to today's open queue (docs/config.md) and answers with its ack;
this module only turns the form into that push and the answer into sentences.
"""

from __future__ import annotations

from webd.pages import e
from xephang.site import Site

T: dict[str, tuple[str, str]] = {
    "roster": ("Phân công quầy hôm nay", "Today's counters"),
    "intro": ("Chọn cán bộ ngồi mỗi quầy và các lĩnh vực quầy gọi, theo thứ tự ưu tiên. Thay đổi áp dụng ngay, "
              "hàng đợi giữ nguyên; báo cáo ghi lượt phục vụ cho cán bộ đã phục vụ lúc đó.",
              "Choose who sits at each counter and the services it calls, first = preferred. Changes apply at "
              "once and the queue stays as it is; reports credit each visit to the officer who served it then."),
    "counter": ("Quầy", "Counter"),
    "officer": ("Cán bộ", "Officer"),
    "services": ("Lĩnh vực (theo thứ tự)", "Services (in order)"),
    "nobody": ("— chưa phân công —", "— nobody —"),
    "none": ("—", "—"),
    "save": ("Áp dụng", "Apply"),
    "applied": ("Đã áp dụng (phiên bản {rev}).", "Applied (version {rev})."),
    "unchanged": ("Không có gì thay đổi: phân công này đang được dùng (phiên bản {rev}).",
                  "Nothing changed: this roster is the one in use (version {rev})."),
    "version": ("Phiên bản cấu hình của máy chủ: {rev}", "The server's config version: {rev}"),
    "no_site": ("Chưa nhận được cấu hình từ máy chủ hàng đợi: chưa thể thay đổi phân công.",
                "No config from the queue server yet: the roster cannot be changed now."),
    "no_answer": ("Máy chủ hàng đợi không trả lời: chưa biết thay đổi đã áp dụng hay chưa. Tải lại trang để xem.",
                  "The queue server did not answer: reload the page to see whether the change applied."),
    "stale": ("Cấu hình vừa được người khác thay đổi. Trang đã tải lại bản mới nhất: vui lòng chọn lại.",
              "Someone changed the config meanwhile. This page shows the latest one: please choose again."),
    "unreachable": ("Không kết nối được máy chủ hàng đợi: chưa gửi gì.", "No connection to the queue server: nothing was sent."),
    "refused": ("Máy chủ hàng đợi không áp dụng thay đổi:", "The queue server refused the change:"),
    "bad_form": ("Biểu mẫu không hợp lệ, vui lòng tải lại trang.", "The form is not valid, please reload the page."),
    "no_services": ("Quầy {n}: cần ít nhất một lĩnh vực.", "Counter {n}: at least one service is needed."),
    "unknown": ("Quầy {n}: lựa chọn không có trong danh sách.", "Counter {n}: a choice that is not in the list."),
    "unseated": ("Lưu ý: {who} không ngồi quầy nào.", "Note: {who} sits at no counter."),
    "twice": ("Lưu ý: {who} ngồi {n} quầy ({where}).", "Note: {who} sits at {n} counters ({where})."),
}


def tr(key: str, lang: str, **kw: object) -> str:
    vi, en = T[key]
    return (en if lang == "en" else vi).format(**kw)


def page_body(site: Site, rev: int | None, lang: str, csrf: str, *, msg: str = "", errors: list[str]) -> str:
    out = [f'<h1>{e(tr("roster", lang))}</h1><p class="muted">{e(tr("intro", lang))}</p>']
    if msg:
        out.append(f'<div class="banner ok" id="roster-msg">{e(msg)}</div>')
    if errors:
        out.append('<div class="banner warn" id="roster-errors"><ul>' + "".join(f"<li>{e(x)}</li>" for x in errors)
                   + "</ul></div>")
    if rev is None:
        out.append(f'<p class="muted">{e(tr("no_site", lang))}</p>')
        return "".join(out)
    slots = len(site.services)
    rows = []
    for c in site.counters:
        officers = [f'<option value="">{e(tr("nobody", lang))}</option>'] + [
            f'<option value="{e(o.id)}"{" selected" if c.officer_id == o.id else ""}>{e(o.name)}</option>'
            for o in site.officers]
        svc_selects = []
        for i in range(slots):
            cur = c.services[i] if i < len(c.services) else ""
            opts = [f'<option value="">{e(tr("none", lang))}</option>'] + [
                f'<option value="{e(s.id)}"{" selected" if s.id == cur else ""}>{e(s.short(lang))}</option>'
                for s in site.services]
            svc_selects.append(f'<select name="svc-{c.number}-{i}" aria-label="{e(tr("services", lang))} {i + 1}">'
                               f'{"".join(opts)}</select>')
        rows.append(f'<tr data-counter="{c.number}"><td>{e(c.label(lang))}</td>'
                    f'<td><select name="officer-{c.number}">{"".join(officers)}</select></td>'
                    f'<td class="svc">{" ".join(svc_selects)}</td></tr>')
    out.append(f'<form method="post" action="/head/roster" class="roster"><input type="hidden" name="csrf" value="{e(csrf)}">'
               f'<input type="hidden" name="base_rev" value="{rev}">'
               f'<div class="scroll"><table><thead><tr><th>{e(tr("counter", lang))}</th><th>{e(tr("officer", lang))}</th>'
               f'<th>{e(tr("services", lang))}</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
               f'<button type="submit" id="roster-save">{e(tr("save", lang))}</button></form>'
               f'<p class="muted">{e(tr("version", lang, rev=rev))}</p>')
    return "".join(out)


def read_form(form: dict[str, str], site: Site, lang: str) -> tuple[list[dict[str, object]], list[str]]:
    """The counters part of the push, and what the head must fix first (in their words)."""
    officers = {o.id for o in site.officers}
    services = set(site.service_ids())
    counters: list[dict[str, object]] = []
    errors: list[str] = []
    for c in site.counters:
        oid = form.get(f"officer-{c.number}", "")
        chosen: list[str] = []
        for i in range(len(site.services)):
            sid = form.get(f"svc-{c.number}-{i}", "")
            if sid and sid not in chosen:
                chosen.append(sid)
        if (oid and oid not in officers) or any(x not in services for x in chosen):
            errors.append(tr("unknown", lang, n=c.number))
            continue
        if not chosen:
            errors.append(tr("no_services", lang, n=c.number))
            continue
        # the name comes from [[officers]]: a free-text name left on the counter would hide it
        counters.append({"number": c.number, "officer_id": oid or None, "officer": "", "services": chosen})
    return counters, errors


def seating_notes(counters: list[dict[str, object]], site: Site, lang: str) -> list[str]:
    """What the head may not have meant, said after "applied": an officer seated nowhere (moving Lan
    to counter 2 left Hùng without a counter, and his console said "not seated"), or at two counters
    at once (allowed: one console for both). Nothing is refused for it."""
    where: dict[str, list[int]] = {}
    for c in counters:
        oid = c.get("officer_id")
        if isinstance(oid, str) and oid:
            where.setdefault(oid, []).append(int(c["number"]))  # type: ignore[call-overload]
    notes = []
    for o in site.officers:
        seats = where.get(o.id, [])
        if not seats:
            notes.append(tr("unseated", lang, who=o.name))
        elif len(seats) > 1:
            names = ", ".join(site.counter(n).label(lang) for n in seats)
            notes.append(tr("twice", lang, who=o.name, n=len(seats), where=names))
    return notes
