"""Export the three trained CNNs to ONNX, check them against PyTorch, write the manifest.

    python export/to_onnx.py [--run runs/default] [--out instrec/models]

Reads ``<run>/{mel,modgd,cqt}/best.pt`` and ``<run>/thresholds.json`` (and, when present,
``<run>/eval/metrics.json`` and the corpus's ``corpus.json``), writes ``mel.onnx``, ``modgd.onnx``,
``cqt.onnx`` (opset 18, dynamic batch axis) and ``manifest.json`` into ``--out``.

Before anything replaces the files in ``--out``: ``onnx.checker`` passes on each model, and on
the same windows (random, and real features of files from the training data; batches of 1 and
37) onnxruntime's outputs equal PyTorch's within 1e-4 and give the same decisions after the
thresholds. Otherwise it exits with status 1 and leaves ``--out`` as it was.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

import instrec
from instrec import audio, features
from instrec.fusion import Fusion, aggregate
from instrec.labels import CODES
from instrec.params import REPRESENTATIONS, FeatureParams
from instrec.recognizer import MODELS_DIR, sha256
from training.checkpoints import exported_entry, load_checkpoint
from training.datasets import read_any, training_root

OPSET = 18
TOLERANCE = 1e-4  # float32 kernels of two runtimes: differences are ~1e-7 in practice
INPUT, OUTPUT = "windows", "probabilities"


class ExportError(RuntimeError):
    pass


def export_model(model: torch.nn.Module, shape: tuple[int, int, int], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    example = (torch.randn(2, *shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), example, None, input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=({0: batch},), dynamo=True, opset_version=OPSET, verbose=False)
    program.save(str(path), external_data=False)


def real_windows(data_root: Path, params: FeatureParams, n_files: int = 6) -> dict[str, list[np.ndarray]]:
    """Feature windows of a few real files of the training data, per representation and file."""
    root = training_root(data_root)
    excerpts = read_any(root).excerpts if root.exists() else []
    step = max(1, len(excerpts) // n_files)
    out: dict[str, list[np.ndarray]] = {r: [] for r in REPRESENTATIONS}
    for e in excerpts[::step][:n_files]:
        try:
            y = audio.load(e.path, params=params)
        except audio.AudioError:
            continue
        for rep, w in features.extract(y, params=params).items():
            out[rep].append(w)
    return out


def check_parity(models: dict, sessions: dict, fusion: Fusion, real: dict[str, list[np.ndarray]],
                 params: FeatureParams, seed: int = 0) -> dict:
    """Compare ONNX with PyTorch on random and real windows; raise ExportError on any mismatch."""
    rng = np.random.default_rng(seed)
    report = {}
    for rep, model in models.items():
        shape = params.shapes[rep]
        cases = {f"random batch {n}": rng.standard_normal((n, *shape)).astype(np.float32) * 3 for n in (1, 37)}
        if real.get(rep):
            stacked = np.concatenate(real[rep])
            reps = int(np.ceil(37 / len(stacked)))
            cases["real batch 1"] = stacked[:1]
            cases["real batch 37"] = np.concatenate([stacked] * reps)[:37]
        worst = 0.0
        for name, x in cases.items():
            with torch.inference_mode():
                expected = model(torch.from_numpy(x)).numpy()
            got = sessions[rep].run([OUTPUT], {INPUT: x})[0]
            diff = float(np.max(np.abs(got - expected)))
            worst = max(worst, diff)
            if got.shape != expected.shape or not diff <= TOLERANCE:
                raise ExportError(f"{rep}: ONNX differs from PyTorch on {name}: max |diff| {diff:.2e} > {TOLERANCE}")
        report[rep] = {"max_abs_diff": worst, "cases": list(cases)}
    # decisions after thresholds, file by file, on the real windows
    n_files = min(len(v) for v in real.values()) if real and all(real.values()) else 0
    for i in range(n_files):
        torch_scores, onnx_scores = {}, {}
        for rep in fusion.models:
            with torch.inference_mode():
                torch_scores[rep] = aggregate(models[rep](torch.from_numpy(real[rep][i])).numpy(), fusion.aggregation)
            onnx_scores[rep] = aggregate(sessions[rep].run([OUTPUT], {INPUT: real[rep][i]})[0], fusion.aggregation)
        if not np.array_equal(fusion.decide(torch_scores), fusion.decide(onnx_scores)):
            raise ExportError(f"decisions after thresholds differ between ONNX and PyTorch on real file {i}")
    report["decisions_checked_on_files"] = n_files
    return report


def epochs_before(checkpoint: dict) -> int:
    """Epochs of the checkpoints a fine-tuned checkpoint started from (``--init``), as far as they exist."""
    init = checkpoint.get("training_args", {}).get("init")
    if not init or not Path(init).exists():
        return 0
    if Path(init).suffix == ".onnx":  # an exported CNN: its manifest counts its epochs
        entry = exported_entry(Path(init))[1]
        return int(entry.get("epochs", 0)) + int(entry.get("epochs_before", 0))
    earlier = torch.load(init, map_location="cpu", weights_only=False)
    return len(earlier.get("history", [])) + epochs_before(earlier)


def export(run: Path, out: Path, *, data: Path | None = None) -> dict:
    run, out = Path(run), Path(out)
    tuned_path = run / "thresholds.json"
    if not tuned_path.exists():
        raise ExportError(f"{tuned_path} not found: run python -m training.thresholds --run {run} first")
    tuned = json.loads(tuned_path.read_text())
    fusion = Fusion.from_dict(tuned["fusion"])
    loaded = {}
    for rep in fusion.models:
        path = run / rep / "best.pt"
        if not path.exists():
            raise ExportError(f"{path} not found: train the {rep} model first")
        loaded[rep] = load_checkpoint(path)
    if len({c.params for c in loaded.values()}) > 1:
        raise ExportError("the checkpoints were trained with different feature parameters")
    params = loaded[fusion.models[0]].params
    models = {rep: c.model for rep, c in loaded.items()}
    ckpts = {rep: c.meta for rep, c in loaded.items()}
    data_root = Path(data or ckpts["mel"]["training_args"]["data"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sessions = {}
        for rep, model in models.items():
            path = tmp / f"{rep}.onnx"
            export_model(model, params.shapes[rep], path)
            onnx.checker.check_model(str(path), full_check=True)
            sessions[rep] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        parity = check_parity(models, sessions, fusion, real_windows(data_root, params), params)
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for rep in models:
            shutil.copyfile(tmp / f"{rep}.onnx", out / f"{rep}.onnx")
            files[rep] = {"file": f"{rep}.onnx", "sha256": sha256(out / f"{rep}.onnx"),
                          "bytes": (out / f"{rep}.onnx").stat().st_size, "input": INPUT, "output": OUTPUT,
                          "input_shape": ["batch", *params.shapes[rep]], "activation": models[rep].activation,
                          "epochs": len(ckpts[rep]["history"]), "epochs_before": epochs_before(ckpts[rep]),
                          "best_val_loss": min(h["val_loss"] for h in ckpts[rep]["history"]),
                          "max_hz": models[rep].max_hz, "freq_norm": models[rep].freq_norm,
                          "freq_norm_kind": models[rep].freq_norm_kind, "pcen": models[rep].pcen,
                          "training": {k: ckpts[rep]["training_args"].get(k)
                                       for k in ("data", "extra_train", "augment", "lr", "lr_schedule", "init",
                                                 "init_sha256", "ema", "adversary")}}
    manifest = {
        "format": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "classes": list(CODES),
        "feature_params": params.to_dict(),
        "fusion": fusion.to_dict(),
        "models": files,
        "training_data": training_description(data_root, ckpts["mel"]),
        "validation": {"data": tuned["validation_data"], "n_files": tuned["n_validation_files"],
                       "metrics": {k: v["validation"] for k, v in tuned["best_per_config"].items()}},
        "test": evaluation_metrics(run),
        "parity": parity,
        "versions": {"instrec": instrec.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "opset": OPSET},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


#: what a corpus manifest (``corpus.synth`` or ``corpus.notes``) says of how it was rendered, copied into the models'
RENDERED = ("seed", "soundfonts", "libraries", "sources", "real_share", "recording_chain", "guitar_rig", "clipping",
            "summary")


def training_description(data_root: Path, ckpt: dict) -> dict:
    desc = {"root": str(data_root), **ckpt["data"], "training_args": ckpt["training_args"]}
    corpus = data_root / "corpus.json" if (data_root / "corpus.json").exists() else data_root.parent / "corpus.json"
    if corpus.exists():
        meta = json.loads(corpus.read_text())
        desc["synthetic_corpus"] = {k: meta[k] for k in ("scale", *RENDERED) if k in meta}
    for extra in ckpt["training_args"].get("extra_train") or []:
        notes = Path(extra) / "corpus.json"
        if notes.exists() and (meta := json.loads(notes.read_text())).get("kind") == "notes":
            desc["notes"] = {"root": str(extra), **{k: meta[k] for k in ("per_class", *RENDERED) if k in meta}}
        else:
            desc.setdefault("extra", []).append(extra_description(Path(extra)))
    return desc


def extra_description(folder: Path) -> dict:
    """A further training folder: its root, files per class, and what made it where it says (``stk.json`` of
    :mod:`experiments.stk_notes` beside its ``train/`` or in it)."""
    counts = {c: len(list((folder / c).glob("*.wav"))) for c in CODES if (folder / c).is_dir()}
    desc = {"root": str(folder), "counts": counts}
    stk = next((p for p in (folder / "stk.json", folder.parent / "stk.json") if p.exists()), None)
    if stk is not None:
        meta = json.loads(stk.read_text())
        desc["made_by"] = {"module": "experiments.stk_notes", "seed": meta.get("seed"),
                           "without": meta.get("without", []),
                           "models": sorted({r["source"] for r in meta.get("records", [])})}
    return desc


def evaluation_metrics(run: Path) -> dict | None:
    path = run / "eval" / "metrics.json"
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    return {"data": m["data"], "n_files": m["n_files"],
            "metrics": {name: {k: v for k, v in r["test"].items()} for name, r in m["configs"].items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python export/to_onnx.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/default"))
    ap.add_argument("--out", type=Path, default=MODELS_DIR, help="where the models go (default: the package's own)")
    ap.add_argument("--data", type=Path, help="audio for the real-feature check (default: the training data)")
    args = ap.parse_args(argv)
    try:
        manifest = export(args.run, args.out, data=args.data)
    except (ExportError, ValueError, FileNotFoundError, onnx.checker.ValidationError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    for rep, info in manifest["models"].items():
        print(f"{rep:<6} {info['bytes'] / 1e6:.1f} MB  sha256 {info['sha256'][:16]}  "
              f"max |onnx - torch| {manifest['parity'][rep]['max_abs_diff']:.1e}")
    print(f"fusion: {manifest['fusion']['rule']} / {manifest['fusion']['aggregation']} -> {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
