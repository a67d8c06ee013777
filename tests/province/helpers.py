"""Helpers of the province tests: report rows compared with a centre's own, and real brokers
(accounts, publishing, reading retained messages, waiting for a condition)."""

from __future__ import annotations

import queue
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

FIGURES = ("issued", "served", "no_shows", "voided", "expired", "transferred", "open", "calls", "wait",
           "within_target", "service_time", "ratings", "rated", "satisfaction")


def figures(row: dict[str, Any]) -> dict[str, Any]:
    """The figures both reports share (the clock-jump flags do not travel in events)."""
    out = {k: row[k] for k in FIGURES}
    out["inferred"] = row["flags"]["inferred"]
    out["closed_by_reset"] = row["flags"]["closed_by_reset"]
    return out


def snapshot(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every derived row of the province database, sorted."""
    out = {}
    with conn.cursor() as cur:
        for table, cols in (("events", "site, event_id, rev, at, kind, ticket_id"),
                            ("tickets", "*"), ("visits", "*"), ("daily_summaries", "site, day, at")):
            cur.execute(f"SELECT {cols} FROM {table} ORDER BY 1, 2, 3")
            out[table] = cur.fetchall()
    conn.commit()
    return out


def additive(row: dict[str, Any]) -> dict[str, int]:
    """The figures that add up across centres: counts, ratings per score, within-target counts."""
    out = {k: row[k] for k in ("issued", "served", "no_shows", "voided", "expired", "transferred", "open", "calls",
                               "rated")}
    out["wait_n"] = row["wait"]["n"]
    out["service_n"] = row["service_time"]["n"]
    out["within_target_n"] = row["within_target"]["n"]
    out["within_target_ok"] = row["within_target"]["ok"]
    out.update({f"score_{s}": n for s, n in row["ratings"].items()})
    out["inferred"] = row["flags"]["inferred"]
    out["closed_by_reset"] = row["flags"]["closed_by_reset"]
    return out


def add(rows: list[dict[str, int]]) -> dict[str, int]:
    """Figure by figure sum of ``additive`` dicts."""
    out: dict[str, int] = {}
    for r in rows:
        for k, v in r.items():
            out[k] = out.get(k, 0) + v
    return out


# ---- real brokers: accounts, publishing, reading retained, waiting -----------------------------
def wait_for(cond: Callable[[], Any], timeout: float, what: str, *, every: float = 0.05) -> Any:
    """``cond()``'s first truthy answer within ``timeout`` s, else an AssertionError naming ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def write_passwords(path: Path, users: dict[str, str]) -> None:
    """A mosquitto password file for ``users`` (made by ``mosquitto_passwd``, readable by a broker
    that runs as another user)."""
    for i, (user, pw) in enumerate(users.items()):
        r = subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(path), user, pw],
                           capture_output=True, timeout=30, check=False)
        assert r.returncode == 0, r.stderr
    path.chmod(0o644)


def province_accounts(tmp_path: Path, users: dict[str, str]) -> tuple[Path, Path]:
    """The province broker's password file and ACL (``province_acl_text``, ingester ``ingest``)."""
    from xephang_ops.bridgeconf import province_acl_text

    pwfile, aclfile = tmp_path / "passwd", tmp_path / "acl"
    write_passwords(pwfile, users)
    aclfile.write_text(province_acl_text(ingest_users=("ingest",)))
    aclfile.chmod(0o644)
    return pwfile, aclfile


def _client(prefix: str, user: str | None, password: str | None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user or prefix}-{time.monotonic_ns()}")
    if user:
        c.username_pw_set(user, password)
    return c


def publish(port: int, items: list[tuple[str, bytes]], *, retain: bool = True, user: str | None = None,
            password: str | None = None) -> None:
    """Publish QoS 1 messages at a broker (anonymous, or as ``user``) and wait until it has them
    (a message the ACL refuses is dropped by the broker: the caller checks what arrived)."""
    c = _client("tech", user, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for info in [c.publish(topic, payload, qos=1, retain=retain) for topic, payload in items]:
            info.wait_for_publish(10)
    finally:
        c.loop_stop()
        c.disconnect()


def retained(port: int, topic: str, *, user: str | None = None, password: str | None = None) -> bytes:
    """The retained payload of ``topic`` at a broker, as a fresh subscriber (anonymous, or ``user``) gets it."""
    got: queue.Queue[bytes] = queue.Queue()
    c = _client("look", user, password)
    c.on_message = lambda _c, _u, m: got.put(bytes(m.payload))
    c.on_connect = lambda cl, *_: cl.subscribe(topic, 1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        return got.get(timeout=5)
    finally:
        c.loop_stop()
        c.disconnect()
