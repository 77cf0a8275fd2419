"""A classifier on a pretrained tagger's embedding, checked on sources never heard and on real recordings.

    python -m experiments.pretrained_head --split runs/lolo [--fused runs/lolo/onnx] [--real-audio tests/data/real]
        [--c 0.01] [--outputs max_pool,mean_pool,penultimate,taggram] [--cache runs/cache/musicnn] [--out head.json]
    python -m experiments.pretrained_head --train data/synth/train --train data/synth/notes/train
        --fused instrec/models --real-audio tests/data/real

``--split`` is a folder written by :mod:`experiments.leave_one_out`: its ``train`` excerpts (the kept
sources, with their notes when the split has them) fit the classifier, and its ``held`` songs and
``held-notes`` (sources never heard) check it, with real recordings (``--real-audio``: a folder with
``labels.csv``) beside them. The classifier is a standardised logistic regression over the eleven classes
on each file's musicnn embedding (:mod:`instrec.embedding`; the mean over its patches of the four outputs
side by side), fitted in seconds: only the head learns from the corpus, the features were learnt on real
recordings.

With ``--fused`` (the split's exported CNNs, ``<split>/onnx`` after ``--representation fused``) the same
files are also ranked by the fused CNNs alone and by their fused score times the head's probability, so
one run says whether the embedding adds what the three CNNs lack. With ``--train`` the head is fitted on
whole corpora instead (the shipped models' training data) and checked on the real recordings beside the
shipped CNNs: what shipping it would change. Every figure is the share of files whose
true class comes first, per class, with its mean over classes; the real recordings are counted by clip.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from instrec import audio
from instrec.embedding import MODEL, OUTPUTS, Embedder
from instrec.errors import Silent
from instrec.labels import CODES
from training.real_audio import read_labels

#: the split's folders the head is checked on, when present
CHECKED = ("held", "held-notes")
#: the logistic regression's inverse regularisation: on the notes-included check's two splits, 0.01 kept the
#: most of what the embedding adds to the fused CNNs on unheard songs and notes, 10 the least
#: (docs/generalisation.md, "A classifier on a pretrained tagger's embedding")
C = 0.01


def file_embedding(embedder: Embedder, path: Path, cache: Path | None = None) -> np.ndarray:
    """(EMBEDDING_SIZE,) mean over a file's patches, cached by the file's resolved path, size and time."""
    path = Path(path).resolve()
    if cache is not None:
        stat = path.stat()
        key = hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{MODEL.stat().st_size}".encode()).hexdigest()
        cached = Path(cache) / f"{key}.npy"
        if cached.exists():
            return np.load(cached)
    y = audio.load(path)
    embedding = embedder.embed(y, sr=audio.DEFAULT.sample_rate).mean(axis=0).astype(np.float32)
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        np.save(cached, embedding)
    return embedding


def embed_folder(embedder: Embedder, data: Path, cache: Path | None = None
                 ) -> tuple[list[Path], np.ndarray, np.ndarray, list[Path]]:
    """Paths, (n, EMBEDDING_SIZE) embeddings and (n,) class indices of a labelled folder's audible files,
    and the silent files left out (they hold no instrument to name)."""
    paths, x, y, silent = [], [], [], []
    for path, code in read_labels(data):
        try:
            x.append(file_embedding(embedder, path, cache))
        except Silent:
            silent.append(path)
            continue
        paths.append(path)
        y.append(CODES.index(code))
    if not paths:
        raise ValueError(f"{data}: no labelled audible files")
    return paths, np.stack(x), np.array(y), silent


def columns(outputs: tuple[str, ...]) -> np.ndarray:
    """Indices of the chosen outputs' values in an embedding of :meth:`instrec.embedding.Embedder.embed`."""
    unknown = set(outputs) - set(OUTPUTS)
    if unknown or not outputs:
        raise ValueError(f"unknown musicnn outputs {sorted(unknown)}; choose from {', '.join(OUTPUTS)}")
    starts = np.cumsum([0, *OUTPUTS.values()])
    return np.concatenate([np.arange(starts[i], starts[i + 1]) for i, name in enumerate(OUTPUTS) if name in outputs])


