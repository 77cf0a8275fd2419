"""IRMAS readers on fixture trees with real IRMAS file-name shapes."""

import numpy as np
import pytest

from instrec.labels import CODES
from training.datasets import DatasetError, read_any, read_testing, read_training, song_key, split

TRAIN_NAMES = {
    "cel": ["008__[cel][nod][cla]0058__1.wav", "008__[cel][nod][cla]0058__2.wav", "[cel][cla]0001__1.wav"],
    "cla": ["[cla][cla]0189__2.wav", "[cla][cla]0189__3.wav", "012__[cla][dru][jaz_blu]1234__1.wav"],
    "gel": ["[gel][pop_roc]0828__3.wav", "101__[gel][dru][pop_roc]0599__1.wav"],
    "voi": ["[voi][lat_sou]2455__1.wav", "[voi][cou_fol]2000__2.wav"],
}


def make_training_tree(root):
    for code, names in TRAIN_NAMES.items():
        (root / code).mkdir(parents=True)
        for name in names:
            (root / code / name).write_bytes(b"")
    return root


def test_training_names_parsed(tmp_path):
    ds = read_training(make_training_tree(tmp_path))
    by_name = {e.path.name: e for e in ds.excerpts}
    e = by_name["008__[cel][nod][cla]0058__1.wav"]
    assert (e.labels, e.drums, e.genre) == (("cel",), False, "cla")
    e = by_name["[cla][cla]0189__2.wav"]
    assert (e.labels, e.drums, e.genre) == (("cla",), None, "cla")
    e = by_name["101__[gel][dru][pop_roc]0599__1.wav"]
    assert (e.labels, e.drums, e.genre) == (("gel",), True, "pop_roc")
    assert ds.counts() == {c: len(TRAIN_NAMES.get(c, [])) for c in CODES}
    assert ds.targets().shape == (len(ds), 11)


def test_song_key():
    assert song_key("008__[cel][nod][cla]0058__1") == "008__[cel][nod][cla]0058"
    assert song_key("[cla][cla]0189__2") == "[cla][cla]0189"


def test_wrong_folder_and_unknown_code(tmp_path):
    (tmp_path / "cel").mkdir()
    (tmp_path / "cel" / "[cla][cla]0001__1.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"tagged \[cla\] but stored in the folder 'cel'"):
        read_training(tmp_path)
    (tmp_path / "cel" / "[cla][cla]0001__1.wav").unlink()
    (tmp_path / "cel" / "[xyz][cla]0001__1.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"\[xyz\]\[cla\]0001__1.wav.*unknown instrument code 'xyz'"):
        read_training(tmp_path)


def test_unknown_folder(tmp_path):
    (tmp_path / "drums").mkdir()
    with pytest.raises(DatasetError, match="not instrument codes"):
        read_training(tmp_path)


def test_testing_layout_tolerant_parsing(tmp_path):
    part = tmp_path / "Part1"
    part.mkdir()
    (part / "(02) dont kill the whale-1.wav").write_bytes(b"")
    (part / "(02) dont kill the whale-1.txt").write_bytes(b"gel \r\n\r\n  VOI\r\n")
    (part / "song-2.wav").write_bytes(b"")
    (part / "song-2.txt").write_text("pia\n\npia\n")
    ds = read_testing(tmp_path)
    assert [e.labels for e in ds.excerpts] == [("gel", "voi"), ("pia",)]
    np.testing.assert_array_equal(ds.targets().sum(axis=1), [2, 1])
    assert read_any(tmp_path).excerpts == ds.excerpts


def test_testing_missing_label_file(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"a.txt: label file missing for a.wav"):
        read_testing(tmp_path)


def test_testing_unknown_code(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "a.txt").write_text("pia\ndru\n")
    with pytest.raises(DatasetError, match=r"a.txt, line 2: unknown instrument code 'dru'"):
        read_testing(tmp_path)


def test_testing_empty_label_file(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "a.txt").write_text("\n \n")
    with pytest.raises(DatasetError, match="lists no instrument"):
        read_testing(tmp_path)


def test_split_keeps_songs_together_and_is_deterministic(tmp_path):
    for code in CODES:
        (tmp_path / code).mkdir()
        for song in range(20):
            for k in range(1, 4):
                (tmp_path / code / f"{song:03d}__[{code}][nod][pop_roc]{song:04d}__{k}.wav").write_bytes(b"")
    ds = read_training(tmp_path)
    train, val = split(ds, seed=3)
    assert len(train) + len(val) == len(ds)
    assert not {e.song for e in train} & {e.song for e in val}
    # 15 % of each class's 20 songs = 3 songs of 3 excerpts
    assert val.counts() == {c: 9 for c in CODES}
    again = split(ds, seed=3)[1]
    assert [e.path for e in again.excerpts] == [e.path for e in val.excerpts]
    other = split(ds, seed=4)[1]
    assert {e.song for e in other.excerpts} != {e.song for e in val.excerpts}


def test_missing_roots(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_training(tmp_path / "none")
    with pytest.raises(DatasetError, match="no .wav files"):
        read_testing(tmp_path)
