"""Per-syllable search over espeak-ng variants for the default voice pack (a dev tool, never run at install).

    nice -n 10 .venv/bin/python bench/voice_search.py [--frames 4] [--dev-seed 1000] [--out table.json]

For every number word of the pack it renders candidates — the three Vietnamese voices
(``vi``, ``vi-vn-x-central``, ``vi-vn-x-south``) × (speed 100, pitch 70 | speed 130, pitch 50), the current
default, and phoneme input with a lengthened vowel (``[[m'y@:1j]]``) — and, for the best
raw candidates, the same with the syllable's tone contour imposed (xephang_voice/tone.py).  Each
candidate is heard in ``--frames`` short utterances "đến quầy số <number>" whose number
contains the word, the other words coming from the current default pack; the judge is
viet-asr (as in bench/voice_intelligibility.py).  Score per candidate = number spans exact +
share of the word's occurrences heard right.  Words are chosen independently (the context is
always the default pack).

``--whole-calls K`` judges each candidate inside K whole development calls ("Mời công dân có số
thứ tự <số> đến quầy số <quầy>", the ticket or the counter containing the word, every other clip
the default's) instead of the short utterances: the short-utterance choices lost in whole calls
(docs/voice-packs.md). Score per candidate = number exact + counter exact + share of the word's
occurrences heard right, summed over the calls; a candidate replaces the default only when it
wins by ``--margin``.  Candidates there stay on the default's voice (``vi``): speed, pitch, phoneme
input and the tone contour, so a chosen clip keeps the rhythm of its neighbours.

Only a DEVELOPMENT set is used (numbers drawn from ``--dev-seed``; the held-out bench uses
seed 1 and other seeds): the chosen table is then judged on held-out calls by
bench/voice_intelligibility.py.  Prints the table as a Python literal for
xephang_voice/voice_build.py and writes the raw scores as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import voice_intelligibility as vi  # noqa: E402

from xephang_voice import pcm, tone  # noqa: E402
from xephang_voice.numbers import NUMBER_TEXT, read_number, spoken  # noqa: E402
from xephang_voice.voice_build import BASE, TUNING, build_default_pack, espeak_synth, tuning_for  # noqa: E402
from xephang_voice.voicepack import (  # noqa: E402
    CARRIERS,
    Composer,  # noqa: E402
    VoicePack,
    load_pack,
    phrase_parts,
)

WORDS = ["khong", "mot", "hai", "ba", "bon", "nam", "sau", "bay", "tam", "chin", "muoi_huyen", "muoi_ngang",
         "tram", "nghin", "le", "mot_sac", "lam"]
VOICES = ["vi", "vi-vn-x-central", "vi-vn-x-south"]


def lengthened_phonemes(text: str) -> str:
    """espeak's own phonemes for ``text`` (voice vi) with the stressed vowel lengthened: m'y@1j → m'y@:1j."""
    out = subprocess.run(["espeak-ng", "-q", "-v", "vi", "-x", text], capture_output=True, text=True,
                         check=True).stdout.strip()
    ph = out.replace("_|", "").replace("|", "").replace("_", "").strip().replace(",", "'")
    if "'" not in ph:
        ph = "'" + ph
    return re.sub(r"(?<!:)(\d)", r":\1", ph, count=1)


def candidates(clip: str) -> list[tuple[str, dict]]:
    """(label, table row) of every raw candidate of one clip."""
    out: list[tuple[str, dict]] = [("default", dict(TUNING.get(clip, {})))]
    for voice in VOICES:
        for speed, pitch in ((100, 70), (130, 50)):
            out.append((f"{voice} s{speed} p{pitch}", {"voice": voice, "speed": speed, "pitch": pitch}))
    row = dict(TUNING.get(clip, {}))
    row["phonemes"] = lengthened_phonemes(NUMBER_TEXT[clip])
    out.append((f"phonemes [[{row['phonemes']}]]", row))
    return out


