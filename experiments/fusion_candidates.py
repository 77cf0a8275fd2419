"""Fusions of the CNNs and the musicnn head compared on the same window probabilities.

    python -m experiments.fusion_candidates --models runs/with-head --validation data/synth3/validation \\
        --test data/synth3/test --real-audio tests/data/real [--mixtures 80] [--mixture-seed 0] \\
        [--head-weight 0.4 ...] [--out candidates.json]

``--models`` are exported models whose fusion has the musicnn head (``training.retune --head``) and records
the CNNs' fusion before it (``fusion_tuning.previous_fusion``). Every file of the validation songs, the
test songs, the real clips (``labels.csv``) and ``--mixtures`` mixtures of those clips (``--mixture-seed``,
0 by default, as :func:`training.real_audio.mixtures` makes them) is asked once through the recognizer; each candidate
fusion is then tuned on the validation songs' window probabilities and scored on all four sets: micro F1
of its decisions, the share of files whose top class is one of theirs, and the real clips right first.
The candidates are the CNNs' own fusion (as it was, not tuned again), the CNNs' "mean" (S1, S2), the head
alone (S1), the CNNs' fusion with the head's own threshold added to its "and" (the CNNs' thresholds kept),
the "and" of mel, modgd and the head (S2), the four models' "mean" (S1, S2), and the four's mean with the
head weighted 0.4 and the CNNs 0.2 each (S1; ``--head-weight W``, repeatable, names other weights).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from experiments.pretrained_head import top_among_true
from instrec.fusion import Fusion
from instrec.labels import CODES
from instrec.recognizer import HEAD, Recognizer
from training.metrics import evaluate
from training.quantize import window_scores
from training.real_audio import mixtures, read_labels
from training.retune import head_weights, labelled_files
from training.thresholds import WindowScores, search_joint, tune_fusion

#: the head's weight in the weighted candidate (the three CNNs share the rest), unless --head-weight names others
HEAD_WEIGHTS = (0.4,)


def head_added(before: Fusion, scores: dict[str, np.ndarray], y: np.ndarray) -> Fusion:
    """``before`` ("and") with the head as one more model over its own thresholds, tuned with the CNNs' kept:
    the CNNs' decision enters the joint search as a 0/1 score that every threshold above 0 keeps as it is."""
    decided = before.decide({m: scores[m] for m in before.models}).astype(float)
    head = [search_joint([decided[:, c], scores[HEAD][:, c]], y[:, c], "and")[0][1] for c in range(len(CODES))]
    return Fusion((*before.models, HEAD), "and", before.aggregation, {**before.thresholds, HEAD: head}, before.quiet_db)


def candidates(before: Fusion, val: WindowScores, y: np.ndarray, weights: tuple[float, ...] = HEAD_WEIGHTS) -> dict:
    """Every candidate fusion, tuned on the validation songs' window probabilities ``val``."""
    cnns, quiet = before.models, before.quiet_db
    at = {agg: val.file_scores(agg, quiet) for agg in ("S1", "S2")}
    out = {"cnns_own": before}
    for agg in ("S1", "S2"):
        out[f"cnns_mean_{agg}"] = tune_fusion(at[agg], y, cnns, "mean", agg, quiet_db=quiet)
    out["head_alone_S1"] = tune_fusion(at["S1"], y, (HEAD,), "and", "S1", quiet_db=quiet)
    out["cnns_and_head_added"] = head_added(before, at[before.aggregation], y)
    out["and_mel_modgd_head_S2"] = tune_fusion(at["S2"], y, ("mel", "modgd", HEAD), "and", "S2", quiet_db=quiet)
    for agg in ("S1", "S2"):
        out[f"four_mean_{agg}"] = tune_fusion(at[agg], y, (*cnns, HEAD), "mean", agg, quiet_db=quiet)
    for w in weights:
        out[f"head_weighted_{w:g}_S1"] = tune_fusion(at["S1"], y, (*cnns, HEAD), "mean", "S1", quiet_db=quiet,
                                                     weights=head_weights((*cnns, HEAD), w))
    return out


