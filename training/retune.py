"""Thresholds of exported models tuned again, on other validation data; the models left as they are.

    python -m training.retune --models instrec/models --validation data/synth3-val/validation \\
        --out runs/retuned [--validation DIR ...] [--test data/synth3/test] [--real-audio tests/data/real] \\
        [--rule vote] [--min-threshold 0.1] [--quiet-db 30] [--aggregation S1] [--head runs/head [--head-weight 0.4]] \\
        [--head-stride 3]

The per-instrument thresholds of :mod:`training.thresholds` are tuned on the validation set a run
was trained beside: 150 files for the half-scale corpus, so that a few songs move a threshold (an
instrument present in 30 of them has its F1 decided by a handful). This tunes them again for the
exported models, through the recognizer as it serves them (decoding and features included), on
one or more validation folders (IRMAS testing layout: audio beside a ``.txt`` of labels), keeping
the models' window aggregation and their fusion rule unless ``--rule`` names another, with the same
search (:func:`training.thresholds.tune_fusion`). ``--min-threshold`` keeps every model's threshold at
or above a floor (rules "and" and "vote"), so that no model decides "present" for nearly every file.
``--quiet-db DB`` (or ``none``) sets how far under a file's loudest window a window is left out of its
scores (:func:`instrec.fusion.audible`); the models' own setting is kept without it; ``--aggregation``
likewise replaces the models' window aggregation (S1, S2).

``--head DIR`` (a folder written by :mod:`training.head`) adds the classifier on musicnn's embedding to
the fusion as a fourth model, ``musicnn`` (its ``head.onnx`` copied as ``musicnn.onnx``, what it was fitted
on recorded in the manifest), and tunes the fusion of all four: the "mean" rule, one threshold per
instrument on the mean of the four models' scores (the joint search of the per-model rules takes up to three).
``--head-weight W`` weighs the head W in that mean and each CNN (1 - W) / 3 (also for models that have the
head already); without it the four count the same, or as the models weighed them when they had the head.
``--head-stride S`` gives the head one musicnn patch per ``S`` one-second windows (1 to 3; each window
gets its group's probabilities, :class:`instrec.embedding.WindowPatches`), written in the manifest as
``models.musicnn.stride`` and tuned for; without it the models' own stride is kept (1 for a new head).
Old and new thresholds are then both scored on the new stride's probabilities.

``--out`` gets the ONNX models (copied, unchanged), a manifest with the new fusion and where it was
tuned (``fusion_tuning``), the model card with a section saying so, and ``report.json``: micro and
macro F1 of the old and the new thresholds on the validation data, on ``--test`` and the share of
decisions that changed, and on ``--real-audio`` the right instrument ranked first. ``Recognizer(out)``
and ``instrec --models out`` load it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from instrec.embedding import N_MELS, PATCH_FRAMES, WindowPatches
from instrec.fusion import AGGREGATIONS, PER_MODEL_RULES, RULES, Fusion
from instrec.labels import CODES
from instrec.recognizer import HEAD, Recognizer, load_manifest, sha256
from training.datasets import read_any
from training.metrics import evaluate
from training.quantize import window_scores
from training.real_audio import read_labels
from training.thresholds import WindowScores, quiet_db_arg, rules_for, tune_fusion

#: ``retune(quiet_db=KEEP)``: the models' own setting for quiet windows.
KEEP = "keep"
#: the head's file among the models
HEAD_FILE = f"{HEAD}.onnx"


def labelled_files(folders: list[Path]) -> tuple[list[Path], np.ndarray]:
    """Every labelled file of the folders, and its (N, 11) 0/1 targets."""
    paths, targets = [], []
    for folder in folders:
        dataset = read_any(folder)
        if len(dataset) == 0:
            raise ValueError(f"{folder} holds no labelled audio (audio files beside .txt files of label codes)")
        paths += [e.path for e in dataset]
        targets.append(dataset.targets())
    return paths, np.concatenate(targets)


def head_weights(models: tuple[str, ...], weight: float) -> dict[str, float]:
    """The "mean" rule's weights with the musicnn head at ``weight`` and the other models sharing the rest."""
    if HEAD not in models or len(models) < 2:
        raise ValueError(f"a head weight needs the {HEAD} head and at least one other model, not {list(models)}")
    if not 0.0 < weight < 1.0:
        raise ValueError(f"the head's weight must be between 0 and 1 (both left out), not {weight}")
    others = [m for m in models if m != HEAD]
    return {m: (weight if m == HEAD else (1 - weight) / len(others)) for m in models}


