"""What the hub shows of its queue: the engine's state as the contract's retained models.

Out of the engine (which decides) so there is one place that maps engine objects to the public
payloads (``CounterState``, ``ServiceState``, ``HallState``; the ticket as ``TicketInfo``
through ``Ticket.info``). The hub publishes these and puts the hall in every resync reply."""

from __future__ import annotations

from hubd.engine import QueueEngine
from xephang.contract import CallInfo, CounterState, HallState, ServiceState, TicketInfo
from xephang.site import format_number


def counter_state(e: QueueEngine, number: int) -> CounterState:
    c = e.counters[number]
    cfg = e.site.counter(number)
    t = e.tickets.get(c.serving) if c.serving is not None else None
    v = e.visits.get(c.visit_id) if t is not None and c.visit_id is not None else None
    return CounterState(number=number, label_vi=cfg.label("vi"), label_en=cfg.label("en"), state=c.state,
                        pause_reason=c.pause_reason, serving=TicketInfo.model_validate(t.info()) if t else None,
                        services=list(cfg.services), officer=e.site.officer_name(number), officer_id=cfg.officer_id,
                        visit_called_at=v.called_at if v else None, arrived_at=v.arrived_at if v else None,
                        call_reason=v.call_reason if v else None, rev=e.rev)


def service_state(e: QueueEngine, service: str, now: float | None = None) -> ServiceState:
    """The retained service state; its wait is the one a citizen taking a ticket now would get."""
    svc = e.services[service]
    ws = e.waiting([service])
    last_issued = e.sequences.get((e.day, service))
    at = e.last_now if now is None else now
    return ServiceState(id=service, name_vi=svc.name_vi, name_en=svc.name_en, prefix=svc.prefix, waiting=len(ws),
                        waiting_priority=sum(1 for t in ws if t.priority_group), **e.wait_range(service, at).fields(),
                        last_issued=format_number(last_issued, svc.prefix) if last_issued else None,
                        last_issued_number=last_issued or None,
                        last_called=e.last_called.get(service), rev=e.rev)


def hall_state(e: QueueEngine, now: float) -> HallState:
    return HallState(rev=e.rev, at=now, day=e.day, site_name_vi=e.site.site.name_vi,
                     site_name_en=e.site.site.name_en,
                     counters=[counter_state(e, c.number) for c in e.site.counters],
                     services=[service_state(e, s.id, now) for s in e.site.services],
                     last_calls=[CallInfo.model_validate(x) for x in e.last_calls],
                     ledger=int(e.ledger_started) if e.ledger_started is not None else None)
