"""Isolated notes from the Synthesis ToolKit's physical and FM instrument models, as a further kind of source.

    python -m experiments.stk_notes --out data/stk-notes [--per-class 150] [--seed 7] [--workers 2]
    python -m experiments.stk_notes --out data/stk-notes-nocla --without-model Clarinet --without-model BlowHole

Every source the corpus plays so far is a recording of a real instrument or a General MIDI soundfont.
STK (Perry Cook and Gary Scavone's Synthesis ToolKit; Debian's ``stk``, whose ``stk-demo`` renders a SKINI
score to a WAV file) models instruments instead: a clarinet, a tone-hole clarinet, a saxophone, a flute and
a brass instrument as reeds and jets driving bores, bowed strings, two plucked strings, a Hammond-like FM
organ and a formant singing voice (:data:`MODELS`; no piano or electric guitar). Each excerpt is written as
:mod:`corpus.notes` writes one: one held note or two to four separate ones (:func:`corpus.notes.excerpt_notes`)
within the class's range, the model's timbre controls drawn at random (:data:`CONTROLS`: reed stiffness or
bow pressure, noise or bow position, vibrato depth and rate), then the same room and recording chain
(:func:`corpus.synth.record_in_a_room`, 30 % of the excerpts clipped), in the IRMAS training layout
(``train/<code>/note-stk-<model>-<k>__[<code>][nod]__1.wav``), so that ``training.head --train`` and
``experiments.pretrained_head --train`` take the folder beside the corpus, and ``stk.json`` beside it
(each file's model, notes and controls). Each excerpt has its own seeded generator, so the same seed
plays the same notes with the same controls through the same room whatever the number of workers; the
bytes still differ from run to run, because STK seeds the noise of its breath and bow models from the
clock (with it, whether the saxophone's reed jumps to its next register on a held note).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

from corpus import synth
from corpus.music import Note
from corpus.notes import DRAWS, EXCERPT_S, SILENT_PEAK, excerpt_notes

#: class -> the STK models that play it, each with its lowest and highest MIDI key
MODELS = {"cel": [("Bowed", 36, 72)], "cla": [("Clarinet", 50, 91), ("BlowHole", 50, 91)],
          "flu": [("Flute", 60, 96)], "gac": [("Plucked", 40, 84), ("StifKarp", 40, 84)],
          "org": [("BeeThree", 36, 84)], "sax": [("Saxofony", 49, 81)], "tru": [("Brass", 55, 82)],
          "vio": [("Bowed", 55, 96)], "voi": [("VoicForm", 48, 77)]}
#: the controls drawn for every excerpt, (controller, lowest, highest value): 2 and 4 are each model's two
#: timbre controls (reed stiffness and noise, bow pressure and position, vowel and voicing, ...), 1 the
#: vibrato's depth, 11 its rate
CONTROLS = ((2, 30, 100), (4, 10, 90), (1, 0, 40), (11, 40, 80))
PER_CLASS = 150
SEED = 7
#: the share of excerpts clipped in the recording chain, as the shipped models' notes corpus (``--clipping 0.3``)
CLIPPING = 0.3


def skini(notes: list[Note], controls: list[tuple[int, int]], length: float) -> str:
    """A SKINI score: the controls at time 0, then each note on and off (SKINI times are deltas from the
    previous line), then a silent note at ``length`` so that the rendering lasts that long."""
    lines = [f"ControlChange 0.0 1 {cc} {value}" for cc, value in controls]
    t = 0.0
    for note in notes:
        lines.append(f"NoteOn {note.start - t:.4f} 1 {note.pitch} {note.velocity}")
        lines.append(f"NoteOff {note.end - note.start:.4f} 1 {note.pitch} 64")
        t = note.end
    lines.append(f"NoteOn {max(0.0, length - t):.4f} 1 60 0")
    return "\n".join(lines) + "\n"


def stk_demo() -> str:
    path = shutil.which("stk-demo")
    if path is None:
        raise FileNotFoundError("stk-demo not found: install Debian's stk (apt-get install stk)")
    return path


def render_model(model: str, score: str, sr: int = synth.SAMPLE_RATE) -> np.ndarray:
    """``stk-demo MODEL`` playing the SKINI ``score`` -> float32 (n, 2) at ``sr``."""
    with tempfile.TemporaryDirectory() as tmp:
        ski, wav = Path(tmp) / "score.ski", Path(tmp) / "out.wav"
        ski.write_text(score)
        done = subprocess.run([stk_demo(), model, "-s", str(sr), "-ow", str(wav), "-if", str(ski)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not wav.exists():
            raise RuntimeError(f"stk-demo {model} failed: {done.stderr.strip()[-300:]}")
        y, _ = sf.read(wav, dtype="float32", always_2d=True)
    return np.repeat(y, 2, axis=1) if y.shape[1] == 1 else y[:, :2]


def playing(code: str, without: tuple[str, ...] = ()) -> list[tuple[str, int, int]]:
    """The models of :data:`MODELS` that play class ``code``, but those named in ``without``."""
    return [m for m in MODELS[code] if m[0] not in without]


def render_excerpt(code: str, k: int, seed: int = SEED, without: tuple[str, ...] = ()) -> tuple[np.ndarray, dict]:
    """The ``k``-th excerpt of class ``code``: float32 (n, 2) at the corpus's rate, and its record. The
    class's models (but those in ``without``) take turns; the notes, controls and room depend on the seed,
    the class and ``k`` alone, so leaving a model out changes no other model's excerpts."""
    rng = np.random.default_rng([seed, list(MODELS).index(code), k])
    models = playing(code, without)
    model, lo, hi = models[k % len(models)]
    sr, n = synth.SAMPLE_RATE, int(round(EXCERPT_S * synth.SAMPLE_RATE))
    for _ in range(DRAWS):
        notes, what, _ = excerpt_notes(lo, hi, rng)
        controls = [(cc, int(rng.integers(a, b + 1))) for cc, a, b in CONTROLS]
        y = render_model(model, skini(notes, controls, EXCERPT_S + 0.2), sr)
        y = np.pad(y, ((0, max(0, n - len(y))), (0, 0)))[:n]
        if np.abs(y).max() >= SILENT_PEAK:
            break
    else:
        raise RuntimeError(f"STK's {model} was silent for {DRAWS} draws of notes between MIDI {lo} and {hi}")
    record = {"source": f"stk-{model.lower()}", "code": code, "plays": what, "controls": dict(controls),
              "pitches": [x.pitch for x in notes], "velocities": [x.velocity for x in notes]}
    x = synth.record_in_a_room(y / (synth.rms(y) + 1e-9) * 0.1, rng, sr, record, True, CLIPPING)[:n]
    return x, record


