"""What relaxed frequency-wise normalisation (``--freq-norm``) or PCEN (``--pcen``) costs at inference,
beside the plain CNNs.

    python benchmarks/bench_freq_norm.py [--windows 60] [--repeats 21] [--rounds 3] [--lambda 0.5] [--pcen]

Each CNN (mel, modgd, cqt) is built twice with the same random weights, once with input
standardisation only (as shipped) and once with ``--freq-norm LAMBDA`` (with ``--pcen``: the mel CNN
only, once with PCEN on its input, the time constant of ``training.train --pcen``), exported to ONNX by the
export step's own function and run by onnxruntime under the recognizer's session options and thread
policy (:mod:`instrec.runtime`). Speed does not depend on the weights' values, so no training is
needed. Times one batch of ``--windows`` windows (60: a one-minute clip); the rounds take turns
(plain, normalised, plain, ...) so that a slow spell of a shared machine falls on both alike; each
figure is the median of all ``rounds x repeats`` runs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from instrec import runtime
from instrec.params import DEFAULT, REPRESENTATIONS
from training.export import INPUT, export_model
from training.models import InstrumentCNN
from training.train import pcen_frames


def build(representation: str, freq_norm: float | None = None, pcen: float | None = None) -> InstrumentCNN:
    torch.manual_seed(0)
    shape = DEFAULT.shapes[representation]
    model = InstrumentCNN(representation, shape[1], freq_norm=freq_norm, pcen=pcen)
    model.set_normalisation(torch.zeros(shape[1]), torch.ones(shape[1]))
    return model.eval()


def time_session(session, x: np.ndarray, repeats: int) -> list[float]:
    session.run(None, {INPUT: x})  # warm-up: first-run allocations and kernel choices
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, {INPUT: x})
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lambda", dest="lam", type=float, default=0.5)
    ap.add_argument("--pcen", action="store_true", help="time the mel CNN with PCEN instead")
    args = ap.parse_args(argv)
    variant = "pcen" if args.pcen else f"freq-norm {args.lam}"
    threads = runtime.default_threads()
    print(f"{platform.machine()}, {runtime.cores()} cores; onnxruntime {ort.__version__} "
          f"(CPU, {threads} threads); {args.windows} windows per run, median of {args.rounds} x {args.repeats}")
    print(f"{'CNN':<6} {'plain (ms)':>11} {f'{variant} (ms)':>20} {'ratio':>7}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in ("mel",) if args.pcen else REPRESENTATIONS:
            shape = DEFAULT.shapes[rep]
            x = rng.standard_normal((args.windows, *shape)).astype(np.float32)
            sessions = {}
            variants = {"plain": build(rep), "other": build(rep, pcen=pcen_frames()) if args.pcen else build(rep, args.lam)}
            for name, model in variants.items():
                path = Path(tmp) / f"{rep}-{name}.onnx"
                export_model(model, shape, path)
                sessions[name] = ort.InferenceSession(str(path), sess_options=runtime.session_options(ort, threads),
                                                      providers=["CPUExecutionProvider"])
            times = {name: [] for name in sessions}
            for _ in range(args.rounds):
                for name, session in sessions.items():
                    times[name] += time_session(session, x, args.repeats)
            plain, normed = (1000 * statistics.median(times[k]) for k in ("plain", "other"))
            print(f"{rep:<6} {plain:>11.2f} {normed:>20.2f} {normed / plain:>6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
