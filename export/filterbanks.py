"""Write the table of librosa's filter banks that instrec ships (``instrec/filterbanks.npz``).

    python export/filterbanks.py [--out instrec/filterbanks.npz]

The table holds every constant that the three features, the mel bands' centres and musicnn's spectrogram
ask librosa for with the shipped models' parameters (:func:`instrec.filterbanks.shipped_calls`), so that
analysing audio with them never loads librosa. Run it again after changing the feature parameters or a
feature's use of librosa; the test suite fails until the table matches what librosa computes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from instrec import filterbanks

log = logging.getLogger("export.filterbanks")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=filterbanks.TABLE)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = filterbanks.entries(filterbanks.shipped_calls())
    np.savez_compressed(args.out, **entries)
    log.info("%d entries, %.0f kB: %s", len(entries), args.out.stat().st_size / 1e3, args.out)
    for key in sorted(entries):
        log.info("  %s %s %s", key, entries[key].dtype, entries[key].shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
