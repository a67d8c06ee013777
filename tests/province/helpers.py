"""Comparison of province report rows with a centre's own report rows."""

from __future__ import annotations

from typing import Any

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
