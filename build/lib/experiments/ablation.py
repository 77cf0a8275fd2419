"""Does an augmentation help? Train the mel CNN once per setting, same seed and data, and compare.

    python -m experiments.ablation --data data/synth-small --out runs/ablation \\
        [--settings none,crop,stretch,freqmask,mix,pitch,eq,crop+stretch] [--epochs 6] [--seeds 0,1,2]
        [--extra-train DIR]

For each setting and seed: best validation loss and validation micro F1 (held-out excerpts, top
class) during training, then thresholds tuned on the corpus's validation set and micro/macro F1 on its test set
(mel alone). ``--extra-train`` adds a training-layout folder (e.g. WaveGAN output) to every run, so
two invocations, with and without it, measure what that data does. Prints a Markdown table (mean
and standard deviation over the seeds) and writes ``<out>/ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.evaluate import run_evaluation
from training.thresholds import tune
from training.train import train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.ablation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a corpus root with train/, validation/ and test/")
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--settings", default="none,crop,stretch,freqmask,mix")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; each setting is trained once per seed")
    ap.add_argument("--extra-train", type=Path, action="append", default=[], metavar="DIR",
                    help="training-layout folder added to every run (e.g. generated audio)")
    args = ap.parse_args(argv)
    cache = args.out / "cache"
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for setting in args.settings.split(","):
        augment = () if setting == "none" else tuple(setting.split("+"))
        for seed in seeds:
            run = args.out / setting / f"seed{seed}"
            summary = train(args.data, "mel", run, epochs=args.epochs, patience=args.epochs, seed=seed,
                            augment=augment, extra_train=args.extra_train, cache_dir=cache, progress=False)
            tune(run, cache_dir=cache, progress=False)
            test = run_evaluation(run, args.data / "test", cache_dir=cache, progress=False)["configs"]["mel"]["test"]
            rows.append({"setting": setting, "seed": seed, "best_val_loss": summary["best_val_loss"],
                         "best_val_f1": max(h["val_f1_micro"] for h in summary["history"]),
                         "test_f1_micro": test["f1_micro"], "test_f1_macro": test["f1_macro"],
                         "n_train_windows": summary["n_train_windows"],
                         "seconds": sum(h["seconds"] for h in summary["history"])})
            print(json.dumps(rows[-1]), flush=True)
    (args.out / "ablation.json").write_text(json.dumps({"extra_train": [str(p) for p in args.extra_train],
                                                         "epochs": args.epochs, "runs": rows}, indent=1))
    print(table(rows))
    return 0


def table(rows: list[dict]) -> str:
    """Markdown table: one line per setting, mean (and standard deviation when several seeds)."""
    measures = ("best_val_loss", "best_val_f1", "test_f1_micro", "test_f1_macro")
    lines = ["| setting | runs | best val. loss | best val. micro F1 (held-out excerpts, top class) | test micro F1 | test macro F1 |",
             "|---|---|---|---|---|---|"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        cells = []
        for m in measures:
            v = np.array([r[m] for r in mine])
            cells.append(f"{v.mean():.3f}" + (f" ± {v.std(ddof=1):.3f}" if len(v) > 1 else ""))
        lines.append(f"| {setting} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
