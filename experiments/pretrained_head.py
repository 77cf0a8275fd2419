"""A classifier on a pretrained tagger's embedding, checked on sources never heard and on real recordings.

    python -m experiments.pretrained_head --split runs/lolo [--fused runs/lolo/onnx] [--real-audio tests/data/real]
        [--c 0.01] [--outputs max_pool,mean_pool,penultimate,taggram] [--per-class] [--cache runs/cache/musicnn]
        [--tagger MODEL.onnx ...] [--check NAME=FOLDER ...] [--out head.json]
    python -m experiments.pretrained_head --train data/synth/train --train data/synth/notes/train
        --fused instrec/models --real-audio tests/data/real [--songs data/synth/test]

``--split`` is a folder written by :mod:`experiments.leave_one_out`: its ``train`` excerpts (the kept
sources, with their notes when the split has them) fit the classifier, and its ``held`` songs and
``held-notes`` (sources never heard) check it, with real recordings (``--real-audio``: a folder with
``labels.csv``) beside them. The classifier is :mod:`training.head`'s: a standardised logistic regression
over the eleven classes on each file's musicnn embedding (:mod:`instrec.embedding`; the mean over its
patches of the outputs ``--outputs`` names, all four by default), fitted in seconds: only the head learns
from the corpus, the features were learnt on real recordings.

With ``--fused`` (the split's exported CNNs, ``<split>/onnx`` after ``--representation fused``) the same
files are also ranked by the fused CNNs alone and by their fused score times the head's probability, so
one run says whether the embedding adds what the three CNNs lack. With ``--train`` the head is fitted on
whole corpora instead (the shipped models' training data) and checked on the real recordings beside the
shipped CNNs: what shipping it would change. Every figure is the share of files whose
true class comes first, per class, with its mean over classes; the real recordings are counted by clip.
``--songs`` (multi-label songs in the IRMAS testing layout, such as a corpus's ``test/``) adds the share of
songs whose top class is one of theirs, and with ``--tune-songs`` (another such folder) the micro F1 of
presence decided on the product by per-instrument thresholds tuned there. ``--per-class`` fits one logistic
regression per class instead of one over the eleven, whose probabilities a mixture need not share.
``--tagger`` (repeatable) names the musicnn models whose embeddings the head sees, side by side: the shipped
MagnaTagATune model by default, or others that ``export/musicnn_to_onnx.py --model`` converts (its Million
Song Dataset model, ``MSD_musicnn``). ``--check NAME=FOLDER`` (repeatable) checks a further labelled folder
as ``held-NAME``: a source that no split holds out, such as a library rendered apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from instrec.embedding import MODEL, OUTPUTS
from instrec.labels import CODES
from instrec.recognizer import Recognizer
from training.datasets import read_testing
from training.head import C, Taggers, class_probabilities, fit
from training.metrics import evaluate
from training.thresholds import best_threshold

#: the split's folders the head is checked on, when present
CHECKED = ("held", "held-notes")


def checked_folders(split: Path) -> dict[str, Path]:
    """The split's held-out folders by name: :data:`CHECKED`, then ``held-<name>`` for each further notes
    corpus that ``leave_one_out --extra-notes`` split (``<split>/<name>/held``, listed in ``split.json``)."""
    split = Path(split)
    folders = {name: split / name for name in CHECKED}
    plan = split / "split.json"
    if plan.exists():
        folders |= {f"held-{name}": split / name / "held" for name in json.loads(plan.read_text()).get("extra_notes", {})}
    return {name: folder for name, folder in folders.items() if folder.is_dir()}


def first_right(scores: np.ndarray, y: np.ndarray) -> dict:
    """Share of files whose true class scores highest: per class, their mean, and right files in all."""
    top = np.asarray(scores).argmax(axis=1)
    per_class = {CODES[c]: float(np.mean(top[y == c] == c)) for c in np.unique(y)}
    return {"per_class": per_class, "mean_over_classes": float(np.mean(list(per_class.values()))),
            "correct": int((top == y).sum()), "n": len(y)}


def print_first_right(result: dict, width: int = 16) -> None:
    """One line per checked folder and ranker of ``result`` (:func:`first_right` figures under
    ``result[folder][ranker]``): the mean over classes, the right files and each class's share."""
    for name in [*result.get("checked", CHECKED), "real"]:
        for ranker, f in result.get(name, {}).items():
            classes = " ".join(f"{k} {v:.2f}" for k, v in f["per_class"].items())
            print(f"{name:10s} {ranker:{width}s} mean over classes {f['mean_over_classes']:.3f}, "
                  f"{f['correct']} / {f['n']} right ({classes})")


