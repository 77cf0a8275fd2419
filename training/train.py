"""Train one CNN on one representation of an IRMAS-layout training set.

    python -m training.train --data DIR --representation mel|modgd|cqt [--out runs/default]
                             [--epochs 50] [--patience 5] [--loss softmax|sigmoid]
                             [--augment crop,stretch,freqmask,mix,pitch,eq,noise] [--extra-train DIR]
                             [--max-hz 4000] [--ema EPOCHS] [--freq-norm LAMBDA] [--pcen] [--lr-schedule cosine]
                             [--adversary WEIGHT]
                             [--init CHECKPOINT | --resume]

The seed's recipe by default: Adam, learning rate 0.001, batch 128, softmax with categorical
cross-entropy on 1-second windows labelled with their excerpt's instrument; the checkpoint with
the best validation loss is kept, and training stops when that has not improved for
``--patience`` epochs. Validation is a song-aware 15 % of the training folder. Writes into
``<out>/<representation>/``: ``best.pt``, ``last.pt`` (for ``--resume``), ``history.json`` and
``loss.png``. ``--init`` starts from another run's weights and input statistics (fine-tuning,
e.g. models trained on the synthetic corpus tuned further on IRMAS) with a fresh optimiser.
``--ema EPOCHS`` validates and saves an exponential moving average of the weights over about that
many epochs of steps instead of the last step's weights (weight averaging finds flatter minima, which
carry over better to recordings the training set does not have; it also evens out one run's luck).
``--freq-norm LAMBDA`` builds the CNN with relaxed frequency-wise normalisation
(:class:`training.models.RelaxedFreqNorm`), so a recording chain's per-bin colouration is mostly
taken out before the convolutions. ``--pcen`` (mel CNN) passes the input through per-channel energy
normalisation (:class:`training.models.PCEN`, librosa's parameters, a 0.4 s time constant) before the
standardisation. ``--lr-schedule cosine`` lowers the learning rate step by step
along half a cosine, from ``--lr`` at the first step to a hundredth of it at the last step of
``--epochs``; the seed keeps the rate constant.
``--adversary WEIGHT`` trains a :class:`training.models.SourceAdversary` beside the CNN: it learns to name
the source family (:mod:`training.sources`) of each window from the CNN's embedding and the window's
class, and its reversed gradient, ramped from 0 to ``WEIGHT`` over the run as Ganin et al. ramp it, is
meant to teach the CNN an embedding in which the families cannot be told apart
(:mod:`experiments.source_probe` measures whether it did). It needs a corpus rendered by :mod:`corpus.synth` or
:mod:`corpus.notes` (its ``corpus.json`` names each excerpt's source); excerpts without one (IRMAS,
generated audio) train the CNN only. Windows mixed by ``mix`` keep their own source. The adversary is not
part of the saved model; ``history.json`` gives its accuracy on the training windows per epoch beside
the share of the most common family (what naming that family every time scores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from instrec import features
from instrec.params import DEFAULT, REPRESENTATIONS, FeatureParams
from instrec.recognizer import sha256
from training import augment as aug
from training.cache import FeatureSet, load_features
from training.checkpoints import load_checkpoint, pick_device, predict_windows, save
from training.datasets import Dataset, read_training, split, training_root
from training.metrics import evaluate
from training.models import InstrumentCNN, RelaxedFreqNorm, SourceAdversary
from training.sources import MANIFEST, excerpt_sources, family_labels

#: the settings a resumed run must share with the run it continues (epochs, patience and the time budget
#: may grow; the data may have moved)
#: Epochs a CNN trains at most when no count is given (early stopping usually ends it sooner).
EPOCHS = 50
RECIPE = ("representation", "batch_size", "lr", "loss", "seed", "augment", "extra_train", "ema", "freq_norm",
          "freq_norm_kind", "lr_schedule", "pcen", "adversary")
#: learning-rate schedules: ``constant`` (the seed) or ``cosine`` (to LR_FLOOR x lr over the planned epochs)
LR_SCHEDULES = ("constant", "cosine")
LR_FLOOR = 0.01
#: how fast the adversary's reversed gradient comes in: Ganin et al.'s 2 / (1 + exp(-10 p)) - 1 at progress p
ADVERSARY_RAMP = 10.0
#: PCEN's smoothing time constant (librosa's default), seconds
PCEN_TIME_CONSTANT_S = 0.4


def pcen_frames(params: FeatureParams = DEFAULT) -> float:
    """PCEN's time constant in frames of ``params``' grid, as ``librosa.pcen`` derives it from seconds."""
    return PCEN_TIME_CONSTANT_S * params.sample_rate / params.hop_length


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def loss_fn(model: InstrumentCNN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return class_loss(model, model.logits(x), y)


def class_loss(model: InstrumentCNN, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The model's training loss on logits ``z`` for (multi-hot or soft) targets ``y``."""
    if model.activation == "softmax":  # categorical cross-entropy; y may be a soft (mixed) target
        y = y / y.sum(dim=1, keepdim=True).clamp_min(1e-6)
        return -(y * torch.log_softmax(z, dim=1)).sum(dim=1).mean()
    return nn.functional.binary_cross_entropy_with_logits(z, y)


