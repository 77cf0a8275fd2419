"""Play a part from a folder of recorded notes: the sampler beside FluidSynth in the corpus renderer.

A library is a folder of recordings of single notes, mapped either by an SFZ file (``<region>``
with ``sample``, ``lokey``/``hikey``/``key``/``pitch_keycenter``, ``lovel``/``hivel``, inherited
from ``<global>``, ``<master>`` and ``<group>``; other opcodes are ignored) or by the file names
(``A4.wav``, ``Cs5.mp3``, ``Fs2.ogg``, ``Bb3.flac``, ``F2 v2.wav`` for a second take of F2).

Each note is played from the recording nearest in pitch within the velocity layer that covers its
velocity, shifted the rest of the way by resampling (soxr, at most :data:`MAX_SHIFT` semitones),
held (a sustained instrument loops the steady middle of a recording that is shorter than the
note) and cut on release with a short fade. Notes overlap freely, so legato lines and chords work.
The part's controls act as FluidSynth's do: modulation (CC1) as vibrato, volume and expression
(CC7, CC11) as gain, the sustain pedal (CC64) delaying note-offs, and pitch bends. Nothing is
random: the same part gives the same samples.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from corpus.music import Part

#: Largest shift (semitones) from a recorded note; a library has no note further than this from any
#: note it is asked to play within its range.
MAX_SHIFT = 6
log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
_NOTE = re.compile(r"^([A-Ga-g])(#|s|b)?(-?\d)(?:\s*[_ -]?\s*v(\d+))?$")
_OFFSETS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


class SamplerError(ValueError):
    """A library that cannot be read or played, saying which and why."""


def note_number(name: str) -> int | None:
    """MIDI note of a name such as ``A4`` (69), ``Cs5``/``C#5`` (73), ``Bb3`` (58), ``F2 v2`` (41); else None."""
    m = _NOTE.match(name.strip())
    if not m:
        return None
    letter, accidental, octave = m.group(1).lower(), m.group(2), int(m.group(3))
    return 12 * (octave + 1) + _OFFSETS[letter] + {"#": 1, "s": 1, "b": -1}.get(accidental or "", 0)


@dataclass(frozen=True)
class Region:
    """One recording and the keys and velocities it plays."""

    sample: Path
    key: int  # the recorded pitch (pitch_keycenter)
    lokey: int
    hikey: int
    lovel: int = 1
    hivel: int = 127


# ---- reading libraries -----------------------------------------------------------------------


def _key(value: str) -> int:
    n = note_number(value)
    return n if n is not None else int(value)


def _preprocess(path: Path, defines: dict[str, str], depth: int = 0) -> str:
    """SFZ text with comments removed, ``#define $NAME value`` substituted and ``#include "file"`` inlined."""
    if depth > 8:
        raise SamplerError(f"{path}: #include nested too deeply")
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        raise SamplerError(f"{path}: cannot read ({exc})") from None
    out = []
    for line in lines:
        line = line.split("//", 1)[0]
        for name in sorted(defines, key=len, reverse=True):
            line = line.replace(name, defines[name])
        directive = re.match(r"\s*#(define|include)\s+(.*)", line)
        if directive is None:
            out.append(line)
        elif directive.group(1) == "define":
            name, _, value = directive.group(2).strip().partition(" ")
            defines[name] = value.strip()
        else:
            out.append(_preprocess(Path(path).parent / directive.group(2).strip().strip('"'), defines, depth + 1))
    return "\n".join(out)


