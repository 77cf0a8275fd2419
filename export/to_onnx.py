"""Export a training run's three CNNs to ONNX: ``python export/to_onnx.py --run runs/default``.

A thin entry point over :func:`training.export.main` (see there for what is checked)."""

import sys

from training.export import main

if __name__ == "__main__":
    sys.exit(main())