def validate(model: InstrumentCNN, val: FeatureSet, device: torch.device) -> dict:
    """Window-level loss, and file-level micro F1 (mean of window probabilities; the top class
    for softmax models, scores over 0.5 for sigmoid models)."""
    probs = predict_windows(model, val.windows, device)
    targets = val.window_targets
    p = torch.from_numpy(probs).clamp(1e-7, 1 - 1e-7)
    t = torch.from_numpy(targets)
    if model.activation == "softmax":
        loss = float(-(t / t.sum(1, keepdim=True) * torch.log(p)).sum(1).mean())
    else:
        loss = float(nn.functional.binary_cross_entropy(p, t))
    all_slices = val.file_slices()
    keep = [i for i, s in enumerate(all_slices) if s.stop > s.start]
    file_scores = np.stack([probs[all_slices[i]].mean(axis=0) for i in keep])
    if model.activation == "softmax":
        decisions = np.zeros_like(file_scores)
        decisions[np.arange(len(file_scores)), file_scores.argmax(1)] = 1
    else:
        decisions = file_scores >= 0.5
    metrics = evaluate(val.targets[keep], decisions, file_scores)
    return {"val_loss": loss, "val_f1_micro": metrics["f1_micro"], "val_f1_macro": metrics["f1_macro"]}


def ema_decay(horizon_epochs: float, steps_per_epoch: int) -> float:
    """The decay whose moving average spans about ``horizon_epochs`` epochs of optimiser steps."""
    if horizon_epochs <= 0:
        raise ValueError(f"--ema takes a positive number of epochs, not {horizon_epochs}")
    return 1.0 - 1.0 / max(1.0, horizon_epochs * steps_per_epoch)


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """The learning rate at optimiser step ``step`` (0-based) of ``total_steps``, as a fraction of ``--lr``."""
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"--lr-schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    progress = min(step, total_steps - 1) / max(1, total_steps - 1)
    return LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + np.cos(np.pi * progress))


def adversary_strength(weight: float, step: int, total_steps: int) -> float:
    """The reversed gradient's factor at optimiser step ``step`` of ``total_steps``: 0 at the start, ``weight``
    at the end, along Ganin et al.'s 2 / (1 + exp(-10 p)) - 1 (the adversary is let learn before it pushes)."""
    progress = min(step, total_steps) / max(1, total_steps)
    return float(weight * (2.0 / (1.0 + np.exp(-ADVERSARY_RAMP * progress)) - 1.0))


def window_families(train_ds: Dataset, train_fs: FeatureSet) -> tuple[np.ndarray, list[str]]:
    """Each training window's source family (-1 where unknown) and the family names, for ``--adversary``."""
    labels, families = family_labels(excerpt_sources(train_ds))
    if len(families) < 2:
        raise ValueError(f"--adversary needs excerpts of at least two source families in a corpus manifest "
                         f"({MANIFEST}), found {families or 'none'}: is the training data a corpus rendered "
                         f"by corpus.synth or corpus.notes?")
    return labels[train_fs.file_index], families


