"""Per-instrument thresholds and the fusion rule, tuned on a validation set.

    python -m training.thresholds --run runs/default [--validation DIR]

For each model alone, each instrument's threshold is the one of 0.00, 0.01, ..., 1.00 that
maximises its F1. For the seed's fusion ("and": every model over its own threshold) and the
majority vote ("vote": two of the three models over their own thresholds) the thresholds of the
fused models are searched jointly, 101^k combinations per instrument, as matrix products over 0/1
decision matrices. Rajan's score-level fusion ("mean") gets one threshold per instrument. Both
window aggregations (S1, S2) are tried; the rule and aggregation with the best validation micro F1
for all three models is chosen, among "and" and "mean" unless ``--choose-from and,vote,mean`` lets
the vote be chosen too (see :data:`CHOSEN_RULES`).

Validation data: ``--validation DIR`` (IRMAS testing or training layout), else the corpus's
``validation/`` folder beside ``train/``, else the song-aware 15 % held out of the training data
(the same split as training). Never the test set. Writes ``<run>/thresholds.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from instrec.fusion import AGGREGATIONS, PER_MODEL_RULES, RULES, Fusion, file_scores
from instrec.labels import CODES
from instrec.params import REPRESENTATIONS
from training.cache import LEVEL, load_features
from training.checkpoints import Checkpoint, load_run, pick_device, predict_windows
from training.datasets import Dataset, read_any, read_training, split, training_root
from training.metrics import evaluate

GRID = np.round(np.arange(101) / 100, 2)
#: The rules the tuning chooses from unless told otherwise. The majority vote is tuned and recorded too,
#: but not chosen by default: on the shipped CNNs it gained on the validation songs (micro F1 0.773
#: against 0.763) and lost the real recordings (21 of 31 clips first against 25; real mixtures 0.597
#: against 0.630), with thresholds near 0 that make one CNN's vote a constant yes (docs/generalisation.md).
CHOSEN_RULES = ("and", "mean")
#: Windows this many dB under a file's loudest are left out of its scores (``instrec.fusion.audible``):
#: with the shipped CNNs, two seconds of silence or room noise at -50 dBFS before and after each real
#: clip otherwise take it from 25 of 31 right first to 20-22 (docs/generalisation.md).
QUIET_DB = 30.0
#: The configurations of the seed's Tables 8-10.
CONFIGS = {"mel": ("mel",), "mel+modgd": ("mel", "modgd"), "mel+modgd+cqt": ("mel", "modgd", "cqt")}


# ---- searches --------------------------------------------------------------------------------


def _decisions(scores: np.ndarray) -> np.ndarray:
    """(N,) scores -> (101, N) float32: score >= threshold for every threshold of the grid."""
    return (scores[None, :] >= GRID[:, None]).astype(np.float32)


def _f1(tp: np.ndarray, predicted: np.ndarray, positives: float) -> np.ndarray:
    return np.where(predicted + positives > 0, 2 * tp / np.maximum(predicted + positives, 1e-12), 0.0)


def _agreement(D: list[np.ndarray], w: np.ndarray, rule: str) -> np.ndarray:
    """sum_n w_n * decided_n for every combination of thresholds: a (101,) * len(D) array.

    ``D`` are the models' (101, N) decision matrices. "and": all models decide present; "vote": at
    least two of three (of one or two models, all of them), by inclusion-exclusion over the pairs:
    [two or more of a, b, c] = ab + ac + bc - 2abc."""
    n = D[0].shape[1]
    if len(D) == 1:
        return D[0] @ w
    if len(D) == 2:
        return (D[0] * w) @ D[1].T  # (101, 101)
    if len(D) != 3:
        raise ValueError("the joint search takes 1 to 3 models")
    a = D[0] * w  # the weights once, on the first model's decisions
    every = ((a[:, None, :] * D[1][None, :, :]).reshape(-1, n) @ D[2].T).reshape(101, 101, 101)
    if rule == "and":
        return every
    ab, ac, bc = a @ D[1].T, a @ D[2].T, (D[1] * w) @ D[2].T
    return ab[:, :, None] + ac[:, None, :] + bc[None, :, :] - 2 * every


def search_joint(scores: list[np.ndarray], y: np.ndarray, rule: str = "and",
                 min_threshold: float = 0.0) -> tuple[tuple[float, ...], float]:
    """Joint thresholds of 1-3 models for one instrument under the "and" or the "vote" rule.

    Parameters
    ----------
    scores : list of np.ndarray [shape=(N,)]
        Each model's file scores for this instrument.
    y : np.ndarray [shape=(N,)]
        0/1 truth.
    rule : {"and", "vote"}
        Present when every model is over its threshold, or when a majority is.
    min_threshold : float
        No model's threshold is searched below this, so that none decides "present" for nearly
        every file (0: the whole grid; measured in docs/generalisation.md, not used by default).

    Returns
    -------
    (thresholds, f1): the best combination (the middle of equals, see :func:`_middle_of_ties`) and its F1.
    """
    if rule not in PER_MODEL_RULES:
        raise ValueError(f"the joint search is for the rules {PER_MODEL_RULES}, not {rule!r}")
    if not 0.0 <= min_threshold <= 1.0:
        raise ValueError(f"min_threshold must be in [0, 1], got {min_threshold}")
    y = np.asarray(y, np.float32)
    positives = float(y.sum())
    if positives == 0:  # nothing to find: predict nothing
        return tuple(1.0 for _ in scores), 0.0
    D = [_decisions(np.asarray(s, np.float64)) for s in scores]
    tp, pred = _agreement(D, y, rule), _agreement(D, np.ones_like(y), rule)
    f1 = _f1(tp, pred, positives)
    low = int(np.searchsorted(GRID, min_threshold - 1e-9))  # grid points under the floor
    for axis in range(f1.ndim):
        np.moveaxis(f1, axis, 0)[:low] = -1.0  # never the best
    best = _middle_of_ties(f1)
    return tuple(float(GRID[i]) for i in best), float(f1[best])


def _middle_of_ties(f1: np.ndarray) -> tuple[int, ...]:
    """Index of the best F1; among equal F1s, the one nearest the middle (per-axis median) of them.

    Taking the first of equals would put a threshold at 0.00 whenever a model is not needed to
    reach the best F1 on the validation set, and that model would then never take part in the
    "and" rule; the middle of the tied range keeps the widest margin on both sides.
    """
    tied = np.argwhere(np.isclose(f1, f1.max()))  # (n_tied, n_models)
    centre = np.median(tied, axis=0)
    return tuple(int(i) for i in tied[np.argmin(((tied - centre) ** 2).sum(axis=1))])


def best_threshold(scores: np.ndarray, y: np.ndarray, min_threshold: float = 0.0) -> tuple[float, float]:
    """Best single threshold (the one-model case of :func:`search_joint`)."""
    (t,), f1 = search_joint([scores], y, min_threshold=min_threshold)
    return t, f1


def rules_for(n_models: int) -> tuple[str, ...]:
    """The rules worth tuning for ``n_models``: of two, "vote" is "and" (both must agree); of one, "and";
    of four or more, "mean" (the joint search of the per-model rules takes up to three)."""
    if n_models == 1:
        return ("and",)
    if n_models > 3:
        return ("mean",)
    return RULES if n_models > 2 else tuple(r for r in RULES if r != "vote")


def tune_fusion(scores: dict[str, np.ndarray], y: np.ndarray, models: tuple[str, ...], rule: str,
                aggregation: str, min_threshold: float = 0.0, quiet_db: float | None = None,
                weights: dict[str, float] | None = None) -> Fusion:
    """Thresholds for ``models`` under ``rule``, from aggregated (N, 11) scores per model, none under
    ``min_threshold`` for the per-model rules (see :func:`search_joint`); ``quiet_db`` is recorded in
    the fusion, and ``scores`` must have been aggregated with it. ``weights`` (rule "mean") weigh the
    models in the mean; without them every model counts the same."""
    thresholds: dict[str, list[float]] = {}
    if rule == "mean":
        mean = Fusion(models, rule, aggregation, {"mean": [0.0] * len(CODES)}, quiet_db, weights).mean(scores)
        thresholds["mean"] = [best_threshold(mean[:, c], y[:, c])[0] for c in range(len(CODES))]
    elif len(models) == 1:
        thresholds[models[0]] = [best_threshold(scores[models[0]][:, c], y[:, c], min_threshold)[0]
                                 for c in range(len(CODES))]
    else:
        per_class = [search_joint([scores[m][:, c] for m in models], y[:, c], rule, min_threshold)[0]
                     for c in range(len(CODES))]
        thresholds = {m: [t[k] for t in per_class] for k, m in enumerate(models)}
    return Fusion(models, rule, aggregation, thresholds, quiet_db, weights)


# ---- scoring files ---------------------------------------------------------------------------


@dataclass
class WindowScores:
    """What a set of CNNs says about every window of a dataset's readable files."""

    probs: dict[str, list[np.ndarray]]  # per representation, each kept file's (n_windows, 11) probabilities
    levels: list[np.ndarray]  # each kept file's (n_windows,) window levels in dB
    keep: list[int]  # the dataset positions of the kept (readable) files

    def file_scores(self, aggregation: str, quiet_db: float | None = None) -> dict[str, np.ndarray]:
        """(n_files, 11) scores per representation, as :func:`instrec.fusion.file_scores` gives them."""
        per_file = [file_scores({rep: files[i] for rep, files in self.probs.items()}, aggregation,
                                self.levels[i], quiet_db) for i in range(len(self.keep))]
        return {rep: np.stack([f[rep] for f in per_file]) for rep in self.probs}

    def under(self, fusion: Fusion) -> dict[str, np.ndarray]:
        """The (n_files, 11) scores per model that ``fusion`` decides on (its aggregation, its quiet windows)."""
        return self.file_scores(fusion.aggregation, fusion.quiet_db)


