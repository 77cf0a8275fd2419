"""Which source played each training excerpt of a synthetic corpus, and source families.

The corpus renderers (:mod:`corpus.synth`, :mod:`corpus.notes`) record in ``corpus.json`` the source that
plays every part: a General MIDI soundfont's file name (``FluidR3_GM.sf2``), a real-sample soundfont's
(``karoryfer-weresax-alto-forte.sf3``) or a recorded-note library's (``tonejs-cello``). A training excerpt,
or a symbolic link to one (the training folders of :mod:`experiments.leave_one_out` and
:mod:`corpus.subset`), is matched to its record through the ``corpus.json`` found beside or above the file
it resolves to. Files no renderer wrote (IRMAS, generated audio) have no source.

A source's **family** is its name up to the first hyphen: one publisher's libraries share a recording setup
(``freepats-*``, ``tonejs-*``, ``karoryfer-*``), and each General MIDI soundfont is a family of its own.
Every General MIDI soundfont and FreePats play every class, so a family says little about the class and
much about the recording: what the source-adversarial training of :mod:`training.train` (``--adversary``)
keeps out of the CNN's embedding.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from corpus.subset import lead_sources
from training.datasets import Dataset

MANIFEST = "corpus.json"


def source_family(source: str) -> str:
    """``tonejs-cello`` -> ``tonejs``; ``FluidR3_GM.sf2`` -> ``FluidR3_GM.sf2``."""
    return source.split("-", 1)[0]


@lru_cache(maxsize=16)
def _lead_sources(manifest: Path) -> dict[Path, str]:
    """Resolved training file -> the source of its predominant part, for one ``corpus.json``."""
    rendered = json.loads(manifest.read_text())
    root = manifest.parent
    found = {}
    for record in rendered.get("records", []):
        leads = lead_sources(record)
        if len(set(leads)) != 1:
            continue  # no lead, or leads from several sources: no one source to name
        for rel in record.get("files", ()):
            found[(root / rel).resolve()] = leads[0]
    return found


@lru_cache(maxsize=256)
def _manifest_above(folder: Path) -> Path | None:
    """The nearest ``corpus.json`` in ``folder`` or above it (looked up once per folder)."""
    for above in (folder, *folder.parents):
        if (above / MANIFEST).is_file():
            return (above / MANIFEST).resolve()
    return None


def excerpt_sources(dataset: Dataset) -> list[str | None]:
    """The source of each excerpt's predominant part, in the dataset's order (None where no corpus
    manifest records one)."""
    sources = []
    for excerpt in dataset.excerpts:
        path = excerpt.path.resolve()
        manifest = _manifest_above(path.parent)
        sources.append(_lead_sources(manifest).get(path) if manifest else None)
    return sources


def family_labels(sources: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Integer family of each source (-1 where unknown) and the family names, most common first."""
    counts = Counter(source_family(s) for s in sources if s is not None)
    families = [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    index = {name: i for i, name in enumerate(families)}
    labels = np.array([index[source_family(s)] if s is not None else -1 for s in sources], dtype=np.int64)
    return labels, families