def parse_sfz(path: Path) -> list[Region]:
    """Regions of an SFZ file (``#define`` and ``#include`` understood); opcodes other than sample,
    keys and velocities are ignored, and so are regions that sound only under a condition (a
    controller range such as ``locc64``, or ``trigger=release``): they are not the notes."""
    text = _preprocess(Path(path), {})
    levels: dict[str, dict[str, str]] = {"control": {}, "global": {}, "master": {}, "group": {}}
    regions: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for token in re.finditer(r"<(\w+)>|(\w+)=(.*?)(?=\s+\w+=|\s*<|\s*$)", text, flags=re.M):
        header, name, value = token.group(1), token.group(2), token.group(3)
        if header:
            header = header.lower()
            if header == "region":
                current = {**levels["global"], **levels["master"], **levels["group"]}
                regions.append(current)
                continue
            if header in levels:  # a new level clears the ones below it
                order = list(levels)
                for lower in order[order.index(header):]:
                    levels[lower] = {}
                current = levels[header]
            else:
                current = None  # <curve>, <effect>, ...: not needed
            continue
        if current is not None:
            current[name.lower()] = value.strip()
    folder = Path(path).parent / levels["control"].get("default_path", "")
    out = []
    for r in regions:
        conditional = any(k.startswith(("locc", "hicc", "on_locc", "on_locc")) for k in r) or r.get("trigger", "attack") != "attack"
        if "sample" not in r or conditional:
            continue
        key = r.get("pitch_keycenter", r.get("key"))
        lo = r.get("lokey", r.get("key", key))
        hi = r.get("hikey", r.get("key", key))
        if key is None or lo is None or hi is None:
            continue
        sample = _resolve(folder / r["sample"].replace("\\", "/"))
        out.append(Region(sample, _key(key), _key(lo), _key(hi), int(r.get("lovel", 1)), int(r.get("hivel", 127))))
    return out


def _resolve(path: Path) -> Path:
    """``path``, or a file in its folder whose name differs only in case (maps made on Windows)."""
    if path.exists() or not path.parent.is_dir():
        return path
    matches = [p for p in path.parent.iterdir() if p.name.lower() == path.name.lower()]
    return matches[0] if matches else path


def scan_named(folder: Path) -> list[Region]:
    """Regions of a folder of note-named recordings; each note plays up to halfway to its neighbours.

    When one note comes in several formats (``A4.mp3`` and ``A4.ogg``) one of them is taken,
    preferring lossless ones; several takes (``F2.wav``, ``F2 v2.wav``) are all kept.
    """
    takes: dict[tuple[int, str], Path] = {}
    rank = {s: i for i, s in enumerate(AUDIO_SUFFIXES)}
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        n = note_number(p.stem)
        if n is None:
            continue
        variant = _NOTE.match(p.stem.strip()).group(4) or "1"
        have = takes.get((n, variant))
        if have is None or rank[p.suffix.lower()] < rank[have.suffix.lower()]:
            takes[(n, variant)] = p
    ranges = key_ranges([n for n, _ in takes])
    return [Region(p, n, *ranges[n]) for (n, _), p in sorted(takes.items())]


