"""Int8 models beside the fp32 ones: static QDQ quantisation, per channel, calibrated on corpus windows.

    python -m training.quantize --models instrec/models --corpus data/synth2 --out runs/int8 \\
        [--real-audio tests/data/real] [--calibration-files 160] [--calibration minmax|percentile|entropy]
        [--thresholds keep|tune] [--validation DIR] [--test DIR] [--reuse DIR]

1. Calibration: the windows of ``--calibration-files`` training excerpts of the corpus the models
   were trained on (drawn with a fixed seed), computed as the recognizer computes them.
2. onnxruntime's ``quantize_static``: QDQ format, weights int8 per output channel, activations uint8
   (what x86 int8 kernels take), calibrated over those windows (min-max by default; onnxruntime's
   percentile or entropy calibration on request). The input normalisation with the first convolution, and
   the head from its pooling on (the Gemm layers), stay in float: they are small, and the most sensitive
   to rounding. Each int8 model is then opened as onnxruntime serves it, and refused if onnxruntime runs
   one of those nodes as an integer operator (:func:`float_nodes` says why it could). A musicnn head in
   the fusion (``training.retune --head``) is copied in float as it is.
3. Thresholds: the fp32 models' own (default), so that only the rounding can change a decision; or,
   with ``--thresholds tune``, tuned again for the int8 models on the corpus's validation split (same
   rule and aggregation, as :mod:`training.thresholds` does for trained runs). Re-tuning on the 150
   validation files of the half-scale corpus changed six times as many decisions as the rounding did
   (docs/performance.md), hence the default.
4. Both precisions are scored on the corpus's test split and on the real recordings: micro F1, the
   share of decisions (file x instrument) that change, and the right instrument ranked first.

``--validation`` and ``--test`` name the splits when they are not the corpus's own (models trained on a
corpus rendered without them and tuned on another's: the training split calibrates, these score).

``--reuse DIR`` takes the int8 CNNs of an earlier quantisation of the same fp32 CNNs (``DIR``, such as
``instrec/models/int8``) instead of quantising again: after ``training.retune`` changed only the fusion or
the head, the int8 CNNs need not change, and min-max calibration over a corpus rendered again can land
elsewhere. A CNN is reused only when ``DIR``'s manifest describes the same fp32 model (its ``fp32_sha256``,
or for quantisations older than that record, every field but the quantisation's own); otherwise it is
refused before anything is written. Both precisions are scored as above.

``--out`` gets the int8 models and a manifest (each model's ``precision``, the quantisation settings,
the parity figures), loadable as ``Recognizer(out)`` or ``instrec --models out``, and ``report.json``.
The int8 models are worth shipping as the default only when micro F1 drops by at most 0.005 and at
most 1 % of decisions change, on the synthetic test set and on the real clips; the report says
whether they do.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from instrec import audio, features
from instrec.fusion import Fusion
from instrec.labels import CODES
from instrec.recognizer import HEAD, Recognizer, load_manifest, sha256
from training.datasets import read_any, read_training, training_root
from training.metrics import evaluate
from training.real_audio import read_labels
from training.thresholds import WindowScores, tune_fusion

#: Largest micro-F1 drop and share of changed decisions for int8 models to replace the fp32 ones.
MAX_F1_DROP, MAX_CHANGED = 0.005, 0.01


def calibration_windows(corpus: Path, manifest: dict, n_files: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Windows of ``n_files`` training excerpts per representation, as the recognizer computes them."""
    from instrec.params import FeatureParams

    params = FeatureParams.from_dict(manifest["feature_params"])
    excerpts = list(read_training(training_root(corpus)))
    files = random.Random(seed).sample(excerpts, min(n_files, len(excerpts)))
    out: dict[str, list[np.ndarray]] = {rep: [] for rep in manifest["fusion"]["models"] if rep != HEAD}
    for e in tqdm(files, desc="calibration windows", unit="file", file=sys.stderr):
        y = audio.load(e.path, params=params)
        for rep, w in features.extract(y, params=params, representations=tuple(out)).items():
            out[rep].append(w)
    return {rep: np.concatenate(w) for rep, w in out.items()}


class _Reader:
    """onnxruntime's calibration data reader over windows, in batches."""

    def __init__(self, name: str, windows: np.ndarray, batch: int = 32):
        self.items = iter([{name: windows[i : i + batch]} for i in range(0, len(windows), batch)])

    def get_next(self):
        return next(self.items, None)


