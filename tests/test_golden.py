"""Features and shipped-model outputs against golden arrays (written on purpose by tests/make_golden.py)."""

from pathlib import Path

import numpy as np
import pytest

from instrec import features
from instrec.recognizer import Recognizer

GOLDEN = Path(__file__).resolve().parent / "data" / "golden.npz"


@pytest.fixture(scope="module")
def golden():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", Path(__file__).with_name("make_golden.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return np.load(GOLDEN), module.signals()


def test_features_equal_golden(golden):
    # float32 FFTs and matrix products of another BLAS/FFT build may differ in the last bits: log-mel
    # values are O(10) and modgd O(5), so 1e-3 absolute is ~1e-4 relative; the chroma is in [0, 1]
    arrays, signals = golden
    for name, y in signals.items():
        for rep, w in features.extract(y).items():
            np.testing.assert_allclose(w, arrays[f"{name}/{rep}"], atol=1e-3, rtol=0, err_msg=f"{name}/{rep}")


def test_shipped_models_equal_golden(golden):
    arrays, signals = golden
    rec = Recognizer()
    shipped = [rec.manifest["models"][r]["sha256"] for r in rec.fusion.models]
    assert list(arrays["models_sha256"]) == shipped, "the shipped models changed: run python tests/make_golden.py"
    for name, y in signals.items():
        for rep, p in rec.window_probabilities([y])[0].items():
            # probabilities after softmax: onnxruntime's kernels differ by ~1e-6 between CPU builds and
            # CUDA by ~1e-4 (TF32 and fused kernels): 2e-3 absolute keeps the same decisions
            np.testing.assert_allclose(p, arrays[f"{name}/{rep}/probabilities"], atol=2e-3, err_msg=f"{name}/{rep}")
