"""How much the demo's day varies for one seed: run it N times and print each figure's spread.

The simulation's citizens and officers are the same for a seed (``xephang_ops/sim.py``: arrivals,
services, how long each officer takes, who does not show up). The demo is not reproducible
figure for figure all the same, on purpose: every daemon is a real process on a real broker in
real time, and at ``--speed 240`` ten milliseconds of scheduling are 2.4 s of the centre's day.
Whether an officer's Next lands just before or just after a citizen's ticket, or a rating key
inside or outside the rating window, then changes what follows. This bench measures that spread
so the documentation can quote figures that were produced, not typed.

    .venv/bin/python bench/demo_spread.py                 # 3 whole days, seed 1, speed 240
    .venv/bin/python bench/demo_spread.py --runs 5 --minutes 120
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIGURES = ("issued", "served", "no_shows", "transferred", "expired", "open", "calls", "rated")


def one_day(out: Path, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, "-m", "xephang_ops.cli", "demo", "--out", str(out), "--seed", str(args.seed),
           "--speed", str(args.speed), "--lang", "vi"]
    if args.minutes:
        cmd += ["--minutes", str(args.minutes)]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
    wall = time.monotonic() - t0
    rep = json.loads((out / "report.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    t = rep["totals"]
    row: dict[str, float] = {k: t[k] for k in FIGURES}
    row["no-show presses"] = summary["sim"]["presses"].get("no-show", 0)
    row["satisfaction %"] = round(100 * t["satisfaction"], 1) if t["satisfaction"] is not None else float("nan")
    row["median wait min"] = round(t["wait"]["p50"] / 60, 1) if t["wait"]["p50"] is not None else float("nan")
    row["ticket PNGs"] = summary["files"]["tickets"]
    row["announcement WAVs"] = summary["files"]["wavs"]
    row["wall s"] = round(wall, 1)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", type=float, default=240.0)
    ap.add_argument("--minutes", type=float, default=None, help="simulated minutes (default: the whole day)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="xephang-spread-") as d:
        for i in range(args.runs):
            rows.append(one_day(Path(d) / f"run{i}", args))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:g}" for k, v in rows[-1].items()), flush=True)
    print(f"\nseed {args.seed}, speed ×{args.speed:g}, {args.runs} runs: figure: min – max (median)")
    for k in rows[0]:
        vals = [r[k] for r in rows]
        print(f"  {k:18} {min(vals):g} – {max(vals):g} ({statistics.median(vals):g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
