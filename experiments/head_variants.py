"""Other classifiers on the musicnn embeddings the shipped head sees, checked on sources never heard.

    python -m experiments.head_variants --split runs/lolo-clip --corpus data/synth3c --corpus data/synth3c/notes
        [--real-audio tests/data/real] [--cache runs/cache/musicnn] [--tagger MODEL.onnx ...] [--c 0.003]
        [--nuisance 5,10,20] [--mlp-alpha 1,10] [--extra-train DIR ...] [--out variants.json]

Every variant is fitted on the split's ``train`` excerpts (a folder written by :mod:`experiments.leave_one_out`)
and asked about its held-out songs and notes, and the real recordings, as :mod:`experiments.pretrained_head`
asks the shipped head (the share of files whose true class comes first, per class and its mean):

- ``head``: the shipped head (:func:`training.head.fit_head`: standardised multinomial logistic regression).
- ``sources_balanced``: the same, each training file weighted so that every source of a class weighs the
  same in it (the corpora's ``corpus.json`` records say which source plays each file's lead: ``--corpus``
  names the corpora the split's files link into, its notes folder included).
- ``nuisance_K``: the same on the standardised embedding with ``K`` directions projected out: the principal
  directions of the sources' mean embeddings about their class's mean, along which a class's sources differ
  (nuisance attribute projection, as speaker verification removes the channel).
- ``per_tagger_product``: one head per tagger, their probabilities multiplied and renormalised.
- ``lda``: linear discriminant analysis with Ledoit-Wolf shrinkage on the standardised embedding.
- ``signed_sqrt``: the shipped head on each value's signed square root (power normalisation, which damps
  the few large values a pooled embedding is dominated by), standardised again.
- ``mlp_A``: a network of one hidden layer of :data:`MLP_UNITS` rectified units on the standardised
  embedding, L2 penalty ``A`` (``--mlp-alpha``), stopped early on a tenth of the training files;
  ``head_mlp_A`` the mean of its probabilities and the shipped head's.

``--extra-train`` (repeatable) adds further training folders, as the shipped head is fitted on the singer's
notes and the split's short files beside the split's ``train`` (name their corpora with ``--corpus`` too);
every held-out folder of the split is checked (``held``, ``held-notes`` and ``held-<name>`` for each notes
corpus split by ``leave_one_out --extra-notes``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from corpus.subset import lead_sources
from experiments.pretrained_head import checked_folders, first_right, print_first_right
from instrec.embedding import MODEL
from instrec.labels import CODES
from training.head import C, Taggers, class_probabilities, fit_head

#: ``--nuisance`` default: the counts of directions projected out
NUISANCE = (5, 10, 20)
#: ``--mlp-alpha`` default: the hidden layer's L2 penalties tried
MLP_ALPHAS = (1.0, 10.0)
#: the hidden layer's width
MLP_UNITS = 128


def file_sources(corpora: list[Path]) -> dict[str, dict[str, str]]:
    """Resolved path of every rendered file of the ``corpora`` -> {class code: the source playing its lead}."""
    sources = {}
    for corpus in map(Path, corpora):
        manifest = corpus / "corpus.json"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} not found: --corpus names a folder rendered by corpus.synth or corpus.notes")
        for record in json.loads(manifest.read_text())["records"]:
            leads = dict(zip(record["labels"], lead_sources(record)))
            sources.update({str((corpus / rel).resolve()): leads for rel in record["files"]})
    return sources


def source_weights(y: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """(n,) weights, mean 1, under which every source of a class weighs the same and every class as much as
    its files do unweighted."""
    pairs, per_class = Counter(zip(y, sources)), Counter(y)
    n_sources = Counter(c for c, _ in pairs)
    w = np.array([per_class[c] / (n_sources[c] * pairs[(c, s)]) for c, s in zip(y, sources)])
    return w / w.mean()


def nuisance_directions(z: np.ndarray, y: np.ndarray, sources: np.ndarray, k: int) -> np.ndarray:
    """(k, d) orthonormal directions along which the sources' mean embeddings differ most from their class's
    mean (every source of a class counted once)."""
    offsets = []
    for c in np.unique(y):
        means = np.stack([z[(y == c) & (sources == s)].mean(axis=0) for s in np.unique(sources[y == c])])
        offsets.append(means - means.mean(axis=0))
    _, _, vt = np.linalg.svd(np.concatenate(offsets), full_matrices=False)
    return vt[:k]


def _all_classes(probabilities: np.ndarray, classes: np.ndarray) -> np.ndarray:
    out = np.zeros((len(probabilities), len(CODES)))
    out[:, classes] = probabilities
    return out


def signed_sqrt(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.sqrt(np.abs(x))


def fit_variants(x: np.ndarray, y: np.ndarray, sources: np.ndarray, starts: np.ndarray, c: float = C,
                 nuisance: tuple[int, ...] = NUISANCE, mlp_alphas: tuple[float, ...] = MLP_ALPHAS) -> dict:
    """Variant name -> a function from embeddings (m, starts[-1]) to (m, 11) probabilities; ``starts`` are where
    each tagger's values begin, then the width of all (:attr:`training.head.Taggers.starts`)."""
    shipped = fit_head(x, y, c)
    scaler = shipped[0]  # its FlooredScaler: every variant sees the same standardised embedding
    z = scaler.transform(x)
    variants = {"head": lambda a: class_probabilities(shipped, a)}
    balanced = LogisticRegression(C=c, max_iter=3000).fit(z, y, sample_weight=source_weights(y, sources))
    variants["sources_balanced"] = lambda a: _all_classes(balanced.predict_proba(scaler.transform(a)), balanced.classes_)
    for k in nuisance:
        v = nuisance_directions(z, y, sources, k)
        project = lambda a, v=v: a - (a @ v.T) @ v
        model = LogisticRegression(C=c, max_iter=3000).fit(project(z), y)
        variants[f"nuisance_{k}"] = lambda a, m=model, p=project: _all_classes(m.predict_proba(p(scaler.transform(a))), m.classes_)
    if len(starts) > 2:  # more than one tagger
        parts = [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]
        heads = [fit_head(x[:, part], y, c) for part in parts]

        def product(a):
            log_p = sum(np.log(class_probabilities(h, a[:, part]) + 1e-12) for h, part in zip(heads, parts))
            p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
            return p / p.sum(axis=1, keepdims=True)

        variants["per_tagger_product"] = product
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(z, y)
    variants["lda"] = lambda a: _all_classes(lda.predict_proba(scaler.transform(a)), lda.classes_)
    rooted = fit_head(signed_sqrt(x), y, c)
    variants["signed_sqrt"] = lambda a: class_probabilities(rooted, signed_sqrt(a))
    for alpha in mlp_alphas:
        mlp = MLPClassifier(hidden_layer_sizes=(MLP_UNITS,), alpha=alpha, early_stopping=True, max_iter=500,
                            random_state=0).fit(z, y)
        net = lambda a, m=mlp: _all_classes(m.predict_proba(scaler.transform(a)), m.classes_)
        variants[f"mlp_{alpha:g}"] = net
        variants[f"head_mlp_{alpha:g}"] = lambda a, net=net: (net(a) + variants["head"](a)) / 2
    return variants


