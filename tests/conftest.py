import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Real recordings for checks on real sound, beside the repository (see the README).
REAL_AUDIO = ROOT.parent / "shared" / "real-audio"


def tone(freq: float, seconds: float, sr: int = 22050, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = 22050, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kwargs)
    return path


@pytest.fixture
def real_clips() -> list[Path]:
    clips = sorted(REAL_AUDIO.glob("*.flac"))
    assert clips, f"no real recordings under {REAL_AUDIO}"
    return clips
