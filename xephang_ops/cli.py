"""``xephang``: the technician's and the head's command line.

Each sub-command lives with the code it drives and registers itself here through a
``register(subparsers)`` function; this file only lists the modules.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from xephang import __version__, exits

# module -> registers one or more sub-commands
COMMAND_MODULES = (
    "xephang_ops.docs",  # docs: regenerate docs/protocol.md and docs/config.md
    "xephang_ops.tools",  # devices, config, press, tail, broker-config
    "xephang_ops.demo",  # demo: a whole centre on this machine
    "xephang_reports.cli",  # report
    "announcerd.voice_cli",  # voice build / voice record
    "province.cli",  # bridge-config, ingest, province-db, province-report
    "webd.cli",  # web user / secret / catalogue / posters
)

log = logging.getLogger("xephang")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xephang", description="xephang — hàng đợi và loa gọi số cho trung tâm hành chính công")
    p.add_argument("--version", action="version", version=f"xephang {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that part is not installed in this build
            raise
        mod.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # a tool's output is its answer: the library's INFO chatter (connected, retrying …) only on request
    level = os.environ.get("XEPHANG_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C in `tail`, `devices --watch`, a long report: no traceback
        print(file=sys.stderr)
        return exits.INTERRUPTED
    except BrokenPipeError:  # `xephang tail | head`: the reader has gone, nothing more to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return exits.OK
    except OSError as exc:  # a file a command writes or reads (a full disk, a folder not there …)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"lỗi / error: {where}{exc.strerror or exc}", file=sys.stderr)
        return exits.REFUSED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
