from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]

#: Real recordings for checks on real sound (Medley-solos-DB excerpts, CC BY 4.0: see its README).
REAL_AUDIO = Path(__file__).resolve().parent / "data" / "real"


def tone(freq: float, seconds: float, sr: int = 22050, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def stereo_tone(hz: float, seconds: float = 2.0, amp: float = 0.3, sr: int = 44100) -> np.ndarray:
    """A sine on both channels, float32 (n, 2): the corpus's effects work on stereo at 44.1 kHz."""
    t = np.arange(int(seconds * sr)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * hz * t))[:, None], 2, axis=1).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def write(path: Path, y: np.ndarray, sr: int = 22050, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kwargs)
    return path


def labelled_folder(folder: Path, clips: dict[str, tuple[str, np.ndarray]]) -> Path:
    """A folder of clips with their labels.csv (file name -> (code, audio at 22.05 kHz))."""
    folder.mkdir(parents=True)
    for name, (_, y) in clips.items():
        write(folder / name, y)
    (folder / "labels.csv").write_text("file,label\n" + "".join(f"{n},{c}\n" for n, (c, _) in clips.items()))
    return folder


def tones_and_noise(folder: Path, n: int, seed: int, f0: float) -> Path:
    """``n`` decaying harmonic tones labelled piano (rising from ``f0``) and ``n`` white noises labelled organ,
    3 s each: two classes any tagger's embedding tells apart."""
    rng = np.random.default_rng(seed)
    decay = np.exp(-np.arange(3 * 22050) / 22050)
    piano = lambda f: (sum(tone(f * h, 3.0, amp=0.3 / h) for h in (1, 2, 3)) * decay).astype(np.float32)
    organ = lambda: (0.3 * rng.standard_normal(3 * 22050)).astype(np.float32)
    return labelled_folder(folder, {**{f"p{i}.wav": ("pia", piano(f0 * 1.25 ** i)) for i in range(n)},
                                    **{f"o{i}.wav": ("org", organ()) for i in range(n)}})


@pytest.fixture
def real_clips() -> list[Path]:
    clips = sorted(REAL_AUDIO.glob("*.flac"))
    assert clips, f"no real recordings under {REAL_AUDIO}"
    return clips


# ---- the tiny real chain: corpus -> trained run -> tuned thresholds -> exported ONNX models ----

TINY_SCALE = 0.004  # 2 training excerpts per class at least, 2 validation and 2 test excerpts
TINY_MATERIAL = 3  # chorales and tunes parsed from music21's corpus


def make_library(folder: Path, keys: range, name: str) -> Path:
    """A prepared recorded-note library (as `corpus.samples fetch` leaves one) of steady harmonic
    tones at ``keys``, under a catalogue name, so the corpus plays it with the real sampler."""
    import json

    from corpus import samples

    lib = folder / name
    lib.mkdir(parents=True, exist_ok=True)
    notes = ["C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B"]
    t = np.arange(int(1.5 * 44100)) / 44100
    for k in keys:
        f0 = 440.0 * 2 ** ((k - 69) / 12)
        y = sum(0.2 / h * np.sin(2 * np.pi * h * f0 * t) for h in (1, 2, 3, 4)) * np.exp(-t / 3)
        sf.write(str(lib / f"{notes[k % 12]}{k // 12 - 1}.wav"), y.astype(np.float32), 44100)
    entry = next(e for e in samples.catalogue() if e["name"] == name)
    (lib / samples.DONE).write_text(json.dumps(entry))
    return folder


#: keyword arguments of the tiny corpus: every flute lead played by a (synthetic) recorded-note library
TINY_CORPUS = {"scale": TINY_SCALE, "seed": 0, "workers": 1, "material_pieces": TINY_MATERIAL, "real_share": 1.0,
               "progress": False}


@pytest.fixture(scope="session")
def tiny_samples(tmp_path_factory) -> Path:
    return make_library(tmp_path_factory.mktemp("samples"), range(60, 97, 6), "tonejs-flute")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, tiny_samples) -> Path:
    from corpus.synth import render_corpus

    out = tmp_path_factory.mktemp("corpus")
    render_corpus(out, samples=tiny_samples, **TINY_CORPUS)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory) -> Path:
    """One epoch of each CNN on the tiny corpus, then thresholds tuned on its validation set."""
    from training.thresholds import tune
    from training.train import train

    run = tmp_path_factory.mktemp("run")
    for rep in ("mel", "modgd", "cqt"):
        train(tiny_corpus, rep, run, epochs=1, batch_size=16, workers=1, progress=False)
    tune(run, progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_models(tiny_run, tmp_path_factory) -> Path:
    """The tiny run exported to ONNX by the real export step."""
    from training.export import export

    out = tmp_path_factory.mktemp("onnx_models")
    export(tiny_run, out)
    return out


@pytest.fixture(scope="session")
def recognizer(tiny_models):
    from instrec.recognizer import Recognizer

    return Recognizer(tiny_models)