def key_ranges(keys: list[int]) -> dict[int, tuple[int, int]]:
    """Recorded key -> the (lowest, highest) notes it plays: up to halfway to its recorded neighbours,
    and :data:`MAX_SHIFT` semitones beyond the outermost ones."""
    keys = sorted(set(keys))
    return {n: ((keys[i - 1] + n) // 2 + 1 if i else n - MAX_SHIFT,
                (n + keys[i + 1]) // 2 if i + 1 < len(keys) else n + MAX_SHIFT) for i, n in enumerate(keys)}


class SampleLibrary:
    """The recordings of one instrument, ready to play at ``sample_rate``."""

    def __init__(self, folder: str | Path, *, sample_rate: int = 44100, sustained: bool = True,
                 release_s: float = 0.15):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SamplerError(f"{self.folder}: sample library folder not found")
        sfz = sorted(self.folder.glob("*.sfz"))
        self.regions = parse_sfz(sfz[0]) if sfz else scan_named(self.folder)
        if not self.regions:
            raise SamplerError(f"{self.folder}: no SFZ file and no note-named recordings (A4.wav, Cs5.mp3, ...)")
        missing = [r for r in self.regions if not r.sample.is_file()]
        if len(missing) * 2 > len(self.regions):
            raise SamplerError(f"{self.folder}: {len(missing)} of {len(self.regions)} samples named in the map "
                               f"are missing, e.g. {missing[0].sample}")
        if missing:  # a few holes in a published map (Splendid Grand Piano has 3): play the neighbours
            log.warning("%s: %d samples named in the map are missing (e.g. %s); their notes use the nearest",
                        self.folder, len(missing), missing[0].sample.name)
            self.regions = [r for r in self.regions if r not in missing]
        self.sample_rate, self.sustained, self.release_s = sample_rate, sustained, release_s
        keys = [r.key for r in self.regions]
        #: the notes the library can play within MAX_SHIFT of a recording
        self.low, self.high = min(keys) - MAX_SHIFT, max(keys) + MAX_SHIFT
        self._layers = sorted({(r.lovel, r.hivel) for r in self.regions})

    @property
    def name(self) -> str:
        return self.folder.name

    def pick(self, pitch: int, velocity: int, take: int = 0) -> Region:
        """The region for a note: its velocity layer (else the nearest), then the nearest recorded
        pitch (one whose key range holds the note first); ``take`` chooses among equal takes."""
        layer = min(self._layers, key=lambda lv: 0 if lv[0] <= velocity <= lv[1] else min(
            abs(velocity - lv[0]), abs(velocity - lv[1])))
        pool = [r for r in self.regions if (r.lovel, r.hivel) == layer]
        inside = [r for r in pool if r.lokey <= pitch <= r.hikey]
        pool = inside or pool
        best = min(abs(r.key - pitch) for r in pool)
        nearest = sorted((r for r in pool if abs(r.key - pitch) == best), key=lambda r: (r.key, str(r.sample)))
        region = nearest[take % len(nearest)]
        if abs(region.key - pitch) > MAX_SHIFT:
            raise SamplerError(f"{self.name}: nothing recorded within {MAX_SHIFT} semitones of MIDI {pitch}")
        return region

    def shifted(self, region: Region, semitones: int) -> np.ndarray:
        """The recording moved by whole semitones (faster and higher, or slower and lower)."""
        return _shifted(region.sample, self.sample_rate, semitones)


@functools.lru_cache(maxsize=512)
def _read(path: Path, sample_rate: int) -> np.ndarray:
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise SamplerError(f"{path}: not a readable recording ({exc})") from None
    y = y[:, :2] if y.shape[1] >= 2 else np.repeat(y, 2, axis=1)
    if sr != sample_rate:
        y = soxr.resample(y, sr, sample_rate, quality="HQ")
    y.setflags(write=False)
    return y


@functools.lru_cache(maxsize=1024)
def _shifted(path: Path, sample_rate: int, semitones: int) -> np.ndarray:
    y = _read(path, sample_rate)
    if semitones == 0:
        return y
    # read the recording as if taken at sample_rate * ratio: played at sample_rate it is `ratio` faster
    out = soxr.resample(y, sample_rate * 2 ** (semitones / 12), sample_rate, quality="HQ").astype(np.float32)
    out.setflags(write=False)
    return out


# ---- playing a part --------------------------------------------------------------------------


def _steps(events: list[tuple[float, float]], n: int, sr: int, initial: float) -> np.ndarray:
    """A step curve of n samples from (time s, value) events, holding each value to the next."""
    curve = np.full(n, initial, np.float64)
    for t, v in sorted(events):
        curve[min(max(int(round(t * sr)), 0), n):] = v
    return curve


def _sustain(y: np.ndarray, needed: int, sr: int) -> np.ndarray:
    """Loop the steady middle (30-85 %) of a recording, with 50 ms crossfades, until it lasts ``needed`` samples."""
    if len(y) >= needed:
        return y
    a, b = int(0.3 * len(y)), int(0.85 * len(y))
    fade = min(int(0.05 * sr), (b - a) // 3)
    if fade < 1:
        return y
    up = np.sqrt(np.linspace(0.0, 1.0, fade, dtype=np.float32))[:, None]
    down = np.sqrt(1 - up**2)
    pieces, length = [y[:b].copy()], b
    while length + len(y) - b < needed:
        pieces[-1][-fade:] = pieces[-1][-fade:] * down + y[a : a + fade] * up  # back to a, crossfaded
        pieces.append(y[a + fade : b].copy())
        length += b - a - fade
    pieces.append(y[b:])
    return np.concatenate(pieces)


class Sampler:
    """Renders parts from :class:`SampleLibrary` instances (the counterpart of FluidSynth's Renderer)."""

    def __init__(self, sample_rate: int = 44100):
        self.sample_rate = sample_rate

    def render(self, part: Part, library: SampleLibrary, n_samples: int) -> np.ndarray:
        """One part -> float32 (n_samples, 2)."""
        sr = self.sample_rate
        if library.sample_rate != sr:
            raise SamplerError(f"{library.name} is prepared at {library.sample_rate} Hz, the sampler plays at {sr}")
        # notes may begin before 0 (a phrase cut into excerpts): render from the earliest, keep from 0
        lead = max([0] + [-int(round(n.start * sr)) for n in part.notes])
        total = n_samples + lead
        out = np.zeros((total, 2), np.float64)
        cc: dict[int, list[tuple[float, float]]] = {}
        for t, number, value in part.controls:
            cc.setdefault(number, []).append((t + lead / sr, value))
        gain = (_steps(cc.get(7, []), total, sr, 100) / 127) * (_steps(cc.get(11, []), total, sr, 127) / 127)
        depth = _steps(cc.get(1, []), total, sr, 0) / 127 * 50  # vibrato depth, cents (FluidSynth's default)
        bend = _steps([(t + lead / sr, 100 * s) for t, s in part.bends], total, sr, 0.0)  # cents
        pedal = sorted(cc.get(64, []))
        vibrato_phase = 2 * np.pi * 5.5 * np.arange(total) / sr
        for i, note in enumerate(part.notes):
            start = int(round(note.start * sr)) + lead
            if start >= total:
                continue
            end = int(round(min(self._release_time(note.end + lead / sr, pedal), total / sr) * sr))
            fade = int(library.release_s * sr)
            length = min(max(end - start, 1) + fade, total - start)
            region = library.pick(note.pitch, note.velocity, take=i)
            y = library.shifted(region, note.pitch - region.key)
            if library.sustained:
                y = _sustain(y, length + 2, sr)
            cents = bend[start : start + length] + depth[start : start + length] * np.sin(vibrato_phase[start : start + length])
            if np.any(cents):  # continuous pitch changes on top of the whole-semitone shift
                position = np.concatenate([[0.0], np.cumsum(2 ** (cents[:-1] / 1200))])
                position = position[position < len(y) - 1]
                i0 = position.astype(int)
                w = (position - i0)[:, None]
                y = y[i0] * (1 - w) + y[i0 + 1] * w
            else:
                y = y[:length]
            y = np.asarray(y[:length], np.float64)
            envelope = np.ones(len(y))
            held = max(end - start, 1)
            if held < len(y):  # release: a fade over release_s after the note-off, then silence
                tail = len(y) - held
                envelope[held:] = np.exp(-np.arange(tail) / max(tail, 1) * 6.9)  # -60 dB at the end
            level = 10 ** (24 * (note.velocity / 127 - 1) / 20)  # 24 dB from velocity 1 to 127
            out[start : start + len(y)] += y * (envelope * level * gain[start : start + len(y)])[:, None]
        return out[lead:].astype(np.float32)

    @staticmethod
    def _release_time(end: float, pedal: list[tuple[float, float]]) -> float:
        """A note-off while the sustain pedal is down takes effect when the pedal next comes up."""
        down = False
        for t, value in pedal:
            if t > end:
                if not down:
                    return end
                if value < 64:
                    return t
            else:
                down = value >= 64
        return end if not down else float("inf")
