"""End-to-end recognition speed and memory: instrec beside the straightforward pipeline.

    python benchmarks/bench_inference.py [--models DIR] [--seconds 20] [--repeats 5] [--hour]

For a clip of ``--seconds`` (a WAV at 44.1 kHz stereo): decode, three representations, three
models, fusion. instrec = ``Recognizer.predict`` (onnxruntime on the CPU); straightforward =
``librosa.load`` + librosa's melspectrogram and chroma_cqt + the modgd written with full-length
FFTs + the PyTorch models in eager mode. Median of ``--repeats`` runs; each pipeline's peak
resident memory is measured in a fresh process. ``--hour`` adds a 60-minute file (time and peak
memory of instrec only).
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

from instrec.recognizer import MODELS_DIR


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


def instrec_runner(models: Path):
    from instrec.recognizer import Recognizer

    rec = Recognizer(models)
    return lambda path: rec.predict(path)


def straightforward_runner(models: Path):
    import librosa
    import torch

    from benchmarks.bench_features import straightforward_chroma, straightforward_mel, straightforward_modgd
    from instrec.audio import pad_to_windows
    from instrec.features import windows
    from instrec.fusion import Fusion, aggregate
    from training.models import InstrumentCNN

    manifest = json.loads((models / "manifest.json").read_text())
    fusion = Fusion.from_dict(manifest["fusion"])
    torch.set_num_threads(os.cpu_count() or 1)
    nets = {"mel": InstrumentCNN("mel", 128).eval(), "modgd": InstrumentCNN("modgd", 128).eval(),
            "cqt": InstrumentCNN("cqt", 36).eval()}
    funcs = {"mel": straightforward_mel, "modgd": straightforward_modgd, "cqt": straightforward_chroma}

    def run(path):
        y, _ = librosa.load(path, sr=22050, mono=True)
        y = pad_to_windows(y / np.max(np.abs(y)))
        scores = {}
        for rep, fn in funcs.items():
            x = torch.from_numpy(windows(fn(y)))
            with torch.no_grad():
                scores[rep] = aggregate(nets[rep](x).numpy(), fusion.aggregation)
        return fusion.decide(scores)

    return run


def measure(kind: str, models: Path, clip: Path, repeats: int) -> dict:
    """Run in this process: median seconds over ``repeats`` after one warm-up, and peak RSS."""
    run = instrec_runner(models) if kind == "instrec" else straightforward_runner(models)
    run(clip)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(clip)
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_fresh_process(kind: str, models: Path, clip: Path, repeats: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", kind, "--models", str(models), "--clip", str(clip),
                          "--repeats", str(repeats)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hour", action="store_true", help="also a 60-minute file")
    ap.add_argument("--measure", choices=("instrec", "straightforward"), help=argparse.SUPPRESS)
    ap.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:  # the child process of in_fresh_process
        print(json.dumps(measure(args.measure, args.models, args.clip, args.repeats)))
        return
    print(f"{platform.machine()}, {os.cpu_count()} cores, models {args.models}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        make_clip(clip, args.seconds)
        ours = in_fresh_process("instrec", args.models, clip, args.repeats)
        ref = in_fresh_process("straightforward", args.models, clip, args.repeats)
        print(f"{args.seconds:.0f} s clip, median of {args.repeats}:")
        print(f"  instrec          {1000 * ours['median_s']:8.0f} ms   peak RSS {ours['peak_rss_mb']:6.0f} MB")
        print(f"  straightforward  {1000 * ref['median_s']:8.0f} ms   peak RSS {ref['peak_rss_mb']:6.0f} MB")
        print(f"  speed-up         {ref['median_s'] / ours['median_s']:8.1f}x")
        if args.hour:
            long = Path(tmp) / "hour.wav"
            make_clip(long, 3600, sr=22050, channels=1)
            hour = in_fresh_process("instrec", args.models, long, 1)
            print(f"60 min file: {hour['median_s']:.1f} s ({3600 / hour['median_s']:.0f}x real time), "
                  f"peak RSS {hour['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
