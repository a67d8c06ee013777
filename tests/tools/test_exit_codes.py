"""The exit-code table of docs/tools.md (``xephang.exits.TABLE``), produced by the tools for real.

76 (a daemon refused by the broker), 78 (a daemon's settings) and 130 (Ctrl-C in the demo) are
produced by ``tests/test_daemon_process.py`` and ``tests/demo/test_demo.py``; this file makes every
tool code happen against a real, secured broker and checks the table lists no code nobody makes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xephang import exits
from xephang_ops.cli import main as xephang
from xephang_ops.mosquitto import free_port

pytestmark = pytest.mark.broker

ELSEWHERE = {exits.DAEMON_BROKER_REFUSED: "tests/test_daemon_process.py",
             exits.DAEMON_CONFIG: "tests/test_daemon_process.py", exits.INTERRUPTED: "tests/demo/test_demo.py"}


def run(sb, *args: str, user: str = "tech") -> int:
    return xephang([*args, "--port", str(sb.broker.tech_port), "--username", user,
                    "--password-file", str(sb.files.passwords_dir / f"{user}.pw")])


def test_every_tool_exit_code_of_the_table_happens(secured_broker, sample_node, tmp_path: Path, capsys):
    sample_node(XEPHANG_SIM="true")
    bad = tmp_path / "bad.toml"
    bad.write_text("repeats = = 2\n")
    seen = {
        exits.OK: run(secured_broker, "devices", "--wait", "0.3"),
        exits.REFUSED: run(secured_broker, "config", "push", "display-lab", str(bad)),
        exits.USAGE: subprocess.run([sys.executable, "-m", "xephang_ops.cli", "devices", "--no-such-option"],
                                    capture_output=True).returncode,
        exits.NO_ANSWER: run(secured_broker, "press", "counter-9", "next", "--timeout", "0.5"),
        exits.NOT_ALLOWED: run(secured_broker, "press", "counter-1", "next", user="counter-2"),
        exits.NO_BROKER: xephang(["devices", "--port", str(free_port())]),
    }
    assert {code: got for code, got in seen.items() if code != got} == {}
    documented = {code for code, *_ in exits.TABLE}
    assert documented == set(seen) | set(ELSEWHERE)  # no code in the table that nothing makes
    capsys.readouterr()


def test_the_documented_table_is_the_generated_one():
    text = (Path(__file__).resolve().parents[2] / "docs" / "tools.md").read_text()
    assert exits.markdown_table() in text
