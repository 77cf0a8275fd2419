"""Time per representation for a 20 s clip: instrec's features beside the straightforward way.

    python benchmarks/bench_features.py [--seconds 20] [--repeats 7]

The straightforward way: librosa.feature.melspectrogram, librosa.feature.chroma_cqt (36 bins,
10 ms hop) and the modified group delay written with full-length FFTs for the cepstral
smoothing. Prints the median of several runs in ms and as a real-time factor (audio seconds
per second of compute). instrec's features run under the recognizer's policy (:mod:`instrec.runtime`:
FFT workers, BLAS on one thread, the allocator setting); ``INSTREC_MALLOC=default`` leaves glibc's
allocator as it is, to see what that setting is worth.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import librosa
import numpy as np
import scipy.signal

from instrec import features, runtime
from instrec.params import DEFAULT as P


def straightforward_mel(y):
    S = librosa.feature.melspectrogram(y=y, sr=P.sample_rate, n_fft=P.mel_n_fft, hop_length=P.hop_length,
                                       n_mels=P.n_mels, power=1.0)
    return np.log(np.maximum(S, P.log_floor))


def straightforward_modgd(y):
    N, n_fft = P.modgd_frame_length, P.modgd_n_fft
    x = librosa.util.frame(np.pad(y, N // 2), frame_length=N, hop_length=P.hop_length, axis=0)
    x = x * scipy.signal.get_window("hamming", N)
    X = np.fft.rfft(x, n_fft)
    Y = np.fft.rfft(np.arange(N) * x, n_fft)
    mag = np.abs(X)
    floor = mag.max(axis=1, keepdims=True) * P.modgd_rel_floor + 1e-30
    cep = np.fft.irfft(np.log(np.maximum(mag, floor)), n_fft)
    lifter = np.zeros(n_fft)
    lifter[: P.modgd_lifter] = 1
    lifter[n_fft - P.modgd_lifter + 1 :] = 1
    S = np.maximum(np.exp(np.fft.rfft(cep * lifter).real), floor)
    tau = (X.real * Y.real + X.imag * Y.imag) / S ** (2 * P.modgd_gamma)
    return (np.sign(tau) * np.log1p(np.abs(tau) ** P.modgd_alpha))[:, : P.modgd_bins].T


def straightforward_chroma(y):
    return librosa.feature.chroma_cqt(y=y, sr=P.sample_rate, hop_length=P.hop_length, fmin=P.cqt_fmin,
                                      n_chroma=P.chroma_bins, bins_per_octave=P.chroma_bins)


def median_ms(fn, y, repeats):
    fn(y)  # warm-up: caches, filter banks, numba
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(y)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    t = np.arange(int(args.seconds * P.sample_rate)) / P.sample_rate
    y = (0.5 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)
    tuned = runtime.tune_allocator()
    threads = runtime.default_threads()
    print(f"{args.seconds:.0f} s clip at {P.sample_rate} Hz, median of {args.repeats} runs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; instrec on {threads} threads, "
          f"allocator {'tuned' if tuned else 'as glibc sets it'}")
    print(f"{'representation':<16}{'instrec ms':>12}{'x real time':>13}{'straightforward ms':>20}{'speed-up':>10}")
    rows = [("mel", features.mel, straightforward_mel), ("modgd", features.modgd, straightforward_modgd),
            ("cqt chroma", features.cqt_chroma, straightforward_chroma)]
    total_ours = total_ref = 0.0
    for name, ours, ref in rows:
        def instrec(s, ours=ours):
            with runtime.compute_threads(threads):
                return ours(s)

        a = median_ms(instrec, y, args.repeats)
        b = median_ms(ref, y, args.repeats)
        total_ours, total_ref = total_ours + a, total_ref + b
        print(f"{name:<16}{a:>12.1f}{1000 * args.seconds / a:>13.0f}{b:>20.1f}{b / a:>10.1f}")
    print(f"{'all three':<16}{total_ours:>12.1f}{1000 * args.seconds / total_ours:>13.0f}{total_ref:>20.1f}"
          f"{total_ref / total_ours:>10.1f}")


if __name__ == "__main__":
    main()
