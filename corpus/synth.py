"""The synthetic IRMAS-style corpus, rendered offline by FluidSynth from General MIDI soundfonts.

    python -m corpus.synth --out data/synth [--scale 0.1] [--seed 0] [--workers 2]
                             [--extra-soundfonts ../shared/soundfonts] [--solo-share 0.15]
                             [--gm-soundfont FILE ...] [--split train] [--guitar-rig amps] [--clipping 0.2]

Writes, in IRMAS's own layout:

- ``<out>/train/<code>/<song>__[<code>][dru|nod][<genre>]<n>__<k>.wav``: 3-second excerpts with one
  labelled predominant instrument over an accompaniment (or solo), several excerpts per song;
- ``<out>/validation/`` and ``<out>/test/``: 5-20 s excerpts beside ``.txt`` files naming their 1-4
  predominant instruments;
- ``<out>/corpus.json``: how every file was made (soundfonts, programs, levels, seed).

44.1 kHz stereo 16-bit WAV. One synthesizer per worker keeps every soundfont loaded; each song is
drawn from its own seeded generator, so files are byte-identical for the same seed and arguments
whatever the number of workers or the order of rendering, and a rerun keeps finished songs.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import fnmatch
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
from tqdm import tqdm

from corpus import acoustics, guitar, music
from corpus.music import Part, Song
from corpus.sampler import SampleLibrary, Sampler
from corpus.singer import Singer, SingerError
from instrec.labels import CODES

SAMPLE_RATE = 44100
BLOCK = 64  # FluidSynth renders in blocks of 64 samples; events land on block boundaries
EXCERPT_S = 3.0
TRAIN_COUNTS = {"cel": 388, "cla": 505, "flu": 451, "gac": 637, "gel": 760, "org": 682,
                "pia": 721, "sax": 626, "tru": 577, "vio": 580, "voi": 778}
EVAL_COUNTS = {"validation": 300, "test": 600}
SPLITS = ("train", *EVAL_COUNTS)
#: how electric guitars played clean are amplified: ``tanh`` (a tanh overdrive and low-pass for 55 % of
#: clean leads, as the shipped models' corpus) or ``amps`` (:mod:`corpus.guitar`: 85 % of clean parts,
#: leads and comping, through an amplifier of four voicings and a speaker cabinet; half the distorted
#: ones through a cabinet)
GUITAR_RIGS = ("tanh", "amps")
#: what a manifest written before a field existed stands for (a corpus of every split, the tanh rig, no clipping)
MANIFEST_DEFAULTS = {"splits": list(SPLITS), "guitar_rig": "tanh", "clipping": 0.0, "short_share": 0.0}
#: share of evaluation excerpts with 1, 2, 3 and 4 predominant instruments
POLYPHONY = (0.5, 0.33, 0.13, 0.04)
#: share of training songs played solo, without accompaniment or drums
SOLO_SHARE = 0.15
#: share of a class's lead parts played by real recordings, when the class has any
REAL_SHARE = 0.6
DEFAULT_SAMPLES = Path("data/samples")

# General MIDI programs (0-based) per class, each with its playing range (MIDI low, high)
PROGRAMS: dict[str, list[tuple[int, int, int]]] = {
    "cel": [(42, 36, 76)],
    "cla": [(71, 50, 89)],
    "flu": [(73, 60, 96)],
    "gac": [(24, 40, 81), (25, 40, 81)],
    "gel": [(26, 40, 86), (27, 40, 86), (28, 40, 81), (29, 40, 86), (30, 40, 86)],
    "org": [(16, 36, 96), (17, 36, 96), (18, 36, 96), (19, 36, 96)],
    "pia": [(0, 28, 100), (1, 28, 100), (2, 28, 100), (3, 28, 100)],
    "sax": [(64, 56, 87), (65, 49, 81), (66, 44, 76), (67, 36, 69)],
    "tru": [(56, 54, 84), (59, 54, 82)],
    "vio": [(40, 55, 96)],
    "voi": [(52, 45, 79), (53, 45, 79)],
}
#: the notes a class plays in any source: the union of its GM programs' ranges
PLAYING_RANGE = {code: (min(p[1] for p in progs), max(p[2] for p in progs)) for code, progs in PROGRAMS.items()}
HARMONIC = {"gac", "gel", "org", "pia"}
VIBRATO = {"cel": (30, 70), "vio": (30, 80), "voi": (25, 70), "flu": (10, 50), "sax": (10, 45), "tru": (0, 30), "cla": (0, 12)}
DISTORTED_PROGRAMS = {29, 30}
PADS = [(48, 48, 84), (49, 48, 84), (50, 48, 84), (89, 48, 84), (91, 48, 84)]
BASSES = [(32, 28, 52), (33, 28, 52), (34, 28, 52), (35, 28, 52), (43, 28, 52)]
GENRE_WEIGHTS = {  # which genres a class is heard in, roughly as in IRMAS
    "cel": (1, 6, 1, 1, 1), "cla": (1, 6, 1, 1, 2), "flu": (2, 5, 1, 2, 2), "gac": (5, 1, 4, 2, 2),
    "gel": (2, 0, 6, 1, 3), "org": (1, 3, 3, 2, 3), "pia": (2, 4, 3, 2, 4), "sax": (1, 0, 2, 3, 5),
    "tru": (1, 2, 2, 3, 4), "vio": (3, 6, 1, 1, 1), "voi": (3, 1, 5, 3, 3),
}  # order: cou_fol, cla, pop_roc, lat_sou, jaz_blu
GENRE_ORDER = ("cou_fol", "cla", "pop_roc", "lat_sou", "jaz_blu")
DRUM_SHARE = {"cou_fol": 0.6, "cla": 0.05, "pop_roc": 0.85, "lat_sou": 0.75, "jaz_blu": 0.7}

#: Real-sample soundfonts that may be given with --extra-soundfonts: file pattern -> class, and
#: the velocities and range each sample set covers.
EXTRA_SOUNDFONTS = {
    "karoryfer-weresax-alto-forte*": {"code": "sax", "velocity": [64, 127], "range": [49, 80]},
    "karoryfer-weresax-alto-piano*": {"code": "sax", "velocity": [1, 63], "range": [49, 80]},
    "karoryfer-shinyguitar-acoustic*": {"code": "gac", "velocity": [1, 127], "range": [40, 81]},
    "karoryfer-shinyguitar-electric*": {"code": "gel", "velocity": [1, 127], "range": [40, 81], "clean": True},
    "nyanshell-strat-electric*": {"code": "gel", "velocity": [1, 127], "range": [41, 86], "clean": True},
    "solfege-voice-chengu*": {"code": "voi", "velocity": [1, 127], "range": [36, 69]},
}


class SynthError(RuntimeError):
    """FluidSynth or a soundfont is missing, with what to install."""


# ---- soundfonts ------------------------------------------------------------------------------


#: General MIDI soundfonts from Debian's packages fluid-soundfont-gm, musescore-general-soundfont-small
#: and csound-soundfont, used when installed
GM_PATHS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
            Path("/usr/share/sounds/sf2/sf_GMbank.sf2"))


def gm_soundfonts(chosen: list[Path] | None = None) -> list[Path]:
    """The General MIDI soundfonts: ``chosen`` when given, else those of :data:`GM_PATHS` that are
    installed and TimGM6mb (pretty_midi)."""
    if chosen:
        missing = [str(p) for p in chosen if not Path(p).is_file()]
        if missing:
            raise SynthError(f"General MIDI soundfont not found: {', '.join(missing)}")
        return [Path(p) for p in chosen]
    found = []
    for p in GM_PATHS:
        if p.exists():
            found.append(p)
    try:
        import pretty_midi

        tim = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
        if tim.exists():
            found.append(tim)
    except ImportError:
        pass
    if not found:
        raise SynthError(
            "no General MIDI soundfont found: install the Debian packages fluid-soundfont-gm and "
            "musescore-general-soundfont-small (apt-get install fluid-soundfont-gm "
            "musescore-general-soundfont-small) or pip install pretty_midi"
        )
    return found


def extra_soundfonts(folders: list[Path], mapping: dict | None = None) -> dict[str, list[dict]]:
    """Real-sample soundfonts in ``folders`` that the mapping knows, by class code."""
    mapping = mapping or EXTRA_SOUNDFONTS
    out: dict[str, list[dict]] = {}
    for folder in folders:
        if not folder.is_dir():
            raise SynthError(f"{folder}: extra soundfont folder not found")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in (".sf2", ".sf3"):
                continue
            for pattern, spec in mapping.items():
                if fnmatch.fnmatch(path.name, pattern):
                    if spec["code"] not in CODES:
                        raise SynthError(f"soundfont map: {pattern} -> unknown code {spec['code']!r}")
                    out.setdefault(spec["code"], []).append({**spec, "path": str(path), "name": path.stem})
    return out


def sample_libraries(folder: Path | None, without: tuple[str, ...] = (), notes: bool = False) -> dict[str, list[dict]]:
    """The recorded-note libraries prepared under ``folder`` by ``python -m corpus.samples fetch``, by class,
    less those whose name matches a pattern of ``without`` (``freepats-*``); with ``notes``, for the notes
    corpus, also the libraries that play only there (``notes_only``: the singer)."""
    if folder is None:
        return {}
    from corpus.samples import prepared

    if not Path(folder).is_dir():
        raise SynthError(f"{folder}: sample library folder not found (python -m corpus.samples fetch --out {folder})")
    out: dict[str, list[dict]] = {}
    for name, entry in sorted(prepared(folder).items()):
        if any(fnmatch.fnmatch(name, pattern) for pattern in without) or (entry.get("notes_only") and not notes):
            continue
        if "singer" in entry:
            voice = Path(folder) / name / entry["singer"]
            try:
                Singer(voice)  # it must sing here, before any worker is asked to
            except SingerError as exc:
                raise SynthError(f"{name}: {exc} (or leave it out: --without-library {name})") from None
            out.setdefault(entry["code"], []).append({**entry, "path": str(voice)})
            continue
        lib = SampleLibrary(Path(folder) / name)
        out.setdefault(entry["code"], []).append({**entry, "path": str(Path(folder) / name),
                                                  "low": lib.low, "high": lib.high})
    return out


# ---- the renderer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """What plays a part: a soundfont preset and the range and velocities it covers."""

    soundfont: str  # path of a soundfont, or of a recorded-note library folder when ``library``
    bank: int
    program: int
    low: int
    high: int
    velocity: tuple[int, int] = (1, 127)
    code: str | None = None
    clean_electric: bool = False
    library: bool = False  # played by corpus.sampler from recorded notes
    sustained: bool = True  # library only: loop notes longer than their recordings
    release_s: float = 0.15  # library only
    singer: bool = False  # sung by corpus.singer with the voice model ``soundfont``

    @property
    def source(self) -> str:
        """The name of the soundfont file or library that plays the part."""
        return Path(self.soundfont).name

    def describe(self) -> dict:
        if self.singer:
            return {"source": self.source, "singer": self.source, "code": self.code}
        if self.library:
            return {"source": self.source, "library": self.source, "code": self.code}
        return {"source": self.source, "soundfont": self.source, "bank": self.bank, "program": self.program,
                "code": self.code}


class Renderer:
    """FluidSynth with every soundfont loaded; renders parts to stems.

    A FluidSynth synthesizer carries state from one note to the next that no reset clears (voice
    slots keep filter and envelope history), so the same part rendered after different parts
    differs slightly. For byte-identical files, :meth:`renew` makes a fresh synthesizer for each
    song; FluidSynth's sample cache shares the samples with a first synthesizer kept for that
    purpose, so a renewal costs about 0.15 s instead of the seconds a first load takes.
    """

    def __init__(self, soundfonts: list[str], sample_rate: int = SAMPLE_RATE):
        try:
            import fluidsynth
        except (ImportError, OSError) as exc:
            raise SynthError(
                f"FluidSynth is not usable ({exc}): install the Debian packages fluidsynth and "
                "libfluidsynth3 (apt-get install fluidsynth) and pip install pyfluidsynth"
            ) from None
        self._fs = fluidsynth
        self.soundfonts = [str(p) for p in soundfonts]
        self.sample_rate = sample_rate
        self._write = fluidsynth.cfunc(
            "fluid_synth_write_float", ctypes.c_int,
            ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1),
        )
        self._switches = [
            fluidsynth.cfunc(name, ctypes.c_int, ("synth", ctypes.c_void_p, 1),
                             ("fx_group", ctypes.c_int, 1), ("on", ctypes.c_int, 1))
            for name in ("fluid_synth_reverb_on", "fluid_synth_chorus_on")
        ]
        self._cache_holder = self._new_synth()[0]
        self.synth, self.ids = self._new_synth()
        self.sampler = Sampler(sample_rate)
        self._libraries: dict[str, SampleLibrary] = {}
        self._singers: dict[str, Singer] = {}

    def _new_synth(self):
        settings = {"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.polyphony": 512,
                    "synth.cpu-cores": 1}
        synth = self._fs.Synth(gain=0.4, samplerate=float(self.sample_rate), **settings)
        # effects off for real (the settings alone leave them running): instrec adds its own room
        for switch in self._switches:
            switch(synth.synth, -1, 0)
        ids = {}
        for path in self.soundfonts:
            sfid = synth.sfload(path)
            if sfid < 0:
                raise SynthError(f"{path}: FluidSynth could not load this soundfont")
            ids[path] = sfid
        return synth, ids

    def renew(self) -> None:
        """Replace the synthesizer by a fresh one (see the class docstring)."""
        self.synth.delete()
        self.synth, self.ids = self._new_synth()

    def _block(self, t: float) -> int:
        return int(round(t * self.sample_rate / BLOCK))

    def render(self, part: Part, instrument: Instrument, n_samples: int) -> np.ndarray:
        """Render one part -> float32 (n_samples, 2); the synthesizer is left silent after."""
        if instrument.singer:
            singer = self._singers.get(instrument.soundfont)
            if singer is None:
                singer = self._singers[instrument.soundfont] = Singer(instrument.soundfont, self.sample_rate)
            return singer.render(part, n_samples)
        if instrument.library:
            lib = self._libraries.get(instrument.soundfont)
            if lib is None:
                lib = self._libraries[instrument.soundfont] = SampleLibrary(
                    instrument.soundfont, sample_rate=self.sample_rate, sustained=instrument.sustained,
                    release_s=instrument.release_s)
            return self.sampler.render(part, lib, n_samples)
        n_blocks = -(-n_samples // BLOCK)
        out = np.zeros((n_blocks * BLOCK, 2), np.float32)
        chan = 9 if part.drums else 0
        synth = self.synth
        synth.system_reset()
        synth.program_select(chan, self.ids[instrument.soundfont], instrument.bank, instrument.program)
        events: list[tuple[int, int, tuple]] = []  # (block, order, action)
        vlo, vhi = instrument.velocity
        for n in part.notes:
            vel = int(np.clip(n.velocity, vlo, vhi))
            on, off = self._block(n.start), max(self._block(n.end), self._block(n.start) + 1)
            events.append((on, 1, ("on", n.pitch, vel)))
            events.append((off, 0, ("off", n.pitch)))
        for t, cc, value in part.controls:
            events.append((self._block(t), 2, ("cc", cc, value)))
        for t, semis in part.bends:
            events.append((self._block(t), 2, ("bend", int(np.clip(semis / 2 * 8191, -8192, 8191)))))
        events.sort(key=lambda e: (e[0], e[1], e[2][1]))
        pos = 0
        for block, _, action in events:
            block = min(block, n_blocks)
            if block > pos:
                self._render_into(out, pos, block)
                pos = block
            kind = action[0]
            if kind == "on":
                synth.noteon(chan, action[1], action[2])
            elif kind == "off":
                synth.noteoff(chan, action[1])
            elif kind == "cc":
                synth.cc(chan, action[1], action[2])
            else:
                synth.pitch_bend(chan, action[1])
        if pos < n_blocks:
            self._render_into(out, pos, n_blocks)
        synth.all_sounds_off(chan)
        return out[:n_samples]

    def _render_into(self, out: np.ndarray, start_block: int, end_block: int) -> None:
        view = out[start_block * BLOCK : end_block * BLOCK]
        # interleaved stereo written straight into the (n, 2) float32 array
        self._write(self.synth.synth, view.shape[0], view.ctypes.data, 0, 2, view.ctypes.data, 1, 2)


# ---- effects and mixing ----------------------------------------------------------------------


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def amp_stage(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Guitar amplifier: pre-emphasis, tanh overdrive, a 4x12 cabinet-like low-pass."""
    drive = float(rng.uniform(3, 30))
    b, a = scipy.signal.butter(1, 300 / (sr / 2), "high")
    pre = scipy.signal.lfilter(b, a, x, axis=0) * 0.6 + 0.4 * x
    y = np.tanh(drive * pre / (np.max(np.abs(pre)) + 1e-9))
    b, a = scipy.signal.butter(2, float(rng.uniform(3000, 6000)) / (sr / 2), "low")
    return scipy.signal.lfilter(b, a, y, axis=0).astype(np.float32)


