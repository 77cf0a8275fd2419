"""instrec's one thread policy: how many threads a recognizer uses, and how they are kept from fighting.

On a small machine the stages of a prediction run one after the other, and each library brings its own
thread pool: onnxruntime's intra-op workers and OpenBLAS's workers both keep spinning for a while after
their work ends, so they steal the cores from whatever stage runs next. The policy:

- onnxruntime sessions run ``threads`` intra-op threads, one inter-op thread, and stop spinning when a
  run ends (``session.intra_op.allow_spinning = 0``);
- while features are computed (:func:`compute_threads`), scipy's FFT uses ``threads`` workers and BLAS
  one thread: the features' matrix products are small, and OpenBLAS's idle workers, spinning after
  them, cost the next model run more than they save (see docs/performance.md);
- ``threads`` defaults to the cores this process may run on (``INSTREC_THREADS`` overrides it); a
  server that analyses N requests at once gives each ``cores // N`` (:func:`share`), and a batch actor
  the CPUs Ray gave it.

The command line, the app, the batch actors and the benchmarks all take their threads from here.

Memory: the features of a 20 s clip use arrays of tens of MB (modgd's FFT buffer is 33 MB). glibc
serves blocks over its mmap threshold (at most 32 MB by default) with fresh pages from the kernel and
gives them back when freed, so every prediction paid the page faults of zeroing them again.
:func:`tune_allocator` raises the threshold to 64 MB and the trim threshold to 128 MB, once per
process, so such blocks are reused from the heap (modgd 75 -> 28 ms for 20 s on 2 cores:
``python benchmarks/bench_features.py``, with and without ``INSTREC_MALLOC=default``).
``INSTREC_MALLOC=default`` leaves glibc's settings alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

THREADS_ENV = "INSTREC_THREADS"


def cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """``INSTREC_THREADS`` when set (a positive integer), else every core this process may use."""
    value = os.environ.get(THREADS_ENV)
    if value is None or value == "":
        return cores()
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={value!r} is not a whole number of threads") from None
    if n < 1:
        raise ValueError(f"{THREADS_ENV}={value!r}: at least one thread is needed")
    return n


def share(concurrent: int) -> int:
    """Threads for each of ``concurrent`` analyses running at once on this machine (at least 1)."""
    return max(1, default_threads() // max(1, concurrent))


def session_options(ort, threads: int):
    """onnxruntime session options of the policy: ``threads`` intra-op threads that do not spin."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


_BLAS = None
_ALLOCATOR_TUNED = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def tune_allocator(mmap_threshold: int = 64 << 20, trim_threshold: int = 128 << 20) -> bool:
    """Keep blocks up to ``mmap_threshold`` bytes in glibc's heap (see the module's text); True when set.
    Does nothing (False) off glibc or with ``INSTREC_MALLOC=default``."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or os.environ.get("INSTREC_MALLOC") == "default":
        return _ALLOCATOR_TUNED
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    _ALLOCATOR_TUNED = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
    return _ALLOCATOR_TUNED


@contextlib.contextmanager
def compute_threads(threads: int) -> Iterator[None]:
    """Inside the block, scipy's FFT runs ``threads`` workers and BLAS (numpy's matrix products) one thread."""
    global _BLAS
    import scipy.fft
    from threadpoolctl import ThreadpoolController

    if _BLAS is None:
        _BLAS = ThreadpoolController()  # finding the loaded libraries once: a few ms
    with _BLAS.limit(limits=1, user_api="blas"), scipy.fft.set_workers(threads):
        yield
