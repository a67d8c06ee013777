"""How often does an offline Vietnamese speech recogniser hear the ticket and the counter exactly?

    .venv/bin/python bench/voice_intelligibility.py [--count 300] [--pack DIR] [--seed 1]

Builds random announcements ("Mời công dân có số thứ tự <số> đến quầy số <quầy>") from a
voice pack (default: a freshly generated espeak-ng pack), transcribes them with ``viet-asr``
and prints the share where the number and the counter come back exactly.  As a baseline
measured in the same run, the same sentences are synthesised whole by espeak-ng at its
untuned defaults (``-v vi``).

The judge is ``viet-asr`` (PyPI, Apache-2.0 code): its ONNX model is embedded in the wheel,
so it runs offline on CPU.  It is a dev/bench tool only, never a runtime dependency: the bench
installs it on demand into its own venv (``--asr-venv``, default
``~/.cache/xephang/asr-venv``) and runs it in a subprocess.  If it cannot be installed or
loaded the bench says so and prints no figure.

Scoring: the transcript is aligned word by word (Levenshtein) to the reference; the number
(or counter) is exact when every word of its span is matched and no number word was
inserted inside or next to it (a listener would hear another number).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import replace
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from announcerd import pcm  # noqa: E402
from announcerd.compose import Composer  # noqa: E402
from announcerd.numbers import NUMBER_TEXT, ReadingOptions, read_number, spoken  # noqa: E402
from announcerd.voice_build import BASE, TUNING, build_default_pack  # noqa: E402
from announcerd.voicepack import load_pack, phrase_parts  # noqa: E402

ASR_REQUIREMENT = "viet-asr==0.1.0.dev11"
NUMBER_WORDS = set(NUMBER_TEXT.values())

WORKER = r'''
import json, sys, wave
import numpy as np
from vietasr import Pipeline
pipe = Pipeline.new().add("vietasr").build()
out = []
for path in json.load(open(sys.argv[1])):
    with wave.open(path) as w:
        sr = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    if sr != 16000:  # the model wants 16 kHz
        n = int(len(x) * 16000 / sr)
        x = np.interp(np.arange(n) * sr / 16000, np.arange(len(x)), x)
    out.append(pipe.transcribe(x.astype(np.int16), sample_rate=16000.0).text)
json.dump(out, open(sys.argv[2], "w"), ensure_ascii=False)
'''


def ensure_asr(venv: Path) -> tuple[Path | None, str]:
    """Python of a venv holding viet-asr (created on demand), or (None, why not)."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import vietasr, numpy"]
    if py.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return py, ""
    print(f"installing {ASR_REQUIREMENT} into {venv} (dev/bench only) …", flush=True)
    r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return None, f"cannot create a venv: {r.stderr.strip()[-300:]}"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--pre", ASR_REQUIREMENT], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        return None, f"pip install {ASR_REQUIREMENT} failed: {r.stderr.strip()[-400:]}"
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        return None, "viet-asr installed but does not import"
    return py, ""


