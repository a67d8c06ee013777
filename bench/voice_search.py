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
    Composer,  # noqa: E402
    VoicePack,
    load_pack,
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


def render(clip: str, row: dict, rate: int, loudness: float) -> bytes:
    """One clip as the pack builder would make it, at the pack's rate and loudness."""
    t = tuning_for(clip, table={clip: row})
    samples, sr = espeak_synth(NUMBER_TEXT[clip], t)
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
    args = ap.parse_args(argv)
    py, why = vi.ensure_asr(Path(args.asr_venv))
    if py is None:
        print(f"NOT MEASURABLE — {why}")
        return 2
    words = args.words.split(",")
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
                target = NUMBER_TEXT[w]
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
