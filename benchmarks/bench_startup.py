"""Start-up time of a fresh process: what a user waits for before instrec does any work.

    python benchmarks/bench_startup.py [--repeats 7]

Each case runs ``--repeats`` times in a fresh interpreter, in turns (so that a slow spell of a shared
machine falls on every case alike), and prints the median wall time beside a baseline that imports librosa
and its compiled utilities first, as instrec itself did at import before the features loaded them where
first needed (``instrec/_librosa.py``):

- ``import instrec.cli`` (``instrec --help`` and a usage error cost this and argparse),
- ``import instrec.batch`` (a batch run's driver before Ray starts),
- ``instrec predict`` on one 5-second clip (the models loaded, the clip analysed, the answer printed), with
  librosa loaded where the features need it in both cases.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

EAGER = "import librosa, librosa.util.utils; "


def wall(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        t = np.arange(5 * 22050) / 22050
        sf.write(clip, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
        predict = f"from instrec.cli import main; main(['predict', {str(clip)!r}, '--json'])"
        cases = {"import instrec.cli": "import instrec.cli", "import instrec.batch": "import instrec.batch",
                 "instrec predict (5 s clip)": predict}
        times: dict[tuple[str, bool], list[float]] = {}
        wall("import instrec.cli")  # warm the file cache and numba's on-disk cache once
        for _ in range(args.repeats):
            for name, code in cases.items():
                for eager in (True, False):
                    times.setdefault((name, eager), []).append(wall((EAGER if eager else "") + code))
    print(f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"median of {args.repeats} fresh processes (s)")
    print(f"{'':32} {'librosa at import':>18} {'instrec':>9}")
    for name in cases:
        base, ours = statistics.median(times[(name, True)]), statistics.median(times[(name, False)])
        print(f"{name:32} {base:18.2f} {ours:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