def window_probabilities(models: dict[str, Checkpoint], dataset: Dataset, cache_dir: Path, device: torch.device,
                         progress: bool = True) -> WindowScores:
    """Each readable file's (n_windows, 11) probabilities per representation and its window levels.

    Windows are computed with the feature parameters each model was trained on (the levels with the
    first model's, at its analysis rate)."""
    out, keep = {}, None
    for rep, ckpt in models.items():
        fs = load_features(dataset, rep, cache_dir, params=ckpt.params, progress=progress)
        probs = predict_windows(ckpt.model.to(device), fs.windows, device)
        slices = fs.file_slices()
        readable = [i for i, s in enumerate(slices) if s.stop > s.start]
        keep = readable if keep is None else sorted(set(keep) & set(readable))
        out[rep] = {i: probs[slices[i]] for i in readable}
    first = next(iter(models.values()))
    levels = load_features(dataset, LEVEL, cache_dir, params=first.params, progress=progress)
    level_slices = levels.file_slices()
    return WindowScores({rep: [d[i] for i in keep] for rep, d in out.items()},
                        [levels.windows[level_slices[i], 0].astype(np.float32) for i in keep], keep)


def validation_set(run_args: dict, validation: Path | None) -> tuple[Dataset, str]:
    if validation is not None:
        return read_any(validation), str(validation)
    data = Path(run_args["data"])
    sibling = data / "validation" if (data / "validation").is_dir() else data.parent / "validation"
    if sibling.is_dir() and any(sibling.glob("*.txt")):
        return read_any(sibling), str(sibling)
    held_out = split(read_training(training_root(data)), seed=run_args.get("seed", 0))[1]
    return held_out, f"{training_root(data)} (held-out 15 %)"


