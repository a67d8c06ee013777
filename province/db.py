"""PostgreSQL connection and versioned schema migrations for the province database.

Migrations are a numbered list in code; ``schema_migrations`` records which ran. Each runs in
its own transaction under an advisory lock, so two ingesters starting together do not race.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from province import rollups

log = logging.getLogger(__name__)

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/xephang"
MIGRATION_LOCK = 0x7865_7068  # 'xeph': pg_advisory_xact_lock key for migrations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "base", """
CREATE TABLE sites (
    site text PRIMARY KEY,
    name_vi text NOT NULL DEFAULT '',
    name_en text NOT NULL DEFAULT '',
    timezone text NOT NULL DEFAULT 'Asia/Ho_Chi_Minh',
    daily_reset time NOT NULL DEFAULT '04:00',
    rating_scale int NOT NULL DEFAULT 5,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE site_services (
    site text NOT NULL, service text NOT NULL, pos int NOT NULL DEFAULT 0,
    name_vi text NOT NULL DEFAULT '', name_en text NOT NULL DEFAULT '',
    target_wait_min double precision,
    PRIMARY KEY (site, service)
);
-- every event as the centre's hub published it; (site, event_id) makes redelivery a no-op
CREATE TABLE events (
    site text NOT NULL, event_id text NOT NULL, rev bigint NOT NULL, at double precision NOT NULL,
    family text NOT NULL, kind text NOT NULL, ticket_id bigint, counter int,
    payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, event_id)
);
CREATE INDEX events_ticket ON events (site, ticket_id, rev);
CREATE INDEX events_site_rev ON events (site, rev);
-- derived from a ticket's events in rev order (province.ingest.fold_ticket)
CREATE TABLE tickets (
    site text NOT NULL, ticket_id bigint NOT NULL, day date NOT NULL, number int, display text,
    first_service text NOT NULL, service text NOT NULL, priority_group text, state text NOT NULL,
    issued_at double precision NOT NULL, called_at double precision, rating int, transfers int NOT NULL DEFAULT 0,
    last_call_rev bigint, last_rev bigint NOT NULL,
    PRIMARY KEY (site, ticket_id)
);
CREATE INDEX tickets_day ON tickets (day, site);
CREATE TABLE visits (
    site text NOT NULL, ticket_id bigint NOT NULL, call_rev bigint NOT NULL, day date NOT NULL,
    counter int NOT NULL, service text NOT NULL, called_at double precision NOT NULL,
    ended_at double precision, outcome text, inferred boolean NOT NULL DEFAULT false,
    PRIMARY KEY (site, call_rev)
);
CREATE INDEX visits_day ON visits (day, site);
CREATE INDEX visits_ticket ON visits (site, ticket_id);
-- the newest retained daily summary per site and day (figures before every event is in)
CREATE TABLE daily_summaries (
    site text NOT NULL, day date NOT NULL, at double precision NOT NULL, payload jsonb NOT NULL,
    PRIMARY KEY (site, day)
);
"""),
    # what the report's arrivals/counter-load figures and the hourly summaries need
    (2, "counters, closing time, hourly summaries, pause index", """
ALTER TABLE sites ADD COLUMN close_time time NOT NULL DEFAULT '17:00';
CREATE TABLE site_counters (
    site text NOT NULL, number int NOT NULL, label_vi text NOT NULL DEFAULT '', label_en text NOT NULL DEFAULT '',
    officer text NOT NULL DEFAULT '',
    PRIMARY KEY (site, number)
);
-- the counter load reads pauses from the counter events of a period: a small partial index on time
CREATE INDEX events_counter_at ON events (at) WHERE family = 'counter';
-- the newest hourly summary event per site, day and hour (event/summary/hourly)
CREATE TABLE hourly_summaries (
    site text NOT NULL, day date NOT NULL, hour int NOT NULL, at double precision NOT NULL, payload jsonb NOT NULL,
    PRIMARY KEY (site, day, hour)
);
"""),
    # central monitoring: the nodes' retained availability, health and alerts, and their history
    (3, "devices, their status and alert history", """
