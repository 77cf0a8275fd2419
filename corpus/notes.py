"""Isolated notes of every source of every class: the note-by-note half of the corpus.

    python -m corpus.notes --out data/notes [--per-class 240] [--real-share 0.6] [--seed 0]
                           [--workers 2] [--extra-soundfonts ../shared/soundfonts] [--samples data/samples]
                           [--short-share 0.5]

Most solo recordings people have of one instrument are single notes and short exercises, and a CNN
that has only heard phrases over an accompaniment hears them poorly. This renders, for every class,
3-second excerpts of one held note (70 %) or two to four separate notes (30 %) at random pitches of
the class's playing range, velocities and lengths, with the class's vibrato, played by each of the
class's sources in turn: every General MIDI soundfont (a random GM program of the class each time)
and every real recording (real-sample soundfonts and recorded-note libraries, which play
``real_share`` of the class's excerpts when it has any). Each excerpt goes through the corpus's
acoustics: a simulated room or the synthetic reverb, microphone colour, compression, background
noise, lossy encoding (:mod:`corpus.acoustics`).

``--short-share`` makes that share of the excerpts short files instead: 0.3-1.2 seconds long, one note
from its onset (within the first 50 ms), held 0.1 s up to the whole file, the file ending where it ends
whatever is still sounding, as a recording of one short note or a cut from a longer one is. The
recognizer pads such a file to one window and tiles it into musicnn's patch; 3-second excerpts never show
the models that.

Written in IRMAS's training layout, so ``training.train --extra-train <out>`` takes it beside the
song corpus (or ``--data <out>`` trains on the notes alone, e.g. to pre-train):

- ``<out>/train/<code>/note-<source>-<k>__[<code>][nod]__1.wav``, 44.1 kHz stereo 16-bit;
- ``<out>/corpus.json``: the sources, and one record per excerpt (pitches, velocities, source,
  program, room and recording chain), in the song corpus's format (:mod:`corpus.subset` and the
  leave-one-source-out check read it).

Each (class, source) group is rendered by one fresh synthesizer from its own seeded generator, so
files are byte-identical for the same seed and arguments whatever the number of workers; a rerun
keeps finished groups.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from corpus import music, synth
from corpus.music import Note, Part
from instrec.labels import CODES

EXCERPT_S = synth.EXCERPT_S
PER_CLASS = 240
#: share of excerpts that hold one note; the others play two to four separate notes
SINGLE_SHARE = 0.7
#: a dry note part whose peak stays under this is silent (a preset with a key it has no sample for, as
#: FluidR3's violin at A#6): it is drawn again, so that no excerpt of silence carries a label
SILENT_PEAK = 1e-4
#: draws of a note part before a preset is given up as silent over its whole range
DRAWS = 8
#: ``--short-share``: the shortest and longest short file, and the longest delay of its note's onset (s)
SHORT_LENGTH, SHORT_ONSET = (0.3, 1.2), 0.05
#: a short file's last samples fade out over this long (s), so that its end is a cut, not a click
SHORT_FADE = 0.005


@dataclass(frozen=True)
class Group:
    """The excerpts one source plays for one class."""

    code: str
    source: str  # the name of the soundfont file or library folder
    instruments: tuple[synth.Instrument, ...]  # one per GM program for a GM soundfont; one for a real source
    count: int
    seed: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.code}-{slug(self.source)}"


def slug(name: str) -> str:
    """A file-name-safe short form of a source name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(name).stem).strip("-").lower()


