"""Central monitoring: every centre's nodes (availability, health, alerts) at the province, with their history.

Each centre's bridge carries ``xephang/v1/{site}/node/#`` out: the retained ``status`` (birth, and
the Will that says offline), ``health`` and ``alert/{id}`` (an empty payload clears it). Mosquitto
queues them while the link is down and sends every retained one again when it returns, so a
node that went offline during the cut arrives as offline. The ingester applies them here:

- ``devices``: one row per node, its availability with the ``session`` rule of the contract (an
  offline of an older session than the newest online seen is a late Will and is ignored; an
  online of an older session is a stale copy), its last health payload. A node's password can say
  any number, so a session is believed only when it is no further than the province's clock in
  milliseconds (what a board without a state dir counts from: ``SESSION_CLOCK_MARGIN_S`` allowed),
  and the birth of a lower session is a new start once the session believed has not been heard for
  ``SESSION_STALE_S`` (a new board or SD card, or a number a stolen password made up: the stale
  copies the rule is for arrive right behind the message that made them stale);
- ``device_status_log``: every change of availability, dated by the province's clock when it
  learned of it (a Pi has no real-time clock; a change during a link cut is dated when the link
  returned), from which ``downtime`` is counted per period;
- ``device_alerts`` (open now) and ``device_alert_log`` (raised, cleared);
- what a node says is believed of that node only (docs/protocol.md): a status, health or alert whose
  payload names another node (or an alert another id than its topic's) is rejected, and a node keeps
  at most ``MAX_ALERTS_PER_NODE`` open alerts, since its password may write any ``alert/{id}`` level;
- ``site_links`` and ``site_link_cuts``: each centre's link, from its bridge's own notification
  ``xephang/v1/{site}/bridge/state`` (retained ``1``/``0``; the bridge's Will at the province says
  ``0`` when the link dies), so a centre whose link is down shows *unreachable*, not *all quiet*.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xephang.contract import MAX_ALERTS_PER_NODE, Alert, BadPayload, NodeHealth, NodeStatus, decode
from xephang.terminal import shown, shown_json

log = logging.getLogger(__name__)

# a lower session's birth is a new start once the session believed has not been heard this long
SESSION_STALE_S = 120
# a session is a connect counter, or the node's clock in ms at start without a state dir: a day ahead of ours at most
SESSION_CLOCK_MARGIN_S = 86400
# a centre's province account may write any node level under its site: it has a hub, a dispenser or
# two, a counter per desk, a board and a speaker per hall, webd. 2,000 made-up nodes grew the
# database by 127 MB and `province devices --json` to 83 MB; a node past this many is refused
MAX_NODES_PER_SITE = 100
# history rows one node (or one centre's link) adds in an hour: a real board changes state a few times
# a day; one board's password looping online/offline wrote 10,000 rows in 7.6 s. Past this, a change
# updates the newest row instead of adding one (its state and time stay right; flaps shorter than
# the rows allow are merged into it)
LOG_ROWS_PER_HOUR = 60
# an alert's text as kept (the boards' own are one line; the centre shows 160 characters)
ALERT_TEXT_MAX = 500
LOGGED_PER_BATCH = 20  # dropped node messages logged one by one in a batch; the rest are counted in one line


@dataclass(frozen=True)
class NodeMessage:
    """One message of a node topic: ``what`` is status, health or alert (with ``alert`` its id)."""

    site: str
    node: str
    what: str
    alert: str | None
    payload: bytes


def parse_node_topic(topic: str, payload: bytes) -> NodeMessage | None:
    """``xephang/v1/{site}/node/{node}/status|health|alert/{id}`` → NodeMessage; None when it is not one."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[3] == "node" and parts[5] in ("status", "health"):
        return NodeMessage(parts[2], parts[4], parts[5], None, payload)
    if len(parts) == 7 and parts[3] == "node" and parts[5] == "alert":
        return NodeMessage(parts[2], parts[4], "alert", parts[6], payload)
    return None


@dataclass(frozen=True)
class LinkMessage:
    """A centre's bridge notification: its link to the province is ``up`` or not (None: an empty payload)."""

    site: str
    payload: bytes


