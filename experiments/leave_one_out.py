"""Leave one source out: how well does a CNN hear a recording setup it never heard?

    python -m experiments.leave_one_out --corpus data/synth --out runs/lolo [--representation mel|modgd|cqt|fused]
        [--epochs 5 | --epochs 10,modgd:16] [--augment noise,mixstyle] [--ema EPOCHS] [--hold SOURCE ...] [--cache DIR] [--real-audio DIR]
        [--freq-norm LAMBDA [--freq-norm-kind ifn|centre] [--freq-norm-models mel,modgd,cqt]] [--pcen] [--adversary WEIGHT]
        [--notes DIR [--no-train-notes]] [--extra-notes DIR ...] [--extra-train DIR ...] [--seeds 0,1,2] [--resume]
    python -m experiments.leave_one_out --corpus data/synth --notes data/synth/notes --out runs/lolo-b --split-only
        [--hold SOURCE ...] [--extra-notes data/short-notes]

For every class one of its sources (a recorded-note library or real-sample soundfont first, else a
General MIDI soundfont; ``--hold`` chooses) is held out: the training excerpts whose lead it plays are
left out of training, and afterwards the CNN is asked about exactly those excerpts. One training run
holds out one source of every class at once. The share of held-out excerpts whose class comes first is
the figure: per class, and its mean over classes. With ``--real-audio`` the same CNN is also asked
about real recordings (a folder with ``labels.csv``), so one run measures a training recipe on both.
With ``--notes`` (isolated notes rendered by :mod:`corpus.notes`) the notes of the kept sources are
trained on and those of the held-out sources checked apart: single notes of a library never heard,
as most real solo recordings are (``--no-train-notes`` checks them without training on any notes).
``--extra-train`` adds a whole further training folder (IRMAS training layout) to what every CNN learns
from, such as :mod:`experiments.stk_notes`' notes: a kind of source no split holds out.
With ``--seeds`` the CNN is trained once per seed on the same split (into ``<out>/seed<N>/``) and the
figures are means over the seeds, with their standard deviation: one short run moves a class's figure
by more than most levers do. ``--representation fused`` trains the three CNNs (each with the
augmentations that apply to it), tunes the fusion on the split's validation excerpts, exports them
(``<out>/onnx``) and asks the fused models, ranked by the fused score as the app ranks: the figure for
the system as shipped, which hears unheard sources differently from any one CNN. ``--resume`` continues a
stopped run: the same command again, with it, makes the same split (refused if it differs from the one
in ``<out>/split.json``) and each CNN goes on from its ``last.pt`` (one that finished is not trained again).
Writes ``<out>/split.json`` (the split) and ``<out>/leave_one_out.json``. ``--split-only`` writes the
split and trains nothing: enough for :mod:`experiments.pretrained_head`, whose head is fitted in a minute,
so a second split holding out other sources checks it where the CNNs' hour of training would be too long.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from corpus.subset import link_files, training_records
from instrec.labels import CODES
from instrec.params import REPRESENTATIONS

#: ``--representation fused``: the three CNNs, fused as the shipped models are
FUSED = "fused"


def choose_held_out(rendered: dict, records: list[dict], chosen: list[str] = ()) -> dict[str, str]:
    """class -> the source held out for it: one of ``chosen`` that plays the class's leads, else its
    first real source by name, else its first General MIDI soundfont by name."""
    gm = set(rendered["gm_soundfonts"])
    used: dict[str, set[str]] = {}
    for r in records:
        for code, source in zip(r["labels"], r["lead_sources"]):
            used.setdefault(code, set()).add(source)
    held = {}
    for code, sources in sorted(used.items()):
        picked = [s for s in chosen if s in sources]
        real = sorted(s for s in sources if s not in gm)
        if len(sources) < 2:
            continue  # one source only: nothing would be left to learn the class from
        held[code] = picked[0] if picked else real[0] if real else sorted(sources)[0]
    return held


def held_lead(record: dict, held: dict[str, str]) -> tuple[str, str] | None:
    """The (class, source) of a lead part of ``record`` (with ``lead_sources``) that ``held`` holds out, if any."""
    return next(((c, s) for c, s in zip(record["labels"], record["lead_sources"]) if held.get(c) == s), None)


def split_by_source(corpus: Path, out: Path, chosen: list[str] = (), notes: Path | None = None,
                    train_notes: bool = True, extra_notes: list[Path] = (), extra_train: list[Path] = ()) -> dict:
    """Link the kept training excerpts into ``out/train`` and the held-out ones into ``out/held``;
    with ``notes`` (a folder rendered by :mod:`corpus.notes`) its excerpts join the training set
    (unless not ``train_notes``: the baseline), but the held-out sources' notes go into ``out/held-notes``.
    Each of ``extra_notes`` (more notes corpora, such as short files) is split the same way into
    ``out/<its name>/train`` and ``out/<its name>/held``, for a model that learns from it too. Every
    excerpt of each of ``extra_train`` (training layout, with no record of its sources: it must play none
    that the split holds out) joins ``out/train`` whole. The plan (what was held out, what went where)
    is returned and written to ``out/split.json``."""
    names = [Path(extra).name for extra in extra_notes]
    taken = {"train", "held", "held-notes"}
    if taken & set(names) or len(set(names)) < len(names):
        raise ValueError(f"--extra-notes folders need names of their own, not {', '.join(sorted(taken))} "
                         f"or one another's: got {', '.join(names)}")
    rendered, records = training_records(corpus)
    held = choose_held_out(rendered, records, chosen)
    is_held = lambda r: held_lead(r, held) is not None
    for sub in ("train", "held", "held-notes"):
        shutil.rmtree(out / sub, ignore_errors=True)
    kept = link_files(corpus, [r for r in records if not is_held(r)], out / "train")
    left_out = link_files(corpus, [r for r in records if is_held(r)], out / "held")
    plan = {"held_out": held, "train_counts": dict(kept), "held_counts": dict(left_out)}
    if notes is not None:
        _, note_records = training_records(notes)
        if train_notes:
            kept_notes = [r for r in note_records if not is_held(r)]
            plan["notes_train_counts"] = dict(link_files(notes, kept_notes, out / "train"))
        plan["notes_held_counts"] = dict(link_files(notes, [r for r in note_records if is_held(r)], out / "held-notes"))
    for extra in map(Path, extra_notes):
        _, extra_records = training_records(extra)
        shutil.rmtree(out / extra.name, ignore_errors=True)
        plan.setdefault("extra_notes", {})[extra.name] = {
            "from": str(extra),
            "train_counts": dict(link_files(extra, [r for r in extra_records if not is_held(r)], out / extra.name / "train")),
            "held_counts": dict(link_files(extra, [r for r in extra_records if is_held(r)], out / extra.name / "held"))}
    for folder in map(Path, extra_train):
        plan.setdefault("extra_train_counts", {})[str(folder)] = dict(link_whole(folder, out / "train"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "split.json").write_text(json.dumps(plan, indent=1))
    return plan


def link_whole(folder: Path, out: Path) -> Counter:
    """Symbolic links in ``out`` to every excerpt of the training-layout ``folder``; per class counts. A
    name already in ``out`` (the same file given twice, or two folders naming files alike) is refused."""
    from training.datasets import read_training

    counts: Counter = Counter()
    for excerpt in read_training(folder).excerpts:
        link = out / excerpt.path.parent.name / excerpt.path.name
        if link.is_symlink() or link.exists():
            raise ValueError(f"{excerpt.path}: {link} is taken already (an --extra-train folder given twice, "
                             f"or files named alike in two of them)")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(excerpt.path.resolve())
        counts[excerpt.path.parent.name] += 1
    return counts


def run(corpus: Path, out: Path, *, representation: str = "mel", epochs: int | dict[str, int] = 5, chosen: list[str] = (),
        augment: tuple[str, ...] = (), notes: Path | None = None, train_notes: bool = True,
        cache_dir: Path | None = None, real_audio: Path | None = None, seed: int = 0, seeds: list[int] = (),
        ema: float | None = None, freq_norm: float | None = None, freq_norm_kind: str = "ifn",
        freq_norm_models: tuple[str, ...] = REPRESENTATIONS, pcen: bool = False, adversary: float | None = None,
        extra_notes: list[Path] = (), extra_train: list[Path] = (), resume: bool = False,
        progress: bool = True) -> dict:
    """Hold out, train (once, or once per seed of ``seeds``), check; returns what is written to
    ``<out>/leave_one_out.json``: with several seeds, means over them and each seed's result in ``per_seed``.
    ``epochs``: one count for every CNN, or representation -> count (``--epochs 10,modgd:16``).
    ``pcen``: the mel CNN with PCEN on its input (``training.train --pcen``); ``adversary``: every CNN trained
    against a source-family adversary of this weight (``training.train --adversary``). ``resume``: the split
    must be the one ``<out>/split.json`` records, and each CNN continues from its ``last.pt``."""
    from training.train import freq_norm_of

    if pcen and representation not in ("mel", FUSED):
        raise ValueError(f"--pcen is for the mel CNN (alone or fused), not {representation}")
    out = Path(out)
    epochs = epochs if isinstance(epochs, dict) else dict.fromkeys(REPRESENTATIONS, epochs)
    recorded = out / "split.json"
    before = json.loads(recorded.read_text()) if resume and recorded.exists() else None
    plan = split_by_source(Path(corpus), out, chosen, notes, train_notes, extra_notes, extra_train)
    if before is not None and before != plan:
        differs = sorted(k for k in before.keys() | plan.keys() if before.get(k) != plan.get(k))
        recorded.write_text(json.dumps(before, indent=1))
        raise ValueError(f"{out} was split otherwise before ({', '.join(differs)} differ) and its checkpoints were "
                         f"left as they are: resume with the first run's --corpus, --hold, --notes, --extra-notes "
                         f"and --extra-train (which makes its split again), or train afresh without --resume")
    seeds = list(seeds) or [seed]
    common = {**plan, "representation": representation, "epochs": epochs, "augment": list(augment), "ema": ema,
              "freq_norm": freq_norm, "freq_norm_kind": freq_norm_kind, "freq_norm_models": list(freq_norm_models),
              "pcen": pcen, "adversary": adversary,
              "trained_on_notes": bool(notes) and train_notes}
    per_cnn = {rep: {**freq_norm_of(rep, freq_norm, freq_norm_kind, freq_norm_models), "pcen": pcen and rep == "mel",
                     "adversary": adversary}
               for rep in REPRESENTATIONS}
    runs = []
    for s in seeds:
        folder = out if len(seeds) == 1 else out / f"seed{s}"
        runs.append(check_one(out, folder, representation, epochs=epochs, augment=augment, cache_dir=cache_dir,
                              notes=bool(plan.get("notes_held_counts")), real_audio=real_audio, seed=s, ema=ema,
                              cnn_args=per_cnn, resume=resume, progress=progress))
    result = {**common, **runs[0]} if len(runs) == 1 else {**common, **over_seeds(runs), "per_seed": runs}
    (out / "leave_one_out.json").write_text(json.dumps(result, indent=1))
    return result


def check_one(split: Path, folder: Path, representation: str, *, epochs: dict[str, int], augment: tuple[str, ...],
              cache_dir: Path | None, notes: bool, real_audio: Path | None, seed: int, ema: float | None,
              cnn_args: dict[str, dict], resume: bool = False, progress: bool = True) -> dict:
    """Train on ``split/train`` into ``folder`` and ask the CNN about the held-out excerpts (with ``notes``
    the held-out sources' isolated notes too, and real recordings when given). ``cnn_args``: representation ->
    its model arguments of :func:`training.train.train` (frequency-wise normalisation, PCEN)."""
    from training import augment as aug
    from training.real_audio import check_checkpoints
    from training.train import train

    if representation == FUSED:
        return check_fused(split, folder, epochs=epochs, augment=augment, cache_dir=cache_dir, notes=notes,
                           real_audio=real_audio, seed=seed, ema=ema, cnn_args=cnn_args, resume=resume,
                           progress=progress)
    train(split / "train", representation, folder, epochs=epochs[representation],
          patience=epochs[representation], seed=seed,
          augment=aug.named_for(augment, representation),
          cache_dir=cache_dir, ema=ema, **cnn_args[representation], resume=resume, progress=progress)
    name = folder / representation / "best.pt"
    checked = check_checkpoints([name], split / "held")[str(name)]
    per_class = {code: v["correct"] / v["n"] for code, v in checked["per_label"].items()}
    result = {"seed": seed, "per_class": per_class,
              "heard_as": {code: v["heard_as"] for code, v in checked["per_label"].items()},
              "mean_over_classes": sum(per_class.values()) / len(per_class) if per_class else 0.0,
              "n_held": checked["n"]}
    if notes:
        checked = check_checkpoints([name], split / "held-notes")[str(name)]
        result["notes_per_class"] = {code: v["correct"] / v["n"] for code, v in checked["per_label"].items()}
        result["notes_mean_over_classes"] = sum(result["notes_per_class"].values()) / len(result["notes_per_class"])
    if real_audio is not None:
        real = check_checkpoints([name], Path(real_audio))[str(name)]
        result["real_audio"] = {"data": str(real_audio), "n": real["n"], "top1_share": real["top1_share"],
                                "per_label": real["per_label"]}
    return result


def check_fused(split: Path, folder: Path, *, epochs: dict[str, int], augment: tuple[str, ...], cache_dir: Path | None,
                notes: bool, real_audio: Path | None, seed: int, ema: float | None,
                cnn_args: dict[str, dict], resume: bool = False, progress: bool = True) -> dict:
    """The three CNNs trained as :func:`check_one` trains one (each with the augmentations that apply to
    it), their thresholds tuned on the split's validation excerpts, exported, and the fused models asked,
    as the app asks them: the top class by the fused score."""
    from training import augment as aug
    from training.export import export
    from training.real_audio import check_real_audio
    from training.thresholds import tune
    from training.train import train

    for rep in REPRESENTATIONS:
        train(split / "train", rep, folder, epochs=epochs[rep], patience=epochs[rep], seed=seed,
              augment=aug.for_representation(augment, rep), cache_dir=cache_dir,
              ema=ema, **cnn_args[rep], resume=resume, progress=progress)
    tune(folder, cache_dir=cache_dir, progress=progress)
    export(folder, folder / "onnx")

    def figures(data: Path) -> dict:
        checked = check_real_audio(folder / "onnx", data)
        heard_as: dict[str, Counter] = {}
        for clip in checked["clips"]:
            heard_as.setdefault(clip["label"], Counter())[clip["top"]] += 1
        return {"n": checked["n"], "top1_share": checked["top1_share"],
                "top1_share_per_model": checked["top1_share_per_model"],
                "per_class": {c: v["correct"] / v["n"] for c, v in sorted(checked["per_label"].items())},
                "per_label": {c: {**v, "heard_as": dict(heard_as[c].most_common())}
                              for c, v in sorted(checked["per_label"].items())}}

    held = figures(split / "held")
    result = {"seed": seed, "per_class": held["per_class"],
              "heard_as": {c: v["heard_as"] for c, v in held["per_label"].items()},
              "mean_over_classes": sum(held["per_class"].values()) / len(held["per_class"]),
              "n_held": held["n"], "top1_share_per_model": held["top1_share_per_model"]}
    if notes:
        result["notes_per_class"] = figures(split / "held-notes")["per_class"]
        result["notes_mean_over_classes"] = sum(result["notes_per_class"].values()) / len(result["notes_per_class"])
    if real_audio is not None:
        real = figures(Path(real_audio))
        result["real_audio"] = {"data": str(real_audio), "n": real["n"], "top1_share": real["top1_share"],
                                "per_label": {c: {"correct": v["correct"], "n": v["n"], "heard_as": v["heard_as"]}
                                              for c, v in real["per_label"].items()}}
    return result


def over_seeds(runs: list[dict]) -> dict:
    """Means over seeds of every figure, with the standard deviation (ddof 1) of the mean over classes
    and of the real-recording share."""
    mean = lambda values: float(np.mean(values))
    sd = lambda values: float(np.std(values, ddof=1))
    summary = {"seeds": [r["seed"] for r in runs], "n_held": runs[0]["n_held"],
               "per_class": {c: mean([r["per_class"][c] for r in runs]) for c in runs[0]["per_class"]},
               "mean_over_classes": mean([r["mean_over_classes"] for r in runs]),
               "mean_over_classes_sd": sd([r["mean_over_classes"] for r in runs]),
               "heard_as": {c: dict(sum((Counter(r["heard_as"][c]) for r in runs), Counter()).most_common())
                            for c in runs[0]["heard_as"]}}
    if "notes_per_class" in runs[0]:
        summary["notes_per_class"] = {c: mean([r["notes_per_class"][c] for r in runs]) for c in runs[0]["notes_per_class"]}
        summary["notes_mean_over_classes"] = mean([r["notes_mean_over_classes"] for r in runs])
    if "real_audio" in runs[0]:
        first = runs[0]["real_audio"]
        summary["real_audio"] = {
            "data": first["data"], "n": first["n"], "top1_share": mean([r["real_audio"]["top1_share"] for r in runs]),
            "top1_share_sd": sd([r["real_audio"]["top1_share"] for r in runs]),
            "per_label": {k: {"n": v["n"], "correct": mean([r["real_audio"]["per_label"][k]["correct"] for r in runs])}
                          for k, v in first["per_label"].items()}}
    return summary


def seed_list(text: str) -> list[int]:
    """``--seeds 0,1,2``; argparse reports anything else as an invalid seed list."""
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    from training.models import RelaxedFreqNorm
    from training.pipeline import epochs_per_cnn
    from training.train import augment_list, representation_list

    ap = argparse.ArgumentParser(prog="python -m experiments.leave_one_out", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True, help="a corpus rendered by corpus.synth")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--representation", choices=(*REPRESENTATIONS, FUSED), default="mel",
                    help="the CNN trained and checked, or 'fused': the three, fused as the app fuses them")
    ap.add_argument("--epochs", type=epochs_per_cnn, default="5", metavar="5",
                    help="epochs of every CNN; REP:N gives some their own count (10,modgd:16; default 5)")
    ap.add_argument("--hold", action="append", default=[], metavar="SOURCE",
                    help="hold this source out for the classes it plays (repeatable)")
    ap.add_argument("--augment", type=augment_list, default="", metavar="noise,eq,mix:mel",
                    help="comma-separated training augmentations (training.augment); NAME:mel+modgd limits one "
                         "to those CNNs (with --representation fused)")
    ap.add_argument("--notes", type=Path, metavar="DIR",
                    help="isolated notes rendered by corpus.notes: trained on, less the held-out sources' notes, "
                    "which are checked apart")
    ap.add_argument("--no-train-notes", dest="train_notes", action="store_false",
                    help="with --notes: train on the songs alone and only check the held-out sources' notes "
                    "(the baseline for what training on notes does)")
    ap.add_argument("--extra-notes", type=Path, action="append", default=[], metavar="DIR",
                    help="another notes corpus (such as short files) split the same way, into <out>/<DIR's name>/"
                         "train and held, for a head fitted on it too (the CNNs do not train on it); repeatable")
    ap.add_argument("--extra-train", type=Path, action="append", default=[], metavar="DIR",
                    help="a further training folder (IRMAS training layout) every CNN learns from whole, such as "
                         "experiments.stk_notes' notes: sources no split holds out; repeatable")
    ap.add_argument("--resume", action="store_true",
                    help="continue a stopped run: the same split again (checked), each CNN from its last.pt")
    ap.add_argument("--split-only", action="store_true",
                    help="write the split (and <out>/split.json) and stop: for the pretrained head, which needs no CNN")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--real-audio", type=Path, metavar="DIR", help="also check real recordings (labels.csv)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=seed_list, default=(),
                    help="comma-separated seeds: one training run each, figures averaged over them")
    ap.add_argument("--ema", type=float, metavar="EPOCHS",
                    help="train with a moving average of the weights over about this many epochs (training.train)")
    ap.add_argument("--freq-norm", type=float, metavar="LAMBDA",
                    help="relaxed frequency-wise normalisation in the CNN (training.train --freq-norm)")
    ap.add_argument("--freq-norm-kind", choices=RelaxedFreqNorm.KINDS, default="ifn",
                    help="its row-wise part (training.train --freq-norm-kind)")
    ap.add_argument("--freq-norm-models", type=representation_list, default=REPRESENTATIONS, metavar="mel,modgd,cqt",
                    help="the CNNs built with it (default: all three; for --representation fused)")
    ap.add_argument("--pcen", action="store_true",
                    help="the mel CNN with PCEN on its input (training.train --pcen)")
    ap.add_argument("--adversary", type=float, metavar="WEIGHT",
                    help="train every CNN against a source-family adversary (training.train --adversary)")
    args = ap.parse_args(argv)
    try:
        if args.split_only:
            plan = split_by_source(args.corpus, args.out, args.hold, args.notes, args.train_notes, args.extra_notes,
                                   args.extra_train)
        else:
            result = run(args.corpus, args.out, representation=args.representation, epochs=args.epochs,
                         chosen=args.hold, augment=args.augment,
                         notes=args.notes, train_notes=args.train_notes, cache_dir=args.cache,
                         real_audio=args.real_audio, seed=args.seed, seeds=args.seeds, ema=args.ema,
                         freq_norm=args.freq_norm, freq_norm_kind=args.freq_norm_kind,
                         freq_norm_models=args.freq_norm_models, pcen=args.pcen,
                         adversary=args.adversary, extra_notes=args.extra_notes, extra_train=args.extra_train,
                         resume=args.resume)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.split_only:
        for code, source in plan["held_out"].items():
            print(f"{code}  held out {source:<36} {plan['held_counts'].get(code, 0):5d} excerpts")
        return 0
    for code in CODES:
        if code in result["per_class"]:
            print(f"{code}  held out {result['held_out'][code]:<36} {result['held_counts'].get(code, 0):5d} excerpts  "
                  f"right first {result['per_class'][code]:.2f}")
    spread = f" ± {result['mean_over_classes_sd']:.3f} over seeds {result['seeds']}" if "seeds" in result else ""
    print(f"mean over classes: {result['mean_over_classes']:.3f}{spread} ({result['n_held']} held-out excerpts)")
    if "notes_per_class" in result:
        print("held-out sources' isolated notes: right first " + ", ".join(
            f"{c} {v:.2f}" for c, v in result["notes_per_class"].items())
              + f"; mean over classes {result['notes_mean_over_classes']:.3f}")
    if "real_audio" in result:
        real = result["real_audio"]
        by_label = ", ".join(f"{k} {v['correct']:g}/{v['n']}" for k, v in real["per_label"].items())
        print(f"real recordings: right first {real['top1_share']:.3f} of {real['n']} ({by_label})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
