"""Compose one announcement into ONE in-memory PCM buffer.

chime · pause · [part · gap · part · gap · …] · repeat pause · [parts again] …

The plan (every segment's place and length) is computed first from the clip lengths, then a
buffer of exactly that size is filled once: the length is known before a byte is copied, so
the player hands the device a single Sound and nothing can interleave with it.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from xephang_voice import pcm
from xephang_voice.voicepack import VoicePack

SegmentKind = Literal["chime", "clip", "gap"]


@dataclass(frozen=True)
class Segment:
    """One piece of the composed buffer; ``start`` and ``length`` in samples."""

    kind: SegmentKind
    name: str
    start: int
    length: int


@dataclass(frozen=True)
class Announcement:
    """A composed announcement: mono s16le PCM at ``sample_rate`` and its plan."""

    pcm: bytes
    sample_rate: int
    segments: tuple[Segment, ...]

    @property
    def n_samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate


def make_chime(sample_rate: int, *, loudness_dbfs: float = -20.0) -> array:
    """A two-tone ding-dong (E5 then C5, bell-like partials), at the pack's loudness."""
    ding = pcm.tone([(659.25, 1.0), (1318.5, 0.35), (1977.8, 0.12)], 700, sample_rate, decay_s=0.30)
    dong = pcm.tone([(523.25, 1.0), (1046.5, 0.35), (1569.8, 0.12)], 1100, sample_rate, decay_s=0.45)
    offset = int(sample_rate * 0.45)  # dong starts while ding still rings
    out = array("h", bytes(2 * (offset + len(dong))))
    for i, s in enumerate(ding):
        out[i] = s
    for i, s in enumerate(dong):
        v = out[offset + i] + s
        out[offset + i] = max(-32768, min(32767, v))
    # a chime should sit a little under the voice so it alerts without startling
    return pcm.normalise(out, sample_rate, target_dbfs=loudness_dbfs - 2.0)


class Composer:
    """Builds announcements from a loaded voice pack.

    ``repeats`` times the phrase; the chime once at the start (or before every repeat with
    ``chime_each_repeat``).  Gaps default to the pack's own ``word_gap_ms``/``phrase_gap_ms``.
    """

    def __init__(self, pack: VoicePack, *, repeats: int = 2, chime: array | None = None,
                 chime_each_repeat: bool = False, after_chime_ms: float = 250, repeat_gap_ms: float = 900,
                 word_gap_ms: float | None = None, phrase_gap_ms: float | None = None) -> None:
        if repeats < 1:
            raise ValueError("repeats must be ≥ 1")
        self.pack = pack
        self.repeats = repeats
        self.rate = pack.sample_rate
        self.chime = pcm.to_bytes(chime if chime is not None else make_chime(self.rate, loudness_dbfs=pack.manifest.loudness_dbfs))
        self.chime_each_repeat = chime_each_repeat
        self.after_chime = self._ms(after_chime_ms)
        self.repeat_gap = self._ms(repeat_gap_ms)
        self.word_gap = self._ms(pack.manifest.word_gap_ms if word_gap_ms is None else word_gap_ms)
        self.phrase_gap = self._ms(pack.manifest.phrase_gap_ms if phrase_gap_ms is None else phrase_gap_ms)

    def _ms(self, ms: float) -> int:
        return int(math.floor(self.rate * ms / 1000))

    def plan(self, parts: Sequence[Sequence[str]]) -> list[Segment]:
        """Every segment with its start and length, before any audio is copied."""
        segs: list[Segment] = []
        pos = 0

        def add(kind: SegmentKind, name: str, length: int) -> None:
            nonlocal pos
            if length > 0:
                segs.append(Segment(kind, name, pos, length))
                pos += length

        for r in range(self.repeats):
            if r == 0 or self.chime_each_repeat:
                if r:
                    add("gap", "repeat", self.repeat_gap)
                add("chime", "chime", len(self.chime) // 2)
                add("gap", "after-chime", self.after_chime)
            else:
                add("gap", "repeat", self.repeat_gap)
            for p, part in enumerate(parts):
                if p:
                    add("gap", "phrase", self.phrase_gap)
                for w, clip in enumerate(part):
                    if w:
                        add("gap", "word", self.word_gap)
                    add("clip", clip, len(self.pack.pcm(clip)) // 2)
        return segs

    def compose(self, parts: Sequence[Sequence[str]]) -> Announcement:
        """One buffer holding the whole announcement (gaps are the zeroed bytes left in place)."""
        segs = self.plan(parts)
        total = segs[-1].start + segs[-1].length if segs else 0
        buf = bytearray(2 * total)
        for s in segs:
            if s.kind == "gap":
                continue
            data = self.chime if s.kind == "chime" else self.pack.pcm(s.name)
            buf[2 * s.start : 2 * (s.start + s.length)] = data
        return Announcement(pcm=bytes(buf), sample_rate=self.rate, segments=tuple(segs))
