"""How exported models do on real recordings: does the right instrument rank first?

    python -m training.real_audio --data tests/data/real [--models DIR]
    python -m training.real_audio --data tests/data/real --mixtures 200 [--mixture-seed 0]
    python -m training.real_audio --data tests/data/real --surround 2 [--surround-db -50]
    python -m training.real_audio --data tests/data/real --defect clip:6 [--defect hum:-20 ...]
    python -m training.real_audio --checkpoint runs/X/mel/best.pt [...] --data tests/data/real
                                  [--lowpass 4000] [--mean]

``--data`` holds audio files and a ``labels.csv`` with columns ``file`` and ``label`` (an IRMAS
code), or is an IRMAS training-layout folder (each file labelled by its class folder). Chance is
1 in 11. An optional column ``recording`` names the recording each clip was cut from: clips of one
recording share a player, an instrument and a room, so the check also counts by recording (how many
recordings have most of their clips right first, and the mean over recordings of the clips' share);
without it every clip is its own recording. ``--checkpoint`` scores trained PyTorch models one by one,
before any export: the mean of their window probabilities (S1), top class against the label;
``--lowpass`` first filters every clip (6th-order Butterworth), to see what a model makes of the clips
without their high band; ``--mean`` also scores the mean of the checkpoints' clip scores, e.g. of
training seeds as an ensemble.

Besides the top-1 share, the check gives the micro F1 of the answered sets (every instrument the fused
rule names against the one labelled). ``--mixtures N`` asks instead about N mixtures of 2-3 clips of
different instruments (at most as many as ``--data`` has labels), all cut to the shortest, each brought
to the same loudness and then given a random gain of 0 to -6 dB: the micro F1 of the answered sets
against the mixed labels, how often the top instrument is one of them, and each instrument's recall.
The same seed gives the same mixtures.

``--surround S`` asks about every clip with S seconds of digital silence before and after it, as an
upload often has, or with white noise at ``--surround-db`` dB RMS under the clip's peak (room noise,
a hiss): the answer should be the clip's. ``--defect`` gives every clip a defect of amateur recordings
first (repeatable, applied in order; see :data:`DEFECTS`): ``clip:DB`` drives it DB dB into full scale
and clips it, ``hum:DB`` adds 50 Hz mains hum (with its 2nd and 3rd harmonics) DB dB under its RMS,
``lowpass:HZ`` band-limits it (a 6th-order Butterworth, e.g. 3400 for a telephone line), ``dc:X`` adds
an offset of X of its peak, ``first:S`` keeps only its first S seconds (a short recording).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from instrec import audio
from instrec.labels import CODES, index_of, to_multi_hot
from instrec.params import DEFAULT, FeatureParams
from instrec.recognizer import MODELS_DIR, ModelError, Recognizer
from training.metrics import evaluate

#: Loudness spread of the clips in a mixture (dB under the loudest, drawn uniformly).
MIX_GAIN_DB = 6.0
#: Number of clips a mixture is made of, drawn uniformly from those the labels allow.
MIX_SIZES = (2, 3)


def answered_f1(truth: list[list[str]], answered: list[list[str]]) -> float:
    """Micro F1 of answered instrument sets against true ones (one list of codes per file)."""
    if not truth:
        return 0.0
    y_true = np.stack([to_multi_hot(t) for t in truth])
    y_pred = np.stack([to_multi_hot(a) for a in answered])
    return evaluate(y_true, y_pred)["f1_micro"]


def surrounded(y: np.ndarray, seconds: float, noise_db: float | None, rng: np.random.Generator,
               sample_rate: int) -> np.ndarray:
    """``y`` (peak 1) with ``seconds`` of silence, or of white noise ``noise_db`` dB RMS under its peak, on
    both sides."""
    n = int(round(seconds * sample_rate))
    if noise_db is None:
        before, after = np.zeros(n, np.float32), np.zeros(n, np.float32)
    else:
        before, after = (rng.standard_normal((2, n)) * 10 ** (noise_db / 20)).astype(np.float32)
    return np.concatenate([before, y, after])


#: what ``--defect`` can do to a clip, and the unit of its value
DEFECTS = {"clip": "dB driven into full scale", "hum": "dB under the clip's RMS", "lowpass": "Hz",
           "dc": "share of the peak", "first": "seconds kept from the start"}


def defect_arg(text: str) -> tuple[str, float]:
    """``--defect KIND:VALUE``, e.g. ``clip:6``; argparse reports what is wrong."""
    kind, _, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if kind not in DEFECTS or not np.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected KIND:VALUE with KIND one of {', '.join(DEFECTS)}, got {text!r}")
    if (kind in ("clip", "lowpass", "first") and number <= 0) or (kind == "hum" and number >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: {kind} takes {DEFECTS[kind]}, "
                                         + ("above 0" if kind != "hum" else "under 0"))
    return kind, number


def with_defect(y: np.ndarray, kind: str, value: float, sample_rate: int) -> np.ndarray:
    """``y`` (peak 1) with one :data:`DEFECTS` defect."""
    if kind == "clip":
        return np.clip(y * 10 ** (value / 20), -1.0, 1.0).astype(np.float32)
    if kind == "hum":
        t = np.arange(len(y)) / sample_rate
        hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
        gain = np.sqrt(np.mean(np.square(y, dtype=np.float64)) / np.mean(hum ** 2)) * 10 ** (value / 20)
        return (y + gain * hum).astype(np.float32)
    if kind == "lowpass":
        return lowpass(y, min(value, 0.45 * sample_rate), sample_rate)
    if kind == "first":
        return y[: max(1, int(round(value * sample_rate)))]
    return (y + value).astype(np.float32)


def check_real_audio(models: Path, data: Path, surround_s: float = 0.0, surround_db: float | None = None,
                     defects: list[tuple[str, float]] = (), min_duration_s: float | None = audio.MIN_DURATION_S) -> dict:
    if surround_s < 0 or (surround_db is not None and not surround_db < 0):
        raise ValueError(f"--surround takes seconds >= 0 and --surround-db a level under 0 dB, "
                         f"got {surround_s} and {surround_db}")
    rec = Recognizer(models, min_duration_s=min_duration_s)
    recording = read_recordings(data)
    rng = np.random.default_rng(0)
    clips = []
    sr = rec.params.sample_rate
    for path, truth in read_labels(data):
        if surround_s or defects:
            y = audio.load(path, params=rec.params)
            for kind, value in defects:
                y = with_defect(y, kind, value, sr)
            if surround_s:
                y = surrounded(y / np.abs(y).max(), surround_s, surround_db, rng, sr)
            pred = rec.predict(y, sr, name=path.name)
        else:
            pred = rec.predict(path)
        ranked = pred.ranking
        per_model = {rep: CODES[int(np.argmax(s))] for rep, s in pred.model_scores.items()}
        clips.append({"file": path.name, "label": truth, "recording": recording.get(path.name, path.name),
                      "top": ranked[0], "rank": ranked.index(truth) + 1, "score": pred.scores[truth],
                      "present": pred.instruments, "top_per_model": per_model})
    n = len(clips)
    correct = sum(c["top"] == c["label"] for c in clips)
    by_model = {rep: sum(c["top_per_model"][rep] == c["label"] for c in clips) / n for rep in clips[0]["top_per_model"]}
    per_label, by_recording = right_first_by(clips, "label"), right_first_by(clips, "recording")
    labels = {c["recording"]: c["label"] for c in clips}
    return {"n": n, "top1_correct": correct, "top1_share": correct / n if n else 0.0,
            "answered_f1_micro": answered_f1([[c["label"]] for c in clips], [c["present"] for c in clips]),
            "top1_share_per_model": by_model, "per_label": per_label,
            "n_recordings": len(by_recording),
            "recordings_right": sum(2 * d["correct"] > d["n"] for d in by_recording.values()),
            "recording_share": float(np.mean([d["correct"] / d["n"] for d in by_recording.values()])),
            "per_recording": {k: {"label": labels[k], **d} for k, d in by_recording.items()}, "clips": clips}


def right_first_by(clips: list[dict], key: str) -> dict[str, dict[str, int]]:
    """Clips with the right instrument first (``correct``) and clips in all (``n``), per value of ``key``."""
    tally: dict[str, dict[str, int]] = {}
    for c in clips:
        d = tally.setdefault(c[key], {"correct": 0, "n": 0})
        d["correct"] += c["top"] == c["label"]
        d["n"] += 1
    return tally


def read_labels(data: Path) -> list[tuple[Path, str]]:
    """(path, IRMAS code) of each clip: from ``labels.csv``, or from a training-layout folder."""
    labels_file = Path(data) / "labels.csv"
    if not labels_file.exists() and any((Path(data) / c).is_dir() for c in CODES):
        from training.datasets import read_training

        return [(e.path, e.labels[0]) for e in read_training(data)]
    if not labels_file.exists():
        raise FileNotFoundError(f"{labels_file} not found (columns: file,label)")
    return [(Path(data) / row["file"], CODES[index_of(row["label"])]) for row in csv.DictReader(labels_file.open())]


def read_recordings(data: Path) -> dict[str, str]:
    """File name -> the recording it was cut from, for the clips whose ``labels.csv`` row names one."""
    labels_file = Path(data) / "labels.csv"
    if not labels_file.exists():
        return {}
    return {row["file"]: row["recording"] for row in csv.DictReader(labels_file.open()) if row.get("recording")}


def mixtures(data: Path, n: int, *, seed: int = 0, sizes: tuple[int, ...] = MIX_SIZES,
             params: FeatureParams = DEFAULT) -> list[tuple[str, list[str], np.ndarray]]:
    """``n`` mixtures of the labelled clips in ``data``: (name, sorted labels, mono samples at
    ``params.sample_rate``) each.

    A mixture takes ``k`` clips of ``k`` different labels (``k`` drawn from ``sizes``, at most the
    number of labels), cuts all to the shortest, scales each to unit RMS and then by a gain of 0 to
    -:data:`MIX_GAIN_DB` dB, and sums them.
    """
    if n < 1:
        raise ValueError(f"the number of mixtures must be at least 1, got {n}")
    by_label: dict[str, list[Path]] = {}
    for path, label in read_labels(data):
        by_label.setdefault(label, []).append(path)
    labels = sorted(by_label)
    sizes = tuple(k for k in sizes if 2 <= k <= len(labels))
    if not sizes:
        raise ValueError(f"{data}: mixtures need clips of at least two instruments; found only {labels}")
    rng = np.random.default_rng(seed)
    decoded: dict[Path, np.ndarray] = {}  # a clip is in many mixtures: decode it once
    out = []
    for _ in range(n):
        chosen = sorted(str(c) for c in rng.choice(labels, size=rng.choice(sizes), replace=False))
        paths = [by_label[c][rng.integers(len(by_label[c]))] for c in chosen]
        for path in paths:
            if path not in decoded:
                decoded[path] = audio.load(path, params=params)
        clips = [decoded[path] for path in paths]
        length = min(len(y) for y in clips)
        gains = 10 ** (-rng.uniform(0, MIX_GAIN_DB, len(clips)) / 20)
        mix = sum(g * y[:length] / max(float(np.sqrt(np.mean(y[:length] ** 2))), 1e-9)
                  for g, y in zip(gains, clips))
        out.append(("+".join(p.name for p in paths), chosen, mix.astype(np.float32)))
    return out


def check_mixtures(models: Path, data: Path, n: int, seed: int = 0) -> dict:
    """How the exported models answer :func:`mixtures` of the clips in ``data``."""
    rec = Recognizer(models)
    rows = []
    for name, labels, y in mixtures(data, n, seed=seed, params=rec.params):
        pred = rec.predict(y, rec.params.sample_rate, name=name)
        top = pred.ranking[0]
        rows.append({"mixture": name, "labels": labels, "present": pred.instruments, "top": top})
    recall = {}
    for r in rows:
        for c in r["labels"]:
            d = recall.setdefault(c, [0, 0])
            d[0] += c in r["present"]
            d[1] += 1
    return {"n": len(rows), "seed": seed,
            "answered_f1_micro": answered_f1([r["labels"] for r in rows], [r["present"] for r in rows]),
            "top_among_true": sum(r["top"] in r["labels"] for r in rows) / len(rows),
            "recall": {c: {"answered": a, "n": b} for c, (a, b) in sorted(recall.items())}, "mixtures": rows}


def lowpass(y, hz: float | None, sample_rate: int):
    """``y`` through a 6th-order Butterworth low-pass; unchanged for None."""
    if hz is None:
        return y
    import scipy.signal

    sos = scipy.signal.butter(6, hz, fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos, y).astype(np.float32)


def check_checkpoints(checkpoints: list[Path], data: Path, lowpass_hz: float | None = None,
                      mean: bool = False) -> dict:
    """Top-1 share of each checkpoint on the labelled clips in ``data`` (low-passed when asked); with
    ``mean`` also of the mean of the checkpoints' clip scores (an ensemble, e.g. of training seeds),
    under the key ``"mean"``. Each result keeps every clip's 11 scores (``scores``)."""
    import torch

    from instrec import features
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
                              "per_label": result["per_label"], "n_recordings": result["n_recordings"],
                              "recordings_right": result["recordings_right"],
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
    ap.add_argument("--mixtures", type=int, metavar="N",
                    help="ask about N mixtures of 2-3 clips of different instruments instead of the clips")
    ap.add_argument("--mixture-seed", type=int, default=0, help="with --mixtures: which mixtures (default 0)")
    ap.add_argument("--surround", type=float, default=0.0, metavar="S",
                    help="ask about every clip with S seconds of silence before and after it")
    ap.add_argument("--surround-db", type=float, metavar="DB",
                    help="with --surround: white noise DB dB RMS under the clip's peak instead of silence")
    ap.add_argument("--defect", type=defect_arg, action="append", default=[], metavar="KIND:VALUE",
                    help=f"give every clip this defect first (repeatable; KIND one of {', '.join(DEFECTS)})")
    ap.add_argument("--min-seconds", type=audio.min_seconds_arg, default=audio.MIN_DURATION_S, metavar="S",
                    help="the recognizer's minimum duration (default %(default)s s, as served; 0: answer any length, "
                         "to measure what a shorter cut would give)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--record", action="store_true", help="write the result into the models' manifest.json "
                    "(as real_audio: the app's model line quotes it)")
    args = ap.parse_args(argv)
    if (args.mixtures is not None or args.surround or args.defect) and args.record:
        ap.error("--record stores the check of the clips themselves; leave out --mixtures, --surround, --defect")
    if args.surround_db is not None and not args.surround:
        ap.error("--surround-db is the level of what --surround puts around the clips; give --surround too")
    if (args.surround or args.defect) and (args.mixtures is not None or args.checkpoint):
        ap.error("--surround and --defect are for the clips asked about one by one through the exported models")
    cuts = [value for kind, value in args.defect if kind == "first" and value < (args.min_seconds or 0)]
    if cuts:
        ap.error(f"--defect first:{cuts[0]:g} cuts every clip under the recognizer's minimum of {args.min_seconds:g} s, "
                 "which refuses them: give --min-seconds 0 to measure what it would answer")
    try:
        print_check(args)
    except (ModelError, audio.AudioError, FileNotFoundError, ValueError) as exc:
        print(f"python -m training.real_audio: {exc}", file=sys.stderr)
        return 2
    return 0


