"""WaveGAN (Donahue, McAuley and Puckette, "Adversarial Audio Synthesis", ICLR 2019) for data augmentation.

    python -m training.wavegan train --data DIR --instrument CODE --out DIR [--slice-len 65536]
                                     [--model-size 32] [--steps 20000] [--resume]
    python -m training.wavegan generate --checkpoint DIR/checkpoint.pt --n 500 --out DIR

One model per instrument, trained with WGAN-GP on random slices of that class's training excerpts
(22 050 Hz, peak-normalised). ``generate`` writes IRMAS training-layout files,
``<out>/<code>/wavegan-<k>__[<code>]<k>__1.wav``, loudness-normalised, which the training
command takes with ``--extra-train <out>``.

Architecture as the paper's (and its v2 code for 65 536 samples): the generator maps z (100) by a
dense layer to 16 frames and up-samples with transposed 1-D convolutions (kernel 25, stride 4,
ReLU, tanh at the end); the discriminator mirrors it with strided convolutions, LeakyReLU(0.2) and
phase shuffle (n = 2) after each but the last. ``model_size`` (d) sets the widths (64 in the paper).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from tqdm import tqdm

from instrec import audio
from instrec.labels import CODES, NAMES
from instrec.params import DEFAULT
from training.checkpoints import pick_device
from training.datasets import read_training, training_root

SLICE_LENGTHS = (16384, 65536)
LATENT = 100


def _n_layers(slice_len: int) -> int:
    if slice_len not in SLICE_LENGTHS:
        raise ValueError(f"slice_len must be one of {SLICE_LENGTHS}, got {slice_len}")
    return 5 if slice_len == 16384 else 6


class Generator(nn.Module):
    """z (batch, 100) -> audio (batch, 1, slice_len) in [-1, 1]."""

    def __init__(self, slice_len: int = 16384, model_size: int = 64):
        super().__init__()
        n = _n_layers(slice_len)
        widths = [model_size * 2 ** (n - 1 - i) for i in range(n)] + [1]  # 16d..d, 1 (32d..d, 1 for v2)
        self.widths, self.slice_len = widths, slice_len
        self.dense = nn.Linear(LATENT, 16 * widths[0])
        layers = []
        for i in range(n):
            layers.append(nn.ConvTranspose1d(widths[i], widths[i + 1], 25, stride=4, padding=11, output_padding=1))
            layers.append(nn.ReLU() if i < n - 1 else nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.dense(z)).view(z.shape[0], self.widths[0], 16)  # (batch, 16d, 16)
        return self.net(x)  # (batch, 1, 16 * 4^n)


class PhaseShuffle(nn.Module):
    """Shift each example in time by a random k in [-n, n], filling the edge by reflection."""

    def __init__(self, n: int = 2):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or self.n == 0:
            return x
        if shifts is None:
            shifts = torch.randint(-self.n, self.n + 1, (x.shape[0],), device=x.device)
        padded = nn.functional.pad(x, (self.n, self.n), mode="reflect")
        length = x.shape[-1]
        idx = (torch.arange(length, device=x.device)[None, :] + self.n - shifts[:, None])  # (batch, length)
        return torch.gather(padded, 2, idx[:, None, :].expand(-1, x.shape[1], -1))


class Discriminator(nn.Module):
    """audio (batch, 1, slice_len) -> critic score (batch,)."""

    def __init__(self, slice_len: int = 16384, model_size: int = 64, phase_shuffle: int = 2):
        super().__init__()
        n = _n_layers(slice_len)
        widths = [1] + [model_size * 2**i for i in range(n)]
        self.convs = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], 25, stride=4, padding=11) for i in range(n))
        self.shuffle = PhaseShuffle(phase_shuffle)
        self.dense = nn.Linear(16 * widths[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = nn.functional.leaky_relu(conv(x), 0.2)
            if i < len(self.convs) - 1:
                x = self.shuffle(x)
        return self.dense(x.flatten(1)).squeeze(1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0,
                     alpha: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP: weight * E[(||grad critic(x_hat)||_2 - 1)^2] on random interpolates x_hat."""
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# ---- data ------------------------------------------------------------------------------------


class SliceSampler:
    """Random slices of ``slice_len`` samples from one class's excerpts, held in memory."""

    def __init__(self, paths: list[Path], slice_len: int, rng: np.random.Generator):
        self.slice_len, self.rng = slice_len, rng
        self.clips = []
        for p in paths:
            try:
                self.clips.append(audio.load(p))
            except audio.AudioError:
                continue
        if not self.clips:
            raise ValueError("no readable audio for this instrument")

    def batch(self, n: int) -> np.ndarray:
        out = np.zeros((n, 1, self.slice_len), np.float32)
        for i in range(n):
            y = self.clips[int(self.rng.integers(len(self.clips)))]
            if len(y) > self.slice_len:
                start = int(self.rng.integers(0, len(y) - self.slice_len))
                out[i, 0] = y[start : start + self.slice_len]
            else:
                out[i, 0, : len(y)] = y
        return out


# ---- commands --------------------------------------------------------------------------------


