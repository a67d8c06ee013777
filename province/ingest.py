"""The province ingester: every centre's events from the province broker into PostgreSQL.

It holds a persistent MQTT 5 session on the province broker, subscribed (QoS 1) to
``xephang/v1/+/event/#`` (ticket and counter events, and the hubs' hourly summaries
``event/summary/hourly``), ``xephang/v1/+/state/summary``, the nodes' ``xephang/v1/+/node/#`` and the
centres' bridge link state ``xephang/v1/+/bridge/state``, and acknowledges each message only
after the transaction that stored it committed (paho's manual ack). A crash or a lost database
therefore loses nothing: the broker redelivers whatever was not acknowledged.

Idempotent by ``(site, event_id)``: a redelivered or replayed event changes nothing. Order does
not matter either: the ingester stores the raw event, then rebuilds each touched ticket (and its
visits) from all of that ticket's events sorted by ``rev`` (``fold_ticket``, a pure function), so
events arriving late or out of order — a centre back after a week offline — give the same rows as
if they had come in order.

The shared ``Bus`` is a per-site client without manual acknowledgement, so this module drives
paho itself.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from province import devices, rollups
from xephang.contract import (
    LEVEL_PATTERN,
    MAX_EPOCH_S,
    MAX_EVENTS_PER_TICKET,
    ROOT_PREFIX,
    BadPayload,
    CounterEvent,
    DailySummary,
    TicketEvent,
    decode,
    loads,
)
from xephang.settings import BrokerSettings

log = logging.getLogger(__name__)

_LEVEL = re.compile(LEVEL_PATTERN)
EVENT_FILTER = f"{ROOT_PREFIX}/+/event/#"
SUMMARY_FILTER = f"{ROOT_PREFIX}/+/state/summary"
NODE_FILTER = f"{ROOT_PREFIX}/+/node/#"  # availability, health, alerts (central monitoring)
LINK_FILTER = f"{ROOT_PREFIX}/+/bridge/state"  # each centre's bridge link, 1/0 (centre unreachable)
DEFAULT_CLIENT_ID = "xephang-ingest"
SESSION_EXPIRY_S = 30 * 86400  # the broker keeps our queue for a month of ingester downtime
RECEIVE_MAXIMUM = 2000  # unacknowledged messages the broker may have in flight to us (one batch)
QOS0_QUEUED = 2000  # QoS 0 messages waiting at most (the receive maximum does not bound them)
# while the province broker cannot be reached, say so at once and then every this many seconds: a
# paho retry every 0.5-N s must not fill the journal, and a silent ingester looked like a working one
UNREACHABLE_REPEAT_S = 300.0
CODE_REFUSALS_MAX = 50  # messages in a row that fail our code before the ingester calls it a bug and ends
QUARANTINE_PER_SITE = 10_000  # messages our code failed on kept per centre (ingest_quarantine), for a fixed version
UNKNOWN_FIELDS_MAX = 2048  # bytes of fields the contract does not read kept in a stored event (a newer hub's)
SUMMARY_MAX_BYTES = 8 * 1024  # a real daily or hourly summary is ~0.5 KB (475 and 587 bytes measured); one of 60 KB was stored whole
# summaries of days older than this (or after tomorrow) are refused: five years, what a province keeps
# (a centre's account may then fill at most 1,830 × 24 hourly rows, ~350 MB, not every day of 0001-9999)
SUMMARY_DAYS_BACK = 1830


# ---------------------------------------------------------------------------------------------- pure core


@dataclass
class EventRow:
    """One stored event of a ticket, as the fold needs it."""

    rev: int
    kind: str
    at: float
    payload: dict[str, Any]


@dataclass
class VisitRow:
    """One call of a ticket at a counter (the centre ledger's ``visits`` row, rebuilt)."""

    call_rev: int
    day: str
    counter: int
    service: str
    called_at: float
    ended_at: float | None = None
    outcome: str | None = None  # served | no-show | transferred
    inferred: bool = False


@dataclass
class TicketRow:
    """A ticket as its events so far describe it (the centre ledger's ``tickets`` row, in part)."""

    ticket_id: int
    day: str
    number: int | None
    display: str | None
    first_service: str
    service: str
    priority_group: str | None
    state: str
    issued_at: float
    called_at: float | None
    rating: int | None
    transfers: int
    last_call_rev: int | None
    last_rev: int
    visits: list[VisitRow] = field(default_factory=list)


_END_OUTCOME = {"finished": "served", "no-show": "no-show", "transferred": "transferred"}


def fold_ticket(ticket_id: int, events: Iterable[EventRow]) -> TicketRow | None:
    """Rebuild one ticket and its visits from its events, whatever order they came in.

    The same rules as the hub's engine: a ``called`` opens a visit at the ticket's counter and
    current service; ``finished`` / ``no-show`` / ``transferred`` end the open one. The ticket's
    state is that of its newest event; its wait ends at the first call.
    """
    evs = sorted(events, key=lambda e: e.rev)
    if not evs:
        return None
    first_info = evs[0].payload.get("ticket") or {}
    last_info = evs[-1].payload.get("ticket") or {}
    issued = next((e for e in evs if e.kind == "issued"), None)
    transfer = next((e for e in evs if e.kind == "transferred"), None)
    if issued is not None:
        first_service = issued.payload["ticket"]["service"]
    elif transfer is not None and transfer.payload.get("from_service"):
        first_service = transfer.payload["from_service"]  # the issue is still on its way
    else:
        first_service = first_info.get("service", "")
    called_at = next((e.payload["ticket"].get("called_at") for e in evs
                      if (e.payload.get("ticket") or {}).get("called_at") is not None), None)
    rating = next((e.payload.get("score") for e in reversed(evs) if e.kind == "rated"), None)
    row = TicketRow(
        ticket_id=ticket_id, day=first_info.get("day", ""), number=first_info.get("number"),
        display=first_info.get("display"), first_service=first_service,
        service=last_info.get("service", first_service), priority_group=first_info.get("priority_group"),
        state=last_info.get("state", "waiting"), issued_at=float(first_info.get("issued_at", evs[0].at)),
        called_at=called_at, rating=rating, transfers=sum(1 for e in evs if e.kind == "transferred"),
        last_call_rev=None, last_rev=evs[-1].rev)
    open_visit: VisitRow | None = None
    for e in evs:
        info = e.payload.get("ticket") or {}
        if e.kind == "called":
            counter = e.payload.get("counter") or info.get("counter") or 0
            open_visit = VisitRow(call_rev=e.rev, day=info.get("day", row.day), counter=int(counter),
                                  service=info.get("service", row.service), called_at=e.at)
            row.visits.append(open_visit)
            row.last_call_rev = e.rev
        elif e.kind in _END_OUTCOME and open_visit is not None:
            open_visit.ended_at, open_visit.outcome = e.at, _END_OUTCOME[e.kind]
            open_visit.inferred = bool(e.kind == "finished" and e.payload.get("inferred"))
            open_visit = None
    return row


def parse_hourly(payload: bytes, *, today: date | None = None) -> tuple[str, int, float, str]:
    """(day, hour, at, JSON) of an hourly summary event; BadPayload when it is not one."""
    _summary_size(payload)
    body = loads(payload)
    try:
        day, hour, at = body["day"], body["hour"], body["at"]
        if not isinstance(day, str):
            raise ValueError(f"day {day!r}")
        _recent_day(day, "hourly summary day", today)
        if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23:
            raise ValueError(f"hour {hour!r}")
        at = float(at)
        if not 0 <= at <= MAX_EPOCH_S:
            raise ValueError(f"at {at!r}")
    except (ValueError, TypeError, KeyError, OverflowError) as exc:  # a 400-digit `at` overflows float()
        raise BadPayload("invalid", f"hourly summary: {exc!r}"[:300]) from None
    return day, hour, at, json.dumps(body, ensure_ascii=False)


# What PostgreSQL refuses for what a message holds is refused here first, in Python. The database's
# refusal costs the halving of the whole batch (``Ingester._commit_batch``): 1,000 events of a
# 30 February took 41 s to get through instead of 0.4 s, and a centre's account sending them faster
# than that held every centre's ingest behind them.
INT4_MAX = 2**31 - 1  # ``int`` columns: a counter, a ticket's number, a rating
INT8_MAX = 2**63 - 1  # ``bigint`` columns: a ticket id, a rev


# events one ticket may hold here: a ticket has ~5 (issued, called, arrived, finished, rated), a few
# more with recalls or transfers, and the hub gives none more than the contract's MAX_EVENTS_PER_TICKET
# (recalls and transfers are capped: at 100 here, a counter recalling one citizen 98 times pushed
# another counter's service of it out). Each new event of a ticket reads and folds all of them again,
# so a centre's account giving one ticket 30,000 events made every further one cost the ingester 1.2-1.6 s
# the batch's new events of a ticket past MAX_EVENTS_PER_TICKET (its lowest revs are kept): deleted
_OVER_TICKET_CAP = """
WITH new AS (
    SELECT i.site, i.event_id, i.ticket_id,
           row_number() OVER (PARTITION BY i.site, i.ticket_id ORDER BY i.rev, i.event_id) AS k
    FROM incoming i
    WHERE i.ticket_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.site = i.site AND e.event_id = i.event_id)
), held AS (
    SELECT t.site, t.ticket_id,
           (SELECT count(*) FROM events e WHERE e.site = t.site AND e.ticket_id = t.ticket_id) AS n
    FROM (SELECT DISTINCT site, ticket_id FROM new) t
)
DELETE FROM incoming i USING new JOIN held USING (site, ticket_id)
WHERE held.n + new.k > %(cap)s AND i.site = new.site AND i.event_id = new.event_id
RETURNING i.site, i.event_id, i.ticket_id
"""

_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 not itself escaped ("\\u0000" is text)


def has_nul(payload: bytes) -> bool:
    """True when the payload holds a NUL character, which PostgreSQL's text and jsonb refuse (a raw
    NUL byte is no JSON, but the check costs nothing)."""
    return b"\x00" in payload or (b"\\u0000" in payload and _NUL_ESCAPE.search(payload) is not None)


def _summary_size(payload: bytes) -> None:
    if len(payload) > SUMMARY_MAX_BYTES:
        raise BadPayload("too-large", f"a summary of {len(payload)} bytes > {SUMMARY_MAX_BYTES}")


def _recent_day(day: str, what: str, today: date | None = None) -> None:
    """BadPayload unless ``day`` is a date within SUMMARY_DAYS_BACK days before the province's today
    and a day after it (a summary of year 0001 or 9999 was stored, whole, and nothing reads it)."""
    _real_day(day, what)
    today = today or datetime.now(UTC).date()
    if not today - timedelta(days=SUMMARY_DAYS_BACK) <= date.fromisoformat(day) <= today + timedelta(days=1):
        raise BadPayload("invalid", f"{what} {day} is not near today ({today})")


def _real_day(day: str, what: str) -> None:
    try:
        date.fromisoformat(day)  # the pattern lets 2026-02-30 and 0000-01-01 through
    except ValueError:
        raise BadPayload("invalid", f"{what} {day!r} is not a date") from None


def _in_range(what: str, value: int | None, top: int) -> None:
    if value is not None and not -top - 1 <= value <= top:
        raise BadPayload("invalid", f"{what} {value} is out of range")


def storable_event(ev: TicketEvent | CounterEvent, kind: str) -> None:
    """BadPayload unless every value of ``ev`` (of ``kind``) that becomes a column fits it (see INT4_MAX)."""
    _in_range("rev", ev.rev, INT8_MAX)
    _in_range("counter", ev.counter, INT4_MAX)
    if isinstance(ev, TicketEvent):
        _real_day(ev.ticket.day, "ticket day")
        _in_range("ticket id", ev.ticket.id, INT8_MAX)
        _in_range("ticket number", ev.ticket.number, INT4_MAX)
        if kind == "called":  # the visit's counter when the event names none
            _in_range("ticket counter", ev.ticket.counter, INT4_MAX)
        if kind == "rated":  # the ticket's rating
            _in_range("score", ev.score, INT4_MAX)


def as_read(raw: dict[str, Any], model: Any) -> dict[str, Any]:
    """``raw`` with every field the contract read replaced by the value it read, unknown fields kept
    (a newer hub's, for a newer province) while they are small: past UNKNOWN_FIELDS_MAX bytes only
    what the contract read is stored.

    The contract's models are lax (``"5"`` reads as 5, ``"false"`` and ``"no"`` as False), and what is
    stored is what ``fold_ticket`` reads: raw, ``"inferred": "false"`` was true there, so a centre's
    account marked every finish inferred while the hub's own report said none was. A hub's payload
    is unchanged by this (its values are already what they read as). A centre's account padding each
    event with 60 KB of fields nobody reads grew the database by 19 MB a second."""
    read = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    merged = _merged(raw, read)
    if len(json.dumps(merged, ensure_ascii=False)) - len(json.dumps(read, ensure_ascii=False)) > UNKNOWN_FIELDS_MAX:
        return read
    return merged


def _merged(raw: dict[str, Any], read: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    for k, v in read.items():
        out[k] = _merged(raw[k], v) if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    return out


def _site_of(topic: str) -> str:
    """The centre a topic is of (``xephang/v1/{site}/…``), as written ("" when it has none)."""
    parts = topic.split("/")
    return parts[2] if len(parts) > 2 else ""


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``xephang/v1/{site}/event/{family}/{kind}`` → (site, family, kind); the summary → (site, 'summary', '').

    The hub's hourly summary (``event/summary/hourly``) → (site, 'hourly', '').
    """
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != ROOT_PREFIX:
        return None
    if not all(_LEVEL.fullmatch(x) for x in parts[2:]):
        return None  # a site or kind outside [a-z0-9-] would become an SQL value and a report heading
    site = parts[2]
    if len(parts) == 6 and parts[3] == "event" and parts[4] in ("ticket", "counter"):
        return site, parts[4], parts[5]
    if len(parts) == 6 and parts[3] == "event" and parts[4] == "summary" and parts[5] == "hourly":
        return site, "hourly", ""
    if len(parts) == 5 and parts[3] == "state" and parts[4] == "summary":
        return site, "summary", ""
    return None


# ---------------------------------------------------------------------------------------------- the store


@dataclass
class BatchResult:
    stored: int = 0  # new events
    duplicates: int = 0
    rejected: int = 0
    summaries: int = 0  # daily and hourly
    tickets: int = 0  # tickets rebuilt
    nodes: int = 0  # status, health and alert messages
    links: int = 0  # centres' bridge link notifications


class Store:
    """Writes batches of MQTT messages into the province database, one transaction a batch."""

    def __init__(self, conn: Any, *, rollups: bool = True, links: bool = True) -> None:
        self.conn = conn
        self.rollups = rollups  # False only for a database older than the rollups (schema < 4)
        self.links = links  # False only for a database older than the centres' links (schema < 5)

    def write(self, messages: Iterable[tuple[str, bytes]]) -> BatchResult:
        """Store ``(topic, payload)`` messages and rebuild the tickets they touch; commit."""
        res = BatchResult()
        events: dict[tuple[str, str], tuple[Any, ...]] = {}
        summaries: dict[tuple[str, str], tuple[str, str, float, str]] = {}
        hourly: dict[tuple[str, str, int], tuple[str, str, int, float, str]] = {}
        nodes: list[devices.NodeMessage] = []
        links: list[devices.LinkMessage] = []
        call_revs: dict[tuple[str, int], str] = {}  # (site, rev) of the batch's calls → the event claiming it
        said = [0]

        def dropped(msg: str, *args: Any) -> None:
            # one line per dropped message, up to LOGGED_PER_BATCH: a centre's account sending junk
            # would otherwise write a line per message, 1,000 a batch, into the province's journal
            said[0] += 1
            if said[0] <= devices.LOGGED_PER_BATCH:
                log.warning(msg, *args)

        for topic, payload in messages:
            if has_nul(payload):  # any topic: a board's health or alert too (PostgreSQL refuses NUL)
                res.rejected += 1
                dropped("ingest: %s: payload with a NUL character dropped", topic)
                continue
            node_msg = devices.parse_node_topic(topic, payload)
            if node_msg is not None:
                nodes.append(node_msg)  # applied in arrival order after the events
                continue
            link_msg = devices.parse_link_topic(topic, payload)
            if link_msg is not None:
                links.append(link_msg)
                continue
            where = parse_topic(topic)
            if where is None:
                res.rejected += 1
                dropped("ingest: topic %s is not an event or a summary; dropped", topic)
                continue
            site, family, kind = where
            try:
                if family == "summary":
                    if not payload:
                        continue  # a cleared retained summary
                    _summary_size(payload)
                    s = decode(DailySummary, payload)
                    _recent_day(s.day, "summary day")
                    body = json.loads(payload)
                    prev = summaries.get((site, s.day))
                    if prev is None or prev[2] <= s.at:
                        summaries[(site, s.day)] = (site, s.day, s.at, json.dumps(body, ensure_ascii=False))
                    continue
                if family == "hourly":
                    day, hour, at, text = parse_hourly(payload)
                    prev_h = hourly.get((site, day, hour))
                    if prev_h is None or prev_h[3] <= at:
                        hourly[(site, day, hour)] = (site, day, hour, at, text)
                    continue
                ev = decode(TicketEvent if family == "ticket" else CounterEvent, payload)
                storable_event(ev, ev.kind or kind)
            except BadPayload as exc:
                res.rejected += 1
                dropped("ingest: %s: %s payload dropped: %s", topic, exc.code, exc)
                continue
            text = json.dumps(as_read(json.loads(payload), ev), ensure_ascii=False)
            ticket_id = ev.ticket.id if family == "ticket" else None
            counter = ev.counter
            key = (site, ev.event_id)
            if key in events:
                res.duplicates += 1
            elif family == "ticket" and (ev.kind or kind) == "called":
                # two calls claiming one rev would be two visits with one key: refused here, not by the
                # database (the stored calls are checked in SQL below); the first one in wins
                claimed = call_revs.setdefault((site, ev.rev), ev.event_id)
                if claimed != ev.event_id:
                    res.rejected += 1
                    dropped("ingest: %s: call rev %d is %s's already; %s dropped", topic, ev.rev, claimed,
                            ev.event_id)
                    continue
            events[key] = (site, ev.event_id, ev.rev, ev.at, family, ev.kind or kind, ticket_id, counter, text)
        with self.conn.transaction(), self.conn.cursor() as cur:
            touched: set[tuple[str, int]] = set()
            if events:
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (site text, event_id text, rev bigint, "
                            "at double precision, family text, kind text, ticket_id bigint, counter int, payload text) "
                            "ON COMMIT DELETE ROWS")
                with cur.copy("COPY incoming FROM STDIN") as cp:
                    for r in events.values():
                        cp.write_row(r)
                # a new call whose rev a stored call holds (a visit has it): the database would refuse
                # the visit, and finding the message by halving the batch cost ~40 ms each
                cur.execute("DELETE FROM incoming i USING visits v WHERE i.family = 'ticket' AND i.kind = 'called' "
                            "AND v.site = i.site AND v.call_rev = i.rev AND NOT EXISTS (SELECT 1 FROM events e "
                            "WHERE e.site = i.site AND e.event_id = i.event_id) RETURNING i.site, i.event_id, i.rev")
                for site_, event_id, rev in cur.fetchall():
                    res.rejected += 1
                    del events[(site_, event_id)]
                    dropped("ingest: %s: call rev %d is another call's already; event %s dropped", site_, rev,
                            event_id)
                # every event of a ticket is read again whenever one more arrives (the fold): past
                # MAX_EVENTS_PER_TICKET, one ticket's events would make each new one cost more
                cur.execute(_OVER_TICKET_CAP, {"cap": MAX_EVENTS_PER_TICKET})
                over = cur.fetchall()
                for site_, event_id, _ in over:
                    res.rejected += 1
                    del events[(site_, event_id)]
                if over:
                    log.warning("ingest: %d event(s) of %d ticket(s) past %d events a ticket dropped (first: %s "
                                "ticket %s)", len(over), len({(s_, t_) for s_, _, t_ in over}),
                                MAX_EVENTS_PER_TICKET, over[0][0], over[0][2])
                cur.execute("INSERT INTO events (site, event_id, rev, at, family, kind, ticket_id, counter, payload) "
                            "SELECT site, event_id, rev, at, family, kind, ticket_id, counter, payload::jsonb "
                            "FROM incoming ON CONFLICT (site, event_id) DO NOTHING RETURNING site, ticket_id")
                new = cur.fetchall()
                res.stored = len(new)
                res.duplicates += len(events) - len(new)
                touched = {(s, t) for s, t in new if t is not None}
            if touched:
                res.tickets = self._rebuild(cur, touched)
            if summaries:
                cur.executemany(
                    "INSERT INTO daily_summaries (site, day, at, payload) VALUES (%s, %s, %s, %s::jsonb) "
                    "ON CONFLICT (site, day) DO UPDATE SET at = EXCLUDED.at, payload = EXCLUDED.payload "
                    "WHERE daily_summaries.at <= EXCLUDED.at", list(summaries.values()))
                res.summaries = len(summaries)
            if hourly:
                cur.executemany(
                    "INSERT INTO hourly_summaries (site, day, hour, at, payload) VALUES (%s, %s, %s, %s, %s::jsonb) "
                    "ON CONFLICT (site, day, hour) DO UPDATE SET at = EXCLUDED.at, payload = EXCLUDED.payload "
                    "WHERE hourly_summaries.at <= EXCLUDED.at", list(hourly.values()))
                res.summaries += len(hourly)
            if nodes:
                res.rejected += devices.apply(cur, nodes)
                res.nodes = len(nodes)
            if links and self.links:
                res.rejected += devices.apply_links(cur, links)
                res.links = len(links)
        if said[0] > devices.LOGGED_PER_BATCH:
            log.warning("ingest: %d more messages of this batch dropped (not logged one by one)",
                        said[0] - devices.LOGGED_PER_BATCH)
        return res

    def _rebuild(self, cur: Any, touched: set[tuple[str, int]]) -> int:
        sites = [s for s, _ in touched]
        ids = [t for _, t in touched]
        if self.rollups:
            rollups.before_rebuild(cur, sites, ids)
        cur.execute("SELECT e.site, e.ticket_id, e.rev, e.kind, e.at, e.payload FROM events e "
                    "JOIN unnest(%s::text[], %s::bigint[]) AS k(site, ticket_id) "
                    "ON e.site = k.site AND e.ticket_id = k.ticket_id ORDER BY e.site, e.ticket_id, e.rev",
                    (sites, ids))
        by_ticket: dict[tuple[str, int], list[EventRow]] = {}
        for site, tid, rev, kind, at, payload in cur.fetchall():
            by_ticket.setdefault((site, tid), []).append(EventRow(rev, kind, at, payload))
        trows, vrows = [], []
        for (site, tid), evs in by_ticket.items():
            t = fold_ticket(tid, evs)
            if t is None:
                continue
            trows.append((site, t.ticket_id, t.day, t.number, t.display, t.first_service, t.service, t.priority_group,
                          t.state, t.issued_at, t.called_at, t.rating, t.transfers, t.last_call_rev, t.last_rev))
            vrows += [(site, t.ticket_id, v.call_rev, v.day, v.counter, v.service, v.called_at, v.ended_at, v.outcome,
                       v.inferred) for v in t.visits]
        cur.execute("DELETE FROM visits v USING unnest(%s::text[], %s::bigint[]) AS k(site, ticket_id) "
                    "WHERE v.site = k.site AND v.ticket_id = k.ticket_id", (sites, ids))
        cur.executemany(
            "INSERT INTO tickets (site, ticket_id, day, number, display, first_service, service, priority_group, state, "
            "issued_at, called_at, rating, transfers, last_call_rev, last_rev) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (site, ticket_id) DO UPDATE SET "
            "day = EXCLUDED.day, number = EXCLUDED.number, display = EXCLUDED.display, "
            "first_service = EXCLUDED.first_service, service = EXCLUDED.service, "
            "priority_group = EXCLUDED.priority_group, state = EXCLUDED.state, issued_at = EXCLUDED.issued_at, "
            "called_at = EXCLUDED.called_at, rating = EXCLUDED.rating, transfers = EXCLUDED.transfers, "
            "last_call_rev = EXCLUDED.last_call_rev, last_rev = EXCLUDED.last_rev", trows)
        if vrows:
            with cur.copy("COPY visits (site, ticket_id, call_rev, day, counter, service, called_at, ended_at, outcome, "
                          "inferred) FROM STDIN") as cp:
                for r in vrows:
                    cp.write_row(r)
        if self.rollups:
            rollups.after_rebuild(cur)
        return len(trows)


# ---------------------------------------------------------------------------------------------- the MQTT shell


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    db_errors: int = 0
    qos0_dropped: int = 0  # QoS 0 messages past QOS0_QUEUED (no centre's bridge sends any)
    last_commit: float = 0.0


# SQLSTATE classes of a database that is away or busy, not of a message: connection exception,
# insufficient resources (disk full, too many connections), operator intervention (shutdown,
# cancel), system error, transaction rollback (serialization, deadlock), lock not available
_OUTAGE_CLASSES = ("08", "53", "57", "58", "40", "55")
# classes the database answers for what one message holds: data exception (a number out of range,
# a malformed date), integrity constraint violation (a key another row has), program limit
# exceeded (an index row over 2,704 bytes)
_MESSAGE_CLASSES = ("22", "23", "54")


def _fault(exc: BaseException) -> str:
    """"outage" (retry the batch), "message" (one message in it is refused: find and drop it),
    "code" (our Python code failed on a message: find it and drop it too, up to CODE_REFUSALS_MAX in
    a row) or "ours" (SQL the database does not know: let it end the ingester)."""
    import psycopg

    if isinstance(exc, UnicodeError | psycopg.DataError | psycopg.IntegrityError):
        return "message"  # text psycopg cannot send (a lone surrogate); classes 22 and 23
    if isinstance(exc, psycopg.InterfaceError):
        return "outage"
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if not state or state[:2] in _OUTAGE_CLASSES:
            return "outage"  # a lost connection has no SQLSTATE
        if state[:2] in _MESSAGE_CLASSES:
            return "message"
        return "ours"
    if isinstance(exc, MemoryError):
        return "ours"  # the machine, not a message
    # a message no check foresaw (a 400-digit `at` made float() overflow in the hourly summary's
    # reading): ending the ingester would end it again on the redelivery, for every centre
    return "code"


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


class Ingester:
    """Province broker → PostgreSQL. ``run(stop)`` blocks until ``stop`` is set."""

    def __init__(self, *, dsn: str, broker: BrokerSettings, client_id: str = DEFAULT_CLIENT_ID,
                 batch_max: int = 1000, batch_wait_s: float = 0.05, session_expiry_s: int = SESSION_EXPIRY_S) -> None:
        self.dsn = dsn
        self.broker = broker
        self.client_id = client_id
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.session_expiry_s = session_expiry_s
        self.stats = IngestStats()
        self.connected = threading.Event()  # set once the broker acknowledged our subscriptions
        self._inbox: queue.Queue[tuple[int, int, int, str, bytes]] = queue.Queue()
        self._qos0_queued = 0  # QoS 0 messages in the inbox (bounded: QOS0_QUEUED)
        self._code_refusals = 0  # messages in a row that failed our code (CODE_REFUSALS_MAX: a bug)
        self._code_refusal_sites: set[str] = set()  # … and the centres they came from (one: its messages, no bug)
        self._qos0_lock = threading.Lock()
        self._generation = 0  # grows on every MQTT connect: acks of an older connection are void
        self._client: Any = None
        self._conn: Any = None
        self._unreachable_since: float | None = None  # monotonic: the first failed attempt of this outage
        self._unreachable_said = 0.0  # monotonic: when we last said so

    # ---- MQTT callbacks (paho's network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("ingest: province broker refused the connection: %s", reason)
            return
        self._generation += 1
        client.subscribe([(EVENT_FILTER, 1), (SUMMARY_FILTER, 1), (NODE_FILTER, 1), (LINK_FILTER, 1)])
        # at WARNING, the tools' default level: the line that ends an "unreachable" or "disconnected"
        # warning, and at start the only sign that a silent ingester is a working one
        log.warning("ingest: đã kết nối broker tỉnh / connected to the province broker %s:%d (session present: %s)",
                    self.broker.host, self.broker.port, flags.session_present)
        self._unreachable_since = None

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # the TCP (or TLS) connection failed: wrong host or port, the broker down, a firewall. paho
        # retries by itself (reconnect_delay_set); say it once, then every UNREACHABLE_REPEAT_S
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_said < UNREACHABLE_REPEAT_S:
            return
        self._unreachable_said = now
        down = now - self._unreachable_since
        log.warning("ingest: không kết nối được broker tỉnh / cannot reach the province broker %s:%d%s; retrying",
                    self.broker.host, self.broker.port, f" (for {down:.0f} s)" if down >= 1 else "")

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # "connected" means receiving: until the broker has the subscription (its SUBACK), a centre's
        # event published on a new session matches no one and is gone (the broker answers the
        # publisher "no matching subscribers"), so nothing may count on us before this point
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error("ingest: the province broker refused %d of our subscriptions (%s): check the "
                      "ingester's ACL", len(refused), ", ".join(str(r) for r in refused))
            return
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        log.warning("ingest: disconnected from the province broker: %s", reason)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.qos == 0:
            # the broker's flow control (receive maximum) bounds only QoS 1: a centre's password
            # publishing at QoS 0 is delivered at QoS 0 as fast as it sends (610 MB of this queue in
            # a minute). Every centre's bridge sends at QoS 1, so QoS 0 is nobody's data: at most
            # QOS0_QUEUED of it wait; the rest are dropped and counted.
            with self._qos0_lock:
                if self._qos0_queued >= QOS0_QUEUED:
                    self.stats.qos0_dropped += 1
                    return
                self._qos0_queued += 1
        self._inbox.put((self._generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    def _make_client(self) -> Any:
        from xephang.bus import paho_client

        b = self.broker
        # the account: its username, else (with a password) the client id, else anonymous
        c = paho_client(b, self.client_id, default_username=self.client_id if b.secret() else None, manual_ack=True)
        c.reconnect_delay_set(0.5, max(1.0, b.reconnect_max_s))
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_connect_fail = self._on_connect_fail
        return c

    def _connect_props(self) -> Any:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = self.session_expiry_s
        p.ReceiveMaximum = RECEIVE_MAXIMUM
        return p

    # ---- database
    def _db(self) -> Any:
        from province.db import connect, migrate

        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn)
            migrate(self._conn)
        return self._conn

    def _quarantine(self, topic: str, payload: bytes, exc: BaseException) -> str:
        """Keep a message our code failed on in ``ingest_quarantine`` (a fixed version can store it
        again: docs/province.md), at most QUARANTINE_PER_SITE a centre: "kept", "full", or "failed"
        (the database could not take it: the caller retries, nothing acknowledged)."""
        site = _site_of(topic)[:64]
        try:
            with self._db().transaction(), self._db().cursor() as cur:
                cur.execute("SELECT count(*) FROM ingest_quarantine WHERE site = %s", (site,))
                if cur.fetchone()[0] >= QUARANTINE_PER_SITE:
                    return "full"
                cur.execute("INSERT INTO ingest_quarantine (site, topic, error, payload) VALUES (%s, %s, %s, %s)",
                            (site, topic[:300], repr(exc)[:500], bytes(payload)))
            return "kept"
        except Exception as db_exc:
            log.error("ingest: could not keep the message in ingest_quarantine (%s): retried, nothing acknowledged",
                      _short(db_exc))
            if self._conn is not None and not self._conn.closed:
                self._conn.rollback()
            return "failed"

    def _commit_batch(self, batch: list[tuple[int, int, int, str, bytes]], stop: threading.Event) -> bool:
        """Store ``batch`` (retrying while the database is away); True when it committed.

        A message the database refuses for what it holds (``_fault`` says "message": a value out of
        range, a key it has already given another row, a row too large to index, text no UTF-8 can
        hold) must neither hold the others nor come back for ever: the batch is stored in halves
        until that message is alone, then it is counted as rejected and acknowledged; so is a message
        our own code fails on ("code"), unless CODE_REFUSALS_MAX fail so in a row (then it is a bug:
        the ingester ends, and nothing of the batch was acknowledged). An outage is retried with
        back-off and nothing is acknowledged. SQL the database does not know ("ours") ends the
        ingester loudly, and the broker keeps every message."""
        delay = 0.5
        while not stop.is_set():
            try:
                res = Store(self._db()).write((t, p) for _, _, _, t, p in batch)
            except Exception as exc:
                fault = _fault(exc)
                if fault == "outage":
                    self.stats.db_errors += 1
                    log.error("ingest: database unavailable (%s); retrying in %.1f s, nothing acknowledged",
                              _short(exc), delay)
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    stop.wait(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if fault not in ("message", "code"):
                    raise
                if self._conn is not None and not self._conn.closed:
                    self._conn.rollback()
                if len(batch) == 1:
                    self.stats.rejected += 1
                    if fault == "message":
                        log.error("ingest: %s: the database refused this message (%s); dropped",
                                  batch[0][3][:200], _short(exc))
                        return True
                    kept = self._quarantine(batch[0][3], batch[0][4], exc)
                    if kept == "failed":  # the database is the trouble: as an outage, the message waits
                        self.stats.rejected -= 1
                        stop.wait(delay)
                        delay = min(delay * 2, 30.0)
                        continue
                    self._code_refusals += 1
                    self._code_refusal_sites.add(_site_of(batch[0][3]))
                    log.error("ingest: %s: this message failed our code (%r); %s", batch[0][3][:200], exc,
                              "kept in ingest_quarantine" if kept == "kept" else
                              "dropped (its centre's quarantine is full)", exc_info=exc)
                    # one centre's messages failing in a row are that centre's (a board's password sending what
                    # no check foresaw): dropped, or every restart would end on them again and no centre would
                    # be stored; messages of several centres failing so are a bug of ours
                    if self._code_refusals >= CODE_REFUSALS_MAX and len(self._code_refusal_sites) > 1:
                        # every message fails: a bug of ours, not a message; the broker keeps the rest
                        raise RuntimeError(f"{self._code_refusals} messages in a row failed our code") from exc
                    return True
                half = len(batch) // 2
                return self._commit_batch(batch[:half], stop) and self._commit_batch(batch[half:], stop)
            self.stats.batches += 1
            self._code_refusals = 0
            self._code_refusal_sites.clear()
            self.stats.stored += res.stored
            self.stats.duplicates += res.duplicates
            self.stats.rejected += res.rejected
            self.stats.last_commit = time.time()
            return True
        return False

    def run(self, stop: threading.Event) -> None:
        """Connect, then store and acknowledge batches until ``stop`` is set."""
        self._db()  # fail early on a wrong DSN, and migrate
        client = self._client = self._make_client()
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                             clean_start=False, properties=self._connect_props())
        client.loop_start()
        try:
            while not stop.is_set():
                try:
                    first = self._inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                batch = [first]
                deadline = time.monotonic() + self.batch_wait_s
                while len(batch) < self.batch_max:
                    left = deadline - time.monotonic()
                    try:
                        batch.append(self._inbox.get(timeout=left) if left > 0 else self._inbox.get_nowait())
                    except queue.Empty:
                        break
                self.stats.received += len(batch)
                qos0 = sum(1 for m in batch if m[2] == 0)
                if qos0:
                    with self._qos0_lock:
                        self._qos0_queued -= qos0
                if not self._commit_batch(batch, stop):
                    break
                gen = self._generation
                for g, mid, qos, _, _ in batch:
                    # only now may the broker forget them; a message of an older connection will be
                    # redelivered on this one anyway (and stored as a duplicate, i.e. not at all)
                    if qos > 0 and g == gen:
                        client.ack(mid, qos)
        finally:
            client.disconnect()
            client.loop_stop()
            if self._conn is not None:
                self._conn.close()


# ---------------------------------------------------------------------------------------------- CLI


def port_number(text: str) -> int:
    """A TCP port for argparse: 1-65535, else a one-line reason (argparse exits 2 with it)."""
    import argparse

    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"cổng không hợp lệ / not a port number: {text!r} "
                                         "(--port, $XEPHANG_BROKER__PORT: 1-65535)")
    return int(text)


def register(sub: Any) -> None:
    """Add ``ingest`` and ``province-db`` to the ``xephang`` command line."""
    import os
    from pathlib import Path

    p = sub.add_parser("ingest", help="province: centres' events from the province broker into PostgreSQL / "
                                      "nhận sự kiện các trung tâm vào PostgreSQL")
    p.add_argument("--dsn", default=None, help="PostgreSQL DSN (default $XEPHANG_PROVINCE_DSN)")
    p.add_argument("--host", default=os.environ.get("XEPHANG_BROKER__HOST", "127.0.0.1"), help="province broker")
    # read when `ingest` runs, not while the parser is built: a bad $XEPHANG_BROKER__PORT crashed every
    # command, `xephang --help` too; argparse converts a string default with `type`
    p.add_argument("--port", type=port_number, default=os.environ.get("XEPHANG_BROKER__PORT", "1883"),
                   help="province broker port (default $XEPHANG_BROKER__PORT or 1883)")
    p.add_argument("--username", default=os.environ.get("XEPHANG_BROKER__USERNAME"))
    p.add_argument("--password-file", type=Path, default=os.environ.get("XEPHANG_BROKER__PASSWORD_FILE"))
    p.add_argument("--tls-ca", type=Path, help="CA of the province broker (turns TLS on)")
    p.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="stable id: the broker keeps this session")
    p.add_argument("--site-file", type=Path, action="append", default=[],
                   help="a centre's site TOML: registers its services, targets and calendar (repeatable)")
    p.set_defaults(func=run_ingest)

    q = sub.add_parser("province-db", help="province: create/upgrade the database and register centres / "
                                           "tạo CSDL tỉnh, khai báo trung tâm")
    q.add_argument("--dsn", default=None)
    q.add_argument("site_files", type=Path, nargs="*", help="centres' site TOML files")
    q.set_defaults(func=run_province_db)


def _register_sites(dsn: str | None, files: list[Any]) -> int:
    from province.db import connect, migrate, upsert_site
    from xephang.settings import load_site

    with connect(dsn) as conn:
        applied = migrate(conn)
        for f in files:
            upsert_site(conn, load_site(f))
    return len(applied)


def run_province_db(args: Any) -> int:
    from province.db import ProvinceDbError
    from xephang.settings import SettingsError

    try:
        n = _register_sites(args.dsn, args.site_files)
    except (ProvinceDbError, SettingsError) as exc:
        print(exc)
        return 2
    print(f"CSDL tỉnh sẵn sàng / province database ready: {n} migration(s) applied, "
          f"{len(args.site_files)} centre(s) registered")
    return 0


def run_ingest(args: Any) -> int:
    import signal

    from province.db import ProvinceDbError, dsn_from_env

    try:
        if args.site_file:
            _register_sites(args.dsn, args.site_file)
        broker = BrokerSettings(host=args.host, port=args.port, username=args.username,
                                password_file=args.password_file, tls=bool(args.tls_ca), ca_file=args.tls_ca)
        ing = Ingester(dsn=dsn_from_env(args.dsn), broker=broker, client_id=args.client_id)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        ing.run(stop)
    except ProvinceDbError as exc:
        log.error("%s", exc)
        return 2
    log.info("ingest: stopped (%s)", ing.stats)
    return 0
