"""The shipped table of librosa's filter banks: it holds what librosa computes for the shipped parameters,
a call it does not hold is computed by librosa, its keys tell calls apart, and an installed package has it."""

import subprocess
import sys

import librosa
import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dev extra installs tomli there
    import tomli as tomllib

from instrec import embedding, features, filterbanks
from instrec.params import DEFAULT, FeatureParams
from tests.conftest import ROOT


def test_the_table_holds_librosas_values_for_every_call_of_the_shipped_parameters():
    made = filterbanks.entries(filterbanks.shipped_calls())
    with np.load(filterbanks.TABLE) as table:
        assert sorted(table.files) == sorted(made)  # no call missing, none left over
        for key, value in made.items():
            assert table[key].dtype == value.dtype and table[key].shape == value.shape, key
            # the table was written by librosa from the same calls; another platform's sin/exp may round
            # the wavelets' last bit otherwise, and 1e-6 of the largest value is far under what the features'
            # float32 arithmetic resolves
            np.testing.assert_allclose(table[key], value, rtol=0, atol=1e-6 * np.abs(value).max(), err_msg=key)
    assert DEFAULT in filterbanks.shipped_params()


def test_features_are_the_same_from_the_table_and_from_librosa():
    y = np.random.default_rng(3).standard_normal(2 * 22050).astype(np.float32) * 0.1
    from_table = {name: f(y) for name, f in features.FUNCTIONS.items()} | {"musicnn": embedding.log_mel(y, sr=22050)}
    with filterbanks.calls_made() as calls:  # every constant computed by librosa inside
        from_librosa = {name: f(y) for name, f in features.FUNCTIONS.items()}
        from_librosa["musicnn"] = embedding.log_mel(y, sr=22050)
    assert len(calls) == 8  # mel's and musicnn's banks, three windows, wavelets and lengths, chroma map
    for name in from_table:
        np.testing.assert_array_equal(from_table[name], from_librosa[name], err_msg=name)


def test_a_call_the_table_does_not_hold_is_computed_by_librosa():
    assert "n_mels=40" not in " ".join(np.load(filterbanks.TABLE).files)
    basis = filterbanks.call("filters.mel", sr=22050, n_fft=1024, n_mels=40, fmin=0.0, fmax=None, dtype=np.float32)
    np.testing.assert_array_equal(basis, librosa.filters.mel(sr=22050, n_fft=1024, n_mels=40))
    params = FeatureParams(n_mels=40)
    y = np.random.default_rng(4).standard_normal(22050).astype(np.float32)
    assert features.mel(y, params=params).shape == (40, 101)


def test_a_tuple_comes_back_as_a_tuple_and_the_tables_arrays_cannot_be_changed_through_it():
    freqs = DEFAULT.cqt_fmin * 2.0 ** (np.arange(DEFAULT.cqt_bins) / DEFAULT.chroma_bins)
    lengths, cutoff = filterbanks.call("filters.wavelet_lengths", freqs=freqs, sr=22050, window="hann")
    ref_lengths, ref_cutoff = librosa.filters.wavelet_lengths(freqs=freqs, sr=22050, window="hann")
    np.testing.assert_allclose(lengths, ref_lengths, rtol=1e-12)
    assert float(cutoff) == pytest.approx(ref_cutoff, rel=1e-12)
    lengths[:] = 0
    again, _ = filterbanks.call("filters.wavelet_lengths", freqs=freqs, sr=22050, window="hann")
    assert again.min() > 0


def test_keys_name_the_call_and_its_arguments_and_ignore_a_last_bit_of_difference():
    freqs = np.array([440.0, 880.0])
    key = filterbanks.call_key("filters.wavelet", freqs=freqs, sr=22050, window="hann", dtype=np.complex64)
    assert key.startswith("filters.wavelet(dtype=complex64, freqs=array[2]:") and key.endswith("sr=22050, window='hann')")
    assert filterbanks.call_key("filters.wavelet", sr=22050, freqs=np.nextafter(freqs, 0), window="hann",
                                dtype=np.complex64) == key  # argument order and the last bit do not matter
    assert filterbanks.call_key("filters.wavelet", freqs=freqs * 1.001, sr=22050, window="hann",
                                dtype=np.complex64) != key
    assert filterbanks.call_key("filters.mel", n_mels=np.int64(128)) == filterbanks.call_key("filters.mel", n_mels=128)
    assert filterbanks.call_key("filters.mel", fmax=None) != filterbanks.call_key("filters.mel", fmax=0)
    with pytest.raises(TypeError, match="no key for a list"):
        filterbanks.call_key("filters.mel", freqs=[440.0])


def test_every_file_the_package_ships_is_in_its_package_data():
    """An installed instrec (a wheel, a Space) has the table, the models and the examples: every file
    of the package that is not Python is matched by pyproject.toml's package-data."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["instrec"]
    packaged = {p.relative_to(ROOT).as_posix() for pattern in patterns for p in (ROOT / "instrec").glob(pattern)}
    tracked = subprocess.run(["git", "ls-files", "instrec"], cwd=ROOT, capture_output=True, text=True, check=True)
    data = {f for f in tracked.stdout.split() if not f.endswith(".py")}
    assert "instrec/filterbanks.npz" in data and len(data) > 10
    assert data - packaged == set()
