"""Write tests/data/golden.npz: features and shipped-model outputs for fixed signals.

    python tests/make_golden.py

Run it on purpose, when the features (features.VERSION) or the shipped models change; test_golden.py
then checks every later computation against these arrays within stated tolerances.
"""

from pathlib import Path

import numpy as np

from instrec import features
from instrec.params import DEFAULT
from instrec.recognizer import Recognizer

OUT = Path(__file__).resolve().parent / "data" / "golden.npz"


def signals() -> dict[str, np.ndarray]:
    """A C major triad of harmonic tones (2.5 s) and seeded white noise (1.2 s), at the analysis rate."""
    sr = DEFAULT.sample_rate
    t = np.arange(int(2.5 * sr)) / sr
    chord = sum(0.2 / h * np.sin(2 * np.pi * h * f * t) for f in (261.63, 329.63, 392.0) for h in (1, 2, 3))
    noise = np.random.default_rng(0).standard_normal(int(1.2 * sr)) * 0.3
    return {"chord": (chord / np.abs(chord).max()).astype(np.float32),
            "noise": (noise / np.abs(noise).max()).astype(np.float32)}


def main() -> None:
    rec = Recognizer()
    arrays = {}
    for name, y in signals().items():
        for rep, w in features.extract(y).items():
            arrays[f"{name}/{rep}"] = w
        for rep, p in rec.window_probabilities([y])[0].items():
            arrays[f"{name}/{rep}/probabilities"] = p
    arrays["models_sha256"] = np.array([rec.manifest["models"][r]["sha256"] for r in rec.fusion.models])
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