def figures(fusion, scores: WindowScores, y: np.ndarray) -> dict:
    """Micro F1 of the fusion's decisions and the share of files whose top class is one of theirs."""
    fused = fusion.fused_score(scores.file_scores(fusion.aggregation, fusion.quiet_db))
    return {"f1_micro": round(evaluate(y, fused >= 0.5, fused)["f1_micro"], 4),
            "top_among_true": round(top_among_true(fused, y)["share"], 4)}


def run(models: Path, validation: Path, test: Path, real_audio: Path, n_mixtures: int = 80,
        weights: tuple[float, ...] = HEAD_WEIGHTS, mixture_seed: int = 0) -> dict:
    rec = Recognizer(models)
    previous = (rec.manifest.get("fusion_tuning") or {}).get("previous_fusion")
    if HEAD not in rec.fusion.models or not previous:
        raise ValueError(f"{models}: no musicnn head in the fusion, or no record of the CNNs' fusion before it "
                         "(models made by python -m training.retune --head have both)")
    before = Fusion.from_dict(previous)
    sets = {}
    for name, folder in (("validation", validation), ("test", test)):
        paths, y = labelled_files([Path(folder)])
        sets[name] = (window_scores(rec, paths, name), y)
    labelled = read_labels(real_audio)
    real_truth = np.array([CODES.index(code) for _, code in labelled])
    sets["real"] = (window_scores(rec, [p for p, _ in labelled], "real"), np.eye(len(CODES))[real_truth])
    probs: dict[str, list[np.ndarray]] = {m: [] for m in rec.fusion.models}
    levels, truth = [], []
    for name, labels, y in mixtures(Path(real_audio), n_mixtures, seed=mixture_seed, params=rec.params):
        prediction = rec.predict(y, rec.params.sample_rate, name=name)
        for m in probs:
            probs[m].append(prediction.window_probabilities[m])
        levels.append(prediction.window_levels)
        truth.append([c in labels for c in CODES])
    sets["mixtures"] = (WindowScores(probs, levels, list(range(len(truth)))), np.array(truth, int))
    result = {"models": str(models), "validation": str(validation), "test": str(test), "real_audio": str(real_audio),
              "n_mixtures": n_mixtures, "mixture_seed": mixture_seed, "candidates": {}}
    for key, fusion in candidates(before, *sets["validation"], weights).items():
        row = {name: figures(fusion, *sets[name]) for name in sets}
        real = sets["real"][0]
        row["real"]["right_first"] = int((fusion.fused_score(real.file_scores(fusion.aggregation, fusion.quiet_db))
                                          .argmax(axis=1) == real_truth).sum())
        result["candidates"][key] = row
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.fusion_candidates", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True, help="exported models with the musicnn head")
    ap.add_argument("--validation", type=Path, required=True, help="labelled songs every candidate is tuned on")
    ap.add_argument("--test", type=Path, required=True, help="labelled songs to score them on")
    ap.add_argument("--real-audio", type=Path, required=True, help="real clips with labels.csv")
    ap.add_argument("--mixtures", type=int, default=80, help="mixtures of the real clips (seed 0; default 80)")
    ap.add_argument("--mixture-seed", type=int, default=0, help="seed of the mixtures (default 0)")
    ap.add_argument("--head-weight", type=float, action="append", metavar="W",
                    help="the head's weight in a weighted candidate, the CNNs sharing the rest; repeatable "
                         f"(default {HEAD_WEIGHTS[0]:g})")
    ap.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = ap.parse_args(argv)
    try:
        result = run(args.models, args.validation, args.test, args.real_audio, args.mixtures,
                     tuple(args.head_weight or HEAD_WEIGHTS), args.mixture_seed)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, row in result["candidates"].items():
        print(f"{key:<24}" + "  ".join(f"{name} F1 {r['f1_micro']:.3f} top {r['top_among_true']:.3f}"
                                     for name, r in row.items()) + f"  real first {row['real']['right_first']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
