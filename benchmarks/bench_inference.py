"""End-to-end recognition speed and memory: instrec fp32 and int8 beside the straightforward pipeline.

    python benchmarks/bench_inference.py [--models DIR] [--int8 DIR] [--seconds 20] [--repeats 11] [--rounds 3] [--hour]

For a clip of ``--seconds`` (a WAV at 44.1 kHz stereo): decode, three representations, three
models, the musicnn head when the models have it (its patches and its model), fusion; beside them, the
same CNNs alone under their fusion before the head was added ("fp32 CNNs alone"). instrec = ``Recognizer.predict`` (onnxruntime on the CPU, the thread policy of
:mod:`instrec.runtime`), with the fp32 and the int8 models; straightforward = ``librosa.load`` +
librosa's melspectrogram and chroma_cqt + the modgd written with full-length FFTs + the PyTorch
models in eager mode. Each pipeline runs in a fresh process (for its peak resident memory), in
``--rounds`` rounds that take turns (straightforward, fp32, int8, straightforward, ...), so that a
slow spell of a shared machine falls on every pipeline alike; end to end is the median of all
``rounds x repeats`` runs, and for instrec each stage (timed alone, ``--repeats`` times per round) is
the median of its rounds' medians.
``--hour`` adds a 60-minute file (time and peak memory of instrec fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from instrec import runtime
from instrec.recognizer import HEAD, HEAD_BATCH, MODELS_DIR, PRECISIONS


def make_clip(path: Path, seconds: float, sr: int = 44100, channels: int = 2) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=channels, subtype="PCM_16") as f:
        block = sr * 60
        done = 0
        while done < seconds * sr:
            n = int(min(block, seconds * sr - done))
            t = (done + np.arange(n)) / sr
            y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(n)
            f.write(np.repeat(y[:, None], channels, axis=1).astype(np.float32))
            done += n


def cnns_alone(models: Path, out: Path) -> Path | None:
    """The CNNs of models that have the musicnn head, under the fusion they had before it was added (the
    manifest's ``fusion_tuning.previous_fusion``), linked into ``out``: the baseline of what the head costs."""
    manifest = json.loads((models / "manifest.json").read_text())
    previous = (manifest.get("fusion_tuning") or {}).get("previous_fusion")
    if HEAD not in manifest["fusion"]["models"] or not previous or HEAD in previous["models"]:
        return None
    out.mkdir()
    for rep in previous["models"]:
        (out / manifest["models"][rep]["file"]).symlink_to((models / manifest["models"][rep]["file"]).resolve())
    (out / "manifest.json").write_text(json.dumps({**manifest, "fusion": previous}))
    return out


def instrec_runner(models: Path):
    from instrec.recognizer import Recognizer

    rec = Recognizer(models)
    return lambda path: rec.predict(path)


def stages(models: Path, clip: Path, repeats: int) -> dict[str, float]:
    """Median milliseconds of each stage of a prediction, each timed alone on the same clip."""
    import soundfile as sf

    from instrec import audio, features, runtime
    from instrec.recognizer import Recognizer

    rec = Recognizer(models)

    def ms(fn):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return round(1000 * statistics.median(times), 1)

    raw, sr = sf.read(str(clip), dtype="float32", always_2d=True)
    mono = audio.to_mono(raw)
    y = audio.pad_to_windows(audio.normalise(audio.resample(mono, sr, rec.params.sample_rate)), rec.params)
    out = {"decode": ms(lambda: sf.read(str(clip), dtype="float32", always_2d=True)),
           "channel average": ms(lambda: audio.to_mono(raw)),
           "resample": ms(lambda: audio.resample(mono, sr, rec.params.sample_rate)),
           "window levels": ms(lambda: audio.window_levels(y, rec.params))}
    windows = {}
    for rep in rec.sessions:
        def feature(rep=rep):
            with runtime.compute_threads(rec.threads):
                windows[rep] = features.extract(y, params=rec.params, representations=(rep,))[rep]
        out[f"features {rep}"] = ms(feature)
    for rep, session in rec.sessions.items():
        name = session.get_inputs()[0].name
        out[f"model {rep}"] = ms(lambda s=session, n=name, w=windows[rep]: s.run(None, {n: w}))
    if rec.head is not None:
        from instrec.embedding import window_patches

        def musicnn_patches():
            with runtime.compute_threads(rec.threads):
                windows[HEAD] = window_patches(y, rec.params, rec.head_stride)
        out[f"features {HEAD}"] = ms(musicnn_patches)
        out[f"model {HEAD}"] = ms(lambda: rec._run(rec.head, windows[HEAD]))  # in the recognizer's batches
    return out


def straightforward_runner(models: Path):
    import librosa
    import torch
    from bench_features import straightforward_chroma, straightforward_mel, straightforward_modgd

    from instrec.audio import n_windows, pad_to_windows
    from instrec.features import windows
    from instrec.fusion import Fusion, aggregate
    from training.models import InstrumentCNN

    manifest = json.loads((models / "manifest.json").read_text())
    fusion = Fusion.from_dict(manifest["fusion"])
    torch.set_num_threads(os.cpu_count() or 1)
    nets = {"mel": InstrumentCNN("mel", 128).eval(), "modgd": InstrumentCNN("modgd", 128).eval(),
            "cqt": InstrumentCNN("cqt", 36).eval()}
    funcs = {"mel": straightforward_mel, "modgd": straightforward_modgd, "cqt": straightforward_chroma}

    head = None
    if HEAD in fusion.models:  # musicnn has no other implementation here: the same ONNX model on the same patches
        import onnxruntime as ort

        from instrec.embedding import WindowPatches, window_patches
        stride = manifest["models"][HEAD].get("stride", 1)
        head = ort.InferenceSession(str(models / manifest["models"][HEAD]["file"]), providers=["CPUExecutionProvider"])

    def run(path):
        y, _ = librosa.load(path, sr=22050, mono=True)
        y = y / np.max(np.abs(y))
        scores = {}
        if head is not None:
            patches = window_patches(y, stride=stride)
            probs = [head.run(None, {"mel:0": patches[i : i + HEAD_BATCH]})[0] for i in range(0, len(patches), HEAD_BATCH)]
            spread = WindowPatches(stride=stride).spread(np.concatenate(probs), n_windows(len(y)))
            scores[HEAD] = aggregate(spread, fusion.aggregation)
        y = pad_to_windows(y)
        for rep, fn in funcs.items():
            x = torch.from_numpy(windows(fn(y)))
            with torch.no_grad():
                scores[rep] = aggregate(nets[rep](x).numpy(), fusion.aggregation)
        return fusion.decide(scores)

    return run


def measure(kind: str, models: Path, clip: Path, repeats: int) -> dict:
    """Run in this process: median seconds over ``repeats`` after one warm-up, and peak RSS."""
    run = straightforward_runner(models) if kind == "straightforward" else instrec_runner(models)
    run(clip)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(clip)
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times_s": times, "peak_rss_mb": peak,
            "stages": stages(models, clip, repeats) if kind == "instrec" and sf.info(str(clip)).duration <= 60 else {}}