def measure(windows: WindowScores, y: np.ndarray, old: Fusion, new: Fusion) -> tuple[dict, dict]:
    """Both fusions on one set: micro and macro F1, per-instrument F1, the share of changed decisions; and
    every figure of :func:`training.metrics.evaluate` for the new fusion (as a manifest's ``test`` keeps them)."""
    out: dict = {"n_files": len(y)}
    decided = {}
    for name, fusion in (("old", old), ("new", new)):
        scores = windows.under(fusion)
        decided[name] = fusion.decide(scores)
        m = evaluate(y, decided[name], fusion.fused_score(scores))
        out[name] = {"f1_micro": round(m["f1_micro"], 4), "f1_macro": round(m["f1_macro"], 4),
                     "f1_per_instrument": {c: round(m["per_instrument"][c]["f1"], 4) for c in CODES}}
    out["decisions_changed"] = round(float(np.mean(decided["old"] != decided["new"])), 4)
    return out, {"n_files": len(y), **m}


def retune(models: Path, validation: list[Path], out: Path, test: Path | None = None,
           real_audio: Path | None = None, rule: str | None = None, min_threshold: float = 0.0,
           quiet_db: float | None | str = KEEP, aggregation: str | None = None, head: Path | None = None,
           head_weight: float | None = None, head_stride: int | None = None) -> dict:
    t0 = time.perf_counter()
    manifest = load_manifest(models)
    old = Fusion.from_dict(manifest["fusion"])
    quiet_db = old.quiet_db if quiet_db == KEEP else quiet_db
    aggregation = aggregation or old.aggregation
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")
    fused = old.models
    if head is not None:
        if HEAD in old.models:
            raise ValueError(f"{models} already has a {HEAD} head in its fusion")
        head_info = read_head(Path(head))
        fused = (*old.models, HEAD)
    if head_weight is not None and HEAD not in fused:
        raise ValueError(f"--head-weight weighs the {HEAD} head: give --head too, or models that have it")
    if head_stride is not None:
        if HEAD not in fused:
            raise ValueError(f"--head-stride is the {HEAD} head's: give --head too, or models that have it")
        WindowPatches.check_stride(head_stride)  # before anything is written
    old_stride = manifest["models"].get(HEAD, {}).get("stride", 1) if HEAD in old.models else None
    stride = head_stride or old_stride or 1
    rule = rule or (old.rule if old.rule in rules_for(len(fused)) else rules_for(len(fused))[0])
    if rule not in rules_for(len(fused)):
        raise ValueError(f"rule {rule!r} is not one for {len(fused)} models; "
                         f"expected one of {rules_for(len(fused))}")
    # the models' own weights stay when neither the models nor the rule change
    weights = (head_weights(fused, head_weight) if head_weight is not None
               else old.weights if (rule, fused) == (old.rule, old.models) else None)
    if weights is not None and rule != "mean":
        raise ValueError(f"a head weight is for the rule 'mean', not {rule!r}")
    if min_threshold and rule not in PER_MODEL_RULES:
        raise ValueError(f"a floor under the thresholds is for the rules {PER_MODEL_RULES}, not {rule!r}")
    if not 0.0 <= min_threshold <= 1.0:  # before the validation set is scored, not after
        raise ValueError(f"--min-threshold must be in [0, 1], got {min_threshold}")
    paths, y = labelled_files(validation)  # before anything is written or scored: a missing folder fails at once
    out.mkdir(parents=True, exist_ok=True)
    for rep in old.models:
        shutil.copy(models / manifest["models"][rep]["file"], out / manifest["models"][rep]["file"])
    tuned = json.loads(json.dumps(manifest))
    if head is not None:
        shutil.copy(Path(head) / "head.onnx", out / HEAD_FILE)
        tuned["models"][HEAD] = {"file": HEAD_FILE, "sha256": sha256(out / HEAD_FILE),
                                 "bytes": (out / HEAD_FILE).stat().st_size, "input": "mel:0",
                                 "output": "probabilities", "input_shape": [None, PATCH_FRAMES, N_MELS],
                                 "training": head_info}
    if HEAD in fused:
        tuned["models"][HEAD]["stride"] = stride
    # the models with every threshold of the new set at 0, so the recognizer scores all of them
    tuned["fusion"] = Fusion(fused, "mean", aggregation, {"mean": [0.0] * len(CODES)}, quiet_db).to_dict()
    (out / "manifest.json").write_text(json.dumps(tuned, indent=1))
    rec = Recognizer(out)
    val = window_scores(rec, paths, "validation")
    new = tune_fusion(val.file_scores(aggregation, quiet_db), y, fused, rule, aggregation, min_threshold, quiet_db,
                      weights)
    report = {"models": str(models), "validation": [str(v) for v in validation], "rule": rule,
              "previous_rule": old.rule, "min_threshold": min_threshold, "quiet_db": quiet_db,
              "previous_quiet_db": old.quiet_db, "aggregation": aggregation, "previous_aggregation": old.aggregation,
              "models_fused": list(fused), "previous_models": list(old.models), "weights": new.weights,
              "head_stride": stride if HEAD in fused else None, "previous_head_stride": old_stride,
              "on_validation": measure(val, y, old, new)[0]}
    if test is not None:
        t_paths, t_y = labelled_files([test])
        report["on_test"], served = measure(window_scores(rec, t_paths, "test"), t_y, old, new)
        # the new fusion's test figures beside the evaluation's, when they are of the same test set
        tuned["test"] = tuned.get("test") or {"data": str(test), "n_files": len(t_y), "metrics": {}}
        if tuned["test"].get("data") == str(test):
            tuned["test"]["metrics"]["+".join(new.models)] = served
    if real_audio is not None:
        labelled = read_labels(real_audio)
        truth = np.array([CODES.index(code) for _, code in labelled])
        real = window_scores(rec, [p for p, _ in labelled], "real")
        report["on_real"] = {"n_files": len(truth),
                             **{f"top1_{name}": int((f.fused_score(real.under(f)).argmax(1) == truth).sum())
                                for name, f in (("old", old), ("new", new))}}

    tuned["fusion"] = new.to_dict()
    tuned["fusion_tuning"] = {"by": "python -m training.retune", "validation": report["validation"],
                              "n_validation_files": len(y), "min_threshold": min_threshold, "quiet_db": quiet_db,
                              "previous_fusion": old.to_dict(), "card": card_section(report, len(y)),
                              "command": command(models, validation, out, rule, min_threshold, quiet_db, aggregation,
                                                 head, head_weight, stride if HEAD in fused else None)}
    (out / "manifest.json").write_text(json.dumps(tuned, indent=1))
    card = (models / "MODEL_CARD.md").read_text() if (models / "MODEL_CARD.md").exists() else ""
    (out / "MODEL_CARD.md").write_text(card + tuned["fusion_tuning"]["card"])
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def read_head(folder: Path) -> dict:
    """What :mod:`training.head` wrote in ``folder`` (``head.json``), checked against its ``head.onnx``."""
    onnx_path, info_path = folder / "head.onnx", folder / "head.json"
    if not onnx_path.is_file() or not info_path.is_file():
        raise ValueError(f"{folder}: no head.onnx and head.json (python -m training.head --out {folder} writes them)")
    info = json.loads(info_path.read_text())
    if info.get("sha256") != sha256(onnx_path):
        raise ValueError(f"{onnx_path}: its sha256 is not the one head.json records; fit and export the head again")
    return info


