"""Every `xephang …` command written in the docs, as a technician would copy and paste it.

Each one is parsed by the real command line (an option the tool does not have, a missing
argument, a renamed command: the test fails, so the docs cannot drift from the tools again), and
the technicians' read-only commands (`devices`, `tail -n`, `config get`) and `press` are run
against a real, secured broker with a simulated node, with only the host, port and password file
put in for this machine.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from xephang_ops.cli import build_parser
from xephang_ops.cli import main as xephang

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
CMD = re.compile(r"^\s*(?:\$ )?(?:sudo (?:-u \S+ )?)?(?:env )?(?:[A-Z_]+=\S+ )*(?:\S*/)?xephang\s+[a-z]")


def documented_commands() -> list[tuple[str, str]]:
    """(page, command line) for every xephang invocation in a code block of the docs."""
    out: list[tuple[str, str]] = []
    for page in PAGES:
        in_fence = False
        pending = ""
        for line in page.read_text().splitlines():
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
                continue
            code = in_fence or line.startswith("    ")
            if pending:
                pending += " " + line.strip()
            elif code and CMD.match(line):
                pending = line.strip()
            else:
                continue
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip()
                continue
            out.append((page.name, pending))
            pending = ""
    return out


def argv_of(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    while words and not words[0].endswith("xephang"):
        words.pop(0)  # sudo -u …, a path
    return words[1:]


COMMANDS = documented_commands()


def test_the_docs_show_the_commands_a_technician_needs():
    subs = {argv_of(c)[0] for _, c in COMMANDS}
    assert {"demo", "broker-config", "devices", "report", "voice"} <= subs, subs


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_every_documented_command_is_one_the_tools_accept(page, command):
    parser = build_parser()
    try:
        args = parser.parse_args(argv_of(command))
    except SystemExit as exc:  # argparse: an option or argument the tool does not have
        pytest.fail(f"{page}: `{command}` is refused by the command line (exit {exc.code})")
    assert getattr(args, "func", None) is not None, f"{page}: `{command}` names no command"


RUNNABLE = [(p, c) for p, c in COMMANDS if argv_of(c)[0] in ("devices", "tail", "press")
            or argv_of(c)[:2] == ["config", "get"]]


def _for_this_machine(argv: list[str], sb) -> list[str]:
    out, skip = [], False
    for i, w in enumerate(argv):
        if skip:
            skip = False
            continue
        if w in ("--host", "--port", "--password-file"):
            skip = True
            continue
        if w in ("--watch", "-w"):
            continue  # runs until Ctrl-C: the table once is what we check
        out.append(w)
        del i
    return [*out, "--host", "127.0.0.1", "--port", str(sb.broker.tech_port),
            "--password-file", str(sb.files.passwords_dir / "tech.pw")]


@pytest.mark.broker
@pytest.mark.slow
def test_the_technicians_documented_commands_run_against_a_real_centre(tmp_path, capsys):
    """A secured centre of real daemon processes (hub, dispenser, counter, board) in sim mode."""
    from xephang_faults.harness import Centre, Observer
    from xephang_ops.mosquitto import find_mosquitto

    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    assert len(RUNNABLE) >= 4, RUNNABLE
    with Centre(tmp_path / "centre", secured=True) as c:
        for node in ("hub", "dispenser-1", "counter-1", "display-hall"):
            c.start(node)
        obs = Observer(c.bus("tech-obs"))
        assert obs.wait(lambda: all(obs.online(n) for n in ("hub", "dispenser-1", "counter-1", "display-hall")), 30)

        class Target:  # what _for_this_machine needs of a broker
            broker = c.broker
            files = c.files

        for page, command in RUNNABLE:
            argv = _for_this_machine(argv_of(command), Target)
            if argv[0] == "tail" and "-n" not in argv and "--count" not in argv:
                continue  # runs until Ctrl-C
            rc = xephang(argv)
            out = capsys.readouterr()
            assert rc == 0, f"{page}: `{command}` → exit {rc}: {out.err[-500:]}"