def electric_guitar(stem: np.ndarray, inst: Instrument, rng: np.random.Generator, sr: int,
                    guitar_rig: str) -> tuple[np.ndarray, str]:
    """An electric guitar part through its amplifier as ``guitar_rig`` says (see :data:`GUITAR_RIGS`);
    returns the part and what was done, for the record ("" when it stays dry)."""
    if guitar_rig == "tanh":
        if inst.clean_electric and rng.random() < 0.55:
            return amp_stage(stem, rng, sr), ", amp"
        return stem, ""
    drive = inst.clean_electric
    if rng.random() < (0.85 if drive else 0.5):
        stem, settings = guitar.rig(stem, rng, sr, drive=drive)
        amp = settings.get("amplifier", {}).get("voicing", "none")
        return stem, f", amp {amp}, cabinet {settings['cabinet']['high_cut_hz']} Hz"
    return stem, ""


def tilt_eq(x: np.ndarray, amount: float, sr: int) -> np.ndarray:
    """Spectral tilt around 1 kHz: amount > 0 brightens, < 0 darkens."""
    b, a = scipy.signal.butter(1, 1000 / (sr / 2), "low")
    low = scipy.signal.lfilter(b, a, x, axis=0)
    return ((1 - amount) * low + (1 + amount) * (x - low)).astype(np.float32)


