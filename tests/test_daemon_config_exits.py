"""Local faults a daemon cannot run with exit 78 (EX_CONFIG; the units' RestartPreventExitStatus=78:
systemd does not start it again) with one readable line each, never a traceback, under ``--check``
and at a real start (docs/tools.md, "Exit codes"). Each used to end in a Python traceback and exit 1
(systemd restarting it every 5 s for ever):

- a config or site file that cannot be read (permissions, a folder, a symlink loop): only
  ``FileNotFoundError`` was caught;
- no GPIO pin factory on a board that is not in sim mode (lgpio missing: docs/install-pi.md §3);
- a ledger that is no SQLite file.

And ``hubd --check`` made the ledger on an empty state folder (fixing its numbering base, and as
root leaving a file the hub's user cannot write): it now reads, and writes nothing.

The daemons run as real processes, ``python -m <daemon>.main`` (what the console scripts call).
Unreadable files: root reads a mode-000 file, so the paths are ones nobody can read (a folder, a
symlink loop); the mode-000 case runs as an ordinary user, or as root without CAP_DAC_OVERRIDE
(``setpriv``), and is skipped where neither works.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "config" / "site.example.toml"
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps=-all"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A daemon's environment: no XEPHANG_* or GPIOZERO_* of the caller's, a broker nobody listens
    on (nothing here may get as far as connecting), the example site, a temp state folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XEPHANG_", "GPIOZERO_"))}
    env.update({"XEPHANG_SITE_FILE": str(SITE), "XEPHANG_STATE_DIR": str(tmp_path / "state"),
                "XEPHANG_BROKER__PORT": "1", "XEPHANG_COUNTER__NUMBER": "1"})
    env.update(extra)
    return env


def run(daemon: str, env: dict[str, str], *args: str, check: bool = True,
        prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*(prefix or []), sys.executable, "-m", f"{daemon}.main", *args, *(["--check"] if check else [])]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def assert_78(r: subprocess.CompletedProcess[str], *wanted: str) -> None:
    assert r.returncode == 78, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    for w in wanted:
        assert w in r.stderr, (w, r.stderr[-3000:])


def unreadable(tmp_path: Path, kind: str) -> Path:
    """A path nobody can read as a file, root included."""
    if kind == "folder":
        p = tmp_path / "a-folder.toml"
        p.mkdir()
    else:  # a symlink loop: ELOOP
        p = tmp_path / "loop.toml"
        p.symlink_to(tmp_path / "loop2.toml")
        (tmp_path / "loop2.toml").symlink_to(p)
    return p


@pytest.fixture
def no_read(tmp_path: Path) -> tuple[Path, list[str]]:
    """A mode-000 file and the command prefix under which this user cannot read it."""
    p = tmp_path / "locked.toml"
    p.write_text('site = "tuong-linh"\n')
    p.chmod(0)
    return p, denied_prefix(f"open({str(p)!r}, 'rb')", "reads a mode-000 file")


def denied_prefix(probe: str, what: str) -> list[str]:
    """The command prefix under which ``probe`` (Python code touching a mode-000 path) is refused to
    this user: none for an ordinary user, ``setpriv`` without CAP_DAC_OVERRIDE for root; else skip."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip(f"root {what}, and there is no setpriv to drop CAP_DAC_OVERRIDE")
        prefix = NO_DAC
    if subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True).returncode == 0:
        pytest.skip(f"this user {what} (CAP_DAC_OVERRIDE could not be dropped)")
    return prefix


# ---- 1. config and site files that cannot be read ----------------------------------------------

@pytest.mark.parametrize("kind", ["folder", "symlink-loop"])
@pytest.mark.parametrize("check", [True, False], ids=["--check", "start"])
def test_a_config_file_that_cannot_be_read_exits_78_naming_it(tmp_path, kind, check):
    path = unreadable(tmp_path, kind)
    r = run("counterd", env_for(tmp_path), "--config", str(path), check=check)
    assert_78(r, f"không đọc được {path}", f"cannot read the config file {path}")


def test_a_mode_000_config_file_exits_78_permission_denied(tmp_path, no_read):
    path, prefix = no_read
    r = run("counterd", env_for(tmp_path), "--config", str(path), prefix=prefix)
    assert_78(r, f"không đọc được {path} (Permission denied)", f"cannot read the config file {path}")


@pytest.mark.parametrize("daemon", ["hubd", "ticketd"])
@pytest.mark.parametrize("kind", ["folder", "symlink-loop"])
def test_a_site_file_that_cannot_be_read_exits_78_naming_it(tmp_path, daemon, kind):
    path = unreadable(tmp_path, kind)
    r = run(daemon, env_for(tmp_path, XEPHANG_SITE_FILE=str(path)))
    assert_78(r, f"không đọc được {path}", f"cannot read the site file {path}")


def test_a_mode_000_site_file_stops_the_hub_78(tmp_path, no_read):
    path, prefix = no_read
    r = run("hubd", env_for(tmp_path, XEPHANG_SITE_FILE=str(path)), prefix=prefix)
    assert_78(r, f"không đọc được {path} (Permission denied)", f"cannot read the site file {path}")


