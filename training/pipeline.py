"""Everything from nothing: corpus -> three CNNs -> thresholds -> evaluation -> ONNX -> model card.

    python -m training.pipeline [--corpus data/synth] [--out runs/default] [--models onnx_models]
                                [--scale 1.0] [--epochs 50 | 8,modgd:16] [--max-minutes-per-model 25]
                                [--extra-soundfonts ../shared/soundfonts] [--real-audio ../shared/real-audio]
                                [--augment noise,eq,mix:mel] [--ema 1] [--init-run runs/base]
                                [--freq-norm 0.5 [--freq-norm-kind centre] [--freq-norm-models mel]] [--pcen]
                                [--adversary 0.5]
                                [--lr 1e-3] [--lr-schedule cosine] [--notes-per-class 200] [--notes DIR]
                                [--extra-train data/stk-notes/train]

Each stage is resumable (the corpus keeps finished songs, training resumes from ``last.pt``) and
prints how long it took. With ``--data-irmas`` the same stages run on real IRMAS instead of the
synthetic corpus (training folder, plus ``--test`` for the testing folder). With
``--notes-per-class N`` isolated notes of every source (:mod:`corpus.notes`) are rendered into
``--notes`` (default ``<corpus>/notes``) and trained on beside the songs; ``--extra-train`` adds further
folders in the IRMAS training layout (such as :mod:`experiments.stk_notes`' notes, or recordings of your
own), which every CNN learns from too and the model card names. ``--init-run`` starts
each CNN from another run's ``best.pt`` (fine-tuning); each CNN gets the augmentations of
``--augment`` that apply to its representation (``mix:mel``: to the mel CNN only) and its count of
``--epochs`` (``8,modgd:16``: 16 for the modgd CNN, 8 for the others); ``--ema`` trains each with a moving average of its
weights and ``--freq-norm`` builds each (or those of ``--freq-norm-models``) with relaxed
frequency-wise normalisation, ``--pcen`` the mel CNN with PCEN on its input and ``--adversary`` each against a
source-family adversary (:func:`training.train.train`). ``--seed`` seeds the training (weights,
batches, validation split) and ``--corpus-seed`` the corpus and notes, so a second training seed reuses the same corpus;
a corpus folder holds one corpus seed and scale, and rendering another into it is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from corpus import notes, synth
from instrec.params import REPRESENTATIONS
from instrec.recognizer import MODELS_DIR
from training import augment as aug
from training.datasets import read_training
from training.evaluate import run_evaluation
from training.export import export
from training.model_card import card
from training.models import RelaxedFreqNorm
from training.real_audio import check_real_audio
from training.thresholds import tune
from training.train import EPOCHS, LR_SCHEDULES, augment_list, freq_norm_of, representation_list, train


def stage(name: str, times: dict):
    class _Timer:
        def __enter__(self):
            print(f"== {name}", flush=True)
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            times[name] = round(time.perf_counter() - self.t0, 1)
            print(f"== {name}: {times[name]:.0f} s", flush=True)

    return _Timer()


def render_data(args: argparse.Namespace, times: dict) -> list[Path]:
    """Render (or check) the corpus and the isolated notes; returns the extra training folders."""
    if not args.data_irmas:
        with stage("render the synthetic corpus", times):
            summary = synth.render_corpus(args.corpus, scale=args.scale, seed=args.corpus_seed, workers=args.workers,
                                          extra_folders=args.extra_soundfonts, samples=args.samples,
                                          real_share=args.real_share, without_libraries=tuple(args.without_library),
                                          material_pieces=args.material_pieces, guitar_rig=args.guitar_rig,
                                          clipping=args.clipping)
            print(json.dumps(summary["counts"]))
    extra_train = []
    if args.notes_per_class > 0:
        notes_dir = args.notes or args.corpus / "notes"
        with stage("render the isolated notes", times):
            summary = notes.render_notes(notes_dir, per_class=args.notes_per_class, seed=args.corpus_seed,
                                         workers=args.workers, extra_folders=args.extra_soundfonts,
                                         samples=args.samples, real_share=args.real_share,
                                         without_libraries=tuple(args.without_library),
                                         guitar_rig=args.guitar_rig, clipping=args.clipping)
            print(json.dumps(summary["counts"]))
        extra_train.append(notes_dir)
    return extra_train + args.extra_train


def epochs_per_cnn(text: str) -> dict[str, int]:
    """``8`` or ``8,modgd:16``: the epochs of each CNN, a bare count for all of them and ``REP:N`` (or
    ``REP+REP:N``) for some; a CNN no count names trains :data:`training.train.EPOCHS`."""
    epochs = dict.fromkeys(REPRESENTATIONS, EPOCHS)
    for part in filter(None, text.split(",")):
        reps, _, count = part.rpartition(":")
        names = reps.split("+") if reps else list(REPRESENTATIONS)
        if not count.isdigit() or int(count) < 1 or any(r not in REPRESENTATIONS for r in names):
            raise argparse.ArgumentTypeError(f"expected a count of epochs (8) or REP:N with REP one of "
                                             f"{','.join(REPRESENTATIONS)} (modgd:16), got {part!r}")
        epochs.update(dict.fromkeys(names, int(count)))
    return epochs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/synth"))
    ap.add_argument("--out", type=Path, default=Path("runs/default"))
    ap.add_argument("--models", type=Path, default=MODELS_DIR, help="where the ONNX models go (default: the package's)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0, help="training seed: weights, batches, validation split")
    ap.add_argument("--corpus-seed", type=int, default=0,
                    help="seed of the rendered corpus and notes; a corpus folder holds one seed")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--epochs", type=epochs_per_cnn, default=str(EPOCHS), metavar="8,modgd:16",
                    help="epochs of every CNN; REP:N (REP+REP:N) gives some CNNs their own count (default 50)")
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--augment", type=augment_list, default="", metavar="noise,eq,mix:mel",
                    help="comma-separated augmentations for training; each CNN gets those that apply to it, "
                         "NAME:mel+modgd only the CNNs named")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                    help="each CNN's learning-rate schedule (training.train --lr-schedule)")
    ap.add_argument("--ema", type=float, metavar="EPOCHS",
                    help="validate and save a moving average of each CNN's weights over about this many epochs")
    ap.add_argument("--freq-norm", type=float, metavar="LAMBDA",
                    help="relaxed frequency-wise normalisation in each CNN (training.train --freq-norm)")
    ap.add_argument("--freq-norm-kind", choices=RelaxedFreqNorm.KINDS, default="ifn",
                    help="its row-wise part (training.train --freq-norm-kind)")
    ap.add_argument("--freq-norm-models", type=representation_list, default=REPRESENTATIONS, metavar="mel,modgd,cqt",
                    help="the CNNs built with it (default: all three)")
    ap.add_argument("--pcen", action="store_true", help="the mel CNN with PCEN on its input (training.train --pcen)")
    ap.add_argument("--adversary", type=float, metavar="WEIGHT",
                    help="train each CNN against a source-family adversary (training.train --adversary)")
    ap.add_argument("--init-run", type=Path, help="start each CNN from <init-run>/<representation>/best.pt")
    ap.add_argument("--cache", type=Path, help="feature cache folder (default <out>/cache; runs can share one)")
    ap.add_argument("--max-minutes-per-model", type=float, help="training time budget of each CNN")
    ap.add_argument("--extra-soundfonts", type=Path, action="append", default=[])
    ap.add_argument("--samples", type=Path, default=synth.DEFAULT_SAMPLES if synth.DEFAULT_SAMPLES.is_dir() else None,
                    help="recorded-note libraries (python -m corpus.samples fetch); default data/samples when there")
    ap.add_argument("--without-library", action="append", default=[], metavar="PATTERN",
                    help="do not play the prepared libraries whose name matches (e.g. 'freepats-*'); repeatable")
    ap.add_argument("--real-share", type=float, default=synth.REAL_SHARE)
    ap.add_argument("--material-pieces", type=int, default=60, help="chorales and tunes from music21 (each)")
    ap.add_argument("--guitar-rig", choices=synth.GUITAR_RIGS, default="tanh",
                    help="how the corpus and notes amplify clean electric guitars (corpus.synth --guitar-rig)")
    ap.add_argument("--clipping", type=float, default=0.0, metavar="SHARE",
                    help="share of the corpus's songs and notes clipped in their recording chain (corpus.synth --clipping)")
    ap.add_argument("--notes-per-class", type=int, default=0,
                    help="render this many isolated-note excerpts per class (corpus.notes) and train on them too")
    ap.add_argument("--notes", type=Path, help="where the isolated notes go (default <corpus>/notes)")
    ap.add_argument("--extra-train", type=Path, action="append", default=[], metavar="DIR",
                    help="a further training folder (IRMAS training layout) every CNN learns from too, such as "
                         "experiments.stk_notes' notes; repeatable")
    ap.add_argument("--real-audio", type=Path, help="folder of real recordings with labels.csv, checked at the end")
    ap.add_argument("--data-irmas", type=Path, help="train on this IRMAS training folder instead of the corpus")
    ap.add_argument("--test", type=Path, help="testing-layout folder for the evaluation (default: <corpus>/test)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m training.pipeline " + shlex.join(str(a) for a in (sys.argv[1:] if argv is None else argv))
    (args.out / "command.json").write_text(json.dumps({"command": command, "init_run": str(args.init_run or "")}))
    times: dict[str, float] = {}
    data = args.data_irmas or args.corpus
    try:
        for extra in args.extra_train:
            read_training(extra)  # a missing or malformed folder stops the run before anything is rendered
        extra_train = render_data(args, times)
    except (synth.SynthError, ValueError) as exc:
        print(f"python -m training.pipeline: {exc}", file=sys.stderr)
        return 2
    for rep in ("mel", "modgd", "cqt"):
        with stage(f"train {rep}", times):
            mine = aug.for_representation(args.augment, rep)
            resume = (args.out / rep / "last.pt").exists()
            init = args.init_run / rep / "best.pt" if args.init_run and not resume else None
            print(f"augmentations: {','.join(mine) or 'none'}" + (f"; starting from {init}" if init else ""))
            train(data, rep, args.out, epochs=args.epochs[rep], patience=args.patience, seed=args.seed, augment=mine,
                  lr=args.lr, lr_schedule=args.lr_schedule, workers=args.workers, resume=resume, init=init,
                  cache_dir=args.cache, extra_train=extra_train, max_minutes=args.max_minutes_per_model, ema=args.ema,
                  pcen=args.pcen and rep == "mel", adversary=args.adversary, **freq_norm_of(rep, args.freq_norm, args.freq_norm_kind,
                                                                  args.freq_norm_models))
    with stage("tune thresholds and fusion", times):
        tuned = tune(args.out, cache_dir=args.cache)
        print(f"chosen: {tuned['fusion']['rule']} / {tuned['fusion']['aggregation']}")
    test = args.test or args.corpus / "test"
    with stage("evaluate", times):
        result = run_evaluation(args.out, test, cache_dir=args.cache)
        for name, r in result["configs"].items():
            print(f"{name:<15} F1 micro {r['test']['f1_micro']:.3f}  macro {r['test']['f1_macro']:.3f}")
    with stage("export to ONNX", times):
        export(args.out, args.models)
    if args.real_audio:
        with stage("check on real recordings", times):
            real = check_real_audio(args.models, args.real_audio)
            (args.out / "real_audio.json").write_text(json.dumps(real, indent=1))
            print(f"right instrument ranked first: {real['top1_correct']}/{real['n']} ({real['top1_share']:.0%})")
    (args.out / "pipeline_times.json").write_text(json.dumps(times, indent=1))
    (args.models / "MODEL_CARD.md").write_text(card(args.models, args.out))
    print("stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
