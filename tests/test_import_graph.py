"""The package lines hold (docs/dev/core-api.md): the library (``xephang``) imports no daemon,
no tooling, nothing shared; the reports (``xephang_reports``) and the voice (``xephang_voice``)
import only the library; no daemon
imports another daemon, except the edges named below with their reason. Every ``import`` and
``from … import`` in the source is read (top level and inside functions), and so is every
literal name passed to ``importlib.import_module``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = "xephang"
DAEMONS = ("hubd", "ticketd", "counterd", "displayd", "announcerd", "webd", "province")
TOOLING = ("xephang_ops", "xephang_faults")
REPORTS = "xephang_reports"
VOICE = "xephang_voice"
SHARED = (REPORTS, VOICE)  # what daemons share beside the library: the reports, the voice
OURS = (LIBRARY, *DAEMONS, *TOOLING, *SHARED)
# daemon → daemon edges that are allowed, each with why
ALLOWED = {
    ("province", "hubd"): "province/synth.py makes test and bench traffic with the hub's real engine and ledger",
    ("webd", "province"): "webd/province.py (webd at the province) reads the province database through "
                          "province.devices and province.reports: the functions `xephang province` prints from",
}


def _imports(path: Path) -> set[str]:
    """Top-level package names of our own that ``path`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)
    return {n.split(".")[0] for n in names} & set(OURS)


def _package_files(pkg: str) -> list[Path]:
    files = sorted((ROOT / pkg).rglob("*.py"))
    assert files, f"no sources under {pkg}/"
    return files


def _edges(pkg: str) -> dict[str, set[Path]]:
    out: dict[str, set[Path]] = {}
    for f in _package_files(pkg):
        for target in _imports(f) - {pkg}:
            out.setdefault(target, set()).add(f.relative_to(ROOT))
    return out


def test_the_library_imports_no_daemon_no_tooling_nothing_shared():
    bad = _edges(LIBRARY)
    assert bad == {}, f"the library imports {bad}"


@pytest.mark.parametrize("pkg", SHARED)
def test_the_reports_and_the_voice_import_only_the_library(pkg):
    bad = {k: v for k, v in _edges(pkg).items() if k != LIBRARY}
    assert bad == {}, f"{pkg} imports {bad}"


def test_no_daemon_imports_another_or_the_tooling():
    bad = {}
    for d in DAEMONS:
        for target, files in _edges(d).items():
            if target in (LIBRARY, *SHARED) or (d, target) in ALLOWED:
                continue
            if target in TOOLING and all(f.name.startswith("demo") or f.stem == "cli" or f.stem.endswith("_cli")
                                         for f in files):
                continue  # a daemon's commands and demo module run under `xephang`, never in the daemon
            bad[(d, target)] = sorted(map(str, files))
    assert bad == {}, f"daemon edges not allowed: {bad}"


def test_the_walk_sees_a_forbidden_edge(tmp_path):
    """The checker itself: an edge in a function body and one by importlib are both found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from hubd.engine import QueueEngine\n"
                 "import importlib\nimportlib.import_module('xephang_ops.cli')\n")
    assert _imports(f) == {"hubd", "xephang_ops"}