CREATE TABLE devices (
    site text NOT NULL, node text NOT NULL, role text NOT NULL DEFAULT '', version text NOT NULL DEFAULT '',
    online boolean NOT NULL, session bigint NOT NULL DEFAULT 0,
    since timestamptz NOT NULL,       -- province clock: when this state was first seen here
    seen_at timestamptz NOT NULL,     -- province clock: the last status or health message
    device_at double precision,       -- the node's own clock in its last status (informational)
    health jsonb, health_at timestamptz,
    PRIMARY KEY (site, node)
);
-- every change of availability, as the province saw it (downtime per device and period)
CREATE TABLE device_status_log (
    site text NOT NULL, node text NOT NULL, at timestamptz NOT NULL, online boolean NOT NULL, session bigint NOT NULL,
    device_at double precision
);
CREATE INDEX device_status_log_node ON device_status_log (site, node, at);
CREATE TABLE device_alerts (
    site text NOT NULL, node text NOT NULL, alert text NOT NULL, severity text NOT NULL,
    message_vi text NOT NULL DEFAULT '', message_en text NOT NULL DEFAULT '',
    raised_at timestamptz NOT NULL, device_at double precision,
    PRIMARY KEY (site, node, alert)
);
CREATE TABLE device_alert_log (
    id bigserial PRIMARY KEY, site text NOT NULL, node text NOT NULL, alert text NOT NULL, severity text NOT NULL,
    message_vi text NOT NULL DEFAULT '', raised_at timestamptz NOT NULL, cleared_at timestamptz
);
CREATE INDEX device_alert_log_node ON device_alert_log (site, node, raised_at);
"""),
    # what makes a quarter's report read thousands of rows: province/rollups.py
    (4, "report rollups", rollups.SCHEMA_SQL + ";\n".join(rollups.rebuild_sql(day_hist=False)) + ";\n"),
    # each centre's bridge link as its own notification says (province/devices.py, "centre unreachable")
    (5, "centre links and their cuts", """
CREATE TABLE site_links (
    site text PRIMARY KEY,
    up boolean NOT NULL,
    since timestamptz NOT NULL,       -- province clock: when this state was first seen here
    seen_at timestamptz NOT NULL      -- province clock: the last notification (a retained copy included)
);
-- every cut of a centre's link as the province saw it: down_at .. up_at (NULL while still down)
CREATE TABLE site_link_cuts (
    id bigserial PRIMARY KEY, site text NOT NULL, down_at timestamptz NOT NULL, up_at timestamptz
);
CREATE INDEX site_link_cuts_site ON site_link_cuts (site, down_at);
"""),
    # medians and P90s of reports grouped by day from the rollups (province/rollups.py)
    (6, "day histogram", rollups.SCHEMA_DAY_SQL + rollups.day_hist_fill_sql() + ";\n"),
    # when the province last heard the session it believes of a node (province/devices.py, "sessions")
    (7, "device session heard", """
ALTER TABLE devices ADD COLUMN session_at timestamptz;
UPDATE devices SET session_at = seen_at;
"""),
    # the devices' downtime reads a period's status changes, not the whole history (province/devices.py)
    (8, "device status log by time", """
CREATE INDEX device_status_log_at ON device_status_log (at);
"""),
    # messages the ingester's own code failed on, kept for a fixed version (province/ingest.py)
    (9, "ingest quarantine", """
CREATE TABLE ingest_quarantine (
    id bigserial PRIMARY KEY, site text NOT NULL, topic text NOT NULL, at timestamptz NOT NULL DEFAULT now(),
    error text NOT NULL, payload bytea NOT NULL
);
CREATE INDEX ingest_quarantine_site ON ingest_quarantine (site);
"""),
]


class ProvinceDbError(RuntimeError):
    """The province database is unreachable, its DSN malformed or its schema newer than this code."""


class UnknownSiteError(ProvinceDbError):
    """A command named a centre the province database does not know (a typo in ``--site``)."""


def dsn_from_env(dsn: str | None = None) -> str:
    """``dsn`` if given, else ``XEPHANG_PROVINCE_DSN``, else the local default."""
    return dsn or os.environ.get("XEPHANG_PROVINCE_DSN") or DEFAULT_DSN


def _line(exc: BaseException) -> str:
    """libpq's message on one line (it ends in a newline, sometimes spans two)."""
    return " ".join(str(exc).split())


def connect(dsn: str | None = None, **kw: Any) -> Any:
    """A psycopg 3 connection (autocommit off)."""
    import psycopg

    try:
        return psycopg.connect(dsn_from_env(dsn), **kw)
    except psycopg.OperationalError as exc:
        raise ProvinceDbError(f"không kết nối được CSDL tỉnh / cannot reach the province database: {_line(exc)}") from exc
    except psycopg.ProgrammingError as exc:
        # libpq cannot even read the DSN (`--dsn dbname`, a space in a URL): say so, not a traceback;
        # the DSN itself is not repeated, it may hold a password
        raise ProvinceDbError(f"DSN không hợp lệ / malformed DSN (--dsn, $XEPHANG_PROVINCE_DSN): {_line(exc)}") from exc