def command(models: Path, validation: list[Path], out: Path, rule: str, min_threshold: float, quiet_db: float | None,
            aggregation: str, head: Path | None, head_weight: float | None = None,
            head_stride: int | None = None) -> str:
    """The command line that tunes the same fusion again (for the model card)."""
    words = ["python -m training.retune --models", str(models), *(f"--validation {v}" for v in validation),
             f"--rule {rule} --aggregation {aggregation}", f"--quiet-db {'none' if quiet_db is None else format(quiet_db, 'g')}"]
    words += [f"--min-threshold {min_threshold:g}"] if min_threshold else []
    words += [f"--head {head}"] if head is not None else []
    words += [f"--head-weight {head_weight:g}"] if head_weight is not None else []
    words += [f"--head-stride {head_stride}"] if head_stride is not None else []
    return " ".join([*words, f"--out {out}"])


def card_section(report: dict, n: int) -> str:
    lines = ["", "## Thresholds tuned again", "",
             f"The thresholds in `manifest.json` were tuned again by `python -m training.retune` on {n} files "
             f"({', '.join(report['validation'])}), the models' weights unchanged; {_rule_change(report)}. "
             "Micro F1, old thresholds -> new:", ""]
    for key, what in (("on_validation", "validation"), ("on_test", "test")):
        if key in report:
            r = report[key]
            lines.append(f"- {what} ({r['n_files']} files): {r['old']['f1_micro']:.3f} -> {r['new']['f1_micro']:.3f}")
    if "on_real" in report:
        r = report["on_real"]
        lines.append(f"- real recordings, right instrument first: {r['top1_old']} -> {r['top1_new']} of {r['n_files']}")
    return "\n".join(lines) + "\n"


