"""The ledger: SQLite in WAL mode with ``synchronous=FULL`` — the truth of the queue.

Tables: ``events`` (append-only, one row per hub revision), ``outbox`` (revisions not yet
acknowledged by the broker), ``requests`` (``request_id → reply``, so a retry or a
redelivery gets the same answer), and current-state tables ``tickets``, ``visits``,
``counters``, ``pauses``, ``sequences`` and ``meta``. One transaction per batch of
commands: a ``kill -9`` at any point leaves either all of a command or none of it.
Reports read the same file read-only (``xephang_reports.build.open_readonly``) without disturbing the hub.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from hubd.engine import CounterRt, Event, Outcome, Pause, QueueEngine, Ticket, Visit

SCHEMA_VERSION = 4  # v3: site_changes (the live site's history); v4: tickets.issued_by
# columns added after the first version: (table, column, declaration); added in place on open
# (ALTER TABLE ADD COLUMN: instant in SQLite, old rows read NULL)
ADDED_COLUMNS = (
    ("visits", "arrived_at", "REAL"),  # v2: "citizen arrived" (walk and service from arrival)
    ("visits", "call_reason", "TEXT"),  # v2: called out of the call order, and why
    ("tickets", "issued_by", "TEXT"),  # v4: the dispenser that asked (only it may void the ticket)
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY, day TEXT NOT NULL, service TEXT NOT NULL, number INTEGER NOT NULL,
    display TEXT NOT NULL, priority_group TEXT, issued_at REAL NOT NULL, arrival_at REAL NOT NULL,
    first_service TEXT NOT NULL, state TEXT NOT NULL, counter INTEGER, called_at REAL, last_called_at REAL,
    recalls INTEGER NOT NULL DEFAULT 0, finished_at REAL, finish_inferred INTEGER NOT NULL DEFAULT 0,
    requeued INTEGER NOT NULL DEFAULT 0, transfers INTEGER NOT NULL DEFAULT 0, rating INTEGER, rated_at REAL,
    void_reason TEXT, clock_jump INTEGER NOT NULL DEFAULT 0, issued_by TEXT,
    UNIQUE (day, first_service, number)
);
CREATE INDEX IF NOT EXISTS tickets_open ON tickets(state) WHERE state IN ('waiting', 'called');
CREATE INDEX IF NOT EXISTS tickets_issued ON tickets(issued_at);
CREATE INDEX IF NOT EXISTS tickets_day ON tickets(day);
CREATE TABLE IF NOT EXISTS visits (
    id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL REFERENCES tickets(id), day TEXT NOT NULL,
    counter INTEGER NOT NULL, officer TEXT NOT NULL, service TEXT NOT NULL, called_at REAL NOT NULL,
    ended_at REAL, outcome TEXT, inferred INTEGER NOT NULL DEFAULT 0, recalls INTEGER NOT NULL DEFAULT 0,
    arrived_at REAL, call_reason TEXT
);
CREATE INDEX IF NOT EXISTS visits_called ON visits(called_at);
CREATE INDEX IF NOT EXISTS visits_ticket ON visits(ticket_id);
CREATE TABLE IF NOT EXISTS counters (
    number INTEGER PRIMARY KEY, state TEXT NOT NULL, pause_reason TEXT, serving INTEGER, visit_id INTEGER,
    last_finished_ticket INTEGER, last_finished_at REAL, pause_id INTEGER
);
CREATE TABLE IF NOT EXISTS pauses (
    id INTEGER PRIMARY KEY, counter INTEGER NOT NULL, day TEXT NOT NULL, started_at REAL NOT NULL,
    ended_at REAL, reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sequences (
    day TEXT NOT NULL, service TEXT NOT NULL, last_number INTEGER NOT NULL, PRIMARY KEY (day, service)
);
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, at REAL NOT NULL, family TEXT NOT NULL,
    kind TEXT NOT NULL, ticket_id INTEGER, counter INTEGER, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (rev INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS site_changes (
    rev INTEGER PRIMARY KEY, at REAL NOT NULL, by TEXT NOT NULL, source TEXT NOT NULL,
    changes TEXT NOT NULL, site TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY, source TEXT NOT NULL, action TEXT NOT NULL, at REAL NOT NULL, reply TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_at ON requests(at);
"""