def top_among_true(scores: np.ndarray, truth: np.ndarray) -> dict:
    """Share of files whose top class is one of their (multi-hot) true classes."""
    top = np.asarray(scores).argmax(axis=1)
    right = np.asarray(truth)[np.arange(len(top)), top] > 0
    return {"correct": int(right.sum()), "n": len(top), "share": float(right.mean())}


def fused_scores(recognizer, paths: list[Path]) -> np.ndarray:
    """(n, 11) fused scores of exported CNNs (a :class:`~instrec.recognizer.Recognizer`), unrounded, as the app ranks them."""
    return np.array([p.fused_scores for p in map(recognizer.predict, paths)])


def run(split: Path | None = None, fused: Path | None = None, real_audio: Path | None = None, c: float = C,
        cache: Path | None = None, train: list[Path] = (), outputs: tuple[str, ...] = tuple(OUTPUTS),
        songs: Path | None = None, tune_songs: Path | None = None, per_class: bool = False,
        taggers: tuple[Path, ...] = (MODEL,), checks: dict[str, Path] | None = None) -> dict:
    """Fit the head on ``train`` (default ``split/train``) over the chosen musicnn ``outputs`` of the
    ``taggers`` (side by side); its figures (and the fused CNNs', alone and times the head) on the split's
    held-out folders and the real recordings; with ``songs``, ``fused`` and ``tune_songs``, also the presence
    decided on the product by per-instrument thresholds tuned on ``tune_songs``, against the fused CNNs' own
    decisions. ``checks`` (name -> labelled folder) are checked too, as ``held-<name>``: a source that no split
    holds out, such as a library rendered apart and never trained on."""
    embedder = Taggers(taggers)
    chosen = embedder.columns(outputs)
    train = [Path(t) for t in train] or ([Path(split) / "train"] if split else [])
    if not train:
        raise ValueError("nothing to fit the head on: give a split or training folders")
    checked = checked_folders(split) if split else {}
    if real_audio is not None:
        checked["real"] = Path(real_audio)
    for name, folder in (checks or {}).items():
        if not name:
            raise ValueError(f"{folder}: a checked folder needs a name")
        if f"held-{name}" in checked:
            raise ValueError(f"held-{name} is checked already: name the folder {folder} otherwise")
        if not Path(folder).is_dir():
            raise ValueError(f"{folder}: no such folder to check on")
        checked[f"held-{name}"] = Path(folder)
    if not checked and songs is None:
        raise ValueError(f"{split}: no held-out folder ({', '.join(CHECKED)}) and no --real-audio to check on")
    recognizer = Recognizer(fused) if fused is not None else None
    head, fitted_on, silent = fit(train, c, cache, embedder, outputs, per_class)
    result = {"split": str(split) if split else None, "train": [str(t) for t in train], "c": c,
              "per_class": per_class, "taggers": [m.name for m in embedder.models],
              "outputs": [name for name in OUTPUTS if name in outputs],
              "train_files": len(fitted_on), "fused": str(fused) if fused else None,
              "silent_files": {"train": [str(p) for p in silent]},
              "checked": [name for name in checked if name != "real"]}
    for name, folder in checked.items():
        paths, x, y, silent = embedder.folder(folder, cache)
        result["silent_files"][name] = [str(p) for p in silent]
        p = class_probabilities(head, x[:, chosen])
        figures = {"head": first_right(p, y)}
        if recognizer is not None:
            s = fused_scores(recognizer, paths)
            figures["fused"] = first_right(s, y)
            figures["fused_times_head"] = first_right(product(s, p), y)
        result[name] = figures
    if songs is not None:
        p, s, truth = _songs(embedder, Path(songs), cache, head, chosen, recognizer)
        figures = {"head": top_among_true(p, truth)}
        if recognizer is not None:
            figures["fused"] = top_among_true(s, truth)
            figures["fused_times_head"] = top_among_true(product(s, p), truth)
        result["songs"] = {"data": str(songs), **figures}
        if tune_songs is not None and recognizer is not None:
            thresholds = tune_product(*_songs(embedder, Path(tune_songs), cache, head, chosen, recognizer))
            result["songs"]["presence"] = {
                "tuned_on": str(tune_songs), "thresholds": dict(zip(CODES, thresholds.tolist())),
                "fused_f1_micro": evaluate(truth, s >= 0.5)["f1_micro"],
                "product_f1_micro": evaluate(truth, product(s, p) >= thresholds)["f1_micro"]}
    return result