def _rule_change(report: dict) -> str:
    change = ""
    added = [m for m in report.get("models_fused", []) if m not in report.get("previous_models", [])]
    if added:
        change = f"{', '.join(added)} added to the fusion (now {' + '.join(report['models_fused'])}), "
    change += (f"rule {report['rule']} kept" if report["rule"] == report["previous_rule"]
               else f"rule {report['previous_rule']} replaced by {report['rule']}")
    if report.get("weights"):
        change += ", the mean weighing " + ", ".join(f"{m} {w:.3g}" for m, w in report["weights"].items())
    stride, before = report.get("head_stride"), report.get("previous_head_stride")
    if stride is not None and stride != before:
        change += (f", the {HEAD} head hearing one patch per {stride} windows" if stride > 1
                   else f", the {HEAD} head hearing a patch per window")
        change += f" (before: {'one per window' if before == 1 else f'one per {before}'})" if before else ""
    floor = report.get("min_threshold", 0.0)
    change += f", no threshold under {floor:g}" if floor else ""
    if report.get("quiet_db", None) != report.get("previous_quiet_db", None):
        quiet = report["quiet_db"]
        change += (f", windows more than {quiet:g} dB under a file's loudest left out of its scores" if quiet is not None
                   else ", every window counted")
    previous = report.get("previous_aggregation", report["aggregation"])
    change += (f", aggregation {report['aggregation']} kept" if report["aggregation"] == previous
               else f", aggregation {previous} replaced by {report['aggregation']}")
    return change


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.retune", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True, help="exported models (folder with manifest.json)")
    ap.add_argument("--validation", type=Path, action="append", required=True, metavar="DIR",
                    help="labelled audio to tune on (testing layout); repeatable")
    ap.add_argument("--out", type=Path, required=True, help="where the models with the new thresholds go")
    ap.add_argument("--test", type=Path, help="labelled audio to compare the old and new thresholds on")
    ap.add_argument("--real-audio", type=Path, help="folder of real recordings with labels.csv")
    ap.add_argument("--rule", choices=RULES, help="tune this fusion rule instead of the models' own")
    ap.add_argument("--min-threshold", type=float, default=0.0, metavar="T",
                    help="no model's threshold under T (rules and, vote; default 0: the whole grid)")
    ap.add_argument("--aggregation", choices=AGGREGATIONS, help="window aggregation (default: the models' own)")
    ap.add_argument("--head", type=Path, metavar="DIR",
                    help=f"add the classifier on musicnn's embedding that python -m training.head wrote in DIR, as "
                         f"the fusion's model {HEAD!r}")
    ap.add_argument("--head-weight", type=float, metavar="W",
                    help="the musicnn head's weight in the mean (with --head, or models that have it), the CNNs "
                         "sharing the rest equally (default: the models' own weights, else every model the same)")
    ap.add_argument("--head-stride", type=int, metavar="S",
                    help="one musicnn patch per S one-second windows, 1 to 3 (default: the models' own, 1 for a "
                         "new head)")
    ap.add_argument("--quiet-db", type=quiet_db_arg, default=argparse.SUPPRESS, metavar="DB|none",
                    help="windows this many dB under a file's loudest are left out of its scores ('none': every "
                         "window counts; default: the models' own setting)")
    args = ap.parse_args(argv)
    if args.out.resolve() == args.models.resolve():
        ap.error("--out must be another folder than --models (the old thresholds are compared with the new)")
    try:
        report = retune(args.models, args.validation, args.out, args.test, args.real_audio, args.rule,
                        args.min_threshold, getattr(args, "quiet_db", KEEP), args.aggregation, args.head,
                        args.head_weight, args.head_stride)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key in ("on_validation", "on_test"):
        if key in report:
            r = report[key]
            print(f"{key[3:]:<11}{r['n_files']:>5} files  micro F1 {r['old']['f1_micro']:.3f} -> {r['new']['f1_micro']:.3f}"
                  f"  macro F1 {r['old']['f1_macro']:.3f} -> {r['new']['f1_macro']:.3f}  "
                  f"decisions changed {r['decisions_changed']:.2%}")
    if "on_real" in report:
        r = report["on_real"]
        print(f"real: right instrument first {r['top1_old']} -> {r['top1_new']} of {r['n_files']}")
    print(f"{_rule_change(report)} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