def transcribe(py: Path, wavs: list[Path], workdir: Path) -> list[str]:
    """All transcripts in one worker process (the model loads once)."""
    script = workdir / "asr_worker.py"
    script.write_text(WORKER)
    src, dst = workdir / "in.json", workdir / "out.json"
    src.write_text(json.dumps([str(w) for w in wavs]))
    r = subprocess.run([str(py), str(script), str(src), str(dst)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ASR worker failed: {r.stderr.strip()[-600:]}")
    return json.loads(dst.read_text())


# ---- scoring ---------------------------------------------------------------------------------
_DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]


def normalise_words(text: str) -> list[str]:
    """Lower-case NFC words without punctuation; digit strings spelled out (some ASRs write digits)."""
    text = unicodedata.normalize("NFC", text.lower())
    words: list[str] = []
    for w in re.findall(r"\w+", text):
        if w.isdigit():
            words += spoken(read_number(int(w))).split() if len(w) <= 6 else [_DIGITS[int(c)] for c in w]
        else:
            words.append(w)
    return words


def align(ref: list[str], hyp: list[str]) -> list[tuple[int | None, int | None]]:
    """Levenshtein alignment as (ref index | None, hyp index | None) pairs."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    return pairs[::-1]


def span_exact(ref: list[str], hyp: list[str], pairs: list[tuple[int | None, int | None]], lo: int, hi: int) -> bool:
    """Ref words [lo, hi) all matched; nothing inserted inside; no number word inserted next to it."""
    ks = [k for k, (ri, _) in enumerate(pairs) if ri is not None and lo <= ri < hi]
    first, last = ks[0], ks[-1]
    for k in range(first, last + 1):
        ri, hj = pairs[k]
        if ri is None or hj is None or ref[ri] != hyp[hj]:
            return False
    for k in (first - 1, last + 1):
        if 0 <= k < len(pairs) and pairs[k][0] is None and hyp[pairs[k][1]] in NUMBER_WORDS:  # type: ignore[index]
            return False
    return True


def wer(ref: list[str], hyp: list[str]) -> float:
    pairs = align(ref, hyp)
    errors = sum(1 for r, h in pairs if r is None or h is None or ref[r] != hyp[h])
    return errors / max(1, len(ref))


# ---- the run -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pack", help="voice pack to judge (default: build the espeak-ng pack in a temp dir)")
    ap.add_argument("--dialect", choices=["north", "south"], default="north")
    ap.add_argument("--counters", type=int, default=12, help="counters 1..N")
    ap.add_argument("--asr-venv", default=str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                              / "xephang" / "asr-venv"))
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--show", type=int, default=8, help="print this many transcripts")
    ap.add_argument("--base", default="", help="tuning experiment: BASE changes, e.g. speed=140,pitch=50")
    ap.add_argument("--flat", action="store_true", help="tuning experiment: ignore the per-word table")
    ap.add_argument("--table-drop", default="", help="tuning experiment: drop these keys from the table, e.g. pitch")
    ap.add_argument("--table-set", default="", help="tuning experiment: 'mot+hai:speed=100,pitch=70;den_quay_so:speed=110'")
    ap.add_argument("--word-gap-ms", type=int, default=None)
    ap.add_argument("--pad-ms", type=int, default=500,
                    help="silence before and after, as in the hall (the recogniser drops an unpadded last word)")
    ap.add_argument("--phrase-gap-ms", type=int, default=None)
    args = ap.parse_args(argv)

    py, why = ensure_asr(Path(args.asr_venv))
    if py is None:
        print(f"INTELLIGIBILITY: NOT MEASURABLE — {why}")
        return 2
    options = ReadingOptions(dialect=args.dialect)
    rng = random.Random(args.seed)
    calls = [(rng.randint(1, 9999), rng.randint(1, args.counters)) for _ in range(args.count)]

    with tempfile.TemporaryDirectory(prefix="xephang-intel-") as tmp_s:
        tmp = Path(tmp_s)
        changes = {k: (v if k == "voice" else int(v)) for k, v in (kv.split("=") for kv in args.base.split(",") if kv)}
        base = replace(BASE, **changes) if changes else None
        table = None
        if args.flat:
            table = {}
        elif args.table_drop:
            drop = set(args.table_drop.split(","))
            table = {c: {k: v for k, v in t.items() if k not in drop} for c, t in TUNING.items()}
        if args.table_set:
            table = {c: dict(t) for c, t in (TUNING if table is None else table).items()}
            for item in args.table_set.split(";"):
                clips, _, kvs = item.partition(":")
                for clip in clips.split("+"):
                    for kv in kvs.split(","):
                        k, v = kv.split("=")
                        table.setdefault(clip, {})[k] = v if k == "voice" else int(v)
        pack_dir = Path(args.pack) if args.pack else build_default_pack(
            tmp / "pack", dialect=args.dialect, base=base, table=table)
        pack = load_pack(pack_dir, options=options)
        silent_chime = pcm.silence(0, pack.sample_rate)
        composer = Composer(pack, repeats=1, chime=silent_chime, after_chime_ms=0, word_gap_ms=args.word_gap_ms,
                            phrase_gap_ms=args.phrase_gap_ms)
        if changes or args.flat or args.table_drop or args.table_set or args.word_gap_ms is not None or args.phrase_gap_ms is not None:
            print(f"tuning experiment: base {changes or 'default'}, per-word table {'off' if args.flat else 'on'} {args.table_drop and '- ' + args.table_drop} {args.table_set}, "
                  f"gaps {composer.word_gap} / {composer.phrase_gap} samples")
        systems: dict[str, list[Path]] = {"pack (tuned clips)": []}
        t0 = time.perf_counter()
        for i, (number, counter) in enumerate(calls):
            ann = composer.compose(phrase_parts("vi", number=number, counter=counter, options=options))
            path = tmp / f"pack-{i:04d}.wav"
            pad = bytes(2 * int(ann.sample_rate * args.pad_ms / 1000))
            pcm.write_wav(path, pad + ann.pcm + pad, ann.sample_rate)
            systems["pack (tuned clips)"].append(path)
        compose_ms = (time.perf_counter() - t0) * 1000 / len(calls)
        refs = [["mời", "công", "dân", "có", "số", "thứ", "tự", *spoken(read_number(n, options=options)).split(),
                 "đến", "quầy", "số", *spoken(read_number(c, options=options)).split()] for n, c in calls]
        if not args.no_baseline and shutil.which("espeak-ng"):
            systems["baseline: espeak-ng -v vi whole sentence, defaults"] = []
            for i, ref in enumerate(refs):
                path = tmp / f"base-{i:04d}.wav"
                subprocess.run(["espeak-ng", "-v", "vi" if args.dialect == "north" else "vi-vn-x-south",
                                "-w", str(path), " ".join(ref)], check=True, capture_output=True)
                samples, rate = pcm.read_wav(path)
                pad = pcm.silence(args.pad_ms, rate)
                pcm.write_wav(path, pad + samples + pad, rate)
                systems["baseline: espeak-ng -v vi whole sentence, defaults"].append(path)

        print(f"judge: {ASR_REQUIREMENT} (offline, embedded ONNX model, CPU); {len(calls)} random calls, "
              f"tickets 1..9999, counters 1..{args.counters}, seed {args.seed}; pack {pack.manifest.name} "
              f"({pack.manifest.source[:60]})")
        print(f"compose (no chime, 1 repeat): mean {compose_ms:.2f} ms per announcement")
        shares: dict[str, float] = {}
        for name, wavs in systems.items():
            t0 = time.perf_counter()
            hyps = transcribe(py, wavs, tmp)
            asr_s = time.perf_counter() - t0
            num_ok = ctr_ok = both = 0
            wers = []
            for ref, hyp_text in zip(refs, hyps, strict=True):
                hyp = normalise_words(hyp_text)
                pairs = align(ref, hyp)
                n_lo, n_hi = 7, ref.index("đến", 7)  # ticket words sit between "thứ tự" and "đến"
                a = span_exact(ref, hyp, pairs, n_lo, n_hi)
                b = span_exact(ref, hyp, pairs, n_hi + 3, len(ref))
                num_ok += a
                ctr_ok += b
                both += a and b
                wers.append(wer(ref, hyp))
            k = len(refs)
            shares[name] = both / k
            print(f"\n[{name}]  ASR {asr_s:.0f} s for {k}")
            print(f"  number exact  {num_ok}/{k} = {num_ok / k:.1%}")
            print(f"  counter exact {ctr_ok}/{k} = {ctr_ok / k:.1%}")
            print(f"  BOTH exact    {both}/{k} = {both / k:.1%}   (mean WER {mean(wers):.2f})")
            for ref, hyp_text in list(zip(refs, hyps, strict=True))[: args.show]:
                print(f"    ref: {' '.join(ref)}\n    asr: {hyp_text}")
        names = list(shares)
        if len(names) == 2:
            ratio = f"{shares[names[0]] / shares[names[1]]:.2f}" if shares[names[1]] else "n/a (baseline has none exact)"
            print(f"\nratio pack / baseline (both exact): {ratio}")
        print(f"\nINTELLIGIBILITY (number and counter exact): {shares[names[0]]:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