def parse_link_topic(topic: str, payload: bytes) -> LinkMessage | None:
    """``xephang/v1/{site}/bridge/state`` → LinkMessage; None when it is not one."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[3] == "bridge" and parts[4] == "state":
        return LinkMessage(parts[2], payload)
    return None


def apply_links(cur: Any, messages: list[LinkMessage]) -> int:
    """Apply link notifications in arrival order (the batch's transaction); returns how many were rejected.

    A change of state opens or closes a cut, dated by the province's clock; the same state again (the
    retained copy a restarted ingester gets) only refreshes ``seen_at``.
    """
    rejected = 0
    for m in messages:
        if not m.payload:
            continue  # a cleared retained notification says nothing about the link
        if m.payload not in (b"0", b"1"):
            rejected += 1
            continue
        up = m.payload == b"1"
        cur.execute("SELECT up FROM site_links WHERE site = %s FOR UPDATE", (m.site,))
        row = cur.fetchone()
        if row is not None and row[0] == up:
            cur.execute("UPDATE site_links SET seen_at = now() WHERE site = %s", (m.site,))
            continue
        cur.execute("INSERT INTO site_links (site, up, since, seen_at) VALUES (%s, %s, now(), now()) "
                    "ON CONFLICT (site) DO UPDATE SET up = EXCLUDED.up, since = now(), seen_at = now()", (m.site, up))
        if not up and _busy(cur, "site_link_cuts", "down_at", (m.site,)):
            # flapping faster than any line does: the newest cut goes on (the short "up" is counted as down)
            cur.execute("UPDATE site_link_cuts SET up_at = NULL WHERE id = "
                        "(SELECT max(id) FROM site_link_cuts WHERE site = %s)", (m.site,))
        elif not up:
            cur.execute("INSERT INTO site_link_cuts (site, down_at) VALUES (%s, now())", (m.site,))
        else:
            cur.execute("UPDATE site_link_cuts SET up_at = now() WHERE site = %s AND up_at IS NULL", (m.site,))
    return rejected


def apply(cur: Any, messages: list[NodeMessage]) -> int:
    """Apply node messages in arrival order inside the batch's transaction; returns how many were rejected."""
    keys = sorted({(m.site, m.node) for m in messages})
    cur.execute("SELECT site, node, online, session, "
                "COALESCE(session_at < now() - make_interval(secs => %s), true) FROM devices d "
                "JOIN unnest(%s::text[], %s::text[]) AS k(s, n) ON d.site = k.s AND d.node = k.n FOR UPDATE",
                (SESSION_STALE_S, [k[0] for k in keys], [k[1] for k in keys]))
    known: dict[tuple[str, str], Known] = {(s, n): Known(o, se, st) for s, n, o, se, st in cur.fetchall()}
    rejected = 0
    for m in messages:
        key = (m.site, m.node)
        try:
            if m.what == "status":
                if m.payload:
                    _status(cur, key, _own(m, decode(NodeStatus, m.payload)), known)
            elif m.what == "health":
                if m.payload:
                    _health(cur, key, _own(m, decode(NodeHealth, m.payload)), m.payload, known)
            elif m.payload:
                _raise(cur, key, m.alert or "", _own(m, decode(Alert, m.payload)))
            else:
                _clear(cur, key, m.alert or "")
        except BadPayload as exc:
            if rejected < LOGGED_PER_BATCH:
                log.warning("province: %s/%s %s dropped (%s): %s", m.site, m.node, m.what, exc.code, exc)
            rejected += 1
    if rejected > LOGGED_PER_BATCH:  # 2,000 made-up nodes' junk wrote 64,000 lines at every restart
        log.warning("province: %d more node messages of this batch dropped (not logged one by one)",
                    rejected - LOGGED_PER_BATCH)
    return rejected


