"""How much of the recording setup does a CNN's embedding still tell? A linear probe for the source family.

    python -m experiments.source_probe --data runs/lolo/train --checkpoint runs/lolo/mel/best.pt
        [--checkpoint ...] [--cache runs/cache] [--seed 0] [--out probe.json]

Every training window of ``--data`` (a corpus rendered by :mod:`corpus.synth` or :mod:`corpus.notes`, or a
folder of links into one) is passed through each CNN up to its max-pooled embedding
(:meth:`training.models.InstrumentCNN.embed`). A logistic regression is then fitted on the windows of half
the files, chosen at random, to name each window's source family (:mod:`training.sources`) from the
embedding and the window's class, and scored on the windows of the other half. The class goes in so that a
family playing few classes is not counted as recording information; the probe given the class alone is the
floor, and naming the most common family every time is chance. A CNN that hears instruments rather than
recordings leaves little over the floor, whatever its training did to its own adversary
(``training.train --adversary``). The figure needs no held-out source, so it measures a recipe on the whole
training set at once; it is not a measure of accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from training.cache import load_features
from training.checkpoints import load_checkpoint
from training.datasets import read_training, training_root
from training.sources import excerpt_sources, family_labels


def probe_accuracy(features: np.ndarray, families: np.ndarray, files: np.ndarray, seed: int = 0) -> float:
    """Share of held-out windows whose family a standardised logistic regression names right, fitted on the
    windows of a random half of the files (``files``: each window's file) and scored on the rest."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    held = held_out_windows(files, seed)
    if len(np.unique(families[~held])) < 2:
        raise ValueError("the fitted half holds windows of one source family only: nothing to tell apart")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    probe.fit(features[~held], families[~held])
    return float(probe.score(features[held], families[held]))


def held_out_windows(files: np.ndarray, seed: int = 0) -> np.ndarray:
    """True for the windows of a random half of the files (all windows of one file on one side)."""
    unique = np.unique(files)
    held = np.random.default_rng(seed).choice(unique, len(unique) // 2, replace=False)
    return np.isin(files, held)


def embeddings(model: torch.nn.Module, windows: np.ndarray, batch: int = 512) -> np.ndarray:
    """(n, 1, F, T) windows -> (n, 512) max-pooled embeddings of an :class:`~training.models.InstrumentCNN`."""
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model.embed(torch.from_numpy(np.array(windows[i : i + batch], np.float32))).numpy()
                               for i in range(0, len(windows), batch)])


def run(data: Path, checkpoints: list[Path], cache_dir: Path, seed: int = 0, workers: int | None = None,
        progress: bool = True) -> dict:
    """The probe for each checkpoint, beside its floor (the class alone) and chance."""
    dataset = read_training(training_root(data))
    labels, names = family_labels(excerpt_sources(dataset))
    if len(names) < 2:
        raise ValueError(f"{data}: no corpus manifest names two or more source families of its excerpts")
    result = {"data": str(data), "families": names, "seed": seed, "checkpoints": {}}
    loaded: dict[str, object] = {}
    for checkpoint in checkpoints:
        trained = load_checkpoint(checkpoint)
        rep = trained.model.representation
        if rep not in loaded:
            loaded[rep] = load_features(dataset, rep, cache_dir, params=trained.params, workers=workers,
                                        progress=progress)
        fs = loaded[rep]
        known = labels[fs.file_index] >= 0
        families, files = labels[fs.file_index][known], fs.file_index[known]
        classes = fs.targets[files]
        if "chance" not in result:  # the same windows for every representation: measured once
            held = held_out_windows(files, seed)
            result["chance"] = float(np.bincount(families[held]).max() / held.sum())
            result["class_alone"] = probe_accuracy(classes, families, files, seed)
        embedded = embeddings(trained.model, fs.windows)[known]
        result["checkpoints"][str(checkpoint)] = {
            "representation": rep, "windows": int(known.sum()),
            "probe": probe_accuracy(np.concatenate([embedded, classes], axis=1), families, files, seed)}
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.source_probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="training layout of a rendered corpus (or links into one)")
    ap.add_argument("--checkpoint", type=Path, action="append", required=True, help="a best.pt (repeatable)")
    ap.add_argument("--cache", type=Path, default=Path("runs/cache"), help="feature cache folder")
    ap.add_argument("--seed", type=int, default=0, help="which half of the files the probe is fitted on")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    try:
        result = run(args.data, args.checkpoint, args.cache, args.seed, args.workers)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"source family named right: chance {result['chance']:.3f}, from the class alone {result['class_alone']:.3f}")
    for checkpoint, r in result["checkpoints"].items():
        print(f"  {checkpoint} ({r['representation']}, {r['windows']} windows): {r['probe']:.3f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