def input_statistics(windows: np.ndarray, max_windows: int = 4000, seed: int = 0,
                     frontend: nn.Module | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation over (a sample of) the training windows, as the model's
    ``frontend`` (PCEN), when it has one, gives them to the standardisation."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(windows), size=min(max_windows, len(windows)), replace=False))
    sample = np.asarray(windows[idx], dtype=np.float32)  # (n, 1, F, T)
    if frontend is not None:
        with torch.no_grad():
            sample = np.concatenate([frontend(torch.from_numpy(chunk)).numpy() for chunk in np.array_split(
                sample, max(1, len(sample) // 256))])
    sample = sample.astype(np.float64)
    return sample.mean(axis=(0, 1, 3)).astype(np.float32), sample.std(axis=(0, 1, 3)).astype(np.float32)


def plot_history(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["loss"] for h in history], label="training loss")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prepare_data(data: Path, representation: str, cache_dir: Path, *, extra_train: list[Path] = (),
                 validation: float = 0.15, seed: int = 0, params: FeatureParams = DEFAULT,
                 workers: int | None = None, progress: bool = True) -> tuple[FeatureSet, FeatureSet, Dataset, Dataset]:
    full = read_training(training_root(data))
    train_ds, val_ds = split(full, validation=validation, seed=seed)
    for extra in extra_train:
        train_ds.excerpts.extend(read_training(training_root(extra)).excerpts)
    train_fs = load_features(train_ds, representation, cache_dir, params=params, workers=workers, progress=progress)
    val_fs = load_features(val_ds, representation, cache_dir, params=params, workers=workers, progress=progress)
    return train_fs, val_fs, train_ds, val_ds


def train(data: Path, representation: str, out: Path, *, epochs: int = EPOCHS, patience: int = 5, batch_size: int = 128,
          lr: float = 1e-3, loss: str = "softmax", seed: int = 0, augment: tuple[str, ...] = (),
          extra_train: list[Path] = (), cache_dir: Path | None = None, workers: int | None = None,
          resume: bool = False, init: Path | None = None, max_hz: float | None = None, device: str | None = None,
          max_minutes: float | None = None, ema: float | None = None, freq_norm: float | None = None,
          freq_norm_kind: str = "ifn", lr_schedule: str = "constant", pcen: bool = False,
          adversary: float | None = None, params: FeatureParams = DEFAULT, progress: bool = True) -> dict:
    """Train and return the summary written to ``<out>/<representation>/history.json``."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; expected one of {REPRESENTATIONS}")
    unknown = set(augment) - set(aug.AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentations {sorted(unknown)}; expected some of {aug.AUGMENTATIONS}")
    unsupported = aug.unsupported(augment, representation)
    if unsupported:
        raise ValueError(f"augmentations {unsupported} do not apply to {representation}")
    if ema is not None:
        ema_decay(ema, 1)  # refuses a horizon that is not positive before any feature is extracted
    if init is not None and resume:
        raise ValueError("--init starts a new run and --resume continues one; give one of them")
    if freq_norm is not None and not 0.0 <= freq_norm <= 1.0:  # refused before any feature is extracted
        raise ValueError(f"--freq-norm must be in [0, 1], got {freq_norm}")
    if freq_norm_kind not in RelaxedFreqNorm.KINDS:
        raise ValueError(f"--freq-norm-kind must be one of {RelaxedFreqNorm.KINDS}, got {freq_norm_kind!r}")
    if freq_norm is None and freq_norm_kind != "ifn":
        raise ValueError("--freq-norm-kind needs --freq-norm")
    if pcen and representation != "mel":
        raise ValueError(f"--pcen takes log magnitudes: the mel CNN only, not {representation}")
    lr_factor(lr_schedule, 0, 1)  # refuses an unknown schedule before any feature is extracted
    if adversary is not None and not adversary > 0:
        raise ValueError(f"--adversary takes a positive weight, not {adversary}")
    seed_everything(seed)
    dev = pick_device(device)
    folder = Path(out) / representation
    folder.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir else Path(out) / "cache"
    train_fs, val_fs, train_ds, val_ds = prepare_data(data, representation, cache_dir, extra_train=extra_train,
                                                      seed=seed, params=params, workers=workers, progress=progress)
    if len(train_fs.windows) == 0 or len(val_fs.windows) == 0:
        raise ValueError("no readable training or validation audio")
    families, family_names = window_families(train_ds, train_fs) if adversary is not None else (None, [])
    n_bins = params.shapes[representation][1]
    if init is not None:
        start = load_checkpoint(init)
        model = start.model
        if start.params != params:
            raise ValueError(f"{init} was trained on other feature parameters than this run's")
        if model.representation != representation or model.activation != loss:
            raise ValueError(f"{init} holds a {model.representation}/{model.activation} model, "
                             f"not {representation}/{loss}")
        if model.freq_norm != freq_norm:
            raise ValueError(f"{init} was trained with freq_norm={model.freq_norm}, not {freq_norm}")
        if freq_norm is not None and model.freq_norm_kind != freq_norm_kind:
            raise ValueError(f"{init} was trained with freq_norm_kind={model.freq_norm_kind}, not {freq_norm_kind}")
        if (model.pcen is not None) != pcen:
            raise ValueError(f"{init} was trained {'with' if model.pcen is not None else 'without'} PCEN")
        model = model.to(dev)
    else:
        model = InstrumentCNN(representation, n_bins, activation=loss, freq_norm=freq_norm,
                              freq_norm_kind=freq_norm_kind,
                              pcen=pcen_frames(params) if pcen else None)
        mean, std = input_statistics(train_fs.windows, seed=seed, frontend=model.frontend if pcen else None)
        model.set_normalisation(torch.from_numpy(mean), torch.from_numpy(std))
    if max_hz is not None:
        if representation == "cqt":
            raise ValueError("--max-hz needs a frequency axis: mel or modgd")
        model.set_band_limit(features.bin_frequencies(representation, params=params), max_hz)
    critic = None  # the source adversary (--adversary), trained by the same optimiser
    trained = list(model.parameters())
    if adversary is not None:
        critic = SourceAdversary(len(family_names), channels=model.head[0].in_features).to(dev)
        trained += list(critic.parameters())
    optimiser = torch.optim.Adam(trained, lr=lr)
    steps_per_epoch = -(-len(train_fs.windows) // batch_size)
    total_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(lr_schedule, step, total_steps))
    averaged = None  # the model validated and saved: the weights themselves, or their moving average
    if ema is not None:
        decay = ema_decay(ema, steps_per_epoch)
        averaged = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay))
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict] = []
    best, since_best, start_epoch = float("inf"), 0, 1
    rng = np.random.default_rng(seed)
    args = {"data": str(data), "representation": representation, "epochs": epochs, "patience": patience,
            "batch_size": batch_size, "lr": lr, "loss": loss, "seed": seed, "augment": list(augment),
            "extra_train": [str(p) for p in extra_train], "init": str(init) if init else None,
            "init_sha256": sha256(Path(init)) if init else None, "max_hz": max_hz,
            "ema": ema, "freq_norm": freq_norm, "freq_norm_kind": freq_norm_kind, "lr_schedule": lr_schedule,
            "pcen": pcen, "adversary": adversary}
    if resume and (folder / "last.pt").exists():
        state = torch.load(folder / "last.pt", map_location=dev, weights_only=False)
        if averaged is not None and "averaged" not in state:
            raise ValueError(f"{folder / 'last.pt'} was trained without --ema; resume it without")
        # a resumed run keeps its recipe; a last.pt from before the settings were saved in it has its
        # freq_norm only, or nothing (None)
        recorded = state.get("args", {"freq_norm": state.get("freq_norm")})
        recorded.setdefault("lr_schedule", "constant")  # saved before schedules existed
        recorded.setdefault("adversary", None)  # saved before the adversary existed
        differs = [k for k in RECIPE if k in recorded and recorded[k] != args[k]]
        if (lr_schedule != "constant" or adversary is not None) and recorded.get("epochs", epochs) != epochs:
            differs.append("epochs")  # the schedule and the adversary's ramp are spread over the planned epochs
        if differs:
            raise ValueError(f"{folder / 'last.pt'} was trained with "
                             + ", ".join(f"{k}={recorded[k]}, not {args[k]}" for k in differs)
                             + "; resume it with the same settings")
        model.load_state_dict(state["state_dict"])
        model.max_hz = state.get("max_hz", model.max_hz)
        optimiser.load_state_dict(state["optimiser"])
        if "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        if averaged is not None:
            averaged.load_state_dict(state["averaged"])
        if critic is not None:
            critic.load_state_dict(state["adversary"])
        history, best, since_best = state["history"], state["best"], state["since_best"]
        start_epoch = state["epoch"] + 1
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    t_start = time.perf_counter()
    targets = train_fs.window_targets
    for epoch in range(start_epoch, epochs + 1):
        if since_best >= patience:
            break
        # each call trains at least one epoch, and stops after the epoch that passes the budget
        if max_minutes is not None and epoch > start_epoch and (time.perf_counter() - t_start) / 60 > max_minutes:
            break
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_fs.windows))
        total, seen = 0.0, 0
        named, named_right = 0, 0  # the adversary's windows of a known family, and those it named right
        batches = range(0, len(order), batch_size)
        for i in tqdm(batches, desc=f"{representation} epoch {epoch}", unit="batch", disable=not progress, leave=False):
            idx = np.sort(order[i : i + batch_size])
            xb, yb = aug.batch(train_fs, idx, targets, augment, rng, representation)
            x = torch.from_numpy(xb).to(dev)
            y = torch.from_numpy(yb).to(dev)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                if critic is None:
                    fit = batch_loss = loss_fn(model, x, y)
                else:
                    embedding = model.embed(x)
                    fit = batch_loss = class_loss(model, model.head(embedding), y)
                    family = torch.from_numpy(families[idx]).to(dev)
                    known = family >= 0
                    if bool(known.any()):
                        strength = adversary_strength(adversary, scheduler.last_epoch, total_steps)
                        guess = critic(embedding[known], y[known], strength)
                        batch_loss = batch_loss + nn.functional.cross_entropy(guess.float(), family[known])
                        named += int(known.sum())
                        named_right += int((guess.argmax(1) == family[known]).sum())
            scaler.scale(batch_loss).backward()
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
            total += float(fit.detach()) * len(idx)  # the class loss alone, as validation measures it
            seen += len(idx)
        kept = model if averaged is None else averaged.module
        row = {"epoch": epoch, "loss": total / seen, "lr": optimiser.param_groups[0]["lr"],
               **validate(kept, val_fs, dev),
               "seconds": round(time.perf_counter() - t0, 2)}
        if critic is not None:
            row.update(source_accuracy=named_right / max(1, named),
                       strength=adversary_strength(adversary, scheduler.last_epoch, total_steps))
        history.append(row)
        improved = row["val_loss"] < best
        if improved:
            best, since_best = row["val_loss"], 0
            save(folder / "best.pt", kept, params, args, history, train_ds, val_ds)
        else:
            since_best += 1
        state = {"state_dict": model.state_dict(), "optimiser": optimiser.state_dict(),
                 "scheduler": scheduler.state_dict(), "history": history,
                 "best": best, "since_best": since_best, "epoch": epoch, "max_hz": model.max_hz, "args": args,
                 "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
        if averaged is not None:
            state["averaged"] = averaged.state_dict()
        if critic is not None:
            state["adversary"] = critic.state_dict()
        torch.save(state, folder / "last.pt")
        print(f"{representation} epoch {epoch:3d}  loss {row['loss']:.4f}  val_loss {row['val_loss']:.4f}  "
              f"val_f1 {row['val_f1_micro']:.3f}  {row['seconds']:.0f} s"
              + (f"  source {row['source_accuracy']:.2f}" if critic is not None else "")
              + ("  *" if improved else ""), flush=True)
    summary = {"representation": representation, "best_val_loss": best, "epochs_run": len(history),
               "history": history, "args": args, "n_train_windows": int(len(train_fs.windows)),
               "n_val_windows": int(len(val_fs.windows)), "device": str(dev),
               "unreadable": {**train_fs.errors, **val_fs.errors}}
    if critic is not None:
        known = families[families >= 0]
        summary["source_families"] = {name: int((known == i).sum()) for i, name in enumerate(family_names)}
        summary["source_chance"] = float(np.bincount(known).max() / len(known))
    (folder / "history.json").write_text(json.dumps(summary, indent=1))
    if history:
        plot_history(history, folder / "loss.png", f"{representation} CNN")
    return summary


def freq_norm_of(representation: str, freq_norm: float | None, kind: str, models: tuple[str, ...]) -> dict:
    """:func:`train`'s frequency-wise normalisation arguments for one CNN of several, when the
    normalisation is asked for some of them (``models``) only."""
    if representation not in models:
        return {"freq_norm": None, "freq_norm_kind": "ifn"}
    return {"freq_norm": freq_norm, "freq_norm_kind": kind}


def representation_list(text: str) -> tuple[str, ...]:
    """``mel,modgd``: some of the representations (for options that apply to some CNNs only)."""
    names = tuple(x for x in text.split(",") if x)
    unknown = [x for x in names if x not in REPRESENTATIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(REPRESENTATIONS)}, got {text!r}")
    return names


def augment_list(text: str) -> tuple[str, ...]:
    """``noise,eq,mix:mel``: augmentations for the three CNNs, some limited to some (:func:`augment.parse`)."""
    try:
        return aug.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="IRMAS training layout (or a corpus root with train/)")
    ap.add_argument("--representation", choices=REPRESENTATIONS, required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/default"))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss", choices=("softmax", "sigmoid"), default="softmax",
                    help="softmax + categorical cross-entropy (the seed) or sigmoid + binary cross-entropy")
    ap.add_argument("--augment", default="", help=f"comma-separated: {','.join(aug.AUGMENTATIONS)}")
    ap.add_argument("--extra-train", type=Path, action="append", default=[], metavar="DIR",
                    help="another training-layout folder to add to training (e.g. generated audio)")
    ap.add_argument("--cache", type=Path, help="feature cache folder (default <out>/cache)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    ap.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this wall time")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/<representation>/last.pt")
    ap.add_argument("--max-hz", type=float, help="band limit: the model ignores bins centred above this frequency")
    ap.add_argument("--feature-params", type=Path, metavar="JSON",
                    help="feature parameters that differ from the defaults, e.g. {\"n_mels\": 64}")
    ap.add_argument("--init", type=Path, metavar="CHECKPOINT",
                    help="start from this checkpoint's weights and input statistics (fine-tuning)")
    ap.add_argument("--ema", type=float, metavar="EPOCHS",
                    help="validate and save a moving average of the weights over about this many epochs")
    ap.add_argument("--freq-norm", type=float, metavar="LAMBDA",
                    help="relaxed frequency-wise normalisation of the input and first two blocks, in [0, 1]")
    ap.add_argument("--freq-norm-kind", choices=RelaxedFreqNorm.KINDS, default="ifn",
                    help="its row-wise part: standardise each frequency row (ifn) or only centre it (centre)")
    ap.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                    help="constant (the seed) or cosine: down to a hundredth of --lr over --epochs")
    ap.add_argument("--pcen", action="store_true",
                    help="mel CNN: per-channel energy normalisation of the input before the standardisation")
    ap.add_argument("--adversary", type=float, metavar="WEIGHT",
                    help="train against a source-family adversary through a reversed gradient of this weight")
    args = ap.parse_args(argv)
    augment = tuple(a for a in args.augment.split(",") if a)
    params = DEFAULT
    if args.feature_params:
        params = FeatureParams.from_dict({**DEFAULT.to_dict(), **json.loads(args.feature_params.read_text())})
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        train(args.data, args.representation, args.out, epochs=args.epochs, patience=args.patience,
              batch_size=args.batch_size, lr=args.lr, loss=args.loss, seed=args.seed, augment=augment,
              extra_train=args.extra_train, cache_dir=args.cache, workers=args.workers, resume=args.resume,
              init=args.init, max_hz=args.max_hz, device=args.device, max_minutes=args.max_minutes, ema=args.ema,
              freq_norm=args.freq_norm, freq_norm_kind=args.freq_norm_kind, lr_schedule=args.lr_schedule,
              pcen=args.pcen, adversary=args.adversary, params=params)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