def _write(job: tuple[str, int, int, tuple[str, ...], Path]) -> dict:
    code, k, seed, without, out = job
    x, record = render_excerpt(code, k, seed, without)
    dest = out / "train" / code / f"note-{record['source']}-{k:04d}__[{code}][nod]__1.wav"
    dest.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dest), x, synth.SAMPLE_RATE, subtype="PCM_16")
    return {"file": dest.relative_to(out).as_posix(), **record}


def render_notes(out: Path, per_class: int = PER_CLASS, seed: int = SEED, workers: int = 1,
                 classes: tuple[str, ...] = tuple(MODELS), without: tuple[str, ...] = ()) -> list[dict]:
    """``per_class`` excerpts of every class of ``classes`` written under ``out/train``, their records
    (``file`` relative to ``out``) in ``out/stk.json``; returns the records. The models named in ``without``
    (:data:`MODELS`' names) play nothing; a class none of whose models is left gets no excerpts."""
    unknown = set(classes) - set(MODELS)
    if unknown:
        raise ValueError(f"STK has no model for {', '.join(sorted(unknown))}; choose from {', '.join(MODELS)}")
    names = {name for models in MODELS.values() for name, _, _ in models}
    if set(without) - names:
        raise ValueError(f"no STK model is called {', '.join(sorted(set(without) - names))}; "
                         f"the models are {', '.join(sorted(names))}")
    stk_demo()
    out = Path(out)
    jobs = [(code, k, seed, tuple(without), out) for code in classes if playing(code, without)
            for k in range(per_class)]
    if workers <= 1:
        records = [_write(job) for job in jobs]
    else:
        with Pool(workers) as pool:
            records = pool.map(_write, jobs, chunksize=8)
    (out / "stk.json").write_text(json.dumps({"seed": seed, "without": list(without), "records": records}, indent=1))
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.stk_notes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-class", type=int, default=PER_CLASS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--classes", default=",".join(MODELS), help="comma-separated class codes")
    ap.add_argument("--without-model", action="append", default=[], metavar="MODEL",
                    help="an STK model that plays nothing (such as Clarinet); a class left without a model is "
                         "left out; repeatable")
    args = ap.parse_args(argv)
    classes, without = tuple(c for c in args.classes.split(",") if c), tuple(args.without_model)
    try:
        written = render_notes(args.out, args.per_class, args.seed, args.workers, classes, without)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} excerpts -> {args.out / 'train'}")
    bare = [c for c in classes if not playing(c, without)]
    if bare:
        print(f"left out, none of their models left: {', '.join(bare)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
