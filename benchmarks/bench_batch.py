"""Collection tagging throughput: the single-process CLI beside `instrec batch` on a local Ray.

    python benchmarks/bench_batch.py [--files 96] [--seconds 20] [--actors 1 2]

Builds a folder of ``--files`` clips of ``--seconds`` (44.1 kHz stereo FLAC, cut from the real
recordings in tests/data/real, looped), then tags it with ``instrec predict FOLDER --json`` and
with ``instrec batch FOLDER --overwrite --actors N`` for each N, each in a fresh process. Prints
wall time (process start to exit, Ray's start-up included), files per second, the real-time
factor (audio seconds per second of wall time) and the peak resident memory of the whole process
tree (sampled every 0.2 s: the driver, Ray's raylet and workers), with the machine.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

from instrec import audio, runtime

ROOT = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, files: int, seconds: float, sr: int = 44100) -> None:
    clips = sorted((ROOT / "tests" / "data" / "real").glob("*.flac"))
    for k in range(files):
        y, clip_sr = sf.read(str(clips[k % len(clips)]), dtype="float32", always_2d=True)
        y = audio.resample(audio.to_mono(y), clip_sr, sr)
        y = np.resize(y, int(seconds * sr))  # looped to the length
        sf.write(str(folder / f"clip{k:03d}.flac"), np.stack([y, 0.8 * y], axis=1), sr)


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS of the process tree in MB, last line of stdout) of a command."""
    start = time.perf_counter()
    out_file, err_file = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # pipes would fill and block
    proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, text=True, cwd=ROOT)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    out_file.seek(0)
    err_file.seek(0)
    out, err = out_file.read(), err_file.read()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, peak / 2**20, (out.strip().splitlines() or [""])[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=96)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    print(f"{platform.machine()}, {runtime.cores()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"{args.files} files of {args.seconds:.0f} s")
    audio_s = args.files * args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "collection"
        folder.mkdir()
        make_folder(folder, args.files, args.seconds)
        runs = [("instrec predict (one process)", [sys.executable, "-m", "instrec", "predict", str(folder), "--json"])]
        # Ray's own start-up (~10 s here) is in the wall time; the batch command reports its rate without it
        for n in args.actors:
            runs.append((f"instrec batch, Ray, {n} actor{'s' if n > 1 else ''}",
                         [sys.executable, "-m", "instrec", "batch", str(folder), "--out", str(Path(tmp) / f"out{n}"),
                          "--overwrite", "--actors", str(n), "--cpus-per-actor", str(max(1, runtime.cores() // n))]))
        print(f"{'':34} {'wall s':>8} {'files/s':>8} {'x real time':>12} {'peak RSS MB':>12}   "
              "files/s once Ray is up")
        for name, cmd in runs:
            wall, peak, last = timed(cmd)
            steady = re.search(r"\(([0-9.]+) files/s\)", last)
            print(f"{name:34} {wall:8.1f} {args.files / wall:8.2f} {audio_s / wall:12.0f} {peak:12.0f}   "
                  + (steady.group(1) if steady else ""))


if __name__ == "__main__":
    main()
