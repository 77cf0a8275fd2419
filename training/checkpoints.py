"""What a trained CNN is saved as, how it is loaded back, and how it is run on windows.

A checkpoint holds the weights, the model's class and kwargs, the :class:`~instrec.params.FeatureParams`
its windows were computed with, the class order, the training arguments and history. Everything
downstream (thresholds, evaluation, export) takes the feature parameters from here, never from
:data:`instrec.params.DEFAULT`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import instrec
from instrec.labels import CODES
from instrec.params import REPRESENTATIONS, FeatureParams
from training.datasets import Dataset
from training.models import InstrumentCNN, from_checkpoint


@dataclass
class Checkpoint:
    model: InstrumentCNN
    params: FeatureParams  # the features the model was trained on
    meta: dict  # everything saved beside the weights (training args, history, data, versions)


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict_windows(model: nn.Module, windows: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Probabilities (n, 11) for feature windows (n, 1, F, T), in batches, without gradients."""
    model.eval()
    out = np.zeros((len(windows), len(CODES)), np.float32)
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            x = torch.from_numpy(np.array(windows[i : i + batch_size], dtype=np.float32)).to(device)
            out[i : i + batch_size] = model(x).float().cpu().numpy()
    return out


def save(path: Path, model: InstrumentCNN, params: FeatureParams, args: dict, history: list[dict],
         train_ds: Dataset, val_ds: Dataset) -> None:
    """Everything needed to rebuild and describe the model, beside its weights."""
    torch.save({
        "model_class": "InstrumentCNN",
        "model_kwargs": model.kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "feature_params": params.to_dict(),
        "classes": list(CODES),
        "training_args": args,
        "history": history,
        "data": {"root": args["data"], "n_train_files": len(train_ds), "n_val_files": len(val_ds)},
        "versions": {"instrec": instrec.__version__, "torch": torch.__version__},
    }, path)


#: how far the rebuilt model's probabilities may lie from the ONNX model's (float32 kernels of two runtimes
#: differ by ~1e-7; the export checks the same bound the other way)
REBUILD_TOLERANCE = 1e-4


def exported_entry(path: Path) -> tuple[str, dict, dict]:
    """The representation and manifest entry of an exported CNN, and the manifest beside it."""
    path = Path(path)
    manifest_file = path.parent / "manifest.json"
    if not manifest_file.is_file():
        raise ValueError(f"{path}: no manifest.json beside it, so what model it is cannot be known")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("classes") != list(CODES):
        raise ValueError(f"{manifest_file}: class order {manifest.get('classes')} differs from {list(CODES)}")
    found = [(rep, e) for rep, e in manifest.get("models", {}).items() if e.get("file") == path.name]
    if not found or found[0][0] not in REPRESENTATIONS:
        raise ValueError(f"{manifest_file} lists no CNN in {path.name}")
    return found[0][0], found[0][1], manifest


def from_exported(path: Path) -> Checkpoint:
    """A CNN exported by ``export/to_onnx.py`` (``manifest.json`` beside it) as a checkpoint, e.g. the
    shipped ``instrec/models/mel.onnx`` to fine-tune (``training.train --init``).

    The model is rebuilt from its manifest entry and its weights are the ONNX file's initializers, which
    the export names as the state dict; every weight must be found, and the rebuilt model must answer
    random windows as onnxruntime does (within :data:`REBUILD_TOLERANCE`), or it is refused.
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    path = Path(path)
    representation, entry, manifest = exported_entry(path)
    params = FeatureParams.from_dict(manifest["feature_params"])
    proto = onnx.load(str(path))  # read once: its weights, then the session that checks them
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer}
    n_bins = params.shapes[representation][1]
    model = InstrumentCNN(representation, n_bins, activation=entry.get("activation", "softmax"),
                          hidden=int(weights["head.0.weight"].shape[0]) if "head.0.weight" in weights else 1024,
                          max_hz=entry.get("max_hz"), freq_norm=entry.get("freq_norm"),
                          freq_norm_kind=entry.get("freq_norm_kind", "ifn"), pcen=entry.get("pcen"))
    state = model.state_dict()
    missing = [k for k in state if k not in weights or weights[k].shape != state[k].shape]
    if missing:
        raise ValueError(f"{path}: weights {missing[:3]} are not in the ONNX file as the model has them; "
                         "it cannot be rebuilt for training")
    model.load_state_dict({k: weights[k] for k in state})
    model.eval()
    x = np.random.default_rng(0).standard_normal((4, 1, n_bins, params.window_frames)).astype(np.float32)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.inference_mode():
        torch_out = model(torch.from_numpy(x)).numpy()
    if not np.abs(onnx_out - torch_out).max() <= REBUILD_TOLERANCE:
        raise ValueError(f"{path}: the rebuilt model answers {np.abs(onnx_out - torch_out).max():.2g} away from "
                         "the ONNX model; it cannot be trained on")
    meta = {"model_class": "InstrumentCNN", "model_kwargs": model.kwargs, "feature_params": params.to_dict(),
            "classes": list(CODES), "training_args": entry.get("training", {}), "history": [],
            "exported_from": str(path)}
    return Checkpoint(model, params, meta)


def load_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint written by :mod:`training.train`, or an exported model (:func:`from_exported`)."""
    if Path(path).suffix == ".onnx":
        return from_exported(path)
    meta = torch.load(path, map_location="cpu", weights_only=False)
    if meta.get("classes") != list(CODES):
        raise ValueError(f"{path}: class order {meta.get('classes')} differs from {list(CODES)}")
    params = FeatureParams.from_dict(meta["feature_params"])
    model = from_checkpoint(meta)
    expected = params.shapes[model.representation][1]
    if model.kwargs["n_bins"] != expected:
        raise ValueError(f"{path}: a {model.representation} model for {model.kwargs['n_bins']} bins, "
                         f"but its feature parameters give {expected}")
    return Checkpoint(model, params, meta)


def load_run(run: Path, representations: tuple[str, ...]) -> dict[str, Checkpoint]:
    """The best checkpoint of each representation trained in ``run``; they must share feature parameters."""
    found = {rep: load_checkpoint(Path(run) / rep / "best.pt") for rep in representations
             if (Path(run) / rep / "best.pt").exists()}
    if "mel" not in found:
        raise FileNotFoundError(f"{run}/mel/best.pt not found: train the models first (python -m training.train)")
    params = {c.params for c in found.values()}
    if len(params) > 1:
        raise ValueError(f"the models in {run} were trained on different feature parameters; "
                         "retrain them with one set")
    return found