def _own(m: NodeMessage, said: NodeStatus | NodeHealth | Alert) -> Any:
    """``said`` when it speaks of the node (and alert) its topic names; a node's account writes only its
    own topics, so anything else is another node's name in its mouth."""
    if said.node != m.node or (isinstance(said, Alert) and said.id != m.alert):
        raise BadPayload("wrong-sender", f"{m.what} of {said.node!r} on {m.node!r}'s topic")
    return said


@dataclass(frozen=True)
class Known:
    """What the province believes of a node's availability: ``stale`` when its session was last heard
    more than SESSION_STALE_S ago (then a birth of a lower session is a new start)."""

    online: bool
    session: int
    stale: bool


def _status(cur: Any, key: tuple[str, str], st: NodeStatus, known: dict[tuple[str, str], Known]) -> None:
    if st.session > (time.time() + SESSION_CLOCK_MARGIN_S) * 1000:
        raise BadPayload("implausible-session", f"session {st.session} is beyond any connect counter or clock")
    prev = known.get(key)
    if prev is None:
        _new_node(cur, key, known)
    else:
        if st.session == prev.session:
            cur.execute("UPDATE devices SET session_at = now() WHERE site = %s AND node = %s", key)
            known[key] = prev = Known(prev.online, prev.session, False)
        newer = (st.session > prev.session or (st.session == prev.session and prev.online and not st.online)
                 or (st.session < prev.session and st.online and prev.stale))
        if not newer:
            return  # a late Will of an older connection, a stale copy, or the same state again
        if st.online == prev.online:  # a new session while we saw it online: no downtime seen here
            cur.execute("UPDATE devices SET session = %s, session_at = now(), role = %s, version = %s, device_at = %s, "
                        "seen_at = now() WHERE site = %s AND node = %s", (st.session, st.role, st.version, st.at, *key))
            known[key] = Known(prev.online, st.session, False)
            return
    cur.execute(
        "INSERT INTO devices (site, node, role, version, online, session, session_at, since, seen_at, device_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now(), now(), now(), %s) ON CONFLICT (site, node) DO UPDATE SET "
        "role = EXCLUDED.role, version = EXCLUDED.version, online = EXCLUDED.online, session = EXCLUDED.session, "
        "session_at = now(), since = now(), seen_at = now(), device_at = EXCLUDED.device_at",
        (*key, st.role, st.version, st.online, st.session, st.at))
    if _busy(cur, "device_status_log", "at", key):
        cur.execute("UPDATE device_status_log SET online = %s, session = %s, device_at = %s WHERE ctid = "
                    "(SELECT ctid FROM device_status_log WHERE site = %s AND node = %s ORDER BY at DESC LIMIT 1)",
                    (st.online, st.session, st.at, *key))
    else:
        cur.execute("INSERT INTO device_status_log (site, node, at, online, session, device_at) "
                    "VALUES (%s, %s, now(), %s, %s, %s)", (*key, st.online, st.session, st.at))
    known[key] = Known(st.online, st.session, False)


def _busy(cur: Any, table: str, at: str, key: tuple[str, ...]) -> bool:
    """Has ``key`` (site, node; or site) added LOG_ROWS_PER_HOUR rows to ``table`` in the last hour?"""
    where = " AND ".join(f"{c} = %s" for c in ("site", "node")[:len(key)])
    cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} AND {at} > now() - interval '1 hour' "
                f"LIMIT {LOG_ROWS_PER_HOUR}) r", key)
    return bool(cur.fetchone()[0] >= LOG_ROWS_PER_HOUR)


def _new_node(cur: Any, key: tuple[str, str], known: dict[tuple[str, str], Known]) -> None:
    """Refuse a node its centre would hold past MAX_NODES_PER_SITE."""
    if key in known:
        return
    cur.execute("SELECT count(*) FROM (SELECT node FROM devices WHERE site = %s UNION "
                "SELECT node FROM device_alerts WHERE site = %s) n WHERE node <> %s", (key[0], *key))
    if cur.fetchone()[0] >= MAX_NODES_PER_SITE:
        raise BadPayload("too-many-nodes", f"{key[0]} already has {MAX_NODES_PER_SITE} nodes: {key[1]!r} not kept")


