"""librosa's filter banks and windows, read from a table shipped with instrec where it holds them.

What the features take from librosa are constants: the mel filter bank, the analysis windows, the CQT's
wavelet filters and their lengths, the CQT-to-chroma map, the mel bands' centres, and musicnn's mel filter
bank. librosa computes them well, but loading it costs a fresh process about 3 seconds (numba loading its
compiled functions, and ``scipy.signal`` through ``librosa.filters``), more than the whole analysis of a
5-second clip. So the constants of the shipped models' parameters are computed by librosa once and shipped
in ``instrec/filterbanks.npz``, each under the librosa call that made it (:func:`call_key`). :func:`call`
gives the table's value for a call it holds and asks librosa (loaded as :mod:`instrec._librosa` says) for
any other, so other parameters cost the import and nothing else.

``python export/filterbanks.py`` rewrites the table on purpose, from the calls that the features make for the
shipped parameters (:func:`shipped_calls`); a test checks the table against them.

    from instrec import filterbanks
    basis = filterbanks.call("filters.mel", sr=22050, n_fft=1024, n_mels=128, fmin=0.0, fmax=None, dtype=np.float32)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._librosa import load_librosa
from .params import DEFAULT, FeatureParams

TABLE = Path(__file__).parent / "filterbanks.npz"
MODELS = Path(__file__).parent / "models"
#: significant digits an array argument is keyed by: a last-bit difference in how a platform computes the
#: CQT's centre frequencies must not miss the table, and no two of the calls' arguments differ so little
KEY_DIGITS = 9

_recorded: dict[str, Any] | None = None  # the calls computed while calls_made() records them
_caches: list[Any] = []  # the functions that keep what they built from calls (cleared while recording)


def cached(fn):
    """``functools.lru_cache`` for a function that builds on :func:`call`: cleared when :func:`calls_made`
    starts and ends, so that the calls it makes are made, and recorded, inside the block."""
    wrapped = functools.lru_cache(maxsize=8)(fn)
    _caches.append(wrapped)
    return wrapped


def _token(value: Any) -> str:
    if isinstance(value, np.ndarray):
        text = ",".join(f"{v:.{KEY_DIGITS}g}" for v in value.ravel().tolist())
        return f"array{list(value.shape)}:{hashlib.sha1(text.encode()).hexdigest()[:16]}"
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.{KEY_DIGITS}g}"
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    raise TypeError(f"no key for a {type(value).__name__} argument")


def call_key(name: str, **kwargs: Any) -> str:
    """The table's key for ``librosa.<name>(**kwargs)``: its name and arguments, arrays by a digest."""
    return f"{name}(" + ", ".join(f"{k}={_token(v)}" for k, v in sorted(kwargs.items())) + ")"


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, np.ndarray]:
    if not TABLE.exists():
        return {}
    with np.load(TABLE, allow_pickle=False) as table:
        return {key: table[key] for key in table.files}


def _from_table(key: str, table: dict[str, np.ndarray]) -> np.ndarray | tuple[np.ndarray, ...] | None:
    if key in table:
        return table[key].copy()
    parts = []
    while f"{key}#{len(parts)}" in table:  # a call that returns a tuple: one entry per item
        parts.append(table[f"{key}#{len(parts)}"].copy())
    return tuple(parts) or None


def call(name: str, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    """``librosa.<name>(**kwargs)`` (``name`` dotted below librosa, e.g. ``"filters.mel"``), from the table
    where it holds the call (tuples come back as tuples of arrays), else computed by librosa."""
    key = call_key(name, **kwargs)
    if _recorded is None and (value := _from_table(key, _table())) is not None:
        return value
    value = operator.attrgetter(name)(load_librosa())(**kwargs)
    if _recorded is not None:
        _recorded[key] = value
    return value


@contextlib.contextmanager
def calls_made() -> Iterator[dict[str, Any]]:
    """Inside the block every :func:`call` is computed by librosa, and the dict it gives fills with each
    call's key and librosa's value (the table's entries for the calls made inside)."""
    global _recorded
    if _recorded is not None:
        raise RuntimeError("calls are being recorded already")
    _recorded = {}
    for cache in _caches:
        cache.cache_clear()
    try:
        yield _recorded
    finally:
        _recorded = None
        for cache in _caches:
            cache.cache_clear()


def shipped_params() -> list[FeatureParams]:
    """The feature parameters the shipped models were trained with (their manifests'), and the defaults."""
    found = [DEFAULT]
    for manifest in sorted(MODELS.glob("**/manifest.json")):
        params = FeatureParams.from_dict(json.loads(manifest.read_text())["feature_params"])
        if params not in found:
            found.append(params)
    return found


def shipped_calls() -> dict[str, Any]:
    """Every call that the three features, the mel bands' centres and musicnn's spectrogram make for
    :func:`shipped_params`, computed by librosa: what the table holds."""
    from . import embedding, features

    with calls_made() as calls:
        for params in shipped_params():
            second = np.zeros(params.sample_rate, np.float32)
            for function in features.FUNCTIONS.values():
                function(second, params=params)
            features.bin_frequencies("mel", params=params)
            embedding.log_mel(second, sr=params.sample_rate)
    return dict(calls)


def entries(calls: dict[str, Any]) -> dict[str, np.ndarray]:
    """The table's entries for recorded calls: an array under its key, a tuple's items under ``key#i``."""
    out = {}
    for key, value in calls.items():
        if isinstance(value, tuple):
            out.update({f"{key}#{i}": np.asarray(item) for i, item in enumerate(value)})
        else:
            out[key] = np.asarray(value)
    return out


__all__ = ["TABLE", "cached", "call", "call_key", "calls_made", "entries", "shipped_calls", "shipped_params"]