def call_candidates(clip: str, table: dict[str, dict], extra: list[dict]) -> list[tuple[str, dict]]:
    """(label, row) of the whole-call search: the default's voice, other speeds and pitches, tone,
    phonemes (a carrier phrase: speeds, pitches and word gaps), and ``extra`` rows (``--extra``)."""
    cur = dict(table.get(clip, {}))
    speed, pitch = int(cur.get("speed", BASE.speed)), int(cur.get("pitch", BASE.pitch))
    out: list[tuple[str, dict]] = [("default", cur)]
    for ds, dp in ((-15, 0), (+15, 0), (0, -10), (0, +10), (-15, +8)):
        out.append((f"s{speed + ds} p{pitch + dp}", cur | {"speed": speed + ds, "pitch": pitch + dp}))
    if clip in NUMBER_TEXT:
        out.append(("+tone", cur | {"tone": 1.0}))
        out.append(("+tone 0.5", cur | {"tone": 0.5}))
        out.append((f"phonemes [[{lengthened_phonemes(NUMBER_TEXT[clip])}]]",
                    cur | {"phonemes": lengthened_phonemes(NUMBER_TEXT[clip])}))
    else:
        gap = int(cur.get("word_gap", BASE.word_gap))
        out += [(f"gap {g}", cur | {"word_gap": g}) for g in (0, gap + 3) if g != gap]
    out += [(" ".join(f"{k}={v}" for k, v in row.items()), cur | row) for row in extra]
    return out


def calls_for(clip: str, rng_seed: int, count: int, counters: int = 12) -> list[tuple[int, int]]:
    """``count`` development calls (ticket, counter) whose ticket or counter reads ``clip``."""
    rng = random.Random(f"calls-{rng_seed}-{clip}")
    out: list[tuple[int, int]] = []
    while len(out) < count:
        n, c = rng.randint(1, 9999), rng.randint(1, counters)
        if (clip not in NUMBER_TEXT or clip in read_number(n) or clip in read_number(c)) and (n, c) not in out:
            out.append((n, c))
    return out


def span_words_heard(ref: list[str], hyp: list[str], pairs: list, lo: int, hi: int) -> float:
    """Share of ``ref[lo:hi]`` heard as itself."""
    return sum(1 for ri, hj in pairs if ri is not None and lo <= ri < hi and hj is not None and hyp[hj] == ref[ri]) / max(1, hi - lo)