def _health(cur: Any, key: tuple[str, str], h: NodeHealth, raw: bytes, known: dict[tuple[str, str], Known]) -> None:
    body = json.dumps(json.loads(raw), ensure_ascii=False)  # read by decode already: no NaN, no lone surrogate
    if key not in known:  # health before any status: it talks, so it is up
        _status(cur, key, NodeStatus(node=h.node, online=True, session=0, role=h.role, version=h.version), known)
    cur.execute("UPDATE devices SET health = %s::jsonb, health_at = now(), seen_at = now(), "
                "role = COALESCE(NULLIF(%s, ''), role), version = COALESCE(NULLIF(%s, ''), version) "
                "WHERE site = %s AND node = %s", (body, h.role, h.version, *key))


def _raise(cur: Any, key: tuple[str, str], alert: str, a: Alert) -> None:
    cur.execute("SELECT 1 FROM devices WHERE site = %s AND node = %s", key)
    if cur.fetchone() is None:
        _new_node(cur, key, {})
    vi, en = a.message_vi[:ALERT_TEXT_MAX], a.message_en[:ALERT_TEXT_MAX]
    cur.execute("SELECT count(*) FROM device_alerts WHERE site = %s AND node = %s AND alert <> %s", (*key, alert))
    if cur.fetchone()[0] >= MAX_ALERTS_PER_NODE:
        raise BadPayload("too-many", f"{key[1]} already has {MAX_ALERTS_PER_NODE} open alerts: {alert!r} not kept")
    cur.execute(
        "INSERT INTO device_alerts (site, node, alert, severity, message_vi, message_en, raised_at, device_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now(), %s) ON CONFLICT (site, node, alert) DO UPDATE SET "
        "severity = EXCLUDED.severity, message_vi = EXCLUDED.message_vi, message_en = EXCLUDED.message_en, "
        "device_at = EXCLUDED.device_at RETURNING (xmax = 0)",
        (*key, alert, a.severity, vi, en, a.at))
    if not cur.fetchone()[0]:
        return  # a retained copy sent again is not a new alert
    if _busy(cur, "device_alert_log", "raised_at", key):
        cur.execute("UPDATE device_alert_log SET alert = %s, severity = %s, message_vi = %s, cleared_at = NULL "
                    "WHERE id = (SELECT max(id) FROM device_alert_log WHERE site = %s AND node = %s)",
                    (alert, a.severity, vi, *key))
    else:
        cur.execute("INSERT INTO device_alert_log (site, node, alert, severity, message_vi, raised_at) "
                    "VALUES (%s, %s, %s, %s, %s, now())", (*key, alert, a.severity, vi))


def _clear(cur: Any, key: tuple[str, str], alert: str) -> None:
    cur.execute("DELETE FROM device_alerts WHERE site = %s AND node = %s AND alert = %s", (*key, alert))
    cur.execute("UPDATE device_alert_log SET cleared_at = now() WHERE site = %s AND node = %s AND alert = %s "
                "AND cleared_at IS NULL", (*key, alert))


# ---------------------------------------------------------------------------------------------- reading


