"""Training throughput of each CNN: windows per second for Adam steps on batches of 128.

    python benchmarks/bench_training.py [--steps 10] [--batch-size 128] [--device cpu]

Random inputs of the right shape: the figure is the model's cost alone (features come from the
on-disk cache during training). Also prints the estimated time of one epoch over the default
synthetic corpus (6 705 three-second excerpts: about 20 000 windows, 85 % of them for training).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from instrec.params import DEFAULT as P
from training.models import InstrumentCNN
from training.train import loss_fn

DEFAULT_TRAIN_WINDOWS = int(6705 * 3 * 0.85)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    dev = torch.device(args.device)
    print(f"device {dev}, {torch.get_num_threads()} threads, {platform.machine()}, torch {torch.__version__}")
    print(f"{'model':<8}{'windows/s':>12}{'epoch estimate':>18}")
    for name, (c, f, t) in P.shapes.items():
        model = InstrumentCNN(name, f).to(dev).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(args.batch_size, c, f, t, device=dev)
        y = torch.nn.functional.one_hot(torch.randint(0, 11, (args.batch_size,)), 11).float().to(dev)
        for step in range(args.steps + 2):
            if step == 2:  # two warm-up steps
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model, x, y).backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rate = args.steps * args.batch_size / (time.perf_counter() - t0)
        print(f"{name:<8}{rate:>12.0f}{DEFAULT_TRAIN_WINDOWS / rate / 60:>15.1f} min")


if __name__ == "__main__":
    main()
