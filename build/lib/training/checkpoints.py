"""What a trained CNN is saved as, how it is loaded back, and how it is run on windows.

A checkpoint holds the weights, the model's class and kwargs, the :class:`~instrec.params.FeatureParams`
its windows were computed with, the class order, the training arguments and history. Everything
downstream (thresholds, evaluation, export) takes the feature parameters from here, never from
:data:`instrec.params.DEFAULT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import instrec
from instrec.labels import CODES
from instrec.params import FeatureParams
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


def load_checkpoint(path: Path) -> Checkpoint:
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