#: the operators that begin a CNN's head: the pooling over time and frequency, and the dense layers
HEAD_OPS = ("ReduceMax", "ReduceMean", "GlobalMaxPool", "GlobalAveragePool", "Flatten", "Gemm", "MatMul")


def float_nodes(model_path: Path, last_convs: int = 0) -> list[str]:
    """Nodes kept in float: the input normalisation and the first convolution, and the head from its pooling
    on (:data:`HEAD_OPS`), or with ``last_convs`` everything from the ``last_convs``-th last convolution on.

    Keeping a float node's neighbours in float too matters: onnxruntime (1.2x and later) quantises the
    weights of a float Conv or Gemm that sits between a DequantizeLinear and a QuantizeLinear itself, when
    it optimises the session, so a first convolution named alone is run as an integer convolution all
    the same. On an AVX2 processor without AVX-512 that integer convolution of the one-channel input
    moved the mel CNN's probabilities by up to 0.8 (docs/performance.md).
    """
    import onnx

    nodes = list(onnx.load(str(model_path)).graph.node)
    conv_at = [k for k, n in enumerate(nodes) if n.op_type == "Conv"]
    head_at = next((k for k, n in enumerate(nodes) if k > conv_at[-1] and n.op_type in HEAD_OPS), len(nodes))
    if not last_convs:
        tail_at = head_at
    else:  # from the last_convs-th last convolution on; every convolution named leaves nothing to quantise
        tail_at = conv_at[-last_convs] if last_convs < len(conv_at) - 1 else conv_at[0] + 1
    return [n.name for n in nodes[: conv_at[0] + 1] + nodes[tail_at:]]


#: ``--calibration`` choices: onnxruntime's calibration methods.
CALIBRATIONS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def quantize_model(src: Path, dst: Path, windows: np.ndarray, last_convs: int = 0, calibration: str = "minmax") -> list[str]:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        keep = float_nodes(pre, last_convs)
        name = onnx.load(str(pre)).graph.input[0].name
        quantize_static(str(pre), str(dst), _Reader(name, windows), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, CALIBRATIONS[calibration]), nodes_to_exclude=keep)
    return keep