def _cols(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _upsert_sql(table: str, cols: list[str]) -> str:
    ph = ", ".join("?" for _ in cols)
    return f"INSERT OR REPLACE INTO {table} ({', '.join(cols)}) VALUES ({ph})"


def _values(obj: object, cols: list[str]) -> tuple[Any, ...]:
    return tuple(getattr(obj, c) for c in cols)  # flat fields only: cheaper than dataclasses.asdict


TICKET_COLS, VISIT_COLS = _cols(Ticket), _cols(Visit)
COUNTER_COLS, PAUSE_COLS = _cols(CounterRt), _cols(Pause)


class Ledger:
    """The hub's SQLite file. Only the hub's owner thread uses it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        v = self.get_meta("schema_version")
        if v is not None and int(v) > SCHEMA_VERSION:
            raise RuntimeError(f"ledger {path} has schema {v}, newer than this hub ({SCHEMA_VERSION})")
        self._migrate()
        if v is None or int(v) < SCHEMA_VERSION:
            self.set_meta_now("schema_version", SCHEMA_VERSION)

    def _migrate(self) -> None:
        """Bring a ledger written by an older hub up to this schema (idempotent; one transaction)."""
        missing = []
        for table, column, decl in ADDED_COLUMNS:
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                missing.append((table, column, decl))
        if missing:
            with self.transaction():
                for table, column, decl in missing:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def record_site_change(self, *, rev: int, at: float, by: str, source: str, changes: list[str],
                           site: dict[str, Any]) -> None:
        """One applied site push: its config rev, when, who, what changed, and the whole site."""
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO site_changes (rev, at, by, source, changes, site) VALUES (?,?,?,?,?,?)",
                            (rev, at, by, source, json.dumps(changes, ensure_ascii=False),
                             json.dumps(site, ensure_ascii=False, sort_keys=True)))

    def last_site(self) -> tuple[int, dict[str, Any] | None]:
        """The highest site rev this ledger recorded and its whole site ((0, None): none)."""
        row = self.db.execute("SELECT rev, site FROM site_changes ORDER BY rev DESC LIMIT 1").fetchone()
        return (int(row[0]), json.loads(row[1])) if row else (0, None)

    def site_changes(self) -> list[dict[str, Any]]:
        """The live site's history, oldest first (``xephang`` tools and tests read it)."""
        return [{"rev": r[0], "at": r[1], "by": r[2], "source": r[3], "changes": json.loads(r[4])}
                for r in self.db.execute("SELECT rev, at, by, source, changes FROM site_changes ORDER BY rev")]

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> Any:
        r = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(r[0]) if r else None

    def set_meta_now(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def lookup_reply(self, request_id: str) -> str | None:
        r = self.db.execute("SELECT reply FROM requests WHERE request_id=?", (request_id,)).fetchone()
        return r[0] if r else None

    def lookup_request(self, request_id: str) -> tuple[str, str] | None:
        """``(source, reply)`` stored for ``request_id``: who asked it, and what they were answered."""
        r = self.db.execute("SELECT source, reply FROM requests WHERE request_id=?", (request_id,)).fetchone()
        return (r[0], r[1]) if r else None

    def write(self, engine: QueueEngine, out: Outcome) -> None:
        """Write what ``out`` changed (inside a transaction)."""
        db = self.db
        if out.tickets:
            db.executemany(_upsert_sql("tickets", TICKET_COLS),
                           [_values(engine.tickets[i], TICKET_COLS) for i in out.tickets if i in engine.tickets])
        if out.visits:
            db.executemany(_upsert_sql("visits", VISIT_COLS),
                           [_values(engine.visits[i], VISIT_COLS) for i in out.visits if i in engine.visits])
        if out.counters:
            db.executemany(_upsert_sql("counters", COUNTER_COLS),
                           [_values(engine.counters[i], COUNTER_COLS) for i in out.counters])
        if out.pauses:
            db.executemany(_upsert_sql("pauses", PAUSE_COLS),
                           [_values(engine.pauses[i], PAUSE_COLS) for i in out.pauses if i in engine.pauses])
        if out.sequences:
            db.executemany("INSERT OR REPLACE INTO sequences (day, service, last_number) VALUES (?, ?, ?)",
                           [(d, s, engine.sequences[(d, s)]) for d, s in out.sequences])
        if out.events:
            db.executemany(
                "INSERT INTO events (rev, event_id, at, family, kind, ticket_id, counter, payload) VALUES (?,?,?,?,?,?,?,?)",
                [(e.rev, e.event_id, e.at, e.family, e.kind, (e.payload.get("ticket") or {}).get("id"),
                  e.payload.get("counter"), json.dumps(event_json(e), ensure_ascii=False)) for e in out.events])
            db.executemany("INSERT INTO outbox (rev) VALUES (?)", [(e.rev,) for e in out.events])
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('engine', ?)", (json.dumps(engine.meta()),))

    def save_reply(self, request_id: str, source: str, action: str, at: float, reply: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO requests (request_id, source, action, at, reply) VALUES (?,?,?,?,?)",
                        (request_id, source, action, at, reply))

    def prune_requests(self, before: float) -> int:
        return self.db.execute("DELETE FROM requests WHERE at < ?", (before,)).rowcount

    # ------------------------------------------------------------------ outbox
    def unpublished(self, limit: int = 10_000) -> list[tuple[int, str, str, str]]:
        """(rev, family, kind, payload) of events committed but not yet acknowledged."""
        return self.db.execute(
            "SELECT e.rev, e.family, e.kind, e.payload FROM outbox o JOIN events e ON e.rev = o.rev ORDER BY o.rev LIMIT ?",
            (limit,)).fetchall()

    def outbox_size(self) -> int:
        """Events committed and not yet acknowledged by the broker (acks are written in batches)."""
        return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def mark_published(self, revs: Iterable[int]) -> None:
        self.db.executemany("DELETE FROM outbox WHERE rev=?", [(r,) for r in revs])

    def events_since(self, rev: int, limit: int = 1000) -> list[tuple[int, str, str, str]]:
        return self.db.execute("SELECT rev, family, kind, payload FROM events WHERE rev > ? ORDER BY rev LIMIT ?",
                               (rev, limit)).fetchall()

    # ------------------------------------------------------------------ load
    def load(self, engine: QueueEngine, *, now: float | None = None) -> None:
        """Rebuild the engine from the tables (after a restart, or a kill -9).

        ``now`` (the hub's clock): a ledger with nothing in it yet starts its revisions and ticket
        ids after ``numbering_base(now)``, so a hub whose card was replaced never reuses a number an
        earlier ledger of the site gave out (``numbering_base``)."""
        m = self.get_meta("engine")
        if m:
            engine.load_meta(m)
        maxes = self.db.execute("SELECT (SELECT MAX(id) FROM tickets), (SELECT MAX(id) FROM visits), "
                                "(SELECT MAX(id) FROM pauses), (SELECT MAX(rev) FROM events)").fetchone()
        if now is not None and not m and not any(maxes):
            base = self.get_meta("numbering_base")
            if base is None:
                base = numbering_base(now)
                self.set_meta_now("numbering_base", base)
            engine.rev = max(engine.rev, base)
            engine.next_ticket_id = max(engine.next_ticket_id, base + 1)
        started = self.get_meta("numbering_base")  # when this ledger began (none: before the rule)
        engine.ledger_started = float(started) if isinstance(started, int | float) else None
        engine.next_ticket_id = max(engine.next_ticket_id, (maxes[0] or 0) + 1)
        engine.next_visit_id = max(engine.next_visit_id, (maxes[1] or 0) + 1)
        engine.next_pause_id = max(engine.next_pause_id, (maxes[2] or 0) + 1)
        engine.rev = max(engine.rev, maxes[3] or 0)
        self.db.row_factory = sqlite3.Row
        try:
            for r in self.db.execute("SELECT * FROM counters"):
                if r["number"] in engine.counters:
                    engine.counters[r["number"]] = CounterRt(**dict(r))
            keep = {c.last_finished_ticket for c in engine.counters.values() if c.last_finished_ticket}
            q = "SELECT * FROM tickets WHERE state IN ('waiting','called')"
            if keep:
                q += f" OR id IN ({','.join(str(int(i)) for i in keep)})"
            for r in self.db.execute(q):
                d = dict(r)
                d["finish_inferred"], d["clock_jump"] = bool(d["finish_inferred"]), bool(d["clock_jump"])
                engine.tickets[d["id"]] = Ticket(**d)
            for r in self.db.execute("SELECT * FROM visits WHERE ended_at IS NULL"):
                d = dict(r)
                d["inferred"] = bool(d["inferred"])
                engine.visits[d["id"]] = Visit(**d)
            for r in self.db.execute("SELECT * FROM pauses WHERE ended_at IS NULL"):
                engine.pauses[r["id"]] = Pause(**dict(r))
            if engine.day:
                for r in self.db.execute("SELECT day, service, last_number FROM sequences WHERE day=?", (engine.day,)):
                    engine.sequences[(r["day"], r["service"])] = r["last_number"]
        finally:
            self.db.row_factory = None


# what to do with a ledger file the hub cannot use (docs/install-pi.md §10: the hub starts on a new one)
MOVE_ASIDE = "docs/install-pi.md §10"


def ledger_fault(path: Path | str, exc: sqlite3.Error) -> str | None:
    """The one line the hub says (exit 78) when SQLite's ``exc`` means the ledger at ``path`` can
    never open as it is: not an SQLite file, damaged, or not openable or writable by the hub's
    user. None for a passing fault (``database is locked``: another process holds it), which
    stays an error systemd retries."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return (f"sổ cái {path} không phải một sổ cái SQLite đọc được ({exc}): dời tệp sang chỗ khác rồi khởi động "
                f"lại, trung tâm bắt đầu sổ cái mới ({MOVE_ASIDE}) / the ledger {path} is not a readable SQLite "
                f"ledger ({exc}): move it aside (e.g. mv {path} {path}.broken) and restart: the hub starts a new "
                f"ledger, see {MOVE_ASIDE} \"Replacing the hub's card\"")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH", "SQLITE_IOERR")):
        return (f"không mở hoặc ghi được sổ cái {path} ({exc}): tệp và thư mục của nó phải thuộc người dùng của "
                f"hubd / cannot open or write the ledger {path} ({exc}): the file and its folder must be the hub's "
                f"user's to write (hub.ledger, state_dir)")
    return None


def check_ledger(path: Path | str) -> list[str]:
    """What would stop the hub opening the ledger at ``path``, found without creating or writing
    anything (``hubd --check``, and every start before the daemon is built).

    An existing file is opened read-only and its tables and schema version read: through its
    ``-wal``/``-shm`` when a hub runs (or ran and was killed), else as the bare file (SQLite's
    ``immutable``), so that nothing new appears beside it. For a missing one, the folder it
    would be made in must be writable; it is not made."""
    path = Path(path)
    try:
        return _check_ledger(path)
    except OSError as exc:  # the folder cannot even be looked into (a technician's own user on 0750)
        return [f"không đọc được sổ cái {path} ({exc.strerror or exc}): chạy với người dùng của máy chủ hàng đợi "
                f"(sudo -u xephang-hubd) / cannot look at the ledger {path} ({exc.strerror or exc}): run as the "
                "hub's user"]


def _check_ledger(path: Path) -> list[str]:
    if not path.exists():
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # the hub makes the missing folders: the nearest one there must be writable
        if not os.access(folder, os.W_OK | os.X_OK):
            return [f"không tạo được sổ cái {path}: không ghi được vào {folder} / cannot make the ledger {path}: "
                    f"{folder} is not writable by this user"]
        return []
    live = any(path.with_name(path.name + end).exists() for end in ("-wal", "-shm"))
    uri = f"{path.resolve().as_uri()}?mode=ro{'' if live else '&immutable=1'}"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
                if "meta" in tables else None
        finally:
            db.close()
    except sqlite3.Error as exc:
        fault = ledger_fault(path, exc)
        return [fault] if fault else []  # a passing fault: the start meets it again, and systemd retries
    if row is not None and int(json.loads(row[0])) > SCHEMA_VERSION:
        return [f"sổ cái {path} có lược đồ {json.loads(row[0])}, mới hơn hubd này ({SCHEMA_VERSION}): cập nhật "
                f"xephang / the ledger {path} has schema {json.loads(row[0])}, newer than this hub "
                f"({SCHEMA_VERSION}): update xephang"]
    for p in (path, path.parent):  # WAL: the hub writes the file and makes -wal and -shm beside it
        if not os.access(p, os.W_OK):
            return [f"không ghi được sổ cái {path} ({p}) / cannot write the ledger {path} ({p} is not writable "
                    f"by this user): the file and its folder must be the hub's user's"]
    return []


# a clock earlier than this (2026-01-01 UTC) is wrong for sure: a Pi without its clock module
NUMBERING_FLOOR = 1_767_225_600


def numbering_base(now: float) -> int:
    """Where a new ledger's revisions and ticket ids start: after the hub's clock in whole seconds.

    The boards, the web and the province keep the revisions and ticket ids they saw (a board
    ignores a revision it has passed; the province keys tickets by id and visits by the call's
    revision). A ledger started at 1 on a replaced card made the hall board ignore the new hub
    until it restarted, and merged the new tickets into old ones at the province. A centre
    makes far fewer than one event a second over any stretch of days, so a ledger started
    later starts above every number an earlier one reached; an earlier ledger that started at 1
    (before this rule) is far below. Not covered: a ledger restored from a copy, which goes on
    from the copy's numbers (docs/install-pi.md)."""
    return int(max(now, NUMBERING_FLOOR))


def event_json(e: Event) -> dict[str, Any]:
    """The contract payload of an engine event."""
    from xephang.contract import CounterEvent, TicketEvent

    schema = TicketEvent.SCHEMA if e.family == "ticket" else CounterEvent.SCHEMA
    body = {"schema": schema, "event_id": e.event_id, "rev": e.rev, "at": e.at, "kind": e.kind}
    body.update({k: v for k, v in e.payload.items() if v is not None})
    return body


