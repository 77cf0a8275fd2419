"""Int8 models from the tiny fp32 ones: real static quantisation by onnxruntime, loadable, close to fp32,
with their precision, thresholds and parity figures in the manifest."""

import json

import numpy as np

from instrec.recognizer import Recognizer, sha256
from tests.conftest import REAL_AUDIO, tone
from training import quantize
from training.datasets import read_any


def test_quantize_tiny_models(tiny_models, tiny_corpus, tmp_path):
    out = tmp_path / "int8"
    assert quantize.main(["--models", str(tiny_models), "--corpus", str(tiny_corpus), "--out", str(out),
                          "--real-audio", str(REAL_AUDIO), "--calibration-files", "8", "--thresholds", "tune"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    fp32 = json.loads((tiny_models / "manifest.json").read_text())
    for rep, info in manifest["models"].items():
        assert info["precision"] == "int8" and info["sha256"] == sha256(out / info["file"])
        assert info["bytes"] < 0.6 * fp32["models"][rep]["bytes"]  # int8 weights, float first conv and head
        assert "node_conv2d" in info["float_nodes"] and any("linear" in n for n in info["float_nodes"])
        # as onnxruntime serves them: the trunk's convolutions run as integer ones, the float nodes in float
        # (left to itself, it fuses a float convolution between quantised tensors into an integer one)
        integer = quantize.integer_nodes(out / info["file"])
        assert "node_conv2d_1" in integer and not integer & set(info["float_nodes"]), (rep, integer)
    report = json.loads((out / "report.json").read_text())
    assert set(report) >= {"validation", "synthetic_test", "real", "meets_bar", "with_fp32_thresholds"}
    assert manifest["parity"]["int8_vs_fp32"]["meets_bar"] == report["meets_bar"]
    assert 0 <= report["real"]["decisions_changed"] <= 1 and report["real"]["n_files"] == 31
    # the int8 models answer like the fp32 ones, within quantisation error
    y = np.concatenate([tone(262, 2.0), tone(440, 2.0)])
    p32 = Recognizer(tiny_models).predict(y, 22050).window_probabilities
    p8 = Recognizer(out).predict(y, 22050).window_probabilities
    for rep in p32:
        assert np.abs(p32[rep] - p8[rep]).max() < 0.1, rep
        assert not np.array_equal(p32[rep], p8[rep])  # really other models


def test_quantize_keeping_the_fp32_thresholds(tiny_models, tiny_corpus, tmp_path, capsys):
    # calibrated on a corpus that has a training split only, scored on the validation and test splits named
    out = tmp_path / "int8"
    (tmp_path / "train-only").mkdir()
    (tmp_path / "train-only" / "train").symlink_to(tiny_corpus / "train")
    # without a validation split: a clear error at once, before any calibration, and nothing written
    assert quantize.main(["--models", str(tiny_models), "--corpus", str(tmp_path / "train-only"), "--out",
                          str(tmp_path / "refused"), "--calibration-files", "4"]) == 1
    assert "validation" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    assert quantize.main(["--models", str(tiny_models), "--corpus", str(tmp_path / "train-only"), "--out", str(out),
                          "--validation", str(tiny_corpus / "validation"), "--test", str(tiny_corpus / "test"),
                          "--calibration-files", "4", "--calibration", "percentile", "--thresholds", "keep"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    fp32 = json.loads((tiny_models / "manifest.json").read_text())
    assert manifest["fusion"] == fp32["fusion"]
    assert manifest["quantization"]["thresholds"] == "the fp32 models' own"
    assert manifest["quantization"]["calibration"].startswith("percentile over ")
    report = json.loads((out / "report.json").read_text())
    # with the same thresholds on both sides, the two comparisons are one and the same
    assert report["synthetic_test"] == report["with_fp32_thresholds"]["synthetic_test"]
    assert "real" not in report
    assert report["synthetic_test"]["n_files"] == len(read_any(tiny_corpus / "test"))


def test_float_nodes_leave_no_float_node_between_quantised_tensors():
    # the shipped fp32 mel CNN: input normalisation, the first convolution, and the head from its pooling on
    import onnx

    from instrec.recognizer import PRECISIONS

    path = PRECISIONS["fp32"] / "mel.onnx"
    nodes = onnx.load(str(path)).graph.node
    op = {n.name: n.op_type for n in nodes}
    assert [op[n] for n in quantize.float_nodes(path)] == ["Sub", "Div", "Mul", "Conv", "ReduceMax", "Gemm",
                                                           "LeakyRelu", "Gemm", "Softmax"]
    # with the last two convolutions, everything from the second-last convolution on
    kept = quantize.float_nodes(path, last_convs=2)
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    assert kept[:4] == quantize.float_nodes(path)[:4] and kept[4] == convs[-2]
    assert kept[4:] == [n.name for n in nodes][[n.name for n in nodes].index(convs[-2]):]
    assert quantize.float_nodes(path, last_convs=99) == [n.name for n in nodes]  # every node: nothing quantised
