"""Rendering speed of the synthetic corpus: excerpts and audio seconds per second.

    python benchmarks/bench_synth.py [--scale 0.02] [--workers 2] [--extra-soundfonts DIR]

Renders a fraction of the default corpus into a temporary folder (soundfont loading included)
and extrapolates the time of the full default corpus (6 705 training excerpts, 900 evaluation
excerpts).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import soundfile as sf

from corpus import synth


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--extra-soundfonts", type=Path, action="append", default=[])
    ap.add_argument("--samples", type=Path, help="recorded-note libraries (python -m corpus.samples fetch)")
    ap.add_argument("--no-recording-chain", dest="chain", action="store_false")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synth.render_corpus(Path(tmp), scale=args.scale, workers=args.workers, extra_folders=args.extra_soundfonts,
                            samples=args.samples, chain=args.chain, progress=False)
        seconds = time.perf_counter() - t0
        files = list(Path(tmp).rglob("*.wav"))
        audio_s = sum(sf.info(str(f)).duration for f in files)
    full_files = sum(synth.TRAIN_COUNTS.values()) + sum(synth.EVAL_COUNTS.values())
    print(f"{platform.machine()}, {os.cpu_count()} cores, {args.workers} workers, scale {args.scale}")
    print(f"{len(files)} excerpts ({audio_s:.0f} s of audio) in {seconds:.1f} s: "
          f"{len(files) / seconds:.1f} excerpts/s, {audio_s / seconds:.0f} s of audio per second")
    print(f"full default corpus ({full_files} excerpts): about {full_files / (len(files) / seconds) / 60:.0f} min")


if __name__ == "__main__":
    main()
