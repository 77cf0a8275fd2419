"""The 11 IRMAS instrument classes: their codes, names and the one order used everywhere."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: Class codes in the order of every score vector, model output and table.
CODES: tuple[str, ...] = ("cel", "cla", "flu", "gac", "gel", "org", "pia", "sax", "tru", "vio", "voi")

NAMES: dict[str, str] = {
    "cel": "cello",
    "cla": "clarinet",
    "flu": "flute",
    "gac": "acoustic guitar",
    "gel": "electric guitar",
    "org": "organ",
    "pia": "piano",
    "sax": "saxophone",
    "tru": "trumpet",
    "vio": "violin",
    "voi": "voice",
}

N_CLASSES = len(CODES)
INDEX: dict[str, int] = {code: i for i, code in enumerate(CODES)}


class LabelError(ValueError):
    """An instrument code that is not one of the 11 IRMAS classes."""


def index_of(code: str) -> int:
    """Position of ``code`` (case and surrounding whitespace ignored) in :data:`CODES`."""
    key = code.strip().lower()
    if key not in INDEX:
        raise LabelError(f"unknown instrument code {code!r}; expected one of {' '.join(CODES)}")
    return INDEX[key]


def to_multi_hot(codes: Iterable[str]) -> np.ndarray:
    """Codes -> float32 vector of shape (11,) with ones at the codes' positions."""
    y = np.zeros(N_CLASSES, dtype=np.float32)
    for code in codes:
        y[index_of(code)] = 1.0
    return y


#: IRMAS genre tags of training excerpts.
GENRES: dict[str, str] = {
    "cou_fol": "country-folk",
    "cla": "classical",
    "pop_roc": "pop-rock",
    "lat_sou": "latin-soul",
    "jaz_blu": "jazz-blues",
}
