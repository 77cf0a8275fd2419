"""Start-up time of a fresh process: what a user waits for before instrec does any work.

    python benchmarks/bench_startup.py [--repeats 7]

Each case runs ``--repeats`` times in a fresh interpreter, in turns (so that a slow spell of a shared
machine falls on every case alike), and prints the median wall time three ways:

- "librosa at import": librosa and its compiled utilities imported first, as instrec itself did at import
  before the features loaded them where first needed (``instrec/_librosa.py``), and the features' constants
  computed by librosa (inside :func:`instrec.filterbanks.calls_made`), as before the shipped table;
- "librosa where needed": those constants computed by librosa, loaded at the first feature, as before the
  shipped table;
- "instrec": as shipped, the constants read from ``instrec/filterbanks.npz``.

The cases: ``import instrec.cli`` (``instrec --help`` and a usage error cost this and argparse),
``import instrec.batch`` (a batch run's driver before Ray starts), and ``instrec predict`` on one 5-second
clip (the models loaded, the clip analysed, the answer printed; its peak memory is printed too).
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

WAYS = {
    "librosa at import": "import librosa, librosa.util.utils\nfrom instrec import filterbanks\n"
                         "with filterbanks.calls_made():\n    {code}",
    "librosa where needed": "from instrec import filterbanks\nwith filterbanks.calls_made():\n    {code}",
    "instrec": "{code}",
}


def run(code: str) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (MB) of a fresh interpreter running ``code``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"failed: {code}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


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
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
        run(WAYS["librosa at import"].format(code="import instrec.cli"))  # warm the file and numba caches
        for _ in range(args.repeats):
            for name, code in cases.items():
                for way, template in WAYS.items():
                    runs.setdefault((name, way), []).append(run(template.format(code=code)))
    print(f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"median of {args.repeats} fresh processes: wall time (s), peak memory (MB)")
    print(f"{'':30}" + "".join(f"{way:>24}" for way in WAYS))
    for name in cases:
        cells = []
        for way in WAYS:
            seconds, mb = (statistics.median(x) for x in zip(*runs[(name, way)]))
            cells.append(f"{seconds:13.2f} s {mb:5.0f} MB")
        print(f"{name:30}" + "".join(f"{c:>24}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
