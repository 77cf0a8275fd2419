"""The export step on tiny trained models: files, manifest, checks, and failure without damage."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

from instrec.recognizer import sha256
from instrec.labels import CODES
from tests.conftest import ROOT
from training.train import load_checkpoint


def test_files_and_manifest(tiny_models, tiny_run):
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    assert manifest["classes"] == list(CODES)
    assert manifest["fusion"]["rule"] in ("and", "mean") and manifest["fusion"]["aggregation"] in ("S1", "S2")
    assert manifest["feature_params"]["sample_rate"] == 22050
    assert manifest["validation"]["metrics"]["mel+modgd+cqt"]["f1_micro"] >= 0
    assert "synthetic_corpus" in manifest["training_data"]
    assert set(manifest["versions"]) >= {"instrec", "torch", "onnx", "onnxruntime", "opset"}
    for rep in ("mel", "modgd", "cqt"):
        info = manifest["models"][rep]
        path = tiny_models / info["file"]
        assert info["sha256"] == sha256(path)
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert model.opset_import[0].version >= 17
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(info["input_shape"][1:])


def test_onnx_equals_pytorch_for_any_batch(tiny_models, tiny_run):
    rng = np.random.default_rng(5)
    for rep, bins in (("mel", 128), ("modgd", 128), ("cqt", 36)):
        model, _ = load_checkpoint(tiny_run / rep / "best.pt")
        session = ort.InferenceSession(str(tiny_models / f"{rep}.onnx"), providers=["CPUExecutionProvider"])
        for n in (1, 5, 37):
            x = rng.standard_normal((n, 1, bins, 100)).astype(np.float32)
            with torch.inference_mode():
                expected = model(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(session.run(None, {"windows": x})[0], expected, atol=1e-4)


def test_export_fails_cleanly_without_thresholds(tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "mel").symlink_to(tiny_run / "mel")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "export/to_onnx.py", "--run", str(run), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "thresholds.json not found" in proc.stderr
    assert not out.exists()


def test_model_card_from_files(tiny_models, tiny_run, tiny_corpus):
    from training.evaluate import run_evaluation
    from training.model_card import card

    run_evaluation(tiny_run, tiny_corpus / "test", progress=False)
    text = card(tiny_models, tiny_run)
    manifest = json.loads((tiny_models / "manifest.json").read_text())
    assert manifest["models"]["mel"]["sha256"][:16] in text
    assert "synthetic" in text and "0.648 / 0.561" in text
    assert "| mel+modgd+cqt |" in text
