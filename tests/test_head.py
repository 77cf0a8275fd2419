"""The classifier on musicnn's embedding: fitted, exported with musicnn's graph, and checked against
scikit-learn."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.preprocessing import StandardScaler

from instrec import audio
from instrec.embedding import Embedder, patches
from instrec.labels import CODES
from tests.conftest import tone, tones_and_noise, write
from training import head


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("head")
    train = tones_and_noise(root / "train", 5, seed=0, f0=220)
    write(train / "silent.wav", np.zeros(22050, np.float32))  # no instrument to name: left out, listed
    for k in range(4):  # a third class, so the head is multinomial as it is on the corpus: hard-clipped tones
        write(train / f"g{k}.wav", np.clip(4 * tone(150.0 * 1.3 ** k, 3.0), -0.5, 0.5))
    rows = "".join(f"g{k}.wav,gel\n" for k in range(4))
    header, *listed = (train / "labels.csv").read_text().splitlines(keepends=True)
    # the silent file first, where the parity check's probe starts: it must be passed over, not decoded
    (train / "labels.csv").write_text(header + "silent.wav,pia\n" + "".join(listed) + rows)
    info = head.export([train], root / "out", cache=root / "cache")
    return root, info


def test_the_exported_head_gives_scikit_learns_probabilities_per_patch(exported):
    # parity: musicnn and the head in one ONNX graph against musicnn's outputs through scikit-learn, on
    # patches the head never saw (a 7-second tone: five patches); 1e-5 is float32 rounding through a
    # 1 756-wide dot product and a softmax
    root, info = exported
    assert info["train_files"] == 14 and [p.rsplit("/", 1)[-1] for p in info["silent_files"]] == ["silent.wav"]
    assert info["classes"] == ["gel", "org", "pia"] and info["parity"]["max_abs_diff"] <= 1e-5
    fitted, _, _ = head.fit([root / "train"], cache=root / "cache")
    mel = patches(tone(300.0, 7.0), sr=22050)
    session = ort.InferenceSession(str(root / "out" / "head.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"mel:0": mel})[0]
    x = Embedder().embed(tone(300.0, 7.0), sr=22050)
    np.testing.assert_allclose(got, head.class_probabilities(fitted, x), atol=1e-5)
    assert got.shape == (5, len(CODES))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    unseen = [CODES.index(c) for c in CODES if c not in ("gel", "org", "pia")]
    assert got[:, unseen].max() < 1e-30  # classes never seen get nothing
    assert got[:, CODES.index("pia")].min() > 0.5  # a harmonic tone is the tones' class
    assert json.loads((root / "out" / "head.json").read_text())["sha256"] == info["sha256"]


def test_a_two_class_head_is_exported_in_its_binary_form(tmp_path):
    # scikit-learn fits two classes as one logit (a sigmoid): the export must give the same probabilities
    train = tones_and_noise(tmp_path / "train", 4, seed=0, f0=220)
    info = head.export([train], tmp_path / "out")
    assert info["classes"] == ["org", "pia"] and info["parity"]["max_abs_diff"] <= 1e-5


def test_a_head_that_does_not_see_every_output_cannot_be_exported(exported, tmp_path):
    root, _ = exported
    fitted, _, _ = head.fit([root / "train"], cache=root / "cache", outputs=("max_pool",))
    with pytest.raises(ValueError, match="all 1756 values"):
        head.to_onnx(fitted, tmp_path / "h.onnx")
    assert not (tmp_path / "h.onnx").exists()


def test_parity_is_enforced(exported):
    # the check compares the file with the head it is given: a different head is caught, not written over
    root, _ = exported
    other, _, _ = head.fit([root / "train"], c=100.0, cache=root / "cache")
    mel = patches(audio.load(root / "train" / "p0.wav"), sr=22050)
    with pytest.raises(ValueError, match="differs from the fitted head"):
        head.check_parity(other, root / "out" / "head.onnx", mel, head.Taggers(), atol=1e-9)


def test_command_line_errors_are_one_line(tmp_path, capsys):
    assert head.main(["--train", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 1
    assert "error:" in capsys.readouterr().err
    one = tmp_path / "one"
    tones_and_noise(one, 2, seed=0, f0=200)
    (one / "labels.csv").write_text("file,label\np0.wav,pia\np1.wav,pia\n")
    assert head.main(["--train", str(one), "--out", str(tmp_path / "out")]) == 1
    assert "one class only" in capsys.readouterr().err
    assert not (tmp_path / "out" / "head.onnx").exists()


def test_a_unit_constant_in_training_is_not_blown_up_by_rounding():
    # a dead unit: one value over every training row, give or take 1e-13; a row 1e-10 off it must not
    # become the largest standardised feature (plain standardisation makes it 1e3 standard deviations)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    x[:, 2] = 2.27e-5 + 1e-13 * rng.standard_normal(200)
    scaler = head.FlooredScaler().fit(x)
    probe = np.array([[0.0, 0.0, 2.27e-5 + 1e-10, 0.0, 0.0]])
    assert abs(scaler.transform(probe)[0, 2]) < 1e-6
    assert abs(StandardScaler().fit(x).transform(probe)[0, 2]) > 100  # what the floor prevents
    assert scaler.scale_[2] == pytest.approx(head.SCALE_FLOOR * np.median(scaler.scale_))
    np.testing.assert_allclose(scaler.scale_[[0, 1, 3, 4]], x[:, [0, 1, 3, 4]].std(axis=0))  # live ones as before


def test_a_long_files_first_patch_is_answered_as_the_same_audio_alone(exported):
    # the same 3 seconds, embedded as one patch or as the first of a file's, get the same probabilities
    root, _ = exported
    fitted, _, _ = head.fit([root / "train"], cache=root / "cache")
    y = np.concatenate([tone(300.0, 3.0), np.random.default_rng(1).standard_normal(5 * 22050).astype(np.float32) * 0.3])
    whole, first = (head.class_probabilities(fitted, Embedder().embed(z, sr=22050)) for z in (y, y[: 3 * 22050]))
    np.testing.assert_allclose(whole[0], first[0], atol=1e-4)
    assert CODES[whole[0].argmax()] == "pia" and CODES[whole[-1].argmax()] == "org"


def test_a_head_per_class_gives_each_instrument_its_own_probability(exported, tmp_path):
    # one-vs-rest: a class with no training file is answered 0 (not a share of the others' mass), the
    # probabilities need not sum to 1, and the tones are still the tones' class; it is not exported
    root, _ = exported
    fitted, _, _ = head.fit([root / "train"], cache=root / "cache", per_class=True)
    p = head.class_probabilities(fitted, Embedder().embed(tone(300.0, 7.0), sr=22050))
    assert p.shape == (5, len(CODES))
    unseen = [CODES.index(c) for c in CODES if c not in ("gel", "org", "pia")]
    assert p[:, unseen].max() == 0.0 and not np.allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(axis=1) == CODES.index("pia")).all()
    with pytest.raises(ValueError, match="only the multinomial head"):
        head.to_onnx(fitted, tmp_path / "h.onnx")


def test_a_head_on_two_taggers_reads_both_graphs_from_one_input(exported, tmp_path):
    # a second musicnn model (its timbral filters halved, so every output moves): the exported graph runs both
    # on the same patches and gives scikit-learn's probabilities on the two embeddings side by side
    import onnx
    from onnx import numpy_helper

    from instrec.embedding import MODEL

    root, _ = exported
    model = onnx.load(str(MODEL))
    conv = next(i for i in model.graph.initializer if i.name == "conv2d/Conv2D/ReadVariableOp:0")
    conv.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(conv) * 0.5, conv.name))
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    info = head.export([root / "train"], tmp_path / "out", cache=root / "cache", taggers=(MODEL, other))
    assert [t["file"] for t in info["taggers"]] == [MODEL.name, "other.onnx"] and info["parity"]["max_abs_diff"] <= 1e-5
    taggers = head.Taggers((MODEL, other))
    fitted, _, _ = head.fit([root / "train"], cache=root / "cache", taggers=taggers)
    mel = patches(tone(300.0, 7.0), sr=22050)
    x = taggers.patches(mel)
    assert x.shape == (5, 2 * 1756) and np.abs(x[:, :1756] - x[:, 1756:]).max() > 0.1  # the second model differs
    session = ort.InferenceSession(str(tmp_path / "out" / "head.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["mel:0"]
    got = session.run(["probabilities"], {"mel:0": mel})[0]
    np.testing.assert_allclose(got, head.class_probabilities(fitted, x), atol=1e-5)
    one, _, _ = head.fit([root / "train"], cache=root / "cache")
    assert np.abs(got - head.class_probabilities(one, x[:, :1756])).max() > 1e-3  # not the one-model head
    with pytest.raises(ValueError, match="all 3512 values"):
        head.to_onnx(one, tmp_path / "h.onnx", (MODEL, other))
    with pytest.raises(ValueError, match="named twice"):
        head.Taggers((MODEL, MODEL))


def test_the_head_records_which_libraries_played_its_training_folders(exported, tiny_corpus, tmp_path):
    """A rendered corpus's train/ adds the libraries its corpus.json lists; a folder of other data none."""
    _, info = exported
    assert info["libraries"] == []  # tones: no rendered corpus
    listed = json.loads((tiny_corpus / "corpus.json").read_text())["libraries"]
    assert listed and head.heard_libraries([tiny_corpus / "train", tmp_path]) == sorted(listed)


