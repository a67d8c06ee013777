"""The estimated wait as people read it: the hub's range in words, Vietnamese first.

The hub sends a range (``est_wait_low_min``–``est_wait_high_min``) or, when it cannot narrow
it, ``est_wait_open`` ("more than ``est_wait_low_min``"); the ticket, the board and the phone
page all say it the same way.
"""

from __future__ import annotations

WaitRange = tuple[int, int | None]  # (low, high); high None = "more than low"


def format_wait(low: int, high: int | None, lang: str = "vi", *, short: bool = False) -> str:
    """'khoảng 20–35 phút', 'dưới 5 phút', 'hơn 60 phút', 'chưa ước tính được' (more than 0: nothing
    known); ``short`` drops 'khoảng' (the board's bar)."""
    en = lang == "en"
    if high is None:
        if low <= 0:
            return "not known yet" if en else "chưa ước tính được"
        return f"more than {low} min" if en else f"hơn {low} phút"
    if high <= 0:
        return "now" if en else "ngay bây giờ"
    if low <= 0:
        return f"under {high} min" if en else f"dưới {high} phút"
    about = "" if short else ("about " if en else "khoảng ")
    span = f"{low}" if low == high else f"{low}–{high}"
    return f"{about}{span} min" if en else f"{about}{span} phút"


def wait_range(low: int | float | None, high: int | float | None, open_ended: bool | None) -> WaitRange | None:
    """The range from the contract's optional fields (None when the hub sent none)."""
    if low is None:
        return None
    if open_ended or high is None:
        return int(low), None
    return int(low), int(high)
