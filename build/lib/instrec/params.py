"""Every number that defines the three representations, in one frozen object.

Training, export, the app and the tests import :data:`DEFAULT`; export writes it into
``instrec/models/manifest.json`` and the recognizer rebuilds it from there, so what is served
is what was trained. Derived values are properties, never repeated constants.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


class ParamsError(ValueError):
    """Feature parameters that this version of instrec cannot honour."""


@dataclass(frozen=True)
class FeatureParams:
    #: Every signal is resampled to this rate before analysis (Hz).
    sample_rate: int = 22050
    #: Frame period of all three representations (s); 10 ms -> 100 frames per window.
    hop_s: float = 0.010
    #: Frames per CNN input window (one "second").
    window_frames: int = 100
    #: A last partial window is kept (zero-padded) when it holds at least this share of a window.
    min_last_window: float = 0.5

    # log mel-spectrogram
    mel_n_fft: int = 1024
    n_mels: int = 128
    mel_fmin: float = 0.0
    mel_fmax: float | None = None
    #: Magnitudes below this are clipped before the natural log (audio is peak-normalised to 1).
    log_floor: float = 1e-5

    # modified group delay (modgd)
    modgd_frame_s: float = 0.050
    modgd_bins: int = 128
    modgd_alpha: float = 0.9
    modgd_gamma: float = 0.5
    #: Cepstral coefficients kept (both sides of quefrency 0) to smooth |X| into S.
    modgd_lifter: int = 30
    #: |S| is floored at this fraction of the frame's largest |S| before division.
    modgd_rel_floor: float = 1e-3

    # CQT chromagram
    chroma_bins: int = 36
    cqt_fmin: float = 32.703195662574764  # C1
    cqt_octaves: int = 7

    # ---- derived -------------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        """Samples between frames (220 at 22 050 Hz: 9.98 ms)."""
        return round(self.sample_rate * self.hop_s)

    @property
    def window_samples(self) -> int:
        """Samples covered by one window of ``window_frames`` hops (22 000 at 22 050 Hz)."""
        return self.window_frames * self.hop_length

    @property
    def window_duration_s(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def modgd_frame_length(self) -> int:
        return round(self.sample_rate * self.modgd_frame_s)

    @property
    def modgd_n_fft(self) -> int:
        """Smallest power of two that holds one modgd frame (2048 at 22 050 Hz)."""
        return 1 << math.ceil(math.log2(self.modgd_frame_length))

    @property
    def bins_per_semitone(self) -> int:
        return self.chroma_bins // 12

    @property
    def cqt_bins(self) -> int:
        return self.chroma_bins * self.cqt_octaves

    @property
    def shapes(self) -> dict[str, tuple[int, int, int]]:
        """Per-window input shape of each representation's CNN, (channels, bins, frames)."""
        return {
            "mel": (1, self.n_mels, self.window_frames),
            "modgd": (1, self.modgd_bins, self.window_frames),
            "cqt": (1, self.chroma_bins, self.window_frames),
        }

    # ---- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureParams:
        """Rebuild from :meth:`to_dict`; unknown keys mean newer features we cannot compute."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParamsError(
                f"feature parameters {unknown} are not understood by this version of instrec; "
                "upgrade instrec or re-export the models"
            )
        return cls(**data)

    def __post_init__(self) -> None:
        if self.chroma_bins % 12:
            raise ParamsError(f"chroma_bins must be a multiple of 12, got {self.chroma_bins}")
        if self.modgd_bins > self.modgd_n_fft // 2 + 1:
            raise ParamsError("modgd_bins exceeds the number of FFT bins")
        if not (0.0 < self.modgd_gamma <= 1.0 and 0.0 < self.modgd_alpha <= 1.0):
            raise ParamsError("modgd_gamma and modgd_alpha must lie in (0, 1]")
        if not 0.0 <= self.min_last_window <= 1.0:
            raise ParamsError("min_last_window must lie in [0, 1]")


REPRESENTATIONS: tuple[str, ...] = ("mel", "modgd", "cqt")
DEFAULT = FeatureParams()
