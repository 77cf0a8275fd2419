"""Musical material for the synthetic corpus: real melodies and chorales, generated phrases, parts.

Everything is in seconds and MIDI numbers, drawn from a ``numpy.random.Generator`` so that a
seed fixes the music. A :class:`Song` has a harmony (chords over time) that every part follows:
the predominant instruments, the accompaniment (bass, pad, comping) and the drums.

Real material comes from music21's bundled corpus: Bach chorales (four voices with their own
harmony) and fiddle tunes from Ryan's Mammoth Collection (a melody, harmonised here with the
diatonic triad that fits each bar best).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass
class Note:
    start: float  # s
    end: float  # s
    pitch: int  # MIDI
    velocity: int  # 1..127


@dataclass
class Part:
    """One instrument's notes and controller curves, rendered as one stem."""

    notes: list[Note] = field(default_factory=list)
    #: (time s, controller, value): CC1 modulation (vibrato), CC11 expression, CC64 sustain
    controls: list[tuple[float, int, int]] = field(default_factory=list)
    #: (time s, bend in semitones, within +-2)
    bends: list[tuple[float, float]] = field(default_factory=list)
    drums: bool = False


@dataclass
class Chord:
    start: float
    end: float
    root: int  # pitch class
    tones: tuple[int, ...]  # pitch classes, root first


@dataclass
class Song:
    duration: float
    beat: float  # s per beat
    beats_per_bar: int
    chords: list[Chord]
    tonic: int
    mode: tuple[int, ...]
    #: voices of the source material when it is real (chorale voices, or the tune), as notes
    voices: list[list[Note]] = field(default_factory=list)
    source: str = "generated"

    def chord_at(self, t: float) -> Chord:
        for chord in self.chords:
            if chord.start <= t < chord.end:
                return chord
        return self.chords[-1]

    @property
    def scale(self) -> set[int]:
        return {(self.tonic + d) % 12 for d in self.mode}


# ---- real material ---------------------------------------------------------------------------


def load_material(cache: Path, *, n_chorales: int = 60, n_tunes: int = 60) -> list[dict]:
    """Parse a fixed selection of music21's corpus once and cache it as JSON.

    Each piece: ``{"name", "kind": "chorale"|"tune", "voices": [[[onset_q, dur_q, midi], ...], ...]}``
    in quarter notes. The selection is every k-th file in sorted order, so it is the same on
    every machine with the same music21.
    """
    key = f"{n_chorales}-{n_tunes}"
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            return data["pieces"]
    from music21 import corpus  # imported here: slow, and only needed to build the cache

    pieces = []
    chorales = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith(".mxl"))
    tunes = sorted(str(p) for p in corpus.getWork("ryansMammoth"))
    for kind, paths, n in (("chorale", chorales, n_chorales), ("tune", tunes, n_tunes)):
        step = max(1, len(paths) // max(n, 1))
        for path in paths[::step][:n]:
            try:
                score = corpus.parse(path)
            except Exception:  # a corpus file music21 itself cannot read: skip it
                continue
            voices = []
            for part in score.parts[:4]:
                notes = [
                    [float(n.offset), float(n.quarterLength), int(n.pitch.midi)]
                    for n in part.flatten().notes
                    if n.isNote and n.quarterLength > 0
                ]
                if len(notes) >= 8:
                    voices.append(notes)
            if voices and (kind == "tune" or len(voices) == 4):
                pieces.append({"name": Path(path).stem, "kind": kind, "voices": voices})
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "pieces": pieces}))
    return pieces


