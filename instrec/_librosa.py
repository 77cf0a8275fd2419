"""librosa, imported by one process of a machine at a time.

librosa compiles some of its numba functions when its modules are imported (generalised ufuncs whose
signatures it gives) and caches them on disk beside its sources. numba writes each such cache as two
files, so two processes compiling the same function at once (several workers starting together on a
fresh install: a batch run's actors, a corpus's renderers) can leave a pair that does not match, and
every later process that loads it dies with a segmentation fault (numba issue 10128). Here those
modules are imported under a lock that the processes of one user on one machine share: the first
compiles and writes the caches, the others read them.

    from ._librosa import librosa
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # no POSIX file locks (Windows): imported unlocked
    fcntl = None

#: the lock's file, one per user (another user could not open a lock file this user created)
LOCK = Path(tempfile.gettempdir()) / f"instrec-librosa-{os.getuid() if hasattr(os, 'getuid') else 0}.lock"


@contextlib.contextmanager
def machine_lock(path: Path = LOCK) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created when missing), shared with every process of this user."""
    if fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


with machine_lock():
    import librosa
    import librosa.core.audio  # noqa: F401  the modules whose ufuncs compile at import, cached on disk
    import librosa.core.pitch  # noqa: F401
    import librosa.util.utils  # noqa: F401

__all__ = ["librosa", "machine_lock"]
