"""Vietnamese tone contours imposed on a synthetic syllable (pitch-synchronous overlap-add).

espeak-ng renders Vietnamese tones weakly (a sắc "mốt" rises 95→128 Hz; huyền "mười" and
ngang "mươi" are nearly level), so for the few clips where it helps (chosen by
bench/voice_search.py on a development set) the default pack bends the pitch of the voiced
part along the tone's contour.  Pure Python (``array``), no numpy on the Pi: a syllable is
~10 000 samples, so a clip takes a few tens of milliseconds.

Method: a pitch track by normalised autocorrelation on a 4× decimated copy; analysis marks one
period apart snapped to the waveform's peaks (espeak's glottal pulses are sharp); synthesis
marks spaced by the *new* period; each mark copies a Hann-windowed two-period grain of the
nearest analysis mark.  Unvoiced parts keep a fixed 5 ms grain spacing, unshifted.
"""

from __future__ import annotations

import math
import unicodedata
from array import array
from typing import Literal

ToneName = Literal["ngang", "huyen", "sac", "hoi", "nga", "nang"]

_MARKS = {"\u0300": "huyen", "\u0301": "sac", "\u0309": "hoi", "\u0303": "nga", "\u0323": "nang"}
_STOP_FINALS = ("p", "t", "c", "ch")

#: (time over the voiced span 0..1, semitones from the syllable's own median pitch)
CONTOURS: dict[str, list[tuple[float, float]]] = {
    "ngang": [(0.0, 1.0), (1.0, 0.0)],
    "huyen": [(0.0, -1.5), (0.3, -2.5), (1.0, -6.5)],
    "sac": [(0.0, 0.0), (0.35, 0.0), (1.0, 6.0)],
    "sac_stop": [(0.0, 0.5), (1.0, 6.5)],
    "hoi": [(0.0, -1.0), (0.55, -6.0), (0.75, -6.0), (1.0, -2.0)],
    "nga": [(0.0, 0.0), (0.4, -1.0), (0.5, 1.5), (1.0, 7.0)],
    "nang": [(0.0, -1.0), (0.5, -3.0), (0.85, -10.0), (1.0, -14.0)],
}


def tone_of(syllable: str) -> str:
    """Contour key of one Vietnamese syllable: its tone, ``sac_stop`` for sắc before p/t/c/ch."""
    decomposed = unicodedata.normalize("NFD", syllable.lower())
    tone = next((_MARKS[c] for c in decomposed if c in _MARKS), "ngang")
    if tone == "sac" and syllable.lower().endswith(_STOP_FINALS):
        return "sac_stop"
    return tone


def _contour_at(points: list[tuple[float, float]], t: float) -> float:
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return points[-1][1]


def pitch_track(x: list[float], sample_rate: int, *, hop_s: float = 0.010, fmin: float = 70.0,
                fmax: float = 400.0) -> list[float]:
    """Period in samples per hop (0 = unvoiced), by normalised autocorrelation at rate/4."""
    dec = 4
    y = [sum(x[i:i + dec]) / dec for i in range(0, len(x) - dec + 1, dec)]
    r4 = sample_rate / dec
    win = int(0.030 * r4)
    lo, hi = max(2, int(r4 / fmax)), int(r4 / fmin) + 1
    hop = max(1, int(hop_s * sample_rate))
    peak = max((abs(v) for v in y), default=0.0) or 1.0
    sq = [0.0]
    for v in y:
        sq.append(sq[-1] + v * v)
    periods: list[float] = []
    for c in range(0, len(x), hop):
        s = c // dec - win // 2
        if s < 0 or s + win + hi > len(y):
            periods.append(0.0)
            continue
        seg = y[s:s + win]
        e0 = sum(v * v for v in seg)
        if e0 <= 0 or math.sqrt(e0 / win) < 0.02 * peak:
            periods.append(0.0)
            continue
        best, best_lag = 0.0, 0
        for lag in range(lo, hi):
            num = sum(a * b for a, b in zip(seg, y[s + lag:s + lag + win], strict=True))
            den = math.sqrt(e0 * (sq[s + lag + win] - sq[s + lag])) or 1.0
            r = num / den
            if r > best:
                best, best_lag = r, lag
        periods.append(best_lag * dec if best > 0.6 else 0.0)
    return periods


