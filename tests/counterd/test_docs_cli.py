"""The documented patterns match the code; the console script starts from settings alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from counterd.lights import patterns_table_md
from counterd.main import CounterDaemon, CounterdSettings

ROOT = Path(__file__).resolve().parents[2]


def test_docs_patterns_table_is_generated_from_the_code():
    doc = (ROOT / "docs" / "counterd.md").read_text()
    between = doc.split("<!-- patterns:begin -->\n", 1)[1].split("<!-- patterns:end -->", 1)[0]
    assert between == patterns_table_md(), "docs/counterd.md drifted: regenerate the patterns table"


def test_node_id_follows_the_counter_number(tmp_path):
    s = CounterdSettings(state_dir=tmp_path, counter={"number": 4})
    assert CounterDaemon.default_node(s) == "counter-4"


def test_counterd_check_reports_every_settings_error_at_once(tmp_path):
    env = {**os.environ, "XEPHANG_STATE_DIR": str(tmp_path)}
    bad = tmp_path / "bad.toml"
    bad.write_text('[counter]\nnumbr = 3\nkeys = [{name = "next", pin = 5, short = "nxt"}]\n')
    r = subprocess.run([sys.executable, "-m", "counterd.main", "--config", str(bad), "--check"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 78
    assert "did you mean 'number'" in r.stderr and "unknown action 'nxt'" in r.stderr
    good = tmp_path / "good.toml"
    good.write_text("[counter]\nnumber = 3\n")
    r = subprocess.run([sys.executable, "-m", "counterd.main", "--config", str(good), "--check"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_counterd_check_refuses_a_rating_key_beyond_the_sites_scale(tmp_path, three_point_site):
    env = {**os.environ, "XEPHANG_STATE_DIR": str(tmp_path), "XEPHANG_SITE_FILE": str(three_point_site)}
    cfg = tmp_path / "box.toml"
    cfg.write_text('[counter]\nnumber = 1\nkeys = [{name = "next", pin = 5, short = "next"}, '
                   '{name = "r3", pin = 20, short = "rate-3"}, {name = "r4", pin = 21, short = "rate-4"}]\n')
    r = subprocess.run([sys.executable, "-m", "counterd.main", "--config", str(cfg), "--check"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 78, r.stderr
    assert "key 'r4' → rate-4" in r.stderr and "3-point" in r.stderr
    cfg.write_text("[counter]\nnumber = 1\n")   # the default key map follows the scale: three rating keys
    r = subprocess.run([sys.executable, "-m", "counterd.main", "--config", str(cfg), "--check"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
