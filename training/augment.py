"""Augmentations applied to batches of cached feature windows, switchable from the training command.

    crop      a random 100-frame window across the boundary with the file's next window
    stretch   time stretch by 0.8-1.25 (linear interpolation along time)
    freqmask  one band of up to an eighth of the bins set to the window's mean (SpecAugment)
    mix       half the windows mixed with a window of another class; the target is the union
              (log-mel: sum of magnitudes; modgd and chroma: weighted sum)

Working on cached features keeps epochs bound by the model, not by audio processing.
"""

from __future__ import annotations

import numpy as np

AUGMENTATIONS = ("crop", "stretch", "freqmask", "mix")


def _context(windows: np.ndarray, file_index: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Each window followed by the next window of the same file (or itself): (B, 1, F, 2T)."""
    nxt = np.minimum(idx + 1, len(windows) - 1)
    same = file_index[nxt] == file_index[idx]
    nxt = np.where(same, nxt, idx)
    return np.concatenate([windows[idx], windows[nxt]], axis=-1)


def batch(features, idx: np.ndarray, targets: np.ndarray, augment: tuple[str, ...], rng: np.random.Generator,
          representation: str = "mel") -> tuple[np.ndarray, np.ndarray]:
    """Windows ``idx`` of a :class:`~training.cache.FeatureSet`, augmented -> (x, y) float32."""
    x = np.array(features.windows[idx], dtype=np.float32)
    y = np.array(targets[idx], dtype=np.float32)
    if not augment:
        return x, y
    B, _, F, T = x.shape
    if "crop" in augment or "stretch" in augment:
        ctx = _context(features.windows, features.file_index, idx)
        rate = rng.uniform(0.8, 1.25, B) if "stretch" in augment else np.ones(B)
        span = T * rate
        offset = rng.uniform(0, np.maximum(2 * T - 1 - span, 0)) if "crop" in augment else np.zeros(B)
        for b in range(B):
            pos = np.clip(offset[b] + np.arange(T) * rate[b], 0, 2 * T - 1)
            i0 = pos.astype(int)
            i1 = np.minimum(i0 + 1, 2 * T - 1)
            w = (pos - i0).astype(np.float32)
            x[b] = ctx[b][..., i0] * (1 - w) + ctx[b][..., i1] * w
    if "freqmask" in augment:
        for b in range(B):
            width = int(rng.integers(1, max(2, F // 8)))
            start = int(rng.integers(0, F - width))
            x[b, :, start : start + width] = x[b].mean()
    if "mix" in augment:
        partner = rng.permutation(B)
        differs = (y * y[partner]).sum(1) == 0
        chosen = differs & (rng.random(B) < 0.5)
        gain = rng.uniform(0.3, 1.0, B).astype(np.float32)[:, None, None, None]
        other = x[partner]
        if representation == "mel":
            mixed = np.log(np.exp(x) + gain * np.exp(other))
        else:
            mixed = (x + gain * other) / (1 + gain)
            if representation == "cqt":
                mixed /= np.maximum(mixed.max(axis=2, keepdims=True), 1e-6)
        x = np.where(chosen[:, None, None, None], mixed, x).astype(np.float32)
        y = np.where(chosen[:, None], np.maximum(y, y[partner]), y)
    return x, y