def impose_tone(samples: array, sample_rate: int, tone: str, *, range_scale: float = 1.0,
                stretch: float = 1.0) -> array:
    """``samples`` with the pitch of its voiced span bent along ``CONTOURS[tone]`` (× ``range_scale``).

    ``stretch`` > 1 lengthens the clip (grains repeated), < 1 shortens it.  Returns a new array;
    a clip with no voiced frame comes back unchanged.
    """
    x = [float(v) for v in samples]
    hop = max(1, int(0.010 * sample_rate))  # the pitch track's hop
    grain = max(1, int(0.005 * sample_rate))  # grain spacing where unvoiced
    periods = pitch_track(x, sample_rate, hop_s=0.010)
    voiced = [i for i, p in enumerate(periods) if p]
    if len(voiced) < 3:
        return array("h", samples)
    v0, v1 = voiced[0] * hop, voiced[-1] * hop + hop
    med = sorted(periods[i] for i in voiced)[len(voiced) // 2]
    points = CONTOURS[tone]

    def period_at(t: int) -> float:
        i = min(len(periods) - 1, t // hop)
        return periods[i]

    # analysis marks: one period apart in voiced parts (snapped to the largest peak), 5 ms elsewhere
    marks: list[tuple[int, float]] = []  # (sample, period or 0)
    t = 0
    n = len(x)
    while t < n:
        p = period_at(t)
        if p:
            lo, hi = max(0, t - int(p * 0.25)), min(n, t + int(p * 0.25) + 1)
            t = max(range(lo, hi), key=lambda k: x[k]) if hi > lo else t
            if marks and t <= marks[-1][0]:
                t = marks[-1][0] + 1
            marks.append((t, p))
            t += max(1, int(p))
        else:
            marks.append((t, 0.0))
            t += grain
    if not marks:
        return array("h", samples)

    out_len = int(n * stretch) + 2 * int(med) + 1
    y = [0.0] * out_len
    ts = float(marks[0][0])
    k = 0
    while ts < out_len - 1:
        ta = ts / stretch
        while k + 1 < len(marks) and abs(marks[k + 1][0] - ta) <= abs(marks[k][0] - ta):
            k += 1
        if k + 1 >= len(marks) and ta > marks[-1][0] + 2 * med:
            break
        m, p = marks[k]
        half = int(p) if p else grain
        if p and v0 <= m <= v1:
            frac = (m - v0) / max(1, v1 - v0)
            semis = _contour_at(points, frac) * range_scale
            new_p = (med * 2 ** (-semis / 12)) * (p / med)
        else:
            new_p = float(p or grain)
        c = int(round(ts))
        for j in range(-half, half):
            src, dst = m + j, c + j
            if 0 <= src < n and 0 <= dst < out_len:
                w = 0.5 + 0.5 * math.cos(math.pi * j / half)
                y[dst] += w * x[src]
        ts += max(1.0, new_p)
    # the voiced span of a nặng syllable is cut short by glottal closure: fade its last fifth
    if tone == "nang":
        e0, e1 = int(v0 * stretch), min(out_len, int(v1 * stretch))
        f0 = e1 - (e1 - e0) // 5
        for i in range(f0, out_len):
            y[i] *= max(0.0, 1 - (i - f0) / max(1, e1 - f0)) if i < e1 else 0.0
    peak = max((abs(v) for v in y), default=0.0)
    scale = 32000.0 / peak if peak > 32000 else 1.0
    return array("h", (int(round(v * scale)) for v in y))