def train(data: Path, instrument: str, out: Path, *, slice_len: int = 65536, model_size: int = 32, steps: int = 20000,
          batch_size: int = 16, critic_steps: int = 5, lr: float = 1e-4, sample_every: int = 500,
          checkpoint_every: int = 100, seed: int = 0, resume: bool = False, device: str | None = None,
          max_minutes: float | None = None, progress: bool = True) -> dict:
    if instrument not in CODES:
        raise ValueError(f"unknown instrument {instrument!r}; expected one of {' '.join(CODES)}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = pick_device(device)
    out = Path(out)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    paths = [e.path for e in read_training(training_root(data)) if e.labels == (instrument,)]
    sampler = SliceSampler(paths, slice_len, rng)
    G, D = Generator(slice_len, model_size).to(dev), Discriminator(slice_len, model_size).to(dev)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.9))
    step, history = 0, []
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=dev, weights_only=False)
        G.load_state_dict(state["generator"])
        D.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, history = state["step"], state["history"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
    config = {"instrument": instrument, "slice_len": slice_len, "model_size": model_size, "sample_rate": DEFAULT.sample_rate,
              "batch_size": batch_size, "critic_steps": critic_steps, "lr": lr, "data": str(data), "n_clips": len(sampler.clips)}
    t0 = time.perf_counter()

    def save():
        torch.save({"generator": G.state_dict(), "discriminator": D.state_dict(), "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(), "step": step, "history": history, "config": config,
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, ckpt_path)

    bar = tqdm(total=steps, initial=step, desc=f"wavegan {instrument}", unit="step", disable=not progress)
    while step < steps:
        if max_minutes is not None and (time.perf_counter() - t0) / 60 > max_minutes:
            break
        for _ in range(critic_steps):
            real = torch.from_numpy(sampler.batch(batch_size)).to(dev)
            with torch.no_grad():
                fake = G(torch.rand(batch_size, LATENT, device=dev) * 2 - 1)
            d_loss = D(fake).mean() - D(real).mean() + gradient_penalty(D, real, fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        g_loss = -D(G(torch.rand(batch_size, LATENT, device=dev) * 2 - 1)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        step += 1
        history.append({"step": step, "d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach())})
        bar.update()
        bar.set_postfix(d=f"{history[-1]['d_loss']:.3f}", g=f"{history[-1]['g_loss']:.3f}")
        if step % sample_every == 0 or step == steps:
            G.eval()
            with torch.no_grad():
                sample = G(torch.rand(1, LATENT, device=dev) * 2 - 1)[0, 0].cpu().numpy()
            G.train()
            sf.write(str(out / "samples" / f"step{step:06d}.wav"), sample, DEFAULT.sample_rate, subtype="PCM_16")
        if step % checkpoint_every == 0 or step == steps:
            save()
    bar.close()
    save()
    return {"steps": step, "history": history, "config": config}


def loudness_normalise(y: np.ndarray, target_dbfs: float = -20.0, peak: float = 0.99) -> np.ndarray:
    """Scale to ``target_dbfs`` RMS, then down if the peak would pass ``peak``."""
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    if rms < 1e-8:
        return y
    y = y * (10 ** (target_dbfs / 20) / rms)
    return (y * min(1.0, peak / max(float(np.max(np.abs(y))), 1e-12))).astype(np.float32)


def generate(checkpoint: Path, n: int, out: Path, *, seed: int = 0, batch_size: int = 16, device: str | None = None) -> list[Path]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = state["config"]
    dev = pick_device(device)
    G = Generator(cfg["slice_len"], cfg["model_size"]).to(dev).eval()
    G.load_state_dict(state["generator"])
    code = cfg["instrument"]
    folder = Path(out) / code
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    written = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            z = torch.rand(min(batch_size, n - start), LATENT, device=dev) * 2 - 1
            for k, y in enumerate(G(z)[:, 0].cpu().numpy(), start=start + 1):
                path = folder / f"wavegan-{k:05d}__[{code}]{k:04d}__1.wav"
                sf.write(str(path), loudness_normalise(y), cfg["sample_rate"], subtype="PCM_16")
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.wavegan", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one instrument's WaveGAN")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--instrument", required=True, choices=CODES)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--slice-len", type=int, default=65536, choices=SLICE_LENGTHS)
    t.add_argument("--model-size", type=int, default=32)
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--sample-every", type=int, default=500)
    t.add_argument("--max-minutes", type=float)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device")
    t.add_argument("--resume", action="store_true")
    g = sub.add_parser("generate", help="write generated excerpts in the IRMAS training layout")
    g.add_argument("--checkpoint", type=Path, required=True)
    g.add_argument("--n", type=int, default=500)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device")
    args = ap.parse_args(argv)
    try:
        if args.command == "train":
            result = train(args.data, args.instrument, args.out, slice_len=args.slice_len, model_size=args.model_size,
                           steps=args.steps, batch_size=args.batch_size, sample_every=args.sample_every,
                           seed=args.seed, resume=args.resume, device=args.device, max_minutes=args.max_minutes)
            print(f"{NAMES[args.instrument]}: {result['steps']} steps -> {args.out / 'checkpoint.pt'}")
        else:
            files = generate(args.checkpoint, args.n, args.out, seed=args.seed, device=args.device)
            print(f"{len(files)} files -> {files[0].parent if files else args.out}")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
