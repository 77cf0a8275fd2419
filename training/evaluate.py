"""Evaluate trained models with tuned thresholds on an IRMAS testing-layout folder.

    python -m training.evaluate --run runs/default --data DIR [--out runs/default/eval]

For mel alone, mel + modgd and all three (each with the rule and aggregation its validation
chose): accuracy over 11 x N decisions, precision, recall, micro and macro F1 and LRAP (the
seed's Table 8), per-instrument accuracy and F1 (Tables 9, 10). Figures: validation-loss curves
(Figure 5), F1 against each model's threshold for one instrument (Figure 6), instruments per
file (Figure 8), per-instrument accuracy and F1 bars (Figures 9, 10). Writes ``report.md``,
``metrics.json`` and the PNGs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from instrec.fusion import Fusion
from instrec.labels import CODES, NAMES
from instrec.params import REPRESENTATIONS
from training.checkpoints import load_run, pick_device
from training.datasets import read_any
from training.metrics import evaluate
from training.thresholds import GRID, WindowScores, window_probabilities


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_evaluation(run: Path, data: Path, out: Path | None = None, *, instrument: str = "voi",
                   cache_dir: Path | None = None, device: str | None = None, progress: bool = True) -> dict:
    run = Path(run)
    out = Path(out or run / "eval")
    out.mkdir(parents=True, exist_ok=True)
    tuned_path = run / "thresholds.json"
    if not tuned_path.exists():
        raise FileNotFoundError(f"{tuned_path} not found: tune first (python -m training.thresholds --run {run})")
    tuned = json.loads(tuned_path.read_text())
    models = load_run(run, REPRESENTATIONS)
    dataset = read_any(data)
    windows = window_probabilities(models, dataset, Path(cache_dir or run / "cache"), pick_device(device), progress)
    keep = windows.keep
    y = dataset.targets()[keep]
    results = {}
    for name, best in tuned["best_per_config"].items():
        fusion = Fusion.from_dict(best["fusion"])
        scores = windows.under(fusion)
        metrics = evaluate(y, fusion.decide(scores), fusion.fused_score(scores))
        results[name] = {"fusion": best["fusion"], "validation": best["validation"], "test": metrics}
    summary = {"data": str(data), "n_files": len(keep), "n_unreadable": len(dataset) - len(keep),
               "validation_data": tuned["validation_data"], "configs": results}
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    figures(run, out, y, windows, Fusion.from_dict(tuned["fusion"]).quiet_db, results, instrument)
    (out / "report.md").write_text(report(summary, instrument))
    return summary


def figures(run: Path, out: Path, y: np.ndarray, windows: WindowScores, quiet_db: float | None, results: dict,
            instrument: str) -> None:
    plt = _plt()
    # Figure 5: validation loss of each model
    fig, ax = plt.subplots(figsize=(6, 4))
    for rep in ("mel", "modgd", "cqt"):
        hist = run / rep / "history.json"
        if hist.exists():
            h = json.loads(hist.read_text())["history"]
            ax.plot([r["epoch"] for r in h], [r["val_loss"] for r in h], label=rep)
    ax.set(xlabel="epoch", ylabel="validation loss", title="Validation loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fig5_validation_loss.png", dpi=100)
    plt.close(fig)
    # Figure 6: F1 against each model's threshold for one instrument
    c = CODES.index(instrument)
    scores = windows.file_scores("S1", quiet_db)
    fig, ax = plt.subplots(figsize=(6, 4))
    for rep, s in scores.items():
        pred = s[:, c][None, :] >= GRID[:, None]
        tp = (pred & (y[:, c] > 0)).sum(1)
        f1 = 2 * tp / np.maximum(pred.sum(1) + y[:, c].sum(), 1)
        ax.plot(GRID, f1, label=rep)
    ax.set(xlabel="threshold", ylabel="F1", title=f"F1 against threshold: {NAMES[instrument]} (S1, this test set)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fig6_f1_vs_threshold.png", dpi=100)
    plt.close(fig)
    # Figure 8: instruments per file
    fig, ax = plt.subplots(figsize=(5, 3.5))
    counts = y.sum(1).astype(int)
    ax.bar(*np.unique(counts, return_counts=True))
    ax.set(xlabel="instruments in the file", ylabel="files", title="Instruments per file")
    fig.tight_layout()
    fig.savefig(out / "fig8_instruments_per_file.png", dpi=100)
    plt.close(fig)
    # Figures 9 and 10: per-instrument accuracy and F1
    for key, fname in (("accuracy", "fig9_accuracy.png"), ("f1", "fig10_f1.png")):
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.8 / len(results)
        for k, (name, r) in enumerate(results.items()):
            vals = [r["test"]["per_instrument"][code][key] for code in CODES]
            ax.bar(np.arange(len(CODES)) + k * width, vals, width, label=name)
        ax.set_xticks(np.arange(len(CODES)) + width * (len(results) - 1) / 2, CODES)
        ax.set(ylabel=key, ylim=(0, 1), title=f"Per-instrument {key}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)


def report(summary: dict, instrument: str) -> str:
    configs = summary["configs"]
    lines = [
        "# Evaluation report", "",
        f"Test data: `{summary['data']}`, {summary['n_files']} files"
        + (f" ({summary['n_unreadable']} unreadable, left out)" if summary["n_unreadable"] else "") + ".",
        f"Thresholds, fusion rule and aggregation were tuned on `{summary['validation_data']}`, "
        "never on this test set.", "",
        "## Overall (seed Table 8)", "",
        "| models | rule | agg. | accuracy | precision (micro) | recall (micro) | F1 micro | F1 macro | LRAP | val. F1 micro |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in configs.items():
        t, f = r["test"], r["fusion"]
        lines.append(f"| {name} | {f['rule']} | {f['aggregation']} | {t['accuracy']:.3f} | {t['precision_micro']:.3f} | "
                     f"{t['recall_micro']:.3f} | {t['f1_micro']:.3f} | {t['f1_macro']:.3f} | {t.get('lrap', 0):.3f} | "
                     f"{r['validation']['f1_micro']:.3f} |")
    for key, table in (("accuracy", "Table 9"), ("f1", "Table 10")):
        lines += ["", f"## Per-instrument {key} (seed {table})", "",
                  "| instrument | " + " | ".join(configs) + " |", "|---|" + "---|" * len(configs)]
        for code in CODES:
            lines.append(f"| {code} ({NAMES[code]}) | "
                         + " | ".join(f"{r['test']['per_instrument'][code][key]:.3f}" for r in configs.values()) + " |")
    lines += ["", "## Figures", "",
              "![validation loss](fig5_validation_loss.png)", f"![F1 against threshold, {instrument}](fig6_f1_vs_threshold.png)",
              "![instruments per file](fig8_instruments_per_file.png)", "![accuracy](fig9_accuracy.png)",
              "![F1](fig10_f1.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/default"))
    ap.add_argument("--data", type=Path, required=True, help="IRMAS testing layout (wav + txt)")
    ap.add_argument("--out", type=Path, help="report folder (default <run>/eval)")
    ap.add_argument("--instrument", default="voi", choices=CODES, help="instrument of Figure 6")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--device")
    args = ap.parse_args(argv)
    try:
        summary = run_evaluation(args.run, args.data, args.out, instrument=args.instrument, cache_dir=args.cache,
                                 device=args.device)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, r in summary["configs"].items():
        t = r["test"]
        print(f"{name:<15} accuracy {t['accuracy']:.3f}  F1 micro {t['f1_micro']:.3f}  macro {t['f1_macro']:.3f}")
    print(f"report: {args.out or args.run / 'eval'}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
