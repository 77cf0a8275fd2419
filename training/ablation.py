"""Does an augmentation help? Train the mel CNN once per setting, same seed and data, and compare.

    python -m training.ablation --data data/synth-small --out runs/ablation \\
        [--settings none,crop,stretch,freqmask,mix] [--epochs 6]

For each setting: best validation loss and window-level validation micro F1 during training, then
thresholds tuned on the corpus's validation set and micro/macro F1 on its test set (mel alone).
Prints a Markdown table and writes ``<out>/ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.evaluate import run_evaluation
from training.thresholds import tune
from training.train import train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.ablation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a corpus root with train/, validation/ and test/")
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--settings", default="none,crop,stretch,freqmask,mix")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cache = args.out / "cache"
    rows = []
    for setting in args.settings.split(","):
        augment = () if setting == "none" else tuple(setting.split("+"))
        run = args.out / setting
        summary = train(args.data, "mel", run, epochs=args.epochs, patience=args.epochs, seed=args.seed,
                        augment=augment, cache_dir=cache, progress=False)
        tune(run, cache_dir=cache, progress=False)
        test = run_evaluation(run, args.data / "test", cache_dir=cache, progress=False)["configs"]["mel"]["test"]
        rows.append({"setting": setting, "best_val_loss": summary["best_val_loss"],
                     "best_val_f1": max(h["val_f1_micro"] for h in summary["history"]),
                     "test_f1_micro": test["f1_micro"], "test_f1_macro": test["f1_macro"],
                     "seconds": sum(h["seconds"] for h in summary["history"])})
        print(json.dumps(rows[-1]), flush=True)
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=1))
    print("| augmentation | best val. loss | best val. micro F1 (windows, top-1) | test micro F1 | test macro F1 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['best_val_loss']:.3f} | {r['best_val_f1']:.3f} | {r['test_f1_micro']:.3f} | "
              f"{r['test_f1_macro']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
