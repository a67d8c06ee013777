"""From the MQTT contract's models to the board model's small inputs.

The only file of displayd that knows the wire format (``xephang.contract``); the model and
the renderer stay the same when the hub adds optional fields.
"""

from __future__ import annotations

from displayd.config import BoardLabels
from displayd.model import BoardEvent, Call, CounterView, HallSnapshot
from xephang.contract import CounterEvent, CounterState, HallState, ServiceState, TicketEvent
from xephang.waittext import WaitRange, wait_range


def counter_view(cs: CounterState) -> CounterView:
    """A counter's retained state as the board shows it."""
    serving = cs.serving
    return CounterView(
        number=cs.number,
        state=cs.state,
        ticket=serving.display if serving is not None else None,
        service=serving.service if serving is not None else None,
        label=cs.label_vi,
    )


def hall_snapshot(hs: HallState) -> HallSnapshot:
    """``state/hall`` → the model's snapshot."""
    return HallSnapshot(
        rev=hs.rev,
        at=hs.at,
        counters=tuple(counter_view(c) for c in hs.counters),
        waiting={s.id: s.waiting for s in hs.services},
        wait_ranges={s.id: r for s in hs.services if (r := service_wait_range(s)) is not None},
        last_calls=tuple(
            Call(number=c.display, counter=c.counter, service=c.service, at=c.at, recall=c.kind == "recalled")
            for c in hs.last_calls
        ),
    )


def ticket_event(ev: TicketEvent) -> BoardEvent:
    """``event/ticket/{kind}`` → a board event. For a transfer, ``ticket.service`` is the
    new service and ``from_service`` the old one."""
    t = ev.ticket
    if ev.kind == "transferred":
        return BoardEvent(kind=ev.kind, rev=ev.rev, at=ev.at, number=t.display, service=ev.from_service or t.service,
                          counter=ev.counter, to_service=t.service)
    return BoardEvent(kind=ev.kind, rev=ev.rev, at=ev.at, number=t.display, service=t.service,
                      counter=ev.counter if ev.counter is not None else t.counter)


def counter_event(ev: CounterEvent) -> BoardEvent:
    """``event/counter/{kind}`` (paused, resumed …) → a board event."""
    return BoardEvent(kind=ev.kind, rev=ev.rev, at=ev.at, counter=ev.counter)


def labels_from_hall(hs: HallState, base: BoardLabels | None = None) -> BoardLabels:
    """Labels from the hall state, for a display without the site file; names from the
    site file (``base``) win where both exist."""
    base = base or BoardLabels()
    services = {s.id: (s.name_vi or s.id, s.name_en or s.name_vi or s.id) for s in hs.services if s.name_vi or s.name_en}
    counters = {
        c.number: (c.label_vi or f"Quầy {c.number}", c.label_en or f"Counter {c.number}") for c in hs.counters
    }
    return BoardLabels(
        centre_vi=base.centre_vi if base.services else (hs.site_name_vi or base.centre_vi),
        centre_en=base.centre_en if base.services else (hs.site_name_en or hs.site_name_vi or base.centre_en),
        services={**services, **base.services},
        counters={**counters, **base.counters},
        short=base.short,
    )


def service_waiting(ss: ServiceState) -> tuple[str, int, int]:
    """``state/service/{id}`` → (service id, people waiting, rev)."""
    return ss.id, ss.waiting, ss.rev


def service_wait_range(ss: ServiceState) -> WaitRange | None:
    """``state/service/{id}`` → the wait of a ticket taken now, if the hub sent one."""
    return wait_range(ss.est_wait_low_min, ss.est_wait_high_min, ss.est_wait_open)