def tune(run: Path, validation: Path | None = None, *, cache_dir: Path | None = None, device: str | None = None,
         choose_from: tuple[str, ...] = CHOSEN_RULES, quiet_db: float | None = QUIET_DB, progress: bool = True) -> dict:
    """Tune every rule and aggregation on the validation set; keep the best of ``choose_from`` by micro F1.

    Every rule tried is written to ``thresholds.json`` (``all``) with its validation figures; only the
    rules of ``choose_from`` can be chosen (see :data:`CHOSEN_RULES`). Windows ``quiet_db`` under a
    file's loudest are left out of its scores, in tuning as in serving (:data:`QUIET_DB`)."""
    t0 = time.perf_counter()
    run = Path(run)
    dev = pick_device(device)
    models = load_run(run, REPRESENTATIONS)
    args = models["mel"].meta["training_args"]
    dataset, described = validation_set(args, validation)
    windows = window_probabilities(models, dataset, Path(cache_dir or run / "cache"), dev, progress)
    y = dataset.targets()[windows.keep]
    results: dict = {}
    for aggregation in AGGREGATIONS:
        scores = windows.file_scores(aggregation, quiet_db)
        for name, reps in CONFIGS.items():
            if not all(r in models for r in reps):
                continue
            for rule in rules_for(len(reps)):
                fusion = tune_fusion(scores, y, reps, rule, aggregation, quiet_db=quiet_db)
                metrics = evaluate(y, fusion.decide(scores), fusion.fused_score(scores))
                results.setdefault(name, []).append({"fusion": fusion.to_dict(), "validation": _headline(metrics)})
    best = {name: max([o for o in options if o["fusion"]["rule"] in choose_from] or options,  # one model: "and"
                      key=lambda o: o["validation"]["f1_micro"]) for name, options in results.items()}
    chosen = best["mel+modgd+cqt"] if "mel+modgd+cqt" in best else best[max(best, key=lambda k: len(k))]
    out = {"fusion": chosen["fusion"], "validation_data": described, "n_validation_files": len(y),
           "best_per_config": best, "all": results, "seconds": round(time.perf_counter() - t0, 1)}
    (run / "thresholds.json").write_text(json.dumps(out, indent=1))
    return out


