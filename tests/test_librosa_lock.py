"""librosa is imported under a lock the processes of a machine share, so that only one at a time compiles
and caches its numba functions (two compiling one at once can leave a cache that crashes every later load)."""

import subprocess
import sys
import time

from instrec._librosa import machine_lock

CHILD = """
import sys
import librosa, librosa.core.audio, librosa.core.pitch, librosa.util.utils  # loaded before the lock is asked for
print("ready", flush=True)
import instrec.features
print("imported", flush=True)
"""


def test_a_process_importing_the_features_waits_for_the_lock():
    with machine_lock():
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            # everything instrec.features needs is loaded; it waits for the lock alone
            time.sleep(1.5)
            assert child.poll() is None
            held_until = time.monotonic()
        except BaseException:
            child.kill()
            raise
    assert child.stdout.readline().strip() == "imported"
    assert time.monotonic() - held_until < 30
    assert child.wait(timeout=30) == 0