def small_tagger(path, widths: dict[str, int], seed: int = 0):
    """A tagger in ONNX with the shipped models' input and output names and other output widths (as musicnn's
    VGG models have): each output a fixed random projection of the patch's mean or max over time."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("ReduceMean", ["mel:0"], ["mean"], axes=[1], keepdims=0),
             helper.make_node("ReduceMax", ["mel:0"], ["max"], axes=[1], keepdims=0)]
    weights, outputs = [], []
    for name, width in widths.items():
        weights.append(numpy_helper.from_array(rng.standard_normal((96, width)).astype(np.float32), f"w_{name}"))
        nodes.append(helper.make_node("MatMul", ["max" if name == "max_pool" else "mean", f"w_{name}"], [f"{name}:0"]))
        outputs.append(helper.make_tensor_value_info(f"{name}:0", TensorProto.FLOAT, ["n", width]))
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("mel:0", TensorProto.FLOAT, ["n", 187, 96])],
                              outputs, weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_taggers_of_other_widths_sit_side_by_side(exported, tmp_path):
    # musicnn beside a tagger whose outputs have other widths: each model's values are found where they are,
    # the head is exported over all of them and answers as scikit-learn does
    from instrec.embedding import MODEL

    root, _ = exported
    widths = {"max_pool": 40, "mean_pool": 20, "penultimate": 30, "taggram": 50}
    small = small_tagger(tmp_path / "small.onnx", widths)
    taggers = head.Taggers((MODEL, small))
    assert taggers.embedders[1].widths == widths and taggers.size == 1756 + 140
    mel = patches(tone(300.0, 7.0), sr=22050)
    x = taggers.patches(mel)
    assert x.shape == (5, 1896)
    alone = Embedder(small).outputs(mel)
    np.testing.assert_array_equal(x[:, taggers.columns(("taggram",))[50:]], alone["taggram"])
    np.testing.assert_array_equal(x[:, taggers.columns(("mean_pool",))[753:]], alone["mean_pool"])
    info = head.export([root / "train"], tmp_path / "out", cache=root / "cache", taggers=(MODEL, small))
    assert info["parity"]["max_abs_diff"] <= 1e-5
    one, _, _ = head.fit([root / "train"], cache=root / "cache")
    with pytest.raises(ValueError, match="all 1896 values"):
        head.to_onnx(one, tmp_path / "h.onnx", (MODEL, small))
    with pytest.raises(ValueError, match="fixed widths"):
        Embedder(small_tagger(tmp_path / "odd.onnx", {"taggram": 50}))