def plan(catalogue: synth.Catalogue, seed: int, per_class: int, real_share: float,
         codes: tuple[str, ...] = CODES) -> list[Group]:
    """Every (class, source) group: real sources share ``real_share`` of the class's excerpts, General
    MIDI soundfonts the rest (all of them when the class has no real source)."""
    groups = []
    for ci, code in enumerate(CODES):
        if code not in codes:
            continue
        real = catalogue.real(code)
        lo, hi = synth.PLAYING_RANGE[code]
        real = [dataclasses.replace(r, low=max(r.low, lo), high=min(r.high, hi)) for r in real]
        real = [r for r in real if r.low <= r.high]
        n_real = round(per_class * real_share) if real else 0
        gm_fonts = catalogue.gm
        shares = [(r.source, (r,), n_real // len(real) + (i < n_real % len(real))) for i, r in enumerate(real)]
        n_gm = per_class - n_real
        for i, font in enumerate(gm_fonts):
            programs = tuple(synth.Instrument(font, 0, p, plo, phi, (1, 127), code,
                                              code == "gel" and p not in synth.DISTORTED_PROGRAMS)
                             for p, plo, phi in synth.PROGRAMS[code])
            shares.append((Path(font).name, programs, n_gm // len(gm_fonts) + (i < n_gm % len(gm_fonts))))
        for si, (source, instruments, count) in enumerate(shares):
            if count:
                groups.append(Group(code, source, instruments, count, (seed, 7, ci, si)))
    return groups


def excerpt_notes(lo: int, hi: int, rng: np.random.Generator) -> tuple[list[Note], str, float]:
    """A 3-second excerpt's notes: one held note, or two to four separate ones."""
    start = float(rng.uniform(0.0, 0.4))
    if rng.random() < SINGLE_SHARE:
        end = min(start + float(rng.uniform(0.6, EXCERPT_S)), EXCERPT_S - 0.05)
        return [Note(start, end, int(rng.integers(lo, hi + 1)), int(rng.integers(25, 128)))], "held note", EXCERPT_S
    notes, t = [], start
    for _ in range(int(rng.integers(2, 5))):
        d = float(rng.uniform(0.25, 1.0))
        if t + d > EXCERPT_S - 0.05:
            break
        notes.append(Note(t, t + d, int(rng.integers(lo, hi + 1)), int(rng.integers(25, 128))))
        t += d + float(rng.uniform(0.05, 0.5))
    return notes, f"{len(notes)} separate notes", EXCERPT_S


def short_note(lo: int, hi: int, rng: np.random.Generator) -> tuple[list[Note], str, float]:
    """A short file's one note, from its onset, held 0.1 s up to the whole file (it may sound past the end)."""
    length = float(rng.uniform(*SHORT_LENGTH))
    start = float(rng.uniform(0.0, SHORT_ONSET))
    end = start + float(rng.uniform(0.1, length))
    note = Note(start, end, int(rng.integers(lo, hi + 1)), int(rng.integers(25, 128)))
    return [note], f"short file of {length:.2f} s, one note", length


def note_part(inst: synth.Instrument, rng: np.random.Generator,
              short_share: float = 0.0) -> tuple[Part, str, float]:
    """One held note, or two to four separate notes, within the instrument's range, and the length of
    the file (:data:`EXCERPT_S`; with ``short_share``, that share of files is short: one note)."""
    code, lo, hi = inst.code, inst.low, inst.high
    if short_share and rng.random() < short_share:
        notes, what, length = short_note(lo, hi, rng)
    else:
        notes, what, length = excerpt_notes(lo, hi, rng)
    part = Part(notes=notes)
    if code in synth.VIBRATO and rng.random() < 0.7:
        music.vibrato_controls(part, rng, synth.VIBRATO[code])
        what += ", vibrato"
    if code == "pia" and rng.random() < 0.3:
        part.controls += [(0.0, 64, 127), (notes[-1].end, 64, 0)]
        part.controls.sort()
    return part, what, length


def render_note(renderer: synth.Renderer, inst: synth.Instrument, rng: np.random.Generator,
                chain: bool = True, guitar_rig: str = "tanh", clipping: float = 0.0,
                short_share: float = 0.0) -> tuple[np.ndarray, dict]:
    """One excerpt -> float32 (n, 2) and its record; an electric guitar amplified as ``guitar_rig`` says
    (:data:`corpus.synth.GUITAR_RIGS`), ``clipping`` of the excerpts clipped in the recording chain,
    ``short_share`` of them short files (:func:`note_part`)."""
    sr = renderer.sample_rate
    n = int(round(EXCERPT_S * sr))
    for _ in range(DRAWS):
        part, what, length = note_part(inst, rng, short_share)
        stem = renderer.render(part, inst, n)
        if np.abs(stem).max() >= SILENT_PEAK:
            break
    else:
        raise RuntimeError(f"{inst.source} (program {inst.program}) was silent for {DRAWS} draws of notes "
                           f"between MIDI {inst.low} and {inst.high}")
    record = {**inst.describe(), "plays": what, "pitches": [x.pitch for x in part.notes],
              "velocities": [x.velocity for x in part.notes]}
    if inst.code == "gel":
        stem, done = synth.electric_guitar(stem, inst, rng, sr, guitar_rig)
        record["plays"] += done
    x = synth.record_in_a_room(stem / (synth.rms(stem) + 1e-9) * 0.1, rng, sr, record, chain, clipping)[:n]
    if length < EXCERPT_S:  # a short file: the recording stops at its end
        x = x[: int(round(length * sr))].copy()
        fade = int(round(SHORT_FADE * sr))
        x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=x.dtype)[:, None]
        record["length_s"] = round(length, 3)
    return x, record


_STATE: dict = {}


def _init_worker(soundfonts: list[str], chain: bool, guitar_rig: str, clipping: float = 0.0,
                 short_share: float = 0.0) -> None:
    _STATE["renderer"] = synth.Renderer(soundfonts)
    _STATE["chain"] = chain
    _STATE["guitar_rig"] = guitar_rig
    _STATE["clipping"] = clipping
    _STATE["short_share"] = short_share


def render_group(group: Group, out: Path) -> list[dict]:
    """Render (or read back) one group's excerpts; returns their records."""
    record_path = out / "records" / f"{group.key}.json"
    files = [f"train/{group.code}/note-{slug(group.source)}-{k:04d}__[{group.code}][nod]__1.wav"
             for k in range(group.count)]
    if record_path.exists() and all((out / f).exists() for f in files):
        return json.loads(record_path.read_text())
    renderer: synth.Renderer = _STATE["renderer"]
    renderer.renew()
    rng = np.random.default_rng(list(group.seed))
    records = []
    for k, rel in enumerate(files):
        inst = group.instruments[int(rng.integers(len(group.instruments)))]
        audio, part = render_note(renderer, inst, rng, chain=_STATE["chain"], guitar_rig=_STATE["guitar_rig"],
                                  clipping=_STATE["clipping"], short_share=_STATE["short_share"])
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        synth.write_wav(path, audio)
        records.append({"key": f"{group.key}-{k:04d}", "split": "train", "labels": [group.code], "files": [rel],
                        "solo": True, "parts": [{**part, "role": "predominant"}], "seed": [*group.seed, k]})
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(records))
    return records


def _run(args: tuple[Group, Path]) -> list[dict]:
    return render_group(*args)


def render_notes(out: Path, *, per_class: int = PER_CLASS, seed: int = 0, workers: int = 1,
                 extra_folders: list[Path] | None = None, samples: Path | None = None,
                 real_share: float = synth.REAL_SHARE, gm: list[Path] | None = None, chain: bool = True,
                 codes: tuple[str, ...] = CODES, without_libraries: tuple[str, ...] = (),
                 guitar_rig: str = "tanh", clipping: float = 0.0, short_share: float = 0.0,
                 progress: bool = True) -> dict:
    """Render (or finish rendering) the notes of ``codes`` into ``out``; returns per-class counts and
    the time."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    unknown = sorted(set(codes) - set(CODES))
    if unknown:
        raise ValueError(f"unknown instrument codes {unknown}; expected some of {', '.join(CODES)}")
    if guitar_rig not in synth.GUITAR_RIGS:
        raise ValueError(f"guitar_rig must be one of {', '.join(synth.GUITAR_RIGS)}, got {guitar_rig!r}")
    if not 0 <= clipping <= 1:
        raise ValueError(f"clipping must be within 0..1, got {clipping}")
    if not 0 <= short_share <= 1:
        raise ValueError(f"short_share must be within 0..1, got {short_share}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    catalogue = synth.Catalogue(synth.gm_soundfonts(gm), synth.extra_soundfonts(extra_folders or []), real_share,
                                synth.sample_libraries(samples, tuple(without_libraries), notes=True))
    groups = plan(catalogue, seed, per_class, real_share, tuple(codes))
    synth.check_folder(out, {"seed": seed, "per_class": per_class, "soundfonts": catalogue.soundfont_names,
                             "libraries": catalogue.library_names, "guitar_rig": guitar_rig,
                             "clipping": clipping, "short_share": short_share},
                       {g.key: list(g.seed) for g in groups})
    args = [(g, out) for g in groups]
    records: list[dict] = []
    bar = tqdm(total=sum(g.count for g in groups), desc="rendering notes", unit="excerpt", disable=not progress)
    if workers <= 1:
        _init_worker(catalogue.soundfonts, chain, guitar_rig, clipping, short_share)
        results = map(_run, args)
    else:
        pool = get_context("spawn").Pool(workers, _init_worker, (catalogue.soundfonts, chain, guitar_rig, clipping,
                                                                  short_share))
        results = pool.imap_unordered(_run, args, chunksize=1)
    try:
        for group_records in results:
            records.extend(group_records)
            bar.update(len(group_records))
    finally:
        bar.close()
        if workers > 1:
            pool.close()
            pool.join()
    records.sort(key=lambda r: r["key"])
    by_source: dict[str, Counter] = {code: Counter() for code in CODES if code in codes}
    for r in records:
        by_source[r["labels"][0]][r["parts"][0]["source"]] += 1
    counts = {code: sum(c.values()) for code, c in by_source.items()}
    by_source = {code: dict(c) for code, c in by_source.items()}
    summary = {"counts": counts, "by_source": by_source, "seconds": round(time.perf_counter() - t0, 1)}
    manifest = {"kind": "notes", "seed": seed, "per_class": per_class, "sample_rate": synth.SAMPLE_RATE,
                "soundfonts": catalogue.soundfont_names,
                "gm_soundfonts": [Path(p).name for p in catalogue.gm], "real_share": real_share,
                "libraries": catalogue.library_names,
                "sources": {code: catalogue.sources(code) for code in CODES}, "recording_chain": chain,
                "guitar_rig": guitar_rig, "clipping": clipping, "short_share": short_share, "summary": summary,
                "records": records}
    (out / "corpus.json").write_text(json.dumps(manifest, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m corpus.notes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="notes folder (created; finished groups are kept)")
    ap.add_argument("--per-class", type=int, default=PER_CLASS, help="excerpts of each class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--extra-soundfonts", type=Path, action="append", default=[], metavar="DIR",
                    help="folder of real-sample soundfonts (see the README); repeatable")
    ap.add_argument("--samples", type=Path,
                    default=synth.DEFAULT_SAMPLES if synth.DEFAULT_SAMPLES.is_dir() else None, metavar="DIR",
                    help=f"recorded-note libraries (default {synth.DEFAULT_SAMPLES} when it exists)")
    ap.add_argument("--without-library", action="append", default=[], metavar="PATTERN",
                    help="do not play the prepared libraries whose name matches (e.g. 'freepats-*'); repeatable")
    ap.add_argument("--real-share", type=float, default=synth.REAL_SHARE,
                    help="share of a class's excerpts played by real recordings, when it has any")
    ap.add_argument("--gm-soundfont", type=Path, action="append", default=[], metavar="FILE",
                    help="General MIDI soundfont instead of the default ones; repeatable")
    ap.add_argument("--classes", default=",".join(CODES), help="comma-separated instrument codes (default: all)")
    ap.add_argument("--no-recording-chain", dest="chain", action="store_false",
                    help="the synthetic reverb and noise floor only")
    ap.add_argument("--guitar-rig", choices=synth.GUITAR_RIGS, default="tanh",
                    help="how clean electric guitars are amplified (as corpus.synth's --guitar-rig); default tanh")
    ap.add_argument("--clipping", type=float, default=0.0, metavar="SHARE",
                    help="share of excerpts clipped in their recording chain (as corpus.synth's --clipping)")
    ap.add_argument("--short-share", type=float, default=0.0, metavar="SHARE",
                    help="share of excerpts that are short files of one note, 0.3-1.2 s (default 0)")
    args = ap.parse_args(argv)
    if not 0 <= args.real_share <= 1:
        ap.error("--real-share must be within 0..1")
    try:
        summary = render_notes(args.out, per_class=args.per_class, seed=args.seed, workers=args.workers,
                               extra_folders=args.extra_soundfonts, samples=args.samples,
                               real_share=args.real_share, gm=args.gm_soundfont, chain=args.chain,
                               without_libraries=tuple(args.without_library), guitar_rig=args.guitar_rig,
                               clipping=args.clipping, short_share=args.short_share, codes=tuple(c for c in args.classes.split(",") if c))
    except (synth.SynthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for code in summary["counts"]:
        sources = summary["by_source"][code]
        print(f"{code}: {summary['counts'][code]:4d} excerpts  "
              + ", ".join(f"{s} {n}" for s, n in sorted(sources.items())))
    print(f"rendered in {summary['seconds']:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