def integer_nodes(model_path: Path) -> set[str]:
    """Names of the nodes that onnxruntime runs as integer operators (QLinearConv, QGemm, ...) once it has
    fused a QDQ model's quantise and dequantise pairs into them, as every session it opens does."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # where QDQ fusion happens
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        nodes = onnx.load(options.optimized_model_filepath).graph.node
    return {n.name for n in nodes if n.op_type.startswith(("QLinear", "QGemm", "MatMulInteger", "ConvInteger"))}


def window_scores(rec: Recognizer, paths: list[Path], what: str) -> WindowScores:
    """Every file's window probabilities per model and window levels, through the recognizer (decoding
    included); ``.under(fusion)`` gives the (N, 11) scores a fusion decides on."""
    probs: dict[str, list[np.ndarray]] = {rep: [] for rep in rec.fusion.models}
    levels = []
    for p in tqdm(paths, desc=what, unit="file", file=sys.stderr):
        prediction = rec.predict(p)
        for rep in probs:
            probs[rep].append(prediction.window_probabilities[rep])
        levels.append(prediction.window_levels)
    return WindowScores(probs, levels, list(range(len(paths))))


def compare(fp32: dict, int8: dict, fusion32: Fusion, fusion8: Fusion, y: np.ndarray) -> dict:
    d32, d8 = fusion32.decide(fp32), fusion8.decide(int8)
    m32, m8 = evaluate(y, d32), evaluate(y, d8)
    top32 = fusion32.fused_score(fp32).argmax(1)
    top8 = fusion8.fused_score(int8).argmax(1)
    return {"n_files": len(y), "f1_micro_fp32": round(m32["f1_micro"], 4), "f1_micro_int8": round(m8["f1_micro"], 4),
            "f1_drop": round(m32["f1_micro"] - m8["f1_micro"], 4),
            "decisions_changed": round(float(np.mean(d32 != d8)), 4),
            "top_changed": round(float(np.mean(top32 != top8)), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, required=True, help="the fp32 models (folder with manifest.json)")
    ap.add_argument("--corpus", type=Path, required=True, help="the corpus they were trained on (train, "
                    "validation and test splits)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--real-audio", type=Path, help="folder of real recordings with labels.csv")
    ap.add_argument("--calibration-files", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float-last-convs", type=int, default=0,
                    help="also keep this many last convolutions in float, with everything after them")
    ap.add_argument("--calibration", choices=tuple(CALIBRATIONS), default="minmax",
                    help="how activation ranges are calibrated (default minmax)")
    ap.add_argument("--thresholds", choices=("keep", "tune"), default="keep",
                    help="keep the fp32 models' thresholds (default: fewest changed decisions), or tune new ones "
                         "on the validation split")
    ap.add_argument("--validation", type=Path, help="validation split (default <corpus>/validation)")
    ap.add_argument("--test", type=Path, help="test split (default <corpus>/test)")
    ap.add_argument("--reuse", type=Path, metavar="DIR",
                    help="take the int8 CNNs of an earlier quantisation of the same fp32 CNNs (e.g. instrec/models/int8) "
                         "instead of quantising again")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError) as exc:  # a missing split or model folder, an unreadable label file
        print(f"error: {exc}", file=sys.stderr)
        return 1


#: the fields of an int8 model's manifest entry that quantisation writes; the rest are the fp32 model's
QUANTISED_FIELDS = {"sha256", "bytes", "precision", "float_nodes", "fp32_sha256"}


def reusable(folder: Path, manifest: dict, models: list[str]) -> dict:
    """The manifest of the int8 models in ``folder``, checked to be quantisations of ``manifest``'s CNNs
    (``models``, the head aside); ValueError naming the first that is not."""
    old = load_manifest(folder)
    for rep in models:
        if rep == HEAD:
            continue
        mine, theirs = manifest["models"][rep], old["models"].get(rep)
        if theirs is None or theirs.get("precision") != "int8":
            raise ValueError(f"{folder}: no int8 {rep} model to reuse")
        same = (theirs["fp32_sha256"] == mine["sha256"] if "fp32_sha256" in theirs else
                {k: v for k, v in theirs.items() if k not in QUANTISED_FIELDS}
                == {k: v for k, v in mine.items() if k not in QUANTISED_FIELDS})
        if not same:
            raise ValueError(f"{folder}: its {rep} model was quantised from another fp32 model than "
                             f"{rep}'s here; quantise again without --reuse")
        if sha256(folder / theirs["file"]) != theirs["sha256"]:
            raise ValueError(f"{folder / theirs['file']}: its sha256 is not the one its manifest records")
        if integer := integer_nodes(folder / theirs["file"]) & set(theirs["float_nodes"]):
            raise ValueError(f"{folder / theirs['file']}: onnxruntime runs {', '.join(sorted(integer))} as integer "
                             "operators, though they are meant to stay in float (a quantisation older than "
                             "float_nodes' rule); quantise again without --reuse")
    return old


def run(args: argparse.Namespace) -> int:
    """Quantise, score and report as :func:`main`'s arguments ask."""
    t0 = time.perf_counter()
    # the splits scored at the end, read first: a missing one is refused before minutes of calibration
    validation = read_any(args.validation or args.corpus / "validation")
    test = read_any(args.test or args.corpus / "test")
    manifest = load_manifest(args.models)
    fusion32 = Fusion.from_dict(manifest["fusion"])
    reused = reusable(args.reuse, manifest, fusion32.models) if args.reuse else None
    windows = calibration_windows(args.corpus, manifest, args.calibration_files, args.seed) if reused is None else None
    args.out.mkdir(parents=True, exist_ok=True)
    out_manifest = json.loads(json.dumps(manifest))
    for rep in fusion32.models:
        info = manifest["models"][rep]
        dst = args.out / info["file"]
        if rep == HEAD:  # musicnn and its head stay in float: copied as they are
            shutil.copy(args.models / info["file"], dst)
            out_manifest["models"][rep]["precision"] = "fp32"
            print(f"{rep}: {info['bytes'] / 1e6:.1f} MB fp32, kept in float")
            continue
        if reused is not None:
            old = reused["models"][rep]
            shutil.copy(args.reuse / old["file"], dst)
            kept = old["float_nodes"]
        else:
            kept = quantize_model(args.models / info["file"], dst, windows[rep], args.float_last_convs, args.calibration)
            if integer := integer_nodes(dst) & set(kept):
                raise ValueError(f"{dst}: onnxruntime runs {', '.join(sorted(integer))} as integer operators, "
                                 "though they are meant to stay in float")
        out_manifest["models"][rep].update(sha256=sha256(dst), bytes=dst.stat().st_size, precision="int8",
                                           float_nodes=kept, fp32_sha256=info["sha256"])
        print(f"{rep}: {info['bytes'] / 1e6:.1f} MB fp32 -> {dst.stat().st_size / 1e6:.1f} MB int8 "
              f"(float: {', '.join(kept)}{'; reused from ' + str(args.reuse) if reused is not None else ''})")
    if reused is not None:
        out_manifest["quantization"] = {**reused["quantization"], "reused_from": str(args.reuse)}
    else:
        out_manifest["quantization"] = {"format": "QDQ", "weights": "int8 per channel", "activations": "uint8",
                                        "calibration": f"{args.calibration} over {len(windows[fusion32.models[0]])} "
                                                       f"windows of {args.calibration_files} training excerpts of "
                                                       f"{args.corpus.name}",
                                        "float_nodes": "input normalisation and first convolution, pooling and dense head"
                                        + (f", last {args.float_last_convs} convolutions" if args.float_last_convs else "")}
    out_manifest["quantization"]["thresholds"] = ("tuned for int8 on the validation split" if args.thresholds == "tune"
                                                  else "the fp32 models' own")
    (args.out / "manifest.json").write_text(json.dumps(out_manifest, indent=1))

    rec32, rec8 = Recognizer(args.models), Recognizer(args.out)
    # the int8 fusion differs from the fp32 one in its thresholds only: both aggregate as fusion32 does
    val32, val8 = (window_scores(rec, [e.path for e in validation], f"validation {name}").under(fusion32)
                   for name, rec in (("fp32", rec32), ("int8", rec8)))
    fusion8 = (tune_fusion(val8, validation.targets(), fusion32.models, fusion32.rule, fusion32.aggregation,
                           quiet_db=fusion32.quiet_db) if args.thresholds == "tune" else fusion32)
    out_manifest["fusion"] = fusion8.to_dict()
    report = {"validation": compare(val32, val8, fusion32, fusion8, validation.targets())}
    test32, test8 = (window_scores(rec, [e.path for e in test], f"test {name}").under(fusion32)
                     for name, rec in (("fp32", rec32), ("int8", rec8)))
    report["synthetic_test"] = compare(test32, test8, fusion32, fusion8, test.targets())
    if args.real_audio:
        labelled = read_labels(args.real_audio)
        y = np.stack([np.eye(len(CODES))[CODES.index(code)] for _, code in labelled])
        real32, real8 = (window_scores(rec, [p for p, _ in labelled], f"real {name}").under(fusion32)
                         for name, rec in (("fp32", rec32), ("int8", rec8)))
        report["real"] = compare(real32, real8, fusion32, fusion8, y)
        truth = y.argmax(1)
        report["real"]["top1_fp32"] = int((fusion32.fused_score(real32).argmax(1) == truth).sum())
        report["real"]["top1_int8"] = int((fusion8.fused_score(real8).argmax(1) == truth).sum())
    # the same comparisons with the fp32 thresholds kept: how much of the change is the re-tuning's
    report["with_fp32_thresholds"] = {"synthetic_test": compare(test32, test8, fusion32, fusion32, test.targets())}
    if args.real_audio:
        report["with_fp32_thresholds"]["real"] = compare(real32, real8, fusion32, fusion32, y)
    sets = [k for k in ("synthetic_test", "real") if k in report]

    def meets(results: dict) -> bool:
        return all(results[k]["f1_drop"] <= MAX_F1_DROP and results[k]["decisions_changed"] <= MAX_CHANGED for k in sets)

    report["meets_bar"] = meets(report)
    report["meets_bar_with_fp32_thresholds"] = meets(report["with_fp32_thresholds"])
    out_manifest["parity"] = {"int8_vs_fp32": report}
    (args.out / "manifest.json").write_text(json.dumps(out_manifest, indent=1))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    if (args.models / "MODEL_CARD.md").exists():
        shutil.copy(args.models / "MODEL_CARD.md", args.out / "MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
