"""How exported models do on real recordings: does the right instrument rank first?

    python -m training.real_audio --data tests/data/real [--models DIR]
    python -m training.real_audio --checkpoint runs/X/mel/best.pt [...] --data tests/data/real
                                  [--lowpass 4000] [--mean]

``--data`` holds audio files and a ``labels.csv`` with columns ``file`` and ``label`` (an IRMAS
code), or is an IRMAS training-layout folder (each file labelled by its class folder). Chance is
1 in 11. ``--checkpoint`` scores trained PyTorch models one by one, before any export: the mean of
their window probabilities (S1), top class against the label; ``--lowpass`` first filters every
clip (6th-order Butterworth), to see what a model makes of the clips without their high band;
``--mean`` also scores the mean of the checkpoints' clip scores, e.g. of training seeds as an ensemble.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

from instrec.labels import CODES, index_of
from instrec.recognizer import MODELS_DIR, Recognizer


def check_real_audio(models: Path, data: Path) -> dict:
    rec = Recognizer(models)
    clips = []
    for path, truth in read_labels(data):
        pred = rec.predict(path)
        ranked = sorted(CODES, key=lambda c: -pred.scores[c])
        per_model = {rep: max(CODES, key=lambda c: s[c]) for rep, s in pred.models.items()}
        clips.append({"file": path.name, "label": truth, "top": ranked[0], "rank": ranked.index(truth) + 1,
                      "score": pred.scores[truth], "present": pred.instruments, "top_per_model": per_model})
    n = len(clips)
    correct = sum(c["top"] == c["label"] for c in clips)
    by_model = {rep: sum(c["top_per_model"][rep] == c["label"] for c in clips) / n for rep in clips[0]["top_per_model"]}
    by_label = {}
    for c in clips:
        d = by_label.setdefault(c["label"], [0, 0])
        d[0] += c["top"] == c["label"]
        d[1] += 1
    return {"n": n, "top1_correct": correct, "top1_share": correct / n if n else 0.0,
            "top1_share_per_model": by_model, "per_label": {k: {"correct": a, "n": b} for k, (a, b) in by_label.items()},
            "clips": clips}


def read_labels(data: Path) -> list[tuple[Path, str]]:
    """(path, IRMAS code) of each clip: from ``labels.csv``, or from a training-layout folder."""
    labels_file = Path(data) / "labels.csv"
    if not labels_file.exists() and any((Path(data) / c).is_dir() for c in CODES):
        from training.datasets import read_training

        return [(e.path, e.labels[0]) for e in read_training(data)]
    if not labels_file.exists():
        raise FileNotFoundError(f"{labels_file} not found (columns: file,label)")
    return [(Path(data) / row["file"], CODES[index_of(row["label"])]) for row in csv.DictReader(labels_file.open())]


def lowpass(y, hz: float | None, sample_rate: int):
    """``y`` through a 6th-order Butterworth low-pass; unchanged for None."""
    if hz is None:
        return y
    import numpy as np
    import scipy.signal

    sos = scipy.signal.butter(6, hz, fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos, y).astype(np.float32)


def check_checkpoints(checkpoints: list[Path], data: Path, lowpass_hz: float | None = None,
                      mean: bool = False) -> dict:
    """Top-1 share of each checkpoint on the labelled clips in ``data`` (low-passed when asked); with
    ``mean`` also of the mean of the checkpoints' clip scores (an ensemble, e.g. of training seeds),
    under the key ``"mean"``. Each result keeps every clip's 11 scores (``scores``)."""
    import numpy as np
    import torch

    from instrec import audio, features
    from training.checkpoints import load_checkpoint, predict_windows

    clips = read_labels(data)
    labels = [label for _, label in clips]
    scores = {}
    for c in checkpoints:
        ckpt = load_checkpoint(c)
        model, params = ckpt.model, ckpt.params
        rows = []
        for path, _ in clips:
            y = lowpass(audio.load(path, params=params), lowpass_hz, params.sample_rate)
            windows = features.extract(y, params=params, representations=(model.representation,))[model.representation]
            rows.append(predict_windows(model, windows, torch.device("cpu")).mean(0))
        scores[str(c)] = np.array(rows)
    if mean and len(checkpoints) > 1:
        scores["mean"] = np.mean(list(scores.values()), axis=0)
    result = {}
    for name, clip_scores in scores.items():
        top = [CODES[int(i)] for i in clip_scores.argmax(1)]
        hits = np.array([t == label for t, label in zip(top, labels)])
        per_label = {lab: {"correct": int(hits[[x == lab for x in labels]].sum()), "n": labels.count(lab),
                           "heard_as": dict(Counter(t for t, x in zip(top, labels) if x == lab).most_common())}
                     for lab in sorted(set(labels))}
        files = [p.name for p, _ in clips]
        result[name] = {"n": len(clips), "top1_correct": int(hits.sum()), "top1_share": float(hits.mean()),
                        "per_label": per_label, "top": dict(zip(files, top)),
                        "scores": {f: [round(float(v), 6) for v in row] for f, row in zip(files, clip_scores)}}
    return result


def record(models: Path, data: Path, result: dict) -> None:
    """Store the headline of a real-recording check in the models' manifest (``real_audio``)."""
    path = Path(models) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["real_audio"] = {"data": Path(data).name, "n_files": result["n"], "top1_correct": result["top1_correct"],
                              "per_label": result["per_label"],
                              "top1_share_per_model": {k: round(v, 4) for k, v in result["top1_share_per_model"].items()}}
    path.write_text(json.dumps(manifest, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.real_audio", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, action="append", default=[],
                    help="score this PyTorch checkpoint instead of the exported models (repeatable)")
    ap.add_argument("--lowpass", type=float, metavar="HZ", help="with --checkpoint: low-pass every clip first")
    ap.add_argument("--mean", action="store_true",
                    help="with several --checkpoint: also score the mean of their clip scores (an ensemble)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--record", action="store_true", help="write the result into the models' manifest.json "
                    "(as real_audio: the app's model line quotes it)")
    args = ap.parse_args(argv)
    if args.checkpoint:
        result = check_checkpoints(args.checkpoint, args.data, args.lowpass, args.mean)
        if args.json:
            print(json.dumps(result, indent=1))
            return 0
        for name, r in result.items():
            labels = ", ".join(f"{k} {v['correct']}/{v['n']}" for k, v in r["per_label"].items())
            print(f"{name}: right instrument first {r['top1_correct']}/{r['n']} ({r['top1_share']:.0%}); {labels}")
        return 0
    result = check_real_audio(args.models, args.data)
    if args.record:
        record(args.models, args.data, result)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for c in result["clips"]:
        print(f"{c['file']:<42} {c['label']}  top {c['top']}  rank of truth {c['rank']:2d}  score {c['score']:.2f}")
    print(f"right instrument first: {result['top1_correct']}/{result['n']} ({result['top1_share']:.0%}); "
          + ", ".join(f"{k} alone {v:.0%}" for k, v in result["top1_share_per_model"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
