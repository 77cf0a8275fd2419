"""Readers for IRMAS as it is distributed, and the song-aware train/validation split.

Training layout (IRMAS-TrainingData): ``<root>/<code>/<name>.wav`` where the name carries tags,
e.g. ``008__[cel][nod][cla]0058__1.wav`` or ``[cla][cla]0189__2.wav``: the predominant
instrument, then an optional drums tag (``dru`` / ``nod``), then the genre.

Testing layout (IRMAS-TestingData-Part1..3): ``<name>.wav`` beside ``<name>.txt`` listing the
predominant instruments, one code per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instrec.labels import CODES, GENRES, LabelError, index_of, to_multi_hot

DRUM_TAGS = {"dru": True, "nod": False}
AUDIO_SUFFIX = ".wav"

_TAG = re.compile(r"\[([^\]]*)\]")
_EXCERPT_NUMBER = re.compile(r"__\d+$")


class DatasetError(ValueError):
    """A dataset tree or file that does not follow the IRMAS layout, naming the file."""


@dataclass(frozen=True)
class Excerpt:
    """One audio file and its labels."""

    path: Path
    labels: tuple[str, ...]  # codes, in class order
    drums: bool | None = None  # None when the name does not say
    genre: str | None = None
    song: str = ""  # excerpts of one song share this key

    @property
    def target(self) -> np.ndarray:
        return to_multi_hot(self.labels)


@dataclass
class Dataset:
    root: Path
    excerpts: list[Excerpt] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.excerpts)

    def __iter__(self):
        return iter(self.excerpts)

    def targets(self) -> np.ndarray:
        """(n, 11) float32 multi-hot labels."""
        return np.stack([e.target for e in self.excerpts]) if self.excerpts else np.zeros((0, len(CODES)), np.float32)

    def counts(self) -> dict[str, int]:
        """Excerpts per class (a multi-label excerpt counts for each of its classes)."""
        return dict(zip(CODES, self.targets().sum(axis=0).astype(int).tolist()))


def song_key(stem: str) -> str:
    """Name shared by the excerpts of one song: the stem before its final ``__N``."""
    return _EXCERPT_NUMBER.sub("", stem)


def parse_training_name(path: Path, folder_code: str | None = None) -> Excerpt:
    """Parse an IRMAS training file name into an :class:`Excerpt`."""
    tags = _TAG.findall(path.stem)
    if not tags:
        raise DatasetError(f"{path}: no [instrument] tag in the file name")
    try:
        code = CODES[index_of(tags[0])]
    except LabelError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if folder_code is not None and code != folder_code:
        raise DatasetError(f"{path}: tagged [{tags[0]}] but stored in the folder '{folder_code}'")
    drums, genre = None, None
    for tag in tags[1:]:
        if tag in DRUM_TAGS and drums is None:
            drums = DRUM_TAGS[tag]
        elif tag in GENRES and genre is None:
            genre = tag
        else:
            raise DatasetError(f"{path}: unexpected tag [{tag}] (drums: dru/nod; genres: {', '.join(GENRES)})")
    return Excerpt(path=path, labels=(code,), drums=drums, genre=genre, song=f"{code}/{song_key(path.stem)}")


def read_training(root: str | Path) -> Dataset:
    """Read an IRMAS training-layout tree: one folder per instrument code."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: training folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if p.name not in CODES]
    if unknown:
        raise DatasetError(f"{root}: folders {unknown} are not instrument codes ({' '.join(CODES)})")
    excerpts = [
        parse_training_name(path, folder.name)
        for folder in folders
        for path in sorted(folder.glob(f"*{AUDIO_SUFFIX}"))
    ]
    if not excerpts:
        raise DatasetError(f"{root}: no <code>/*.wav files found (IRMAS training layout expected)")
    return Dataset(root, excerpts)


def read_label_file(path: Path) -> tuple[str, ...]:
    """Codes listed in an IRMAS testing ``.txt`` (whitespace, case, CRLF and blank lines tolerated)."""
    if not path.exists():
        raise DatasetError(f"{path}: label file missing for {path.with_suffix(AUDIO_SUFFIX).name}")
    codes = set()
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        token = line.strip()
        if not token:
            continue
        try:
            codes.add(CODES[index_of(token)])
        except LabelError as exc:
            raise DatasetError(f"{path}, line {n}: {exc}") from None
    if not codes:
        raise DatasetError(f"{path}: lists no instrument")
    return tuple(c for c in CODES if c in codes)


def read_testing(root: str | Path) -> Dataset:
    """Read an IRMAS testing-layout tree (searched recursively): ``x.wav`` beside ``x.txt``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: testing folder not found")
    excerpts = [
        Excerpt(path=wav, labels=read_label_file(wav.with_suffix(".txt")), song=str(wav.relative_to(root).with_suffix("")))
        for wav in sorted(root.rglob(f"*{AUDIO_SUFFIX}"))
    ]
    if not excerpts:
        raise DatasetError(f"{root}: no .wav files found (IRMAS testing layout expected)")
    return Dataset(root, excerpts)


def read_any(root: str | Path) -> Dataset:
    """Training layout when ``root`` holds code-named folders, testing layout otherwise."""
    root = Path(root)
    if root.is_dir() and any(p.is_dir() and p.name in CODES for p in root.iterdir()):
        return read_training(root)
    return read_testing(root)


def split(dataset: Dataset, *, validation: float = 0.15, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Song-aware split: about ``validation`` of each class's songs go to the validation side.

    Excerpts of one song stay together, so the validation loss is not flattered by
    near-duplicates. Deterministic for a given ``seed`` and file list.
    """
    rng = np.random.default_rng(seed)
    songs_by_class: dict[str, list[str]] = {}
    for e in dataset.excerpts:
        songs = songs_by_class.setdefault(e.labels[0], [])
        if e.song not in songs:
            songs.append(e.song)
    held_out: set[str] = set()
    for code in CODES:
        songs = sorted(songs_by_class.get(code, []))
        if len(songs) < 2:
            continue
        order = rng.permutation(len(songs))
        n_val = min(max(1, round(validation * len(songs))), len(songs) - 1)
        held_out.update(songs[i] for i in order[:n_val])
    train = [e for e in dataset.excerpts if e.song not in held_out]
    val = [e for e in dataset.excerpts if e.song in held_out]
    return Dataset(dataset.root, train), Dataset(dataset.root, val)


def training_root(path: Path) -> Path:
    """Accept a corpus root holding ``train/`` as well as the training folder itself."""
    path = Path(path)
    if (path / "train").is_dir() and not any((path / c).is_dir() for c in CODES):
        return path / "train"
    return path