def _songs(embedder: Taggers, folder: Path, cache: Path | None, head, chosen: np.ndarray, recognizer
           ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Head probabilities, fused scores (None without a recognizer) and multi-hot truth of multi-label songs."""
    songs = read_testing(folder).excerpts
    kept, x, _ = embedder.files([e.path for e in songs], cache)
    if not len(kept):
        raise ValueError(f"{folder}: no audible songs")
    p = class_probabilities(head, x[:, chosen])
    s = fused_scores(recognizer, [songs[k].path for k in kept]) if recognizer is not None else None
    return p, s, np.stack([songs[k].target for k in kept])


def product(fused: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The fused score times the head's probability relative to its top class (which keeps its fused score)."""
    return fused * probabilities / probabilities.max(axis=1, keepdims=True)


def tune_product(probabilities: np.ndarray, fused: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(11,) per-instrument thresholds on :func:`product`, each the best F1 of the grid on these songs."""
    g = product(fused, probabilities)
    return np.array([best_threshold(g[:, k], truth[:, k])[0] for k in range(len(CODES))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.pretrained_head", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", type=Path, help="a folder written by experiments.leave_one_out")
    ap.add_argument("--train", type=Path, action="append", default=[],
                    help="fit the head on this folder instead of <split>/train (repeatable)")
    ap.add_argument("--fused", type=Path, help="exported CNNs (<split>/onnx, instrec/models), ranked beside the head")
    ap.add_argument("--real-audio", type=Path, help="real recordings with labels.csv")
    ap.add_argument("--songs", type=Path, help="multi-label songs (IRMAS testing layout, e.g. a corpus's test/): "
                                              "the share whose top class is one of theirs")
    ap.add_argument("--tune-songs", type=Path, help="with --songs and --fused: tune thresholds on the product on these "
                                                   "songs (a corpus's validation/) and compare presence micro F1")
    ap.add_argument("--c", type=float, default=C, help=f"the logistic regression's inverse regularisation (default {C})")
    ap.add_argument("--per-class", action="store_true",
                    help="one logistic regression per class (one-vs-rest) instead of one over the eleven")
    ap.add_argument("--outputs", default=",".join(OUTPUTS),
                    help=f"the musicnn outputs the head sees, comma-separated (default all: {','.join(OUTPUTS)})")
    ap.add_argument("--tagger", type=Path, action="append", default=[],
                    help=f"a musicnn model in ONNX (export/musicnn_to_onnx.py) whose embedding the head sees; "
                         f"repeated, side by side (default the shipped {MODEL.name})")
    ap.add_argument("--check", action="append", default=[], metavar="NAME=FOLDER",
                    help="check on this labelled folder too (IRMAS training layout; files the head was not fitted "
                         "on), reported as held-NAME (repeatable)")
    ap.add_argument("--cache", type=Path, help="keep each file's embedding here")
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    checks = dict(spec.split("=", 1) for spec in args.check if "=" in spec)
    if len(checks) != len(args.check) or not all(name and folder for name, folder in checks.items()):
        ap.error("--check takes NAME=FOLDER, each NAME once")
    try:
        result = run(args.split, args.fused, args.real_audio, args.c, args.cache, args.train,
                     tuple(args.outputs.split(",")), args.songs, args.tune_songs, args.per_class,
                     tuple(args.tagger) or (MODEL,), {name: Path(folder) for name, folder in checks.items()})
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_first_right(result)
    for ranker, f in {k: v for k, v in result.get("songs", {}).items() if k not in ("data", "presence")}.items():
        print(f"songs      {ranker:16s} top class among the true ones for {f['correct']} / {f['n']} ({f['share']:.3f})")
    if "presence" in result.get("songs", {}):
        f = result["songs"]["presence"]
        print(f"songs      presence micro F1: fused CNNs {f['fused_f1_micro']:.3f}, "
              f"product with thresholds tuned on {f['tuned_on']} {f['product_f1_micro']:.3f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