def transcribe_sharded(py: Path, wavs: list[Path], workdir: Path, shards: int) -> list[str]:
    """viet-asr transcripts in ``shards`` worker processes (the recogniser is single-threaded)."""
    step = -(-len(wavs) // max(1, shards))
    recs = []
    for k in range(0, len(wavs), step):
        rec = vi.Recogniser(f"viet-asr-{k // step}", py, vi.WORKER, [], workdir)
        rec.start(wavs[k:k + step])
        recs.append(rec)
    out: list[str] = []
    for rec in recs:
        part, why, _ = rec.result()
        if part is None:
            raise RuntimeError(why)
        out += part
    return out


def whole_call_search(args: argparse.Namespace, py: Path, words: list[str]) -> int:
    """Each word's candidates judged in whole development calls (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="xephang-search-") as tmp_s:
        tmp = Path(tmp_s)
        base = TUNING | (json.loads(Path(args.base_table).read_text())["table"] if args.base_table else {})
        base_pack = load_pack(build_default_pack(tmp / "pack", table=base))
        rate, loud = base_pack.sample_rate, base_pack.manifest.loudness_dbfs
        pad = bytes(2 * int(rate * 0.5))
        extra = json.loads(args.extra) if args.extra else {}
        table: dict[str, dict] = {}
        report: dict[str, dict] = {}
        for w in words:
            calls = calls_for(w, args.dev_seed, args.whole_calls)
            cands = call_candidates(w, base, extra.get(w, []))
            wavs, meta = [], []
            for label, row in cands:
                pack = VoicePack(path=base_pack.path, manifest=base_pack.manifest, clips=dict(base_pack.clips))
                pack.clips[w] = render(w, row, rate, loud)
                comp = Composer(pack, repeats=1, chime=pcm.silence(0, rate), after_chime_ms=0)
                for n, c in calls:
                    ann = comp.compose(phrase_parts("vi", number=n, counter=c))
                    path = tmp / f"{w}-{len(wavs):05d}.wav"
                    pcm.write_wav(path, pad + ann.pcm + pad, rate)
                    wavs.append(path)
                    meta.append((label, n, c))
            t0 = time.perf_counter()
            hyps = transcribe_sharded(py, wavs, tmp, args.shards)
            scores: dict[str, list[float]] = {label: [0.0, 0.0, 0.0, 0.0] for label, _ in cands}
            target = NUMBER_TEXT.get(w, "")
            for (label, n, c), hyp_text in zip(meta, hyps, strict=True):
                num = spoken(read_number(n)).split()
                ref = ["mời", "công", "dân", "có", "số", "thứ", "tự", *num, "đến", "quầy", "số",
                       *spoken(read_number(c)).split()]
                hyp = vi.normalise_words(hyp_text, ref)
                pairs = vi.align(ref, hyp)
                lo, hi = 7, 7 + len(num)
                a = vi.span_exact(ref, hyp, pairs, lo, hi)
                b = vi.span_exact(ref, hyp, pairs, hi + 3, len(ref))
                pos = [i for i, r in enumerate(ref) if i >= 7 and r == target]
                heard = sum(1 for ri, hj in pairs if ri in pos and hj is not None and hyp[hj] == target)
                if not target:  # a carrier: the words it is heard with
                    heard = span_words_heard(ref, hyp, pairs, *((0, 7) if w.startswith("moi") else (hi, hi + 3)))
                    pos = [0]
                s = scores[label]
                s[0] += a
                s[1] += b
                s[2] += a and b
                s[3] += heard / max(1, len(pos))
            total = {label: s[0] + s[1] + s[3] for label, s in scores.items()}
            best = max(total, key=lambda lab: total[lab])
            if total[best] < total["default"] + args.margin:
                best = "default"
            table[w] = dict(cands)[best]
            report[w] = {"chosen": best, "calls": calls,
                         "scores": {lab: {"number": s[0], "counter": s[1], "both": s[2], "word": round(s[3], 2),
                                          "total": round(total[lab], 2)} for lab, s in scores.items()}}
            print(f"{w}: {len(wavs)} calls heard in {time.perf_counter() - t0:.0f} s; of {len(calls)} calls "
                  "(number / counter / both exact, word heard, total):", flush=True)
            for lab, s in sorted(scores.items(), key=lambda kv: -total[kv[0]]):
                print(f"    {lab:28s} {s[0]:3.0f} {s[1]:3.0f} {s[2]:3.0f} {s[3]:5.1f}  {total[lab]:5.1f}"
                      + ("  ← chosen" if lab == best else ""), flush=True)
        Path(args.out).write_text(json.dumps({"dev_seed": args.dev_seed, "whole_calls": args.whole_calls,
                                              "report": report, "table": {k: v for k, v in (base | table).items()
                                                                          if v != TUNING.get(k)}, "base": asdict(BASE)},
                                             ensure_ascii=False, indent=1))
        print("\nTUNING rows for xephang_voice/voice_build.py:")
        for w, row in table.items():
            print(f"    {w!r}: {row!r},")
    return 0


def render(clip: str, row: dict, rate: int, loudness: float) -> bytes:
    """One clip as the pack builder would make it, at the pack's rate and loudness."""
    t = tuning_for(clip, table={clip: row})
    samples, sr = espeak_synth(NUMBER_TEXT.get(clip) or CARRIERS["vi"][clip], t)
    if sr != rate:
        samples = pcm.resample(samples, sr, rate)
    trimmed = pcm.trim_silence(samples, rate)
    if t.tone > 0:
        trimmed = pcm.trim_silence(tone.impose_tone(trimmed, rate, tone.tone_of(NUMBER_TEXT[clip]),
                                                    range_scale=t.tone, stretch=t.stretch), rate)
    return pcm.to_bytes(pcm.normalise(trimmed, rate, target_dbfs=loudness))


def frames_for(clip: str, rng_seed: int, count: int) -> list[int]:
    rng = random.Random(f"{rng_seed}-{clip}")
    out: list[int] = []
    while len(out) < count:
        n = rng.randint(1, 9999)
        if clip in read_number(n) and n not in out:
            out.append(n)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3, help="dev utterances per word")
    ap.add_argument("--dev-seed", type=int, default=1000)
    ap.add_argument("--words", default=",".join(WORDS))
    ap.add_argument("--tone-top", type=int, default=1, help="tone-shape the best N raw candidates")
    ap.add_argument("--out", default="voice_search.json")
    ap.add_argument("--asr-venv", default=str(vi.default_asr_venv()))
    ap.add_argument("--whole-calls", type=int, default=0, help="judge candidates in this many whole dev calls each")
    ap.add_argument("--margin", type=float, default=2.0, help="whole calls: a candidate must beat the default by this")
    ap.add_argument("--shards", type=int, default=2, help="whole calls: viet-asr worker processes")
    ap.add_argument("--base-table", help="whole calls: the context pack's table (TUNING | this output's table)")
    ap.add_argument("--extra", help='whole calls: JSON {clip: [row, …]} of more candidates')
    args = ap.parse_args(argv)
    py, why = vi.ensure_asr(Path(args.asr_venv))
    if py is None:
        print(f"NOT MEASURABLE — {why}")
        return 2
    words = args.words.split(",")
    if args.whole_calls:
        return whole_call_search(args, py, words)
    with tempfile.TemporaryDirectory(prefix="xephang-search-") as tmp_s:
        tmp = Path(tmp_s)
        base_pack = load_pack(build_default_pack(tmp / "pack"))
        rate, loud = base_pack.sample_rate, base_pack.manifest.loudness_dbfs
        frames = {w: frames_for(w, args.dev_seed, args.frames) for w in words}

        def run(jobs: list[tuple[str, str, dict]]) -> dict[tuple[str, str], float]:
            """Score every (word, label, row); one recogniser run for the whole batch."""
            wavs, meta = [], []
            for w, label, row in jobs:
                pack = VoicePack(path=base_pack.path, manifest=base_pack.manifest, clips=dict(base_pack.clips))
                pack.clips[w] = render(w, row, rate, loud)
                comp = Composer(pack, repeats=1, chime=pcm.silence(0, rate), after_chime_ms=0)
                for n in frames[w]:
                    ann = comp.compose([["den_quay_so"], read_number(n)])
                    pad = bytes(2 * int(rate * 0.5))
                    path = tmp / f"c{len(wavs):05d}.wav"
                    pcm.write_wav(path, pad + ann.pcm + pad, rate)
                    wavs.append(path)
                    meta.append((w, label, n))
            t0 = time.perf_counter()
            hyps = vi.transcribe(py, wavs, tmp)
            print(f"  {len(wavs)} utterances heard in {time.perf_counter() - t0:.0f} s", flush=True)
            scores: dict[tuple[str, str], float] = {}
            for (w, label, n), hyp_text in zip(meta, hyps, strict=True):
                ref = ["đến", "quầy", "số", *spoken(read_number(n)).split()]
                hyp = vi.normalise_words(hyp_text)
                pairs = vi.align(ref, hyp)
                exact = vi.span_exact(ref, hyp, pairs, 3, len(ref))
                target = NUMBER_TEXT.get(w, "")
                pos = [i for i, r in enumerate(ref) if i >= 3 and r == target]
                heard = sum(1 for ri, hj in pairs if ri in pos and hj is not None and hyp[hj] == target)
                scores[(w, label)] = scores.get((w, label), 0.0) + exact + heard / max(1, len(pos))
            return scores

        rows: dict[tuple[str, str], dict] = {}
        jobs = []
        for w in words:
            for label, row in candidates(w):
                rows[(w, label)] = row
                jobs.append((w, label, row))
        print(f"stage 1: {len(jobs)} raw candidates × {args.frames} dev utterances", flush=True)
        scores = run(jobs)
        jobs = []
        for w in words:
            ranked = sorted((s, lab) for (ww, lab), s in scores.items() if ww == w)[::-1]
            for _, lab in ranked[: args.tone_top]:
                row = dict(rows[(w, lab)], tone=1.0)
                rows[(w, lab + " +tone")] = row
                jobs.append((w, lab + " +tone", row))
        print(f"stage 2: {len(jobs)} tone-shaped candidates", flush=True)
        scores |= run(jobs)
        table: dict[str, dict] = {}
        report = {}
        for w in words:
            ranked = sorted(((s, lab) for (ww, lab), s in scores.items() if ww == w), key=lambda x: -x[0])
            best_s, best = ranked[0]
            if scores[(w, "default")] >= best_s:  # ties keep the current clip
                best, best_s = "default", scores[(w, "default")]
            table[w] = rows[(w, best)]
            report[w] = {"chosen": best, "score": best_s, "default": scores[(w, "default")], "max": 2 * args.frames,
                         "ranked": [(lab, s) for s, lab in ranked]}
            print(f"{w:11s} default {scores[(w, 'default')]:.2f} → {best} {best_s:.2f} / {2 * args.frames}")
        Path(args.out).write_text(json.dumps({"dev_seed": args.dev_seed, "frames": frames, "report": report,
                                              "table": table, "base": asdict(BASE)}, ensure_ascii=False, indent=1))
        print("\nTUNING rows for xephang_voice/voice_build.py:")
        for w, row in table.items():
            print(f"    {w!r}: {row!r},")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
