"""How exported models do on real recordings: does the right instrument rank first?

    python -m training.real_audio --models onnx_models --data ../shared/real-audio

``--data`` holds audio files and a ``labels.csv`` with columns ``file`` and ``label`` (an IRMAS
code). Chance is 1 in 11.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from instrec.labels import CODES, index_of
from instrec.recognizer import Recognizer


def check_real_audio(models: Path, data: Path) -> dict:
    rec = Recognizer(models)
    labels_file = Path(data) / "labels.csv"
    if not labels_file.exists():
        raise FileNotFoundError(f"{labels_file} not found (columns: file,label)")
    rows = list(csv.DictReader(labels_file.open()))
    clips = []
    for row in rows:
        truth = CODES[index_of(row["label"])]
        pred = rec.predict(Path(data) / row["file"])
        ranked = sorted(CODES, key=lambda c: -pred.scores[c])
        per_model = {rep: max(CODES, key=lambda c: s[c]) for rep, s in pred.models.items()}
        clips.append({"file": row["file"], "label": truth, "top": ranked[0], "rank": ranked.index(truth) + 1,
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.real_audio", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("onnx_models"))
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = check_real_audio(args.models, args.data)
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