def print_check(args: argparse.Namespace) -> None:
    """Run the check ``args`` ask for and print it (as JSON with ``--json``)."""
    result, lines = run_check(args)
    print(json.dumps(result, indent=1) if args.json else "\n".join(lines))


def run_check(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """The result of the check ``args`` ask for, and its lines for a person."""
    if args.checkpoint:
        result = check_checkpoints(args.checkpoint, args.data, args.lowpass, args.mean)
        return result, [f"{name}: right instrument first {r['top1_correct']}/{r['n']} ({r['top1_share']:.0%}); "
                        + ", ".join(f"{k} {v['correct']}/{v['n']}" for k, v in r["per_label"].items())
                        for name, r in result.items()]
    if args.mixtures is not None:
        result = check_mixtures(args.models, args.data, args.mixtures, args.mixture_seed)
        lines = [f"{r['mixture']:<60} {'+'.join(r['labels']):<12} answered {','.join(r['present']) or '-'}"
                 for r in result["mixtures"]]
        return result, [*lines, f"{result['n']} mixtures: micro F1 of the answered sets {result['answered_f1_micro']:.3f}; "
                        f"top instrument among the mixed {result['top_among_true']:.0%}; recall "
                        + ", ".join(f"{k} {v['answered']}/{v['n']}" for k, v in result["recall"].items())]
    result = check_real_audio(args.models, args.data, args.surround, args.surround_db, args.defect, args.min_seconds)
    if args.record:
        record(args.models, args.data, result)
    lines = [f"{c['file']:<42} {c['label']}  top {c['top']}  rank of truth {c['rank']:2d}  score {c['score']:.2f}"
             for c in result["clips"]]
    recordings = result["per_recording"]
    listed = "" if len(recordings) == result["n"] else " (" + ", ".join(
        f"{k} {v['correct']}/{v['n']}" for k, v in recordings.items()) + ")"
    return result, [*lines, f"right instrument first: {result['top1_correct']}/{result['n']} ({result['top1_share']:.0%}); "
                    f"micro F1 of the answered sets {result['answered_f1_micro']:.3f}; "
                    + ", ".join(f"{k} alone {v:.0%}" for k, v in result["top1_share_per_model"].items()),
                    f"by recording: most clips right first for {result['recordings_right']} of "
                    f"{result['n_recordings']}, mean share {result['recording_share']:.0%}{listed}"]


if __name__ == "__main__":
    sys.exit(main())