def chorus(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """A modulated-delay copy mixed in (a chorus pedal or ensemble doubling)."""
    n = np.arange(len(x))
    delay = (0.015 + 0.004 * np.sin(2 * np.pi * float(rng.uniform(0.3, 1.5)) * n / sr)) * sr
    idx = np.clip(n - delay, 0, len(x) - 1)
    i0 = idx.astype(int)
    w = (idx - i0)[:, None]
    wet = x[i0] * (1 - w) + x[np.minimum(i0 + 1, len(x) - 1)] * w
    return (x + float(rng.uniform(0.3, 0.7)) * wet).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """Convolution with a synthetic stereo room: decaying noise after a pre-delay."""
    rt60 = float(rng.uniform(0.2, 2.5))
    wet = float(rng.uniform(0.05, 0.45))
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal((n, 2)) * np.exp(-6.9 * t / rt60)[:, None]
    b, a = scipy.signal.butter(1, float(rng.uniform(2000, 8000)) / (sr / 2), "low")
    ir = scipy.signal.lfilter(b, a, ir, axis=0)
    ir = np.concatenate([np.zeros((int(rng.uniform(0.005, 0.03) * sr), 2)), ir])
    ir /= np.sqrt(np.sum(ir**2, axis=0, keepdims=True)) + 1e-12
    y = scipy.signal.fftconvolve(x, ir, axes=0)[: len(x)]
    out = (1 - wet) * x + wet * y * (rms(x) / (rms(y) + 1e-12))
    return out.astype(np.float32), {"rt60_s": round(rt60, 3), "wet": round(wet, 3)}


def db(x: float) -> float:
    return 10 ** (x / 20)


# ---- what to render --------------------------------------------------------------------------


class Catalogue:
    """Instruments available to the corpus: GM programs in every GM soundfont, plus real recordings
    (real-sample soundfonts and recorded-note libraries), by class.

    A lead part of a class that has real recordings is played by one of them with probability
    ``real_share``, each real source equally likely; otherwise by a GM program of the class in one
    of the GM soundfonts, each equally likely."""

    def __init__(self, gm: list[Path], extras: dict[str, list[dict]], real_share: float,
                 libraries: dict[str, list[dict]] | None = None):
        if not 0 <= real_share <= 1:
            raise ValueError(f"real_share must be within 0..1, got {real_share}")
        self.gm = [str(p) for p in gm]
        self.extras = extras
        self.libraries = libraries or {}
        self.real_share = real_share

    @property
    def soundfonts(self) -> list[str]:
        return self.gm + [e["path"] for specs in self.extras.values() for e in specs]

    @property
    def soundfont_names(self) -> list[str]:
        return [Path(p).name for p in self.soundfonts]

    @property
    def library_names(self) -> list[str]:
        return sorted(e.get("name", Path(e["path"]).name) for specs in self.libraries.values() for e in specs)

    def real(self, code: str) -> list[Instrument]:
        """The real-recording instruments of a class: soundfonts first, then libraries, in name order."""
        out = []
        for spec in self.extras.get(code, []):
            lo, hi = spec["range"]
            out.append(Instrument(spec["path"], 0, 0, lo, hi, tuple(spec["velocity"]), code, bool(spec.get("clean"))))
        for spec in self.libraries.get(code, []):
            if "singer" in spec:
                out.append(Instrument(spec["path"], 0, 0, spec["low"], spec["high"], (1, 127), code, singer=True))
                continue
            out.append(Instrument(spec["path"], 0, 0, spec["low"], spec["high"], (1, 127), code,
                                  bool(spec.get("clean")), library=True, sustained=bool(spec.get("sustained", True)),
                                  release_s=float(spec.get("release_s", 0.15))))
        return out

    def sources(self, code: str) -> list[str]:
        """Every distinct source a class can be played by (each GM soundfont counts as one)."""
        return [Path(p).name for p in self.gm] + [i.source for i in self.real(code)]

    def for_class(self, code: str, rng: np.random.Generator) -> Instrument:
        real = self.real(code)
        if real and rng.random() < self.real_share:
            chosen = real[int(rng.integers(len(real)))]
            lo, hi = PLAYING_RANGE[code]
            return dataclasses.replace(chosen, low=max(chosen.low, lo), high=min(chosen.high, hi))
        program, lo, hi = PROGRAMS[code][int(rng.integers(len(PROGRAMS[code])))]
        font = self.gm[int(rng.integers(len(self.gm)))]
        clean = code == "gel" and program not in DISTORTED_PROGRAMS
        return Instrument(font, 0, program, lo, hi, (1, 127), code, clean)

    def other(self, table: list[tuple[int, int, int]], rng: np.random.Generator) -> Instrument:
        program, lo, hi = table[int(rng.integers(len(table)))]
        return Instrument(self.gm[int(rng.integers(len(self.gm)))], 0, program, lo, hi)

    def drums(self, rng: np.random.Generator) -> Instrument:
        return Instrument(self.gm[int(rng.integers(len(self.gm)))], 128, 0, 27, 87)


def lead_part(code: str, inst: Instrument, song: Song, rng: np.random.Generator, *, voice_index: int = 0,
              style: str | None = None) -> tuple[Part, str]:
    """The idiomatic part for a predominant instrument, and a word saying what it plays."""
    lo, hi = inst.low, inst.high
    use_real = bool(song.voices) and rng.random() < 0.75
    harmonic = code in HARMONIC and not (code == "gel" and rng.random() < 0.4) and not (
        code in ("org", "pia") and rng.random() < 0.2)
    if style is None:
        style = str(rng.choice(["normal", "legato", "staccato", "separate", "long"], p=[0.3, 0.3, 0.1, 0.15, 0.15]))
    if harmonic:
        if code in ("org", "pia") and use_real and len(song.voices) >= 3:
            notes = [n for v in song.voices for n in music.fit_range(v, lo, hi)]
            what = "chorale"
        else:
            choices = {"pia": ["block", "arpeggio", "block"], "org": ["pad", "block", "pad"],
                       "gac": ["strum", "arpeggio", "strum"], "gel": ["strum", "power", "arpeggio"]}[code]
            what = str(rng.choice(choices))
            notes = music.chords_part(song, rng, lo, min(hi, lo + 30), what)
        part = Part(notes=music.articulate(notes, rng, "normal" if what != "pad" else "legato", (60, 110)))
        if code == "pia" and rng.random() < 0.5:
            part.controls += [(c.start, 64, 127) for c in song.chords] + [(c.end - 0.02, 64, 0) for c in song.chords]
            part.controls.sort()
        return part, what
    if use_real:
        voice = song.voices[min(voice_index, len(song.voices) - 1)]
        notes, what = music.fit_range(voice, lo, hi), "real melody"
    else:
        notes, what = music.melody(song, rng, lo, hi, density=float(rng.uniform(0.5, 1.2))), "generated melody"
    part = Part(notes=music.articulate(notes, rng, style, (int(rng.integers(40, 80)), int(rng.integers(85, 127)))))
    if code in VIBRATO:
        music.vibrato_controls(part, rng, VIBRATO[code])
    if code == "gel":
        music.bends(part, rng, share=0.25)
    if code == "sax":
        music.bends(part, rng, share=0.15, scoop=True)
    if style in ("separate", "long"):
        what = f"{style} notes"
    return part, what


def make_song(rng: np.random.Generator, material: list[dict], duration: float, genre: str) -> Song:
    tempo = float(rng.uniform(60, 160))
    if material and rng.random() < 0.55:
        piece = material[int(rng.integers(len(material)))]
        return music.song_from_material(piece, rng, duration, tempo * (0.7 if piece["kind"] == "chorale" else 1.0))
    return music.generated_song(rng, duration, tempo, genre)


def render_mix(renderer: Renderer, catalogue: Catalogue, rng: np.random.Generator, material: list[dict],
               labels: list[str], duration: float, genre: str, drums: bool, solo: bool,
               chain: bool = True, guitar_rig: str = "tanh", clipping: float = 0.0) -> tuple[np.ndarray, dict]:
    """Render a song with ``labels`` predominant over an accompaniment -> float32 (n, 2) and a record.

    With ``chain`` the mix goes through a simulated room (else the synthetic reverb) and a recording
    chain (:mod:`corpus.acoustics`; ``clipping``: the share of songs clipped in it); electric guitars are
    amplified as ``guitar_rig`` says."""
    sr = renderer.sample_rate
    n = int(round(duration * sr))
    song = make_song(rng, material, duration + 0.5, genre)
    record: dict = {"labels": labels, "genre": genre, "drums": drums, "solo": solo, "source": song.source,
                    "tempo_bpm": round(60 / song.beat, 1), "parts": []}
    leads = []
    order = rng.permutation(max(len(song.voices), 1))
    for i, code in enumerate(labels):
        inst = catalogue.for_class(code, rng)
        part, what = lead_part(code, inst, song, rng, voice_index=int(order[i % len(order)]))
        stem = renderer.render(part, inst, n)
        if code == "gel":
            stem, done = electric_guitar(stem, inst, rng, sr, guitar_rig)
            what += done
        if rng.random() < 0.2:
            stem = chorus(stem, rng, sr)
        leads.append(stem / (rms(stem) + 1e-9) * db(float(rng.uniform(-3, 0)) if len(labels) > 1 else 0.0))
        record["parts"].append({**inst.describe(), "role": "predominant", "plays": what, "notes": len(part.notes),
                                "rms": rms(stem)})
    mix = np.sum(leads, axis=0)
    if not solo:
        accomp_level = db(-float(rng.uniform(4, 16)))
        accomp = []
        if rng.random() < 0.8:
            inst = catalogue.other(music_table("bass"), rng)
            accomp.append((Part(notes=music.articulate(music.bass_line(song, rng, genre), rng, "normal", (70, 100))), inst, "bass"))
        if rng.random() < 0.5:
            inst = catalogue.other(music_table("pad"), rng)
            accomp.append((Part(notes=music.chords_part(song, rng, inst.low, inst.low + 24, "pad")), inst, "pad"))
        others = [c for c in ("pia", "gac", "org", "gel") if c not in labels]
        if others and rng.random() < 0.35:
            code = others[int(rng.integers(len(others)))]
            inst = catalogue.for_class(code, rng)
            style = {"pia": "block", "gac": "strum", "org": "pad", "gel": "strum"}[code]
            accomp.append((Part(notes=music.chords_part(song, rng, inst.low, inst.low + 24, style)), inst, "comping"))
        for part, inst, role in accomp:
            stem = renderer.render(part, inst, n)
            described = {**inst.describe(), "role": role}
            if role == "comping" and inst.code == "gel" and guitar_rig != "tanh":
                stem, done = electric_guitar(stem, inst, rng, sr, guitar_rig)
                described["plays"] = "chords" + done
            mix = mix + stem / (rms(stem) + 1e-9) * accomp_level * float(rng.uniform(0.5, 1.0))
            record["parts"].append({**described, "notes": len(part.notes), "rms": rms(stem)})
        record["accompaniment_db"] = round(20 * np.log10(accomp_level), 2)
    if drums:
        inst = catalogue.drums(rng)
        part = music.drum_part(song, rng, genre)
        stem = renderer.render(part, inst, n)
        mix = mix + stem / (rms(stem) + 1e-9) * db(-float(rng.uniform(3, 12)))
        record["parts"].append({**inst.describe(), "role": "drums", "notes": len(part.notes), "rms": rms(stem)})
    mix = tilt_eq(mix, float(rng.uniform(-0.5, 0.5)), sr)
    return record_in_a_room(mix, rng, sr, record, chain, clipping), record


def record_in_a_room(x: np.ndarray, rng: np.random.Generator, sr: int, record: dict, chain: bool = True,
                     clipping: float = 0.0) -> np.ndarray:
    """A dry mix as a recording: a simulated room (with ``chain``, else the synthetic reverb), a noise
    floor, a peak level, then the recording chain (microphone, compression, background, lossy encoding).
    What was done is added to ``record``; returns float32 (n, 2)."""
    if chain and rng.random() < acoustics.STAGES["room"]:
        x, record["room"] = acoustics.room(x, rng, sr)
    else:
        x, record["reverb"] = reverb(x, rng, sr)
    noise_db = float(rng.uniform(-75, -40))
    x = x + rng.standard_normal(x.shape).astype(np.float32) * rms(x) * db(noise_db)
    peak_db = float(rng.uniform(-20, -1))
    x = x / (np.max(np.abs(x)) + 1e-9) * db(peak_db)
    if chain:
        x, record["recording"] = acoustics.recording_chain(x, rng, sr, {**acoustics.STAGES, "room": 0.0,
                                                                         "clip": clipping})
    record.update(noise_db=round(noise_db, 1), peak_dbfs=round(peak_db, 1))
    return x.astype(np.float32)


def music_table(kind: str) -> list[tuple[int, int, int]]:
    return {"bass": BASSES, "pad": PADS}[kind]


# ---- the corpus plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One song to render: its split, its files, and the seed of its own generator."""

    split: str
    key: str  # unique: also the name of its record
    labels: tuple[str, ...]
    files: tuple[str, ...]  # relative to the corpus root
    seed: tuple[int, ...]
    duration: float
    genre: str
    drums: bool
    solo: bool


def plan(seed: int, scale: float, solo_share: float = SOLO_SHARE) -> list[Job]:
    """Every song of the corpus; depends only on ``seed``, ``scale`` and ``solo_share`` (the share of
    training songs played without accompaniment; the same draws decide, so a corpus at another share
    differs only in which songs are solo)."""
    jobs: list[Job] = []
    for ci, code in enumerate(CODES):
        target = max(1, round(TRAIN_COUNTS[code] * scale))
        done, song = 0, 0
        while done < target:
            rng = np.random.default_rng([seed, 0, ci, song])
            k = int(min(rng.integers(1, 5), target - done))
            genre = str(rng.choice(GENRE_ORDER, p=np.array(GENRE_WEIGHTS[code]) / sum(GENRE_WEIGHTS[code])))
            solo = bool(rng.random() < solo_share)
            drums = (not solo) and bool(rng.random() < DRUM_SHARE[genre])
            stem = f"{song:04d}__[{code}][{'dru' if drums else 'nod'}][{genre}]{done + 1:04d}"
            files = tuple(f"train/{code}/{stem}__{i + 1}.wav" for i in range(k))
            jobs.append(Job("train", f"train-{code}-{song:04d}", (code,), files, (seed, 0, ci, song, 1),
                            k * EXCERPT_S, genre, drums, solo))
            done += k
            song += 1
    for si, (split_name, count) in enumerate(EVAL_COUNTS.items(), start=1):
        for i in range(max(2, round(count * scale))):
            rng = np.random.default_rng([seed, si, i])
            n_labels = int(rng.choice([1, 2, 3, 4], p=POLYPHONY))
            labels = tuple(sorted(rng.choice(CODES, size=n_labels, replace=False), key=CODES.index))
            weights = np.sum([GENRE_WEIGHTS[c] for c in labels], axis=0) + 0.5
            genre = str(rng.choice(GENRE_ORDER, p=weights / weights.sum()))
            solo = n_labels == 1 and bool(rng.random() < 0.1)
            drums = (not solo) and bool(rng.random() < DRUM_SHARE[genre])
            duration = float(np.round(rng.uniform(5, 20), 2))
            name = f"{split_name}/synth-{i:04d}-{genre}.wav"
            jobs.append(Job(split_name, f"{split_name}-{i:04d}", labels, (name,), (seed, si, i, 1),
                            duration, genre, drums, solo))
    return jobs


# ---- workers ---------------------------------------------------------------------------------

_STATE: dict = {}


def _init_worker(soundfonts: list[str], catalogue: Catalogue, material: list[dict], chain: bool,
                 guitar_rig: str, clipping: float = 0.0) -> None:
    _STATE["renderer"] = Renderer(soundfonts)
    _STATE["catalogue"] = catalogue
    _STATE["material"] = material
    _STATE["chain"] = chain
    _STATE["guitar_rig"] = guitar_rig
    _STATE["clipping"] = clipping


def write_wav(path: Path, audio: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, path)


def render_job(job: Job, out: Path) -> dict:
    """Render one song, cut it into its files, write them and their record; return the record."""
    record_path = out / "records" / f"{job.key}.json"
    if record_path.exists() and all((out / f).exists() for f in job.files):
        return json.loads(record_path.read_text())
    rng = np.random.default_rng(list(job.seed))
    _STATE["renderer"].renew()
    lead_in = 0.25 if job.split == "train" else 0.0
    mix, record = render_mix(_STATE["renderer"], _STATE["catalogue"], rng, _STATE["material"], list(job.labels),
                             job.duration + lead_in, job.genre, job.drums, job.solo, chain=_STATE["chain"],
                             guitar_rig=_STATE["guitar_rig"], clipping=_STATE["clipping"])
    per = int(EXCERPT_S * SAMPLE_RATE)
    start = int(lead_in * SAMPLE_RATE)
    for i, rel in enumerate(job.files):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if job.split == "train":
            piece = mix[start + i * per : start + (i + 1) * per]
            piece = piece / (np.max(np.abs(piece)) + 1e-9) * np.max(np.abs(mix))
        else:
            piece = mix[: int(round(job.duration * SAMPLE_RATE))]
            path.with_suffix(".txt").write_text("".join(f"{c}\n" for c in job.labels))
        write_wav(path, piece)
    record.update(key=job.key, split=job.split, files=list(job.files), seed=list(job.seed))
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=1))
    return record


