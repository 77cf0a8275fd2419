"""The musicnn head served as the fusion's fourth model, checked on sources never heard.

    python -m experiments.served_head --split runs/lolo-clip --validation data/synth3/validation \\
        [--cache runs/cache/musicnn] [--head-weight 0.4 ...] [--c 0.01] [--tagger MODEL.onnx ...] [--head-stride 3] \\
        [--head-extra data/singer-notes] [--out served.json]

``--split`` is a folder written by :mod:`experiments.leave_one_out` with ``--representation fused`` (its
CNNs exported in ``<split>/onnx``). The head is fitted on the split's ``train`` excerpts (and on the
``train`` folders of the corpora ``--head-extra`` names, which must play none of the held-out sources)
(:mod:`training.head`, into ``<split>/head``; on the musicnn models ``--tagger`` names, side by side, the
shipped MagnaTagATune model by default) and added to the split's CNNs by :mod:`training.retune`
(``--head``, rule "mean", aggregation S1, into ``<split>/with-head``; with ``--head-stride S``, one patch
per ``S`` windows, into ``<split>/with-head-sS``), as the shipped models were made.
Then every held-out file (``held``: songs, ``held-notes``: single notes) is asked through that recognizer,
and its window probabilities are decided on by each fusion: the split's own (the CNNs' "and", tuned on
the split's training songs), the CNNs' "and" and "mean" (S1) tuned on ``--validation``, the head alone
(S1), and the four models' mean (each ``--head-weight`` adds one with the head weighted so). Every tuned fusion is tuned on the same ``--validation`` files, so the
rows differ only in their models and rule. Each figure is the share of files whose true class comes
first, per class and its mean over classes (:func:`experiments.pretrained_head.first_right`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from corpus.subset import training_records
from experiments.leave_one_out import held_lead
from experiments.pretrained_head import CHECKED, first_right
from instrec.embedding import MODEL
from instrec.fusion import Fusion
from instrec.labels import CODES
from instrec.recognizer import HEAD, Recognizer, load_manifest
from training import head, retune
from training.quantize import window_scores
from training.real_audio import read_labels
from training.thresholds import tune_fusion


def folder_suffix(c: float, taggers: tuple[Path, ...]) -> str:
    """What names the head's and the recognizer's folders in the split apart from the default head's: the
    regularisation, and the taggers' file names when they are not the shipped MagnaTagATune model alone."""
    suffix = "" if c == head.C else f"-c{c:g}"
    return suffix if tuple(map(Path, taggers)) == (MODEL,) else suffix + "-" + "+".join(Path(t).stem for t in taggers)


def extra_training(split: Path, corpora: tuple[Path, ...]) -> list[Path]:
    """The ``train`` folders of ``corpora`` (rendered by :mod:`corpus.synth` or :mod:`corpus.notes`), refused
    when one plays a source that the split holds out of its class: the check would then hear it."""
    if not corpora:
        return []
    plan = Path(split) / "leave_one_out.json"
    if not plan.is_file():
        raise ValueError(f"{plan} not found: which sources the split holds out is not known")
    held_out = json.loads(plan.read_text())["held_out"]
    folders = []
    for corpus in map(Path, corpora):
        _, records = training_records(corpus)
        held = next(filter(None, (held_lead(r, held_out) for r in records)), None)
        if held:
            raise ValueError(f"{corpus}: plays {held[1]}, which {split} holds out of {held[0]}")
        folders.append(corpus / "train")
    return folders