def rule_list(text: str) -> tuple[str, ...]:
    """``and,vote``: fusion rules; argparse reports an unknown one."""
    rules = tuple(filter(None, text.split(",")))
    unknown = [r for r in rules if r not in RULES]
    if not rules or unknown:
        raise argparse.ArgumentTypeError(f"expected rules of {','.join(RULES)}, got {text!r}")
    return rules


def quiet_db_arg(text: str) -> float | None:
    """``--quiet-db``: a positive number of dB, or ``none`` (every window counts)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of dB or 'none', got {text!r}")
    return value


def _headline(m: dict) -> dict:
    return {k: round(v, 4) for k, v in m.items() if k != "per_instrument"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.thresholds", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/default"), help="folder with mel/, modgd/, cqt/ best.pt")
    ap.add_argument("--validation", type=Path, help="validation data (default: see above)")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--device")
    ap.add_argument("--choose-from", type=rule_list, default=",".join(CHOSEN_RULES), metavar="and,vote,mean",
                    help=f"the rules the fusion is chosen from (default {','.join(CHOSEN_RULES)}; all are tuned)")
    ap.add_argument("--quiet-db", type=quiet_db_arg, default=QUIET_DB, metavar="DB|none",
                    help=f"windows this many dB under a file's loudest are left out of its scores (default "
                         f"{QUIET_DB:g}); 'none' counts every window")
    args = ap.parse_args(argv)
    try:
        out = tune(args.run, args.validation, cache_dir=args.cache, device=args.device, choose_from=args.choose_from,
                   quiet_db=args.quiet_db)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"validation: {out['validation_data']} ({out['n_validation_files']} files)")
    for name, best in out["best_per_config"].items():
        f = best["fusion"]
        print(f"{name:<15} rule {f['rule']:<5} {f['aggregation']}  micro F1 {best['validation']['f1_micro']:.3f}  "
              f"macro F1 {best['validation']['f1_macro']:.3f}")
    print(f"chosen: {out['fusion']['rule']} / {out['fusion']['aggregation']} -> {args.run / 'thresholds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
