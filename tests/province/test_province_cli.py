"""The province commands tell a technician what is wrong instead of something untrue or a traceback:
a misspelt centre, a malformed DSN, a bad port variable (found by a tools audit)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from province.db import upsert_site
from xephang.settings import load_site
from xephang_ops.cli import main

SITE_FILE = Path(__file__).resolve().parents[2] / "config" / "site.example.toml"


@pytest.fixture
def registered(pg, pg_dsn: str) -> str:
    """A database that knows tuong-linh (its site file), xuan-quang (only from its bridge link) and
    hoa-binh (only from an event: found when asked for, not listed; events are too many to list)."""
    upsert_site(pg, load_site(SITE_FILE))
    with pg.transaction(), pg.cursor() as cur:
        cur.execute("INSERT INTO site_links (site, up, since, seen_at) VALUES ('xuan-quang', true, now(), now())")
        cur.execute("INSERT INTO events (site, event_id, rev, at, family, kind, payload) "
                    "VALUES ('hoa-binh', 'e1', 1, 0, 'ticket', 'issued', '{}')")
    return pg_dsn


@pytest.mark.parametrize("command", [["province-report"], ["province", "links"], ["province", "devices"]])
def test_an_unknown_centre_is_refused_with_the_known_ones(registered, capsys, command):
    assert main([*command, "--dsn", registered, "--site", "tuong-linh", "--site", "tuong-lihn"]) == 2
    out = capsys.readouterr().out.strip()
    assert out == "không có trung tâm / unknown centre 'tuong-lihn' (đã biết / known: tuong-linh, xuan-quang)"


@pytest.mark.parametrize("command", [["province-report"], ["province", "links"], ["province", "devices"]])
def test_known_centres_registered_or_only_heard_from_are_accepted(registered, capsys, command):
    assert main([*command, "--dsn", registered, "--site", "tuong-linh", "--site", "xuan-quang", "--site", "hoa-binh",
                 "--lang", "en"]) == 0
    assert "unknown centre" not in capsys.readouterr().out


@pytest.mark.parametrize("command", [["province-db"], ["province-report"], ["province", "devices"],
                                     ["province", "links"]])
@pytest.mark.parametrize("dsn", ["dbname", "host=127.0.0.1 port=5432 dbname", "postgres://127.0.0.1:5432/xephang rt"])
def test_a_malformed_dsn_is_one_line_exit_2(capsys, command, dsn):
    assert main([*command, "--dsn", dsn]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("DSN không hợp lệ / malformed DSN") and len(out.splitlines()) == 1


def _ingest_parser() -> argparse.ArgumentParser:
    from province import ingest

    parser = argparse.ArgumentParser(prog="xephang")
    ingest.register(parser.add_subparsers(dest="cmd"))
    return parser


def test_a_bad_port_variable_spoils_only_ingest_and_says_why(monkeypatch, capsys):
    monkeypatch.setenv("XEPHANG_BROKER__PORT", "1883a")
    parser = _ingest_parser()  # it crashed here: every command, `xephang --help` too
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--help"])
    assert e.value.code == 0
    assert parser.parse_args(["province-db"]).cmd == "province-db"
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["ingest"])
    assert e.value.code == 2
    assert "cổng không hợp lệ / not a port number: '1883a'" in capsys.readouterr().err
    monkeypatch.setenv("XEPHANG_BROKER__PORT", "18830")
    assert _ingest_parser().parse_args(["ingest"]).port == 18830