def list_devices(conn: Any, *, start: datetime, end: datetime, sites: list[str] | None = None,
                 alert: str | None = None, only_alerts: bool = False, only_offline: bool = False,
                 only_unreachable: bool = False) -> list[dict[str, Any]]:
    """Every known node with its state, open alerts and its downtime within [start, end) (seconds).

    ``state`` is ``online``/``offline`` as the node last said, or ``unreachable`` while its centre's
    link is down (``link_since``: since when; ``online`` keeps the last state seen); ``unreachable_s``
    is how long its centre was unreachable within the period (not counted as the node's downtime).
    """
    sites = sites or None  # [] is "no filter", as the outer query reads it (not "no site" in the downtime's)
    where, params = ["true"], {"start": start, "end": end, "sites": sites, "alert": alert}
    if sites:
        where.append("d.site = ANY(%(sites)s)")
    if alert:
        where.append("EXISTS (SELECT 1 FROM device_alerts a WHERE a.site = d.site AND a.node = d.node "
                     "AND a.alert = %(alert)s)")
    if only_alerts:
        where.append("EXISTS (SELECT 1 FROM device_alerts a WHERE a.site = d.site AND a.node = d.node)")
    if only_offline:
        where.append("NOT d.online")
    if only_unreachable:
        where.append("l.up IS FALSE")
    sql = f"""
WITH lg0 AS (
    -- the period's changes, and each node's last one before it (its state when the period began): the
    -- whole history was read for every listing, 12-17 s once one centre had flooded a month of changes
    SELECT site, node, online, at FROM device_status_log
    WHERE at >= %(start)s AND at < %(end)s AND (%(sites)s::text[] IS NULL OR site = ANY(%(sites)s))
    UNION ALL
    SELECT b.site, b.node, b.online, b.at FROM devices d0
    CROSS JOIN LATERAL (SELECT x.site, x.node, x.online, x.at FROM device_status_log x
                        WHERE x.site = d0.site AND x.node = d0.node AND x.at < %(start)s
                        ORDER BY x.at DESC LIMIT 1) b
    WHERE %(sites)s::text[] IS NULL OR d0.site = ANY(%(sites)s)
), lg AS (
    SELECT site, node, online, at, lead(at) OVER (PARTITION BY site, node ORDER BY at) AS next_at FROM lg0
), down AS (
    SELECT site, node,
           sum(extract(epoch FROM least(COALESCE(next_at, %(end)s), %(end)s) - greatest(at, %(start)s))) AS s
    FROM lg WHERE NOT online AND at < %(end)s AND COALESCE(next_at, %(end)s) > %(start)s
    GROUP BY site, node
), cut AS ({_CUT_SECONDS_SQL})
SELECT d.site, COALESCE(NULLIF(s.name_vi, ''), d.site), d.node, d.role, d.version, d.online, d.since, d.seen_at,
       d.health, COALESCE(dn.s, 0),
       COALESCE((SELECT json_agg(json_build_object('alert', a.alert, 'severity', a.severity, 'message_vi',
                  a.message_vi, 'message_en', a.message_en, 'raised_at', a.raised_at) ORDER BY a.alert)
                 FROM device_alerts a WHERE a.site = d.site AND a.node = d.node), '[]'),
       l.up, l.since, COALESCE(cut.s, 0)
FROM devices d LEFT JOIN sites s ON s.site = d.site LEFT JOIN down dn ON dn.site = d.site AND dn.node = d.node
LEFT JOIN site_links l ON l.site = d.site LEFT JOIN cut ON cut.site = d.site
WHERE {' AND '.join(where)}
ORDER BY d.site, d.node
"""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.commit()
    return [{"site": r[0], "centre": r[1], "node": r[2], "role": r[3], "version": r[4], "online": r[5],
             "since": r[6], "seen_at": r[7], "health": r[8], "downtime_s": round(float(r[9]), 1), "alerts": r[10],
             "state": "unreachable" if r[11] is False else ("online" if r[5] else "offline"),
             "reachable": r[11], "link_since": r[12], "unreachable_s": round(float(r[13]), 1)}
            for r in rows]


# seconds each centre's link was cut within [start, end): one row per site (the ``cut`` CTE)
_CUT_SECONDS_SQL = """
    SELECT site, sum(extract(epoch FROM least(COALESCE(up_at, %(end)s), %(end)s) - greatest(down_at, %(start)s))) AS s
    FROM site_link_cuts WHERE down_at < %(end)s AND COALESCE(up_at, %(end)s) > %(start)s GROUP BY site
"""