def check_sites(conn: Any, sites: Sequence[str] | None) -> None:
    """Raise :class:`UnknownSiteError`, listing the known centres, when a centre of ``sites`` is unknown.

    A report or a listing filtered on a misspelt centre printed zeros or nothing, exit 0: "this
    centre served no one this quarter". Known: registered (``province-db``) or heard from (its link,
    its devices, its summaries, its events: a centre whose site file was never registered counts)."""
    if not sites:
        return
    if schema_version(conn) == 0:
        raise ProvinceDbError("CSDL tỉnh chưa có bảng / the province database has no schema yet: xephang province-db")
    with conn.cursor() as cur:
        cur.execute("SELECT site FROM sites UNION SELECT site FROM site_links UNION SELECT site FROM devices "
                    "UNION SELECT site FROM daily_summaries UNION SELECT DISTINCT site FROM roll_tickets")
        known = {r[0] for r in cur.fetchall()}
        unknown = [s for s in dict.fromkeys(sites) if s not in known]
        for s in list(unknown):
            # events are many: one indexed look-up per centre asked for, never a scan for the list
            cur.execute("SELECT EXISTS (SELECT 1 FROM events WHERE site = %s)", (s,))
            if cur.fetchone()[0]:
                unknown.remove(s)
                known.add(s)
    if unknown:
        names = ", ".join(repr(s) for s in unknown)
        listed = ", ".join(sorted(known)) or "chưa có / none yet (xephang province-db)"
        raise UnknownSiteError(f"không có trung tâm / unknown centre {names} (đã biết / known: {listed})")


def schema_version(conn: Any) -> int:
    """The highest migration applied (0 for an empty database)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return int(cur.fetchone()[0])


def migrate(conn: Any, *, upto: int | None = None) -> list[int]:
    """Apply the migrations this database lacks (up to version ``upto``, default all); return their numbers."""
    applied: list[int] = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())")
        cur.execute("SELECT version FROM schema_migrations")
        done = {r[0] for r in cur.fetchall()}
        newest = max(v for v, _, _ in MIGRATIONS)
        if done and max(done) > newest:
            raise ProvinceDbError(f"database schema {max(done)} is newer than this code ({newest})")
        for version, name, sql in MIGRATIONS:
            if version in done or (upto is not None and version > upto):
                continue
            cur.execute(sql)
            cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(version)
            log.info("province schema: applied migration %d (%s)", version, name)
    return applied


def upsert_site(conn: Any, site: Any) -> None:
    """Record a centre's calendar, rating scale, service targets and counters (from its site TOML)."""
    s = site.site
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sites (site, name_vi, name_en, timezone, daily_reset, close_time, rating_scale, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (site) DO UPDATE SET name_vi = EXCLUDED.name_vi, "
            "name_en = EXCLUDED.name_en, timezone = EXCLUDED.timezone, daily_reset = EXCLUDED.daily_reset, "
            "close_time = EXCLUDED.close_time, rating_scale = EXCLUDED.rating_scale, updated_at = now()",
            (s.slug, s.name_vi, s.name_en or "", s.timezone, s.daily_reset, site.hours.close, site.rating_scale))
        cur.execute("DELETE FROM site_counters WHERE site = %s", (s.slug,))
        cur.executemany(
            "INSERT INTO site_counters (site, number, label_vi, label_en, officer) VALUES (%s,%s,%s,%s,%s)",
            [(s.slug, c.number, c.label("vi"), c.label("en"), site.officer_name(c.number)) for c in site.counters])
        cur.execute("DELETE FROM site_services WHERE site = %s", (s.slug,))
        cur.executemany(
            "INSERT INTO site_services (site, service, pos, name_vi, name_en, target_wait_min) VALUES (%s,%s,%s,%s,%s,%s)",
            [(s.slug, sv.id, i, sv.name_vi, sv.name_en or "", sv.target_wait_min) for i, sv in enumerate(site.services)])
        # the rollups count with the centre's calendar, targets and rating scale: recount them
        rollups.rebuild(cur, [s.slug])