def fit_head(x: np.ndarray, y: np.ndarray, c: float = C):
    """A standardised multinomial logistic regression over the classes present in ``y``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y)) < 2:
        raise ValueError("the training files hold one class only: nothing to tell apart")
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(x, y)


def class_probabilities(head, x: np.ndarray) -> np.ndarray:
    """(n, 11) probabilities over every class (0 for a class the head never saw)."""
    p = np.zeros((len(x), len(CODES)))
    p[:, head.classes_] = head.predict_proba(x)
    return p


def first_right(scores: np.ndarray, y: np.ndarray) -> dict:
    """Share of files whose true class scores highest: per class, their mean, and right files in all."""
    top = np.asarray(scores).argmax(axis=1)
    per_class = {CODES[c]: float(np.mean(top[y == c] == c)) for c in np.unique(y)}
    return {"per_class": per_class, "mean_over_classes": float(np.mean(list(per_class.values()))),
            "correct": int((top == y).sum()), "n": len(y)}


def fused_scores(models: Path, paths: list[Path]) -> np.ndarray:
    """(n, 11) fused scores of exported CNNs, as the app ranks them."""
    from instrec.recognizer import Recognizer

    recognizer = Recognizer(models)
    return np.array([[p.scores[c] for c in CODES] for p in map(recognizer.predict, paths)])


def run(split: Path | None = None, fused: Path | None = None, real_audio: Path | None = None, c: float = C,
        cache: Path | None = None, train: list[Path] = (), outputs: tuple[str, ...] = tuple(OUTPUTS)) -> dict:
    """Fit the head on ``train`` (default ``split/train``) over the chosen musicnn ``outputs``; its figures
    (and the fused CNNs', alone and times the head) on the split's held-out folders and the real recordings."""
    chosen = columns(outputs)
    train = [Path(t) for t in train] or ([Path(split) / "train"] if split else [])
    if not train:
        raise ValueError("nothing to fit the head on: give a split or training folders")
    checked = {name: Path(split) / name for name in CHECKED if split and (Path(split) / name).is_dir()}
    if real_audio is not None:
        checked["real"] = Path(real_audio)
    if not checked:
        raise ValueError(f"{split}: no held-out folder ({', '.join(CHECKED)}) and no --real-audio to check on")
    embedder = Embedder()
    fitted = [embed_folder(embedder, folder, cache) for folder in train]
    x, y = np.concatenate([f[1] for f in fitted]), np.concatenate([f[2] for f in fitted])
    head = fit_head(x[:, chosen], y, c)
    result = {"split": str(split) if split else None, "train": [str(t) for t in train], "c": c,
              "outputs": [name for name in OUTPUTS if name in outputs],
              "train_files": len(y), "fused": str(fused) if fused else None,
              "silent_files": {"train": [str(p) for f in fitted for p in f[3]]}}
    for name, folder in checked.items():
        paths, x, y, silent = embed_folder(embedder, folder, cache)
        result["silent_files"][name] = [str(p) for p in silent]
        p = class_probabilities(head, x[:, chosen])
        figures = {"head": first_right(p, y)}
        if fused is not None:
            s = fused_scores(fused, paths)
            figures["fused"] = first_right(s, y)
            figures["fused_times_head"] = first_right(s * p, y)
        result[name] = figures
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.pretrained_head", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", type=Path, help="a folder written by experiments.leave_one_out")
    ap.add_argument("--train", type=Path, action="append", default=[],
                    help="fit the head on this folder instead of <split>/train (repeatable)")
    ap.add_argument("--fused", type=Path, help="exported CNNs (<split>/onnx, instrec/models), ranked beside the head")
    ap.add_argument("--real-audio", type=Path, help="real recordings with labels.csv")
    ap.add_argument("--c", type=float, default=C, help=f"the logistic regression's inverse regularisation (default {C})")
    ap.add_argument("--outputs", default=",".join(OUTPUTS),
                    help=f"the musicnn outputs the head sees, comma-separated (default all: {','.join(OUTPUTS)})")
    ap.add_argument("--cache", type=Path, help="keep each file's embedding here")
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    try:
        result = run(args.split, args.fused, args.real_audio, args.c, args.cache, args.train,
                     tuple(args.outputs.split(",")))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in (*CHECKED, "real"):
        for ranker, f in result.get(name, {}).items():
            classes = " ".join(f"{k} {v:.2f}" for k, v in f["per_class"].items())
            print(f"{name:10s} {ranker:16s} mean over classes {f['mean_over_classes']:.3f}, "
                  f"{f['correct']} / {f['n']} right ({classes})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