def _run(args: tuple[Job, Path]) -> dict:
    return render_job(*args)


def check_folder(out: Path, settings: dict, seeds: dict[str, list[int]]) -> None:
    """Refuse to render into a folder that holds another corpus: finished songs are kept by key, so a
    second seed or scale rendered into the same folder would silently add its songs to the first one's.

    The same holds for the sources: songs kept from a render with other soundfonts or libraries would
    not be what the new manifest says they are.

    ``settings`` are the fields that must match: those of a finished render's ``corpus.json``, or of
    ``render.json``, which a render writes before its first song, so an unfinished render is checked on
    every field too. ``seeds`` maps each record's key to the seed its record must carry (checked for an
    unfinished render begun before ``render.json`` was written)."""
    manifest, started = out / "corpus.json", out / "render.json"
    for path, defaults in ((manifest, MANIFEST_DEFAULTS), (started, {})):
        if not path.exists():
            continue
        head = {**defaults, **json.loads(path.read_text())}
        differ = {k: (head[k], v) for k, v in settings.items() if k in head and head[k] != v}
        if differ:
            what = "; ".join(_difference(k, old, new) for k, (old, new) in differ.items())
            state = "" if path == manifest else "an unfinished render of "
            raise ValueError(f"{out} holds {state}another corpus ({what}): rendering there would mix the two; "
                             "give another folder (or delete this one, or leave out the new sources: "
                             "--without-library)")
        return  # a render's records are its own: reading each of them again is not needed
    for key, seed in seeds.items():
        path = out / "records" / f"{key}.json"
        if path.exists():
            record = json.loads(path.read_text())
            first = record[0] if isinstance(record, list) else record
            if first["seed"][: len(seed)] != seed:
                raise ValueError(f"{path} was rendered with seed {first['seed'][0]}, not {seed[0]}: {out} holds "
                                 "another corpus; give another folder (or delete this one)")
    started.write_text(json.dumps(settings, indent=1))


