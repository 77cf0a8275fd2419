"""The thread and memory policy: what each entry point gets, and that it is really applied."""

import subprocess
import sys

import onnxruntime as ort
import pytest
import scipy.fft
from threadpoolctl import threadpool_info

from instrec import runtime
from tests.conftest import ROOT


def test_threads_from_the_environment(monkeypatch):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    assert runtime.default_threads() == runtime.cores() >= 1
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert runtime.default_threads() == 3 and runtime.share(2) == 1 and runtime.share(1) == 3
    monkeypatch.setenv(runtime.THREADS_ENV, "7")
    assert runtime.share(2) == 3 and runtime.share(100) == 1
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv(runtime.THREADS_ENV, bad)
        with pytest.raises(ValueError, match=runtime.THREADS_ENV):
            runtime.default_threads()


def test_session_options_do_not_spin():
    options = runtime.session_options(ort, 2)
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_compute_threads_limits_blas_and_sets_fft_workers():
    with runtime.compute_threads(2):
        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")
        assert scipy.fft.get_workers() == 2
    assert scipy.fft.get_workers() == 1


def test_allocator_tuned_once_and_can_be_left_alone():
    code = "from instrec import runtime; print(runtime.tune_allocator(), runtime.tune_allocator())"
    tuned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert tuned.stdout.split() == ["True", "True"]  # glibc (Debian): set once, then reported
    left = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                          env={"INSTREC_MALLOC": "default", "PATH": "/usr/bin:/bin"})
    assert left.stdout.split() == ["False", "False"]