def in_fresh_process(kind: str, models: Path, clip: Path, repeats: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", kind, "--models", str(models), "--clip", str(clip),
                          "--repeats", str(repeats)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_rounds(pipelines: dict[str, tuple[str, Path]], clip: Path, repeats: int, rounds: int) -> dict[str, dict]:
    """Each pipeline (name -> kind, models) in ``rounds`` fresh processes, taking turns; their runs pooled:
    the median end to end over all runs, each stage's median over the rounds, the largest peak RSS."""
    results: dict[str, list[dict]] = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, (kind, models) in pipelines.items():
            results[name].append(in_fresh_process(kind, models, clip, repeats))
    pooled = {}
    for name, runs in results.items():
        pooled[name] = {"median_s": statistics.median(t for r in runs for t in r["times_s"]),
                        "round_medians_s": [statistics.median(r["times_s"]) for r in runs],
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                        "stages": {stage: statistics.median(r["stages"][stage] for r in runs) for stage in runs[0]["stages"]}}
    return pooled


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--int8", default=str(PRECISIONS["int8"]), help="the int8 models ('' to skip)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per pipeline, taking turns")
    ap.add_argument("--hour", action="store_true", help="also a 60-minute file")
    ap.add_argument("--measure", choices=("instrec", "straightforward"), help=argparse.SUPPRESS)
    ap.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:  # the child process of in_fresh_process
        print(json.dumps(measure(args.measure, args.models, args.clip, args.repeats)))
        return
    print(f"{platform.machine()}, {runtime.cores()} cores; models {args.models} and {args.int8 or '(no int8)'}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        make_clip(clip, args.seconds)
        pipelines = {"straightforward": ("straightforward", args.models), "instrec fp32": ("instrec", args.models)}
        cnns = cnns_alone(args.models, Path(tmp) / "cnns")
        if cnns is not None:
            pipelines["fp32 CNNs alone"] = ("instrec", cnns)
        if args.int8 and Path(args.int8).exists():
            pipelines["instrec int8"] = ("instrec", Path(args.int8))
        runs = in_rounds(pipelines, clip, args.repeats, args.rounds)
        ref = runs.pop("straightforward")
        print(f"{args.seconds:.0f} s clip, 44.1 kHz stereo WAV; {args.rounds} rounds of {args.repeats} runs, "
              "pipelines taking turns (ms, medians):")
        names = list(runs)
        print(f"  {'stage':22}" + "".join(f"{n:>18}" for n in names))
        for stage in runs[names[0]]["stages"]:
            print(f"  {stage:22}" + "".join(f"{runs[n]['stages'][stage]:18.1f}" if stage in runs[n]["stages"]
                                            else f"{'-':>18}" for n in names))
        print(f"  {'end to end':22}" + "".join(f"{1000 * runs[n]['median_s']:18.0f}" for n in names)
              + f"   straightforward {1000 * ref['median_s']:.0f}")
        print(f"  {'speed-up':22}" + "".join(f"{ref['median_s'] / runs[n]['median_s']:17.1f}x" for n in names))
        print(f"  {'speed-up per round':22}" + "".join(
            f" {'/'.join(f'{a / b:.1f}' for a, b in zip(ref['round_medians_s'], runs[n]['round_medians_s'])):>17}"
            for n in names))
        print(f"  {'peak RSS (MB)':22}" + "".join(f"{runs[n]['peak_rss_mb']:18.0f}" for n in names)
              + f"   straightforward {ref['peak_rss_mb']:.0f}")
        if args.hour:
            long = Path(tmp) / "hour.wav"
            make_clip(long, 3600, sr=22050, channels=1)
            hour = in_fresh_process("instrec", args.models, long, 1)
            seconds = statistics.median(hour["times_s"])
            print(f"60 min file: {seconds:.1f} s ({3600 / seconds:.0f}x real time), "
                  f"peak RSS {hour['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
