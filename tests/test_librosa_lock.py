"""librosa is imported under a lock kept beside numba's cache, so that only one process at a time compiles
and caches its numba functions (two compiling one at once can leave a cache that crashes every later load);
and only where a feature first needs a constant that the shipped table does not hold (parameters other
than the shipped models'), so that importing instrec and analysing audio with the shipped models cost none
of it."""

import subprocess
import sys
import time
from pathlib import Path

from instrec._librosa import cache_lock

CHILD = """
import sys
import librosa, librosa.core.audio, librosa.core.pitch, librosa.util.utils  # loaded before the lock is asked for
print("ready", flush=True)
import numpy as np
import instrec.features
from instrec.params import FeatureParams
print("imported", flush=True)
instrec.features.mel(np.zeros(22050, np.float32), params=FeatureParams(n_mels=64))  # not in the shipped table
print("computed", flush=True)
"""


def test_a_process_computing_a_feature_waits_for_the_lock():
    with cache_lock():
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            assert child.stdout.readline().strip() == "imported"  # importing the features takes no lock
            # everything a feature needs is loaded; it waits for the lock alone
            time.sleep(1.5)
            assert child.poll() is None
            held_until = time.monotonic()
        except BaseException:
            child.kill()
            raise
    assert child.stdout.readline().strip() == "computed"
    assert time.monotonic() - held_until < 30
    assert child.wait(timeout=30) == 0


def test_the_shipped_models_analysis_loads_no_librosa():
    """The command line, batch tagging's driver and the recognizer import without librosa or numba, and the
    shipped parameters' three features and musicnn's spectrogram take their constants from the shipped table
    (about 3 s a fresh process); another parameter's constants load librosa."""
    code = (
        "import sys, numpy as np, instrec.cli, instrec.batch, instrec.recognizer, instrec.features\n"
        "from instrec import embedding\n"
        "from instrec.params import FeatureParams\n"
        "loaded = lambda: sorted(m for m in ('librosa', 'numba', 'scipy.signal') if m in sys.modules)\n"
        "print(loaded())\n"
        "second = np.zeros(22050, np.float32)\n"
        "[f(second) for f in instrec.features.FUNCTIONS.values()]\n"
        "embedding.log_mel(second, sr=22050), instrec.features.bin_frequencies('mel')\n"
        "print(loaded())\n"
        "instrec.features.cqt_chroma(second, params=FeatureParams(cqt_octaves=6))\n"
        "print(loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split("\n")[:3] == ["[]", "[]", "['librosa', 'numba', 'scipy.signal']"]


def test_the_lock_lies_beside_numbas_cache(tmp_path, monkeypatch):
    import librosa

    from instrec._librosa import cache_lock_path

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert cache_lock_path() == Path(librosa.__file__).parent / "__pycache__" / "instrec-librosa.lock"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert cache_lock_path() == tmp_path / "numba" / "instrec-librosa.lock"
    with cache_lock():
        assert (tmp_path / "numba" / "instrec-librosa.lock").exists()
    # a folder that cannot be written: imported unlocked rather than not at all
    (tmp_path / "file").write_text("")
    with cache_lock(tmp_path / "file" / "sub" / "x.lock"):
        pass