def run(split: Path, corpora: list[Path], real_audio: Path | None = None, cache: Path | None = None,
        taggers: tuple[Path, ...] = (MODEL,), c: float = C, nuisance: tuple[int, ...] = NUISANCE,
        mlp_alphas: tuple[float, ...] = MLP_ALPHAS, extra_train: tuple[Path, ...] = ()) -> dict:
    split = Path(split)
    embedder = Taggers(taggers)
    fitted = [embedder.folder(Path(folder), cache) for folder in (split / "train", *extra_train)]
    paths = [p for f in fitted for p in f[0]]
    x, y = np.concatenate([f[1] for f in fitted]), np.concatenate([f[2] for f in fitted])
    known = file_sources(corpora)
    missing = [p for p in paths if str(Path(p).resolve()) not in known]
    if missing:
        raise ValueError(f"{missing[0]} (and {len(missing) - 1} more): not a file of the corpora named by --corpus")
    sources = np.array([known[str(Path(p).resolve())][CODES[k]] for p, k in zip(paths, y)])
    variants = fit_variants(x, y, sources, embedder.starts, c, nuisance, mlp_alphas)
    checked = checked_folders(split)
    if real_audio is not None:
        checked["real"] = Path(real_audio)
    result = {"split": str(split), "c": c, "taggers": [m.name for m in embedder.models], "train_files": len(paths),
              "sources": len(set(zip(y, sources))), "checked": [name for name in checked if name != "real"]}
    for name, folder in checked.items():
        _, xt, yt, _ = embedder.folder(folder, cache)
        result[name] = {variant: first_right(predict(xt), yt) for variant, predict in variants.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.head_variants", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", type=Path, required=True, help="a folder written by experiments.leave_one_out")
    ap.add_argument("--corpus", type=Path, action="append", required=True,
                    help="a corpus the split's files link into (corpus.json; repeatable: its notes folder too)")
    ap.add_argument("--real-audio", type=Path, help="real recordings with labels.csv")
    ap.add_argument("--cache", type=Path, help="keep each file's embedding here")
    ap.add_argument("--tagger", type=Path, action="append", default=[],
                    help=f"a musicnn model in ONNX; repeated, side by side (default the shipped {MODEL.name})")
    ap.add_argument("--c", type=float, default=C, help=f"the logistic regressions' inverse regularisation (default {C})")
    ap.add_argument("--nuisance", default=",".join(map(str, NUISANCE)),
                    help="counts of directions projected out, comma-separated")
    ap.add_argument("--mlp-alpha", default=",".join(f"{a:g}" for a in MLP_ALPHAS),
                    help="the hidden layer's L2 penalties tried, comma-separated")
    ap.add_argument("--extra-train", type=Path, action="append", default=[], metavar="DIR",
                    help="a further training folder beside the split's train (repeatable)")
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    try:
        result = run(args.split, args.corpus, args.real_audio, args.cache, tuple(args.tagger) or (MODEL,), args.c,
                     tuple(int(k) for k in args.nuisance.split(",") if k),
                     tuple(float(a) for a in args.mlp_alpha.split(",") if a), tuple(args.extra_train))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_first_right(result, width=18)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