def _difference(key: str, old, new) -> str:
    """How a setting of a finished render differs from this one's, for a message."""
    if not (isinstance(old, list) and isinstance(new, list)):
        return f"{key} {old}, not {new}"
    added, dropped = [v for v in new if v not in old], [v for v in old if v not in new]
    return f"{key}: this render adds {added or 'none'} and drops {dropped or 'none'}"


def render_corpus(out: Path, *, scale: float = 1.0, seed: int = 0, workers: int = 1,
                  extra_folders: list[Path] | None = None, soundfont_map: dict | None = None,
                  samples: Path | None = None, real_share: float = REAL_SHARE, solo_share: float = SOLO_SHARE,
                  material_pieces: int = 60, gm: list[Path] | None = None, chain: bool = True,
                  without_libraries: tuple[str, ...] = (), splits: tuple[str, ...] = SPLITS,
                  guitar_rig: str = "tanh", clipping: float = 0.0, progress: bool = True) -> dict:
    """Render (or finish rendering) the corpus into ``out``; returns the summary. ``without_libraries``:
    name patterns of prepared libraries in ``samples`` not to play. ``splits``: the splits to render;
    a song is the same whichever splits are rendered with it, so ``splits=("validation",)`` at twice the
    scale gives the corpus's validation files and as many new ones (more material to tune thresholds on)."""
    if not 0 <= solo_share <= 1:
        raise ValueError(f"solo_share must be within 0..1, got {solo_share}")
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise ValueError(f"splits must be some of {', '.join(SPLITS)}, got {', '.join(unknown) or 'none'}")
    splits = tuple(s for s in SPLITS if s in splits)
    if guitar_rig not in GUITAR_RIGS:
        raise ValueError(f"guitar_rig must be one of {', '.join(GUITAR_RIGS)}, got {guitar_rig!r}")
    if not 0 <= clipping <= 1:
        raise ValueError(f"clipping must be within 0..1, got {clipping}")
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    catalogue = Catalogue(gm_soundfonts(gm), extra_soundfonts(extra_folders or [], soundfont_map), real_share,
                          sample_libraries(samples, tuple(without_libraries)))
    material = music.load_material(out / "material.json", n_chorales=material_pieces, n_tunes=material_pieces)
    jobs = [job for job in plan(seed, scale, solo_share) if job.split in splits]
    check_folder(out, {"seed": seed, "scale": scale, "solo_share": solo_share, "soundfonts": catalogue.soundfont_names,
                       "libraries": catalogue.library_names, "splits": list(splits), "guitar_rig": guitar_rig,
                       "clipping": clipping},
                 {job.key: list(job.seed) for job in jobs})
    args = [(job, out) for job in jobs]
    bar = tqdm(total=len(jobs), desc="rendering songs", unit="song", disable=not progress)
    records = []
    if workers <= 1:
        _init_worker(catalogue.soundfonts, catalogue, material, chain, guitar_rig, clipping)
        for a in args:
            records.append(_run(a))
            bar.update()
    else:
        with get_context("spawn").Pool(workers, _init_worker, (catalogue.soundfonts, catalogue, material, chain,
                                                                 guitar_rig, clipping)) as pool:
            for rec in pool.imap_unordered(_run, args, chunksize=1):
                records.append(rec)
                bar.update()
    bar.close()
    records.sort(key=lambda r: r["key"])
    summary = summarise(records, time.perf_counter() - t0)
    manifest = {"seed": seed, "scale": scale, "splits": list(splits), "sample_rate": SAMPLE_RATE,
                "soundfonts": catalogue.soundfont_names,
                "gm_soundfonts": [Path(p).name for p in catalogue.gm], "real_share": real_share,
                "libraries": catalogue.library_names,
                "sources": {code: catalogue.sources(code) for code in CODES},
                "solo_share": solo_share, "recording_chain": chain, "guitar_rig": guitar_rig, "clipping": clipping,
                "summary": summary, "records": records}
    (out / "corpus.json").write_text(json.dumps(manifest, indent=1))
    return summary