@pytest.mark.parametrize("check", [True, False], ids=["--check", "start"])
def test_a_counter_box_whose_site_file_cannot_be_read_says_so_without_a_traceback(tmp_path, check):
    """The site file is optional on a box (docs/counterd.md): one it cannot use, missing or invalid,
    is a warning and the details come from the hub. One it could not read was a traceback, exit 1."""
    path = unreadable(tmp_path, "folder")
    env = env_for(tmp_path, XEPHANG_SITE_FILE=str(path), XEPHANG_SIM="true", XEPHANG_SIM_OUT=str(tmp_path / "sim"))
    if check:
        r = run("counterd", env)
        assert r.returncode == 0, r.stderr[-3000:]
    else:  # it runs (on a broker nobody listens on): stopped after a moment
        p = subprocess.Popen([sys.executable, "-m", "counterd.main"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                p.wait(3)
        finally:
            p.terminate()
        p.wait(10)
        r = subprocess.CompletedProcess(p.args, p.returncode, "", p.stderr.read())  # type: ignore[union-attr]
        p.stderr.close()  # type: ignore[union-attr]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"cannot read the site file {path}" in r.stderr


# ---- 2. no GPIO pin factory on a real board ------------------------------------------------------

COUNTER_LGPIO = '[counter]\nnumber = 1\npin_factory = "lgpio"\n'
TICKET_LGPIO = '[hardware]\npin_factory = "lgpio"\nbuttons = [{ service = "ho-tich", pin = 17 }]\n'
TICKET_DEFAULT = '[hardware]\nbuttons = [{ service = "ho-tich", pin = 17 }]\n'


@pytest.mark.skipif(importlib.util.find_spec("lgpio") is not None, reason="lgpio is installed here")
@pytest.mark.parametrize(("daemon", "toml"), [("counterd", COUNTER_LGPIO), ("ticketd", TICKET_LGPIO)])
@pytest.mark.parametrize("check", [True, False], ids=["--check", "start"])
def test_a_pin_factory_that_cannot_load_exits_78_saying_what_to_install(tmp_path, daemon, toml, check):
    cfg = tmp_path / f"{daemon}.toml"
    cfg.write_text(toml)
    r = run(daemon, env_for(tmp_path), "--config", str(cfg), check=check)
    assert_78(r, "pin factory 'lgpio' cannot be loaded", "python3-lgpio", "docs/install-pi.md §3")


@pytest.mark.parametrize(("daemon", "toml"), [("counterd", ""), ("ticketd", TICKET_DEFAULT)])
@pytest.mark.parametrize("check", [True, False], ids=["--check", "start"])
def test_no_default_pin_factory_exits_78_saying_what_to_install(tmp_path, daemon, toml, check):
    """``pin_factory = ""``: gpiozero picks its default when the first key is made, and raises its own
    BadPinFactory when none loads. GPIOZERO_PIN_FACTORY naming none makes that happen on any machine
    (on a board without lgpio it is "Unable to load any default pin factory!")."""
    cfg = tmp_path / f"{daemon}.toml"
    cfg.write_text(toml)
    r = run(daemon, env_for(tmp_path, GPIOZERO_PIN_FACTORY="no-such-factory"), "--config", str(cfg), check=check)
    assert_78(r, "no pin factory can be loaded", "python3-lgpio", "docs/install-pi.md §3")


# ---- 3. a ledger that is no SQLite file ----------------------------------------------------------

@pytest.mark.parametrize("check", [True, False], ids=["--check", "start"])
def test_a_ledger_that_is_not_sqlite_exits_78_saying_to_move_it_aside(tmp_path, check):
    ledger = tmp_path / "state" / "ledger.sqlite"
    ledger.parent.mkdir()
    ledger.write_bytes(b"garbage")
    r = run("hubd", env_for(tmp_path), check=check)
    assert_78(r, f"the ledger {ledger} is not a readable SQLite ledger", "move it aside",
              "Replacing the hub's card", "§10")
    assert ledger.read_bytes() == b"garbage"  # left as it was, for the technician to look at


# ---- 4. hubd --check writes nothing --------------------------------------------------------------

def test_hub_check_on_an_empty_state_folder_makes_no_ledger(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    r = run("hubd", env_for(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "settings OK" in r.stdout
    assert sorted(p.name for p in state.iterdir()) == []  # no ledger.sqlite (nor its -wal, -shm)


def test_hub_check_reads_an_existing_ledger_and_leaves_nothing_beside_it(tmp_path):
    """A ledger the hub closed is read as it is: no -wal or -shm appears beside it (as root they
    would be root's, and the hub's user could then not open its own ledger)."""
    env = env_for(tmp_path)
    state = tmp_path / "state"
    made = subprocess.run([sys.executable, "-c", "import sys; from hubd.ledger import Ledger; "
                           "Ledger(sys.argv[1]).close()", str(state / "ledger.sqlite")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    before = {p.name: p.stat().st_mtime_ns for p in state.iterdir()}
    assert list(before) == ["ledger.sqlite"]
    r = run("hubd", env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in state.iterdir()} == before


DAEMONS = ["hubd", "ticketd", "counterd", "displayd", "announcerd", "webd"]


@pytest.mark.parametrize("sim", [True, False], ids=["sim", "board"])
@pytest.mark.parametrize("daemon", DAEMONS)
def test_a_check_makes_no_state_folder_and_writes_nothing_in_one(tmp_path, daemon, sim):
    """``--check`` asks whether the state folder could be made and written, and does neither: it made
    a missing folder (as root, one the daemon's user could then not write) and a probe file in it, and
    ``ticketd --check`` in sim mode made ``sim-tickets/``."""
    state = tmp_path / "state"
    env = env_for(tmp_path, **({"XEPHANG_SIM": "true"} if sim else {"GPIOZERO_PIN_FACTORY": "mock"}))
    r = run(daemon, env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not state.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    state.mkdir()
    r = run(daemon, env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in state.iterdir()) == []


@pytest.mark.parametrize("check", [True, False], ids=["--check", "start"])
def test_a_state_folder_that_cannot_be_made_is_one_line_78(tmp_path, check):
    (tmp_path / "a-file").write_text("")
    r = run("displayd", env_for(tmp_path, XEPHANG_STATE_DIR=str(tmp_path / "a-file" / "state")), check=check)
    folder = tmp_path / "a-file" / "state"
    assert_78(r, f"state_dir: không {'tạo được' if check else 'ghi được vào'} {folder}",
              f" / cannot {'make' if check else 'write in'} {folder}")


def test_a_check_names_a_state_folder_its_user_could_not_make(tmp_path):
    parent = tmp_path / "var-lib"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        prefix = denied_prefix(f"open({str(parent / 'x')!r}, 'w')", "writes in a mode-555 folder")
        r = run("counterd", env_for(tmp_path, XEPHANG_STATE_DIR=str(parent / "xephang")), prefix=prefix)
    finally:
        parent.chmod(0o755)
    assert_78(r, f"state_dir: không tạo được {parent / 'xephang'}: không ghi được vào {parent} / "
                 f"cannot make {parent / 'xephang'}: {parent} is not writable")
    assert list(parent.iterdir()) == []


def test_a_check_on_a_real_board_loads_its_pin_factory_and_claims_no_pin(monkeypatch):
    """`counterd --check` on a live box claimed the keys' pins the running service holds (lgpio lets
    one process claim a line): a box whose settings were right failed its check. The check loads the
    configured factory (a missing lgpio is found), closes it, and builds the key map on mock pins."""
    from gpiozero.pins.mock import MockFactory

    from xephang.hw import factory as hwf

    made: list[MockFactory] = []

    class Real(MockFactory):  # stands for lgpio's factory
        closed = False

        def close(self) -> None:
            Real.closed = True
            super().close()

    def make(name: str = "") -> MockFactory:
        made.append(Real() if name == "lgpio" else MockFactory())
        return made[-1]

    monkeypatch.setattr(hwf, "make_pin_factory", make)
    checked = hwf.board_pin_factory("lgpio", sim=False, checking=True)
    assert Real.closed and not isinstance(checked, Real) and isinstance(made[0], Real)
    assert isinstance(hwf.board_pin_factory("lgpio", sim=False, checking=False), Real)  # the service's own
    assert not isinstance(hwf.board_pin_factory("lgpio", sim=True, checking=False), Real)


def test_a_ledger_folder_this_user_cannot_look_into_is_one_line_78(tmp_path):
    """`hubd --check` run as a technician's own user on the hub's 0750 folder: the check of the
    ledger met PermissionError on looking for the file, a traceback and exit 1 (found by review)."""
    locked = tmp_path / "hubd-state"
    locked.mkdir()
    locked.chmod(0)
    # os.stat of a missing name in a folder one may look into raises too (FileNotFoundError): only
    # PermissionError counts as refused
    probe = f"import os\ntry:\n    os.stat({str(locked / 'x')!r})\nexcept FileNotFoundError:\n    pass"
    try:
        prefix = denied_prefix(probe, "looks into a mode-000 folder")
        r = run("hubd", env_for(tmp_path, XEPHANG_HUB__LEDGER=str(locked / "ledger.sqlite")), prefix=prefix)
    finally:
        locked.chmod(0o700)
    assert_78(r, f"cannot look at the ledger {locked / 'ledger.sqlite'} (Permission denied): run as the hub's user")


def test_a_check_beside_a_running_box_leaves_its_pending_push_alone(tmp_path):
    """A push the running daemon is applying waits in ``<node>.config.json.pending``; a start discards
    it (the daemon died applying it). `--check` run beside the running daemon moved it to ``.failed``
    (found by review)."""
    state = tmp_path / "state"
    state.mkdir()
    pending = state / "counter-1.config.json.pending"
    pending.write_text('{"rev": 1, "config": {"number": 1}, "origin": null}')
    r = run("counterd", env_for(tmp_path, XEPHANG_SIM="true", XEPHANG_SIM_OUT=str(tmp_path / "sim")))
    assert r.returncode == 0, r.stderr[-3000:]
    assert pending.exists() and not (state / "counter-1.config.json.failed").exists()
