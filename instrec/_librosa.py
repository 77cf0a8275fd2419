"""librosa, imported by one process at a time of those that share its numba cache.

librosa compiles some of its numba functions when its modules are imported (generalised ufuncs whose
signatures it gives) and caches them on disk beside its sources. numba writes each such cache as two
files, so two processes compiling the same function at once (several workers starting together on a
fresh install, as a batch run's actors do) can leave a pair that does not match, and
every later process that loads it dies with a segmentation fault (numba issue 10128). Here those
modules are imported under a lock kept beside the cache (numba's ``NUMBA_CACHE_DIR`` when set, else
librosa's ``__pycache__``), which every process that shares the cache shares: the first compiles and
writes the caches, the others read them. Nothing is imported with this module: :func:`load_librosa`
loads librosa and ``librosa.util`` (about a second, numba's most of it) where a feature first needs a
constant that :mod:`instrec.filterbanks`' shipped table does not hold, so that a process that never does
(``instrec --help``, a batch run's driver, the shipped models' analysis) never pays for it. Where that
folder cannot be written, numba keeps its cache elsewhere and librosa is imported unlocked.

    from ._librosa import load_librosa
    load_librosa().filters.mel(...)
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import types
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # no POSIX file locks (Windows): imported unlocked
    fcntl = None


def cache_lock_path() -> Path | None:
    """The lock's file: in the folder numba caches librosa's functions in, or None where none is found."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / "instrec-librosa.lock"
    spec = importlib.util.find_spec("librosa")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "__pycache__" / "instrec-librosa.lock"


@contextlib.contextmanager
def cache_lock(path: Path | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (default :func:`cache_lock_path`; created when missing), shared
    with every process that opens it; nothing is locked where it cannot be created."""
    path = path or cache_lock_path()
    handle = None
    if fcntl is not None and path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a")
        except OSError:  # a folder this user cannot write to: numba caches elsewhere too
            handle = None
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def load_librosa() -> types.ModuleType:
    """librosa, imported under the lock with ``librosa.util.utils`` (whose ufuncs compile at import and are
    cached on disk); once a process."""
    with cache_lock():
        import librosa
        import librosa.util.utils  # noqa: F401
    return librosa


__all__ = ["cache_lock", "load_librosa"]