def list_links(conn: Any, *, start: datetime, end: datetime, sites: list[str] | None = None) -> list[dict[str, Any]]:
    """Every known centre (registered, or heard from) with its link state and its cuts within [start, end).

    ``reachable`` is None for a centre whose bridge never said (an old fragment without notifications);
    each cut has ``down_at``, ``up_at`` (None: still down) and ``seconds`` (up to ``end`` while still down).
    """
    params = {"start": start, "end": end, "sites": sites}
    sql = f"""
WITH known AS (SELECT site FROM sites UNION SELECT site FROM site_links UNION SELECT DISTINCT site FROM devices),
cut AS ({_CUT_SECONDS_SQL})
SELECT k.site, COALESCE(NULLIF(s.name_vi, ''), k.site), COALESCE(NULLIF(s.name_en, ''), NULLIF(s.name_vi, ''), k.site),
       l.up, l.since, l.seen_at, COALESCE(cut.s, 0),
       COALESCE((SELECT json_agg(json_build_object('down_at', c.down_at, 'up_at', c.up_at, 'seconds',
                  extract(epoch FROM COALESCE(c.up_at, %(end)s) - c.down_at)) ORDER BY c.down_at)
                 FROM site_link_cuts c WHERE c.site = k.site AND c.down_at < %(end)s
                 AND COALESCE(c.up_at, %(end)s) > %(start)s), '[]')
FROM known k LEFT JOIN sites s ON s.site = k.site LEFT JOIN site_links l ON l.site = k.site
LEFT JOIN cut ON cut.site = k.site
WHERE %(sites)s::text[] IS NULL OR k.site = ANY(%(sites)s)
ORDER BY k.site
"""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.commit()
    out = []
    for r in rows:
        cuts = [{"down_at": _ts(c["down_at"]), "up_at": _ts(c["up_at"]), "seconds": round(float(c["seconds"]), 1)}
                for c in r[7]]
        out.append({"site": r[0], "centre": r[1], "centre_en": r[2], "reachable": r[3], "since": r[4],
                    "seen_at": r[5], "unreachable_s": round(float(r[6]), 1), "cuts": cuts})
    return out


def _ts(v: Any) -> datetime | None:
    """A timestamptz that came back through json_agg as ISO text."""
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(v)


def _hm(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}"