def summarise(records: list[dict], seconds: float) -> dict:
    counts: dict[str, Counter] = {}
    for r in records:
        n_files = len(r["files"])
        c = counts.setdefault(r["split"], Counter())
        for code in r["labels"]:
            c[code] += n_files
        c["files"] += n_files
    return {"counts": {k: dict(v) for k, v in counts.items()}, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m corpus.synth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="corpus folder (created; finished songs are kept)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of IRMAS's counts to render")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--extra-soundfonts", type=Path, action="append", default=[], metavar="DIR",
                    help="folder of real-sample soundfonts (see the README); repeatable")
    ap.add_argument("--soundfont-map", type=Path, help="JSON: file pattern -> {code, velocity, range}")
    ap.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES if DEFAULT_SAMPLES.is_dir() else None,
                    metavar="DIR", help="recorded-note libraries prepared by `python -m corpus.samples fetch` "
                    f"(default {DEFAULT_SAMPLES} when it exists)")
    ap.add_argument("--without-library", action="append", default=[], metavar="PATTERN",
                    help="do not play the prepared libraries whose name matches (e.g. 'freepats-*'); repeatable")
    ap.add_argument("--real-share", type=float, default=REAL_SHARE,
                    help="share of a class's lead parts played by real recordings (soundfonts given with "
                    "--extra-soundfonts and libraries in --samples), when it has any")
    ap.add_argument("--gm-soundfont", type=Path, action="append", default=[], metavar="FILE",
                    help="General MIDI soundfont to play every part from, instead of the default three; repeatable")
    ap.add_argument("--solo-share", type=float, default=SOLO_SHARE,
                    help="share of training songs played solo, without accompaniment")
    ap.add_argument("--material-pieces", type=int, default=60,
                    help="chorales and tunes taken from music21's corpus (each)")
    ap.add_argument("--split", action="append", choices=SPLITS, metavar="SPLIT",
                    help="render only this split (train, validation or test); repeatable; default all three")
    ap.add_argument("--no-recording-chain", dest="chain", action="store_false",
                    help="the synthetic reverb and noise floor only: no simulated rooms, microphones, "
                    "compression, background noise or lossy encoding")
    ap.add_argument("--guitar-rig", choices=GUITAR_RIGS, default="tanh",
                    help="how clean electric guitars are amplified: 'tanh' (55 %% of clean leads through a tanh "
                    "overdrive) or 'amps' (85 %% of clean parts through an amplifier of four voicings and a "
                    "speaker cabinet; half the distorted ones through a cabinet); default tanh")
    ap.add_argument("--clipping", type=float, default=0.0, metavar="SHARE",
                    help="share of songs clipped in their recording chain, hard or soft, 1-12 dB past full scale "
                    "(default 0)")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be positive")
    mapping = json.loads(args.soundfont_map.read_text()) if args.soundfont_map else None
    try:
        summary = render_corpus(args.out, scale=args.scale, seed=args.seed, workers=args.workers,
                                extra_folders=args.extra_soundfonts, soundfont_map=mapping,
                                samples=args.samples, real_share=args.real_share, solo_share=args.solo_share,
                                gm=args.gm_soundfont, chain=args.chain, without_libraries=tuple(args.without_library),
                                material_pieces=args.material_pieces, splits=tuple(args.split or SPLITS),
                                guitar_rig=args.guitar_rig, clipping=args.clipping)
    except (SynthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split, counts in summary["counts"].items():
        files = counts.pop("files")
        print(f"{split:<11}{files:>6} files  " + " ".join(f"{c}:{counts.get(c, 0)}" for c in CODES))
    sources = json.loads((args.out / "corpus.json").read_text())["sources"]
    for code in CODES:
        print(f"{code}: {len(sources[code])} sources ({', '.join(sources[code])})")
    print(f"rendered in {summary['seconds']:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