def run(split: Path, validation: Path, cache: Path | None = None, weights: tuple[float, ...] = (),
        c: float = head.C, taggers: tuple[Path, ...] = (MODEL,), head_stride: int = 1,
        head_extra: tuple[Path, ...] = ()) -> dict:
    split = Path(split)
    checked = [name for name in CHECKED if (split / name).is_dir()]
    if not checked or not (split / "onnx" / "manifest.json").exists():
        raise ValueError(f"{split}: no held-out folder or no exported CNNs (<split>/onnx); "
                         "run experiments.leave_one_out --representation fused first")
    extra = extra_training(split, head_extra)
    suffix = folder_suffix(c, taggers) + "".join(f"-plus-{Path(e).name}" for e in head_extra)
    head.export([split / "train", *extra], split / f"head{suffix}", c=c, cache=cache, taggers=tuple(taggers))
    with_head = split / (f"with-head{suffix}" + (f"-s{head_stride}" if head_stride != 1 else ""))
    retune.retune(split / "onnx", [Path(validation)], with_head, rule="mean", aggregation="S1",
                  head=split / f"head{suffix}", head_stride=head_stride)
    own = Fusion.from_dict(load_manifest(split / "onnx")["fusion"])
    four = Fusion.from_dict(load_manifest(with_head)["fusion"])
    rec = Recognizer(with_head)
    paths, y = retune.labelled_files([Path(validation)])
    val = window_scores(rec, paths, "validation")
    s1 = val.file_scores("S1", own.quiet_db)
    fusions = {"own": own,
               "cnns_and": tune_fusion(val.under(own), y, own.models, "and", own.aggregation, quiet_db=own.quiet_db),
               "cnns_mean": tune_fusion(s1, y, own.models, "mean", "S1", quiet_db=own.quiet_db),
               "four_mean": four,
               **{f"four_mean_head_{w:g}": tune_fusion(s1, y, four.models, "mean", "S1", quiet_db=own.quiet_db,
                                                       weights=retune.head_weights(four.models, w))
                  for w in weights}}
    result: dict = {"split": str(split), "validation": str(validation), "c": c, "head_stride": head_stride,
                    "head_extra": [str(e) for e in head_extra],
                    "taggers": [Path(t).name for t in taggers], "fusions": {k: f.to_dict() for k, f in fusions.items()}}
    for name in checked:
        labelled = read_labels(split / name)
        truth = np.array([CODES.index(code) for _, code in labelled])
        scores = window_scores(rec, [p for p, _ in labelled], name)
        result[name] = {key: first_right(f.fused_score(scores.under(f)), truth) for key, f in fusions.items()}
        result[name]["head_alone"] = first_right(scores.file_scores("S1", own.quiet_db)[HEAD], truth)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.served_head", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", type=Path, required=True, help="a leave_one_out folder, with its CNNs in <split>/onnx")
    ap.add_argument("--validation", type=Path, required=True, help="labelled songs every fusion is tuned on")
    ap.add_argument("--cache", type=Path, help="keep each training file's musicnn embedding here")
    ap.add_argument("--head-weight", type=float, action="append", default=[], metavar="W",
                    help="also the four models' mean with the head weighted W (the CNNs sharing the rest); repeatable")
    ap.add_argument("--c", type=float, default=head.C,
                    help=f"the head's inverse regularisation (default {head.C:g}; another writes <split>/head-cC "
                         "and <split>/with-head-cC)")
    ap.add_argument("--tagger", type=Path, action="append", default=[],
                    help=f"a musicnn model in ONNX whose embedding the head sees; repeated, side by side (default "
                         f"the shipped {MODEL.name}; another set writes <split>/head[-cC]-<names> and "
                         "<split>/with-head[-cC]-<names>)")
    ap.add_argument("--head-stride", type=int, default=1, metavar="S",
                    help="one musicnn patch per S windows, 1 to 3 (default 1; another writes <split>/with-head[...]-sS)")
    ap.add_argument("--head-extra", type=Path, action="append", default=[], metavar="CORPUS",
                    help="a rendered corpus (corpus.synth or corpus.notes) whose train/ the head also learns from, "
                         "refused if it plays a held-out source; repeatable (writes <split>/head[...]-plus-<name>)")
    ap.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = ap.parse_args(argv)
    try:
        result = run(args.split, args.validation, args.cache, tuple(args.head_weight), args.c,
                     tuple(args.tagger) or (MODEL,), args.head_stride, tuple(args.head_extra))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in CHECKED:
        for key, r in result.get(name, {}).items():
            print(f"{name:<11}{key:<20} {r['mean_over_classes']:.3f} ({r['correct']}/{r['n']})  "
                  + " ".join(f"{c} {v:.2f}" for c, v in r["per_class"].items()))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