def render_devices(devices: list[dict[str, Any]], *, lang: str = "vi") -> str:
    """A plain table for the terminal. A device of an unreachable centre says so, since when its link is down."""
    head = (("Trung tâm", "Thiết bị", "Vai trò", "Trạng thái", "Từ", "Mất kết nối", "Cảnh báo", "Phiên bản")
            if lang == "vi" else ("Centre", "Node", "Role", "State", "Since", "Down", "Alerts", "Version"))
    states = ({"online": "trực tuyến", "offline": "MẤT KẾT NỐI", "unreachable": "KHÔNG LIÊN LẠC ĐƯỢC"} if lang == "vi"
              else {"online": "online", "offline": "OFFLINE", "unreachable": "UNREACHABLE"})
    rows = [list(head)]
    for d in devices:
        since = d["link_since"] if d["state"] == "unreachable" else d["since"]
        # a node's role, version and alert ids are its own words (over the bridge): no control character, no newline
        rows.append([shown(c) for c in (d["centre"], d["node"], d["role"], states[d["state"]],
                                        since.astimezone(_vn()).strftime("%d/%m %H:%M"), _hm(d["downtime_s"]),
                                        ", ".join(a["alert"] for a in d["alerts"]) or "-", d["version"] or "-")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def render_links(links: list[dict[str, Any]], *, lang: str = "vi") -> str:
    """Each centre's link and its cuts, for the terminal."""
    vi = lang == "vi"
    out = []
    for c in links:
        state = ({True: "liên lạc được", False: "KHÔNG LIÊN LẠC ĐƯỢC", None: "chưa rõ"} if vi
                 else {True: "reachable", False: "UNREACHABLE", None: "unknown"})[c["reachable"]]
        since = f" {'từ' if vi else 'since'} {c['since'].astimezone(_vn()):%d/%m %H:%M}" if c["since"] else ""
        out.append(f"{shown(c['centre'] if vi else c['centre_en'])} ({shown(c['site'])}): {state}{since}; "
                   f"{'mất liên lạc' if vi else 'cut'} {len(c['cuts'])} {'lần' if vi else 'time(s)'}, "
                   f"{'tổng' if vi else 'total'} {_hm(c['unreachable_s'])}")
        for cut in c["cuts"]:
            end = (f"{cut['up_at'].astimezone(_vn()):%d/%m %H:%M:%S}" if cut["up_at"]
                   else ("(vẫn mất)" if vi else "(still down)"))
            out.append(f"    {cut['down_at'].astimezone(_vn()):%d/%m %H:%M:%S} → {end}  {_hm(cut['seconds'])}")
    return "\n".join(out)


def _vn() -> Any:
    from xephang.clock import VN_TZ

    return VN_TZ


# ---------------------------------------------------------------------------------------------- CLI


def register(sub: Any) -> None:
    """Add ``province devices`` to the ``xephang`` command line."""
    p = sub.add_parser("province", help="province: central monitoring / giám sát thiết bị toàn tỉnh")
    psub = p.add_subparsers(dest="province_cmd", required=True)
    d = psub.add_parser("devices", help="every centre's devices: state, downtime, alerts / thiết bị các trung tâm")
    d.add_argument("--dsn", default=None, help="PostgreSQL DSN (default $XEPHANG_PROVINCE_DSN)")
    d.add_argument("--site", action="append", default=None, help="only these centres (repeatable)")
    d.add_argument("--alert", default=None, help="only devices with this open alert (paper-out, audio-missing …)")
    d.add_argument("--alerts", action="store_true", help="only devices with an open alert")
    d.add_argument("--offline", action="store_true", help="only devices that are offline now")
    d.add_argument("--unreachable", action="store_true", help="only devices of centres whose link is down now")
    d.add_argument("--period", "-p", default="this-quarter", help="downtime over this period (default this-quarter)")
    d.add_argument("--lang", choices=("vi", "en"), default="vi")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=run_devices)
    k = psub.add_parser("links", help="each centre's link to the province and its cuts / liên lạc với các trung tâm")
    k.add_argument("--dsn", default=None, help="PostgreSQL DSN (default $XEPHANG_PROVINCE_DSN)")
    k.add_argument("--site", action="append", default=None, help="only these centres (repeatable)")
    k.add_argument("--period", "-p", default="this-quarter", help="cuts within this period (default this-quarter)")
    k.add_argument("--lang", choices=("vi", "en"), default="vi")
    k.add_argument("--json", action="store_true", help="print JSON")
    k.set_defaults(func=run_links)


def period_bounds(period: str, now: float) -> tuple[datetime, datetime]:
    """[start, end) of a period (``this-quarter``, ``2026-11`` …) in Vietnam's time, ``end`` no later than now."""
    from xephang_reports.build import parse_period

    today = datetime.fromtimestamp(now - 4 * 3600, _vn()).date()
    per = parse_period(period, today)
    start = datetime.combine(per.first, datetime.min.time(), _vn())
    end = min(datetime.combine(per.last, datetime.min.time(), _vn()).timestamp() + 86400, now)
    return start, datetime.fromtimestamp(end, UTC)


def run_links(args: Any) -> int:
    import time

    from province.db import ProvinceDbError, check_sites, connect
    from xephang_reports.build import BadPeriod

    try:
        start, end = period_bounds(args.period, time.time())
        with connect(args.dsn) as conn:
            check_sites(conn, args.site)  # a misspelt centre: refused, never an empty list
            links = list_links(conn, start=start, end=end, sites=args.site)
    except (ProvinceDbError, BadPeriod) as exc:
        print(exc)
        return 2
    print(shown_json(links, default=str, indent=1) if args.json else render_links(links, lang=args.lang))
    return 0


def run_devices(args: Any) -> int:
    import time

    from province.db import ProvinceDbError, check_sites, connect
    from xephang_reports.build import BadPeriod

    try:
        start, end = period_bounds(args.period, time.time())
        with connect(args.dsn) as conn:
            check_sites(conn, args.site)
            devs = list_devices(conn, start=start, end=end, sites=args.site, alert=args.alert,
                                only_alerts=args.alerts, only_offline=args.offline,
                                only_unreachable=args.unreachable)
    except (ProvinceDbError, BadPeriod) as exc:
        print(exc)
        return 2
    if args.json:
        print(shown_json(devs, default=str, indent=1))
    else:
        print(render_devices(devs, lang=args.lang))
    return 0