def _triads(tonic: int, mode: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Diatonic triads on each degree, as pitch classes, root first."""
    scale = [(tonic + d) % 12 for d in mode]
    return [(scale[i], scale[(i + 2) % 7], scale[(i + 4) % 7]) for i in range(7)]


def song_from_material(piece: dict, rng: np.random.Generator, duration: float, tempo: float) -> Song:
    """Cut ``duration`` seconds from a piece at ``tempo`` (beats per minute), with its harmony."""
    beat = 60.0 / tempo
    length_q = max(max(o + d for o, d, _ in v) for v in piece["voices"])
    span_q = duration / beat
    start_q = float(rng.uniform(0, max(0.0, length_q - span_q)))
    start_q = np.floor(start_q)
    transpose = int(rng.integers(-5, 7))
    voices = []
    for v in piece["voices"]:
        notes = [
            Note((o - start_q) * beat, (o + d - start_q) * beat, p + transpose, 80)
            for o, d, p in v
            if o + d > start_q and o < start_q + span_q
        ]
        voices.append(notes)
    # pitch-class histogram -> tonic (the most common final note is a strong hint in both corpora)
    last = [v[-1][2] + transpose for v in piece["voices"]]
    tonic = last[-1] % 12 if piece["kind"] == "chorale" else last[0] % 12
    hist = np.zeros(12)
    for v in voices:
        for n in v:
            hist[n.pitch % 12] += n.end - n.start
    major_fit = sum(hist[(tonic + d) % 12] for d in MAJOR)
    minor_fit = sum(hist[(tonic + d) % 12] for d in MINOR)
    mode = MAJOR if major_fit >= minor_fit else MINOR
    chords = []
    bar = 4
    triads = _triads(tonic, mode)
    n_bars = int(np.ceil(span_q / bar))
    for b in range(n_bars):
        t0, t1 = b * bar * beat, (b + 1) * bar * beat
        weights = np.zeros(12)
        for v in voices:
            for n in v:
                overlap = min(n.end, t1) - max(n.start, t0)
                if overlap > 0:
                    weights[n.pitch % 12] += overlap
        best = max(triads, key=lambda tri: sum(weights[p] for p in tri) + 0.1 * (tri[0] == tonic))
        chords.append(Chord(t0, t1, best[0], best))
    voices = [v for v in voices if v]
    return Song(duration, beat, bar, chords, tonic, mode, voices=voices, source=piece["name"])


# ---- generated material ----------------------------------------------------------------------

PROGRESSIONS_MAJOR = [(0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4), (5, 3, 0, 4)]
PROGRESSIONS_MINOR = [(0, 3, 4, 0), (0, 5, 2, 6), (0, 6, 5, 4), (0, 3, 0, 4)]
BLUES = (0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4)


def generated_song(rng: np.random.Generator, duration: float, tempo: float, genre: str) -> Song:
    beat = 60.0 / tempo
    bpb = 3 if rng.random() < 0.15 else 4
    tonic = int(rng.integers(0, 12))
    mode = MINOR if rng.random() < 0.35 else MAJOR
    triads = _triads(tonic, mode)
    if genre == "jaz_blu" and rng.random() < 0.5:
        degrees = BLUES
        mode = MAJOR
        triads = _triads(tonic, mode)
    else:
        options = PROGRESSIONS_MINOR if mode is MINOR else PROGRESSIONS_MAJOR
        degrees = options[int(rng.integers(len(options)))]
    bar = bpb * beat
    chords = []
    n_bars = int(np.ceil(duration / bar)) + 1
    seventh = genre == "jaz_blu"
    for b in range(n_bars):
        tri = triads[degrees[b % len(degrees)]]
        tones = tri + ((tri[0] + 10) % 12,) if seventh else tri
        chords.append(Chord(b * bar, (b + 1) * bar, tri[0], tones))
    return Song(duration, beat, bpb, chords, tonic, mode)


RHYTHMS = [  # one bar of 4 beats: (onset beat, length beats)
    [(0, 1), (1, 1), (2, 1), (3, 1)],
    [(0, 0.5), (0.5, 0.5), (1, 1), (2, 0.5), (2.5, 0.5), (3, 1)],
    [(0, 1.5), (1.5, 0.5), (2, 2)],
    [(0, 2), (2, 2)],
    [(0, 0.75), (0.75, 0.25), (1, 1), (2, 0.75), (2.75, 0.25), (3, 1)],
    [(0, 0.5), (0.5, 0.5), (1, 0.5), (1.5, 0.5), (2, 0.5), (2.5, 0.5), (3, 0.5), (3.5, 0.5)],
    [(0, 4)],
    [(0.5, 1), (1.5, 1), (2.5, 1.5)],
    [(0, 1), (1, 0.5), (1.5, 1.5), (3, 1)],
]


def _nearest(pitch: int, classes: set[int] | tuple[int, ...], low: int, high: int) -> int:
    cands = [p for p in range(low, high + 1) if p % 12 in classes]
    return min(cands, key=lambda p: (abs(p - pitch), p)) if cands else int(np.clip(pitch, low, high))


def melody(song: Song, rng: np.random.Generator, low: int, high: int, *, density: float = 1.0) -> list[Note]:
    """A generated line: chord tones on strong beats, scale steps between, phrases with rests."""
    notes: list[Note] = []
    centre = (low + high) // 2 + int(rng.integers(-4, 5))
    pitch = _nearest(centre, song.chord_at(0).tones, low, high)
    scale = sorted(song.scale)
    bar = song.beats_per_bar * song.beat
    n_bars = int(np.ceil(song.duration / bar)) + 1
    slow = density < 0.7
    for b in range(n_bars):
        pattern = RHYTHMS[int(rng.integers(len(RHYTHMS)))] if not slow else RHYTHMS[int(rng.choice([2, 3, 6]))]
        rest_bar = b % 4 == 3 and rng.random() < 0.4
        for onset, length in pattern:
            if onset >= song.beats_per_bar:
                continue
            if rest_bar and onset >= 2:
                break
            length = min(length, song.beats_per_bar - onset)
            t = b * bar + onset * song.beat
            if t >= song.duration:
                break
            chord = song.chord_at(t)
            if onset == int(onset) and rng.random() < 0.7:
                target = pitch + int(rng.integers(-5, 6))
                pitch = _nearest(target, chord.tones, low, high)
            else:
                step = int(rng.choice([-2, -1, -1, 1, 1, 2]))
                idx = min(range(len(scale)), key=lambda i: abs(scale[i] - pitch % 12))
                pc = scale[(idx + step) % len(scale)]
                pitch = _nearest(pitch + step * 2, {pc}, low, high)
            notes.append(Note(t, t + length * song.beat, pitch, 80))
    return notes


def fit_range(notes: list[Note], low: int, high: int) -> list[Note]:
    """Shift a line by octaves so that it sits in [low, high]; fold stray notes by octaves."""
    if not notes:
        return notes
    median = float(np.median([n.pitch for n in notes]))
    shift = 12 * round(((low + high) / 2 - median) / 12)
    out = []
    for n in notes:
        p = n.pitch + shift
        while p < low:
            p += 12
        while p > high:
            p -= 12
        if low <= p <= high:
            out.append(Note(n.start, n.end, p, n.velocity))
    return out


def chords_part(song: Song, rng: np.random.Generator, low: int, high: int, style: str) -> list[Note]:
    """Harmonic accompaniment or lead: block chords, arpeggios, strums or sustained pads."""
    notes: list[Note] = []
    for chord in song.chords:
        if chord.start >= song.duration:
            break
        span = chord.end - chord.start
        base = low + int(rng.integers(0, 8))
        voicing = []
        p = _nearest(base, (chord.root,), low, high)
        voicing.append(p)
        for pc in chord.tones[1:] + chord.tones[:1]:
            p = _nearest(voicing[-1] + 3, (pc,), voicing[-1] + 1, high)
            if p > voicing[-1]:
                voicing.append(p)
        if style in ("strum", "block") and rng.random() < 0.5:
            extra = voicing[1] + 12 if len(voicing) > 1 and voicing[1] + 12 <= high else None
            if extra:
                voicing.append(extra)
        if style == "pad":
            notes += [Note(chord.start, chord.end, v, 70) for v in voicing]
        elif style == "block":
            hits = [0.0, 2.0] if rng.random() < 0.5 else [0.0, 1.0, 2.0, 3.0]
            for h in hits:
                t = chord.start + h * song.beat
                if t < chord.end:
                    d = min(2.0 * song.beat, chord.end - t) * float(rng.uniform(0.6, 1.0))
                    notes += [Note(t, t + d, v, 80) for v in voicing]
        elif style == "arpeggio":
            step = song.beat / (2 if rng.random() < 0.7 else 4)
            seq = voicing + voicing[-2:0:-1] if len(voicing) > 2 else voicing
            t, i = chord.start, 0
            while t < chord.end - 1e-6:
                notes.append(Note(t, min(t + 2.5 * step, chord.end + step), seq[i % len(seq)], 75))
                t += step
                i += 1
        elif style == "strum":
            pattern = [(0, 1), (1, -1), (1.5, -1), (2.5, -1), (3, 1), (3.5, -1)] if rng.random() < 0.6 else [(0, 1), (2, 1)]
            for onset, direction in pattern:
                t = chord.start + onset * song.beat
                if t >= chord.end:
                    continue
                order = voicing if direction > 0 else voicing[::-1]
                spread = float(rng.uniform(0.008, 0.025))
                for k, v in enumerate(order):
                    notes.append(Note(t + k * spread, min(chord.end, t + song.beat * 1.5), v, 90 if direction > 0 else 70))
        elif style == "power":
            root = _nearest(low + 4, (chord.root,), low, high - 12)
            for h in np.arange(0, span / song.beat, 0.5):
                t = chord.start + h * song.beat
                notes += [Note(t, t + 0.45 * song.beat, p, 95) for p in (root, root + 7, root + 12) if p <= high]
        else:
            raise ValueError(f"unknown chord style {style!r}")
    return [n for n in notes if n.start < song.duration]


def bass_line(song: Song, rng: np.random.Generator, genre: str, low: int = 28, high: int = 52) -> list[Note]:
    notes = []
    walking = genre == "jaz_blu" and rng.random() < 0.7
    for chord in song.chords:
        if chord.start >= song.duration:
            break
        root = _nearest(36 + int(rng.integers(-3, 6)), (chord.root,), low, high)
        beats = int(round((chord.end - chord.start) / song.beat))
        if walking:
            pitches = [root] + [_nearest(root + int(rng.integers(-5, 8)), chord.tones, low, high) for _ in range(beats - 1)]
            for k, p in enumerate(pitches):
                t = chord.start + k * song.beat
                notes.append(Note(t, t + 0.9 * song.beat, p, 85))
        else:
            onsets = [0, 2] if beats >= 4 else [0]
            if rng.random() < 0.4:
                onsets = list(range(beats))
            for k in onsets:
                t = chord.start + k * song.beat
                p = root if k % 2 == 0 else _nearest(root + 7, chord.tones, low, high)
                notes.append(Note(t, t + 0.85 * song.beat * (2 if len(onsets) == 2 else 1), p, 85))
    return notes


# ---- drums -----------------------------------------------------------------------------------

KICK, SNARE, HAT, OPEN_HAT, PEDAL_HAT, RIDE, CRASH, TAMB, CLAVE, CONGA_HI, CONGA_LO, SIDE = (
    36, 38, 42, 46, 44, 51, 49, 54, 75, 63, 64, 37)
DRUM_PATTERNS = {  # 16 sixteenth steps of a 4/4 bar: instrument -> steps
    "pop_roc": [{KICK: [0, 8], SNARE: [4, 12], HAT: list(range(0, 16, 2))},
                {KICK: [0, 6, 8, 10], SNARE: [4, 12], HAT: list(range(16))},
                {KICK: [0, 7, 8], SNARE: [4, 12], OPEN_HAT: [14], HAT: list(range(0, 14, 2))}],
    "jaz_blu": [{RIDE: [0, 4, 7, 8, 12, 15], PEDAL_HAT: [4, 12], KICK: [0], SNARE: [11]},
                {RIDE: [0, 4, 6, 8, 12, 14], PEDAL_HAT: [4, 12], SIDE: [12]}],
    "lat_sou": [{CLAVE: [0, 3, 6, 10, 12], CONGA_HI: [4, 7, 12, 15], CONGA_LO: [6, 14], KICK: [0, 8], HAT: list(range(0, 16, 2))},
                {KICK: [0, 3, 8, 11], SNARE: [4, 12], HAT: list(range(16)), TAMB: [4, 12]}],
    "cou_fol": [{KICK: [0, 8], SNARE: [4, 12], HAT: list(range(0, 16, 2)), TAMB: [2, 6, 10, 14]},
                {KICK: [0, 8], SIDE: [4, 12], HAT: list(range(0, 16, 4))}],
    "cla": [{KICK: [0], SNARE: [8], RIDE: [0, 4, 8, 12]}],
}


def drum_part(song: Song, rng: np.random.Generator, genre: str) -> Part:
    patterns = DRUM_PATTERNS[genre]
    pattern = patterns[int(rng.integers(len(patterns)))]
    step = song.beat / 4
    bar = song.beats_per_bar * song.beat
    steps_per_bar = song.beats_per_bar * 4
    swing = genre == "jaz_blu"
    notes = []
    n_bars = int(np.ceil(song.duration / bar)) + 1
    for b in range(n_bars):
        for drum, steps in pattern.items():
            for s in steps:
                if s >= steps_per_bar:
                    continue
                t = b * bar + s * step + (step / 3 if swing and s % 2 else 0.0)
                t += float(rng.normal(0, 0.004))
                if t < 0 or t >= song.duration:
                    continue
                accent = 110 if s % 4 == 0 else 85
                notes.append(Note(t, t + 0.1, drum, int(np.clip(accent + rng.normal(0, 8), 30, 127))))
        if b % 4 == 0 and rng.random() < 0.3:
            notes.append(Note(b * bar, b * bar + 0.1, CRASH, 100))
    return Part(notes=notes, drums=True)


# ---- expression ------------------------------------------------------------------------------


def articulate(notes: list[Note], rng: np.random.Generator, style: str, dynamics: tuple[int, int]) -> list[Note]:
    """Legato, normal, staccato, separate or long notes with rests; a dynamic curve over the phrase."""
    lo, hi = dynamics
    out = []
    if not notes:
        return out
    t0, t1 = notes[0].start, max(n.end for n in notes)
    swell = float(rng.choice([-1.0, 0.0, 1.0]))
    for i, n in enumerate(notes):
        pos = (n.start - t0) / max(t1 - t0, 1e-6)
        base = lo + (hi - lo) * (0.5 + 0.5 * swell * (pos - 0.5) * 2) if swell else (lo + hi) / 2
        vel = int(np.clip(base + rng.normal(0, 6), 1, 127))
        d = n.end - n.start
        if style == "legato":
            end = n.end + min(0.04, d * 0.2)
        elif style == "staccato":
            end = n.start + d * float(rng.uniform(0.3, 0.55))
        elif style == "separate":
            end = n.start + d * float(rng.uniform(0.5, 0.8))
        else:
            end = n.start + d * float(rng.uniform(0.8, 0.95))
        out.append(Note(n.start, end, n.pitch, vel))
    if style == "separate":  # as a sample library or an exercise: one note at a time, rests between
        spaced, t = [], t0
        for n in out[:: 2 if len(out) > 8 else 1]:
            d = float(rng.uniform(0.3, 1.2))
            spaced.append(Note(t, t + d, n.pitch, n.velocity))
            t += d + float(rng.uniform(0.15, 0.8))
        out = spaced
    elif style == "long":  # as most solo recordings of one instrument: long held notes, each its own dynamic
        spaced, t = [], t0
        for n in out[:: 3 if len(out) > 6 else 1]:
            d = float(rng.uniform(0.8, 3.0))
            spaced.append(Note(t, t + d, n.pitch, int(np.clip(rng.integers(lo, hi + 1), 1, 127))))
            t += d + float(rng.uniform(0.05, 0.5))
        out = spaced
    return out


def vibrato_controls(part: Part, rng: np.random.Generator, depth: tuple[int, int]) -> None:
    """Modulation-wheel vibrato that grows on sustained notes, and expression swells."""
    for n in part.notes:
        if n.end - n.start > 0.35:
            part.controls.append((n.start, 1, 0))
            part.controls.append((n.start + 0.25, 1, int(rng.integers(*depth))))
    part.controls.sort()


def bends(part: Part, rng: np.random.Generator, share: float = 0.2, scoop: bool = False) -> None:
    """Guitar bends (up a tone, back) or saxophone scoops (from below) on some notes."""
    for n in part.notes:
        if rng.random() >= share or n.end - n.start < 0.2:
            continue
        if scoop:
            part.bends += [(n.start, -1.0), (n.start + 0.08, 0.0)]
        else:
            mid = n.start + 0.4 * (n.end - n.start)
            part.bends += [(n.start, 0.0), (mid, 1.0), (mid + 0.05, 2.0), (n.end, 0.0)]
    part.bends.sort()
