"""Experiments on the tiny corpus: leave-one-source-out."""

import json

from training.datasets import read_training


def test_leave_one_source_out_trains_without_it_and_tests_on_it(tiny_corpus, tmp_path):
    from experiments.leave_one_out import run

    result = run(tiny_corpus, tmp_path / "lolo", epochs=1, progress=False)
    manifest = json.loads((tiny_corpus / "corpus.json").read_text())
    lead = {f: [p["source"] for p in r["parts"] if p["role"] == "predominant"][0]
            for r in manifest["records"] if r["split"] == "train" for f in r["files"]}
    source_of = lambda e: lead[str(e.path.resolve().relative_to(tiny_corpus.resolve()))]
    kept, held = read_training(tmp_path / "lolo" / "train"), read_training(tmp_path / "lolo" / "held")
    assert len(kept) + len(held) == len(read_training(tiny_corpus / "train"))
    # nothing held out is trained on; everything held out is played by its class's held-out source
    assert all(source_of(e) != result["held_out"].get(e.labels[0]) for e in kept)
    assert all(source_of(e) == result["held_out"][e.labels[0]] for e in held)
    # flute has one source in the tiny corpus (every lead from its library): it cannot be held out
    assert "flu" not in result["held_out"]
    assert set(result["per_class"]) == {e.labels[0] for e in held}
    assert result["n_held"] == len(held)
    assert json.loads((tmp_path / "lolo" / "leave_one_out.json").read_text())["held_out"] == result["held_out"]
