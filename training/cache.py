"""Feature windows extracted once into memory-mapped arrays on disk.

The cache key covers the feature parameters, the representation and the dataset (every file's
relative path, size and modification time), so changing any of them extracts again and nothing
stale is ever read. Extraction runs in parallel worker processes with a progress bar; the
windows of each file are contiguous, in the dataset's order.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from instrec import audio, features
from instrec.params import DEFAULT, FeatureParams
from training.datasets import Dataset


@dataclass
class FeatureSet:
    """Windows of one representation for a dataset, and which file each window came from."""

    windows: np.ndarray  # (n_windows, 1, F, 100) float32, memory-mapped
    file_index: np.ndarray  # (n_windows,) int: position of the window's file in the dataset
    targets: np.ndarray  # (n_files, 11) float32
    errors: dict[str, str]  # files that could not be read -> why (they have no windows)

    @property
    def window_targets(self) -> np.ndarray:
        return self.targets[self.file_index]

    def file_slices(self) -> list[slice]:
        """Window range of every file (empty for unreadable files)."""
        n_files = len(self.targets)
        starts = np.searchsorted(self.file_index, np.arange(n_files), side="left")
        ends = np.searchsorted(self.file_index, np.arange(n_files), side="right")
        return [slice(int(a), int(b)) for a, b in zip(starts, ends)]


def cache_key(dataset: Dataset, representation: str, params: FeatureParams) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"params": params.to_dict(), "representation": representation,
                         "features_version": features.VERSION}, sort_keys=True).encode())
    for e in dataset.excerpts:
        st = e.path.stat()
        h.update(f"{e.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{','.join(e.labels)}\n".encode())
    return h.hexdigest()[:20]


#: :func:`load_features`' name for the windows' levels (:class:`instrec.audio.LevelMeter`), one number a window.
LEVEL = "level"


def _shape(representation: str, params: FeatureParams) -> tuple[int, ...]:
    return (1,) if representation == LEVEL else params.shapes[representation]


def _extract_one(args: tuple[str, str, FeatureParams]) -> tuple[np.ndarray | None, str | None]:
    path, representation, params = args
    try:
        y = audio.load(path, params=params)
    except audio.AudioError as exc:
        return None, str(exc)
    if representation == LEVEL:
        return audio.window_levels(y, params)[:, None], None
    return features.extract(y, params=params, representations=(representation,))[representation], None


def load_features(dataset: Dataset, representation: str, cache_dir: Path, *, params: FeatureParams = DEFAULT,
                  workers: int | None = None, progress: bool = True) -> FeatureSet:
    """Windows of ``representation`` for every file of ``dataset``, from the cache or extracted now
    (:data:`LEVEL`: each window's level in dB, shape (1,), as the recognizer measures it)."""
    key = cache_key(dataset, representation, params)
    folder = Path(cache_dir) / f"{representation}-{key}"
    meta_path = folder / "meta.json"
    shape = _shape(representation, params)
    if not meta_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "windows.f32.tmp"
        index, errors = [], {}
        jobs = [(str(e.path), representation, params) for e in dataset.excerpts]
        workers = workers or os.cpu_count() or 1
        bar = tqdm(total=len(jobs), desc=f"{representation} features", unit="file", disable=not progress)
        with open(tmp, "wb") as out:
            if workers > 1 and len(jobs) > 8:
                with get_context("spawn").Pool(workers) as pool:
                    results = pool.imap(_extract_one, jobs, chunksize=8)
                    for i, (w, err) in enumerate(results):
                        _append(out, i, w, err, index, errors, jobs)
                        bar.update()
            else:
                for i, job in enumerate(jobs):
                    _append(out, i, *_extract_one(job), index, errors, jobs)
                    bar.update()
        bar.close()
        os.replace(tmp, folder / "windows.f32")
        np.save(folder / "file_index.npy", np.asarray(index, dtype=np.int64))
        meta_path.write_text(json.dumps({"n_windows": len(index), "shape": shape, "errors": errors,
                                         "files": [str(e.path) for e in dataset.excerpts]}))
    meta = json.loads(meta_path.read_text())
    n = meta["n_windows"]
    windows = np.memmap(folder / "windows.f32", dtype=np.float32, mode="r", shape=(n, *shape)) if n else np.zeros((0, *shape), np.float32)
    return FeatureSet(windows, np.load(folder / "file_index.npy"), dataset.targets(), meta["errors"])


def _append(out, i, windows, error, index, errors, jobs) -> None:
    if error is not None:
        errors[jobs[i][0]] = error
        return
    out.write(np.ascontiguousarray(windows, dtype=np.float32).tobytes())
    index.extend([i] * len(windows))
