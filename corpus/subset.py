"""Link a subset of a synthetic corpus's training excerpts into a new training folder.

    python -m corpus.subset --corpus data/synth --out data/synth-gm-only --lead gm

Keeps the excerpts whose predominant part is played by a General MIDI soundfont (``--lead gm``) or
by real recordings (``--lead extra``: a real-sample soundfont or a recorded-note library), as
``corpus.json`` records them; the files are symbolic
links, so the subset costs no disk space. Train on it with ``--data <out>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path


def lead_sources(record: dict) -> list[str]:
    """The sources that play a ``corpus.json`` record's predominant parts."""
    return [p.get("source", p.get("soundfont")) for p in record.get("parts", ()) if p.get("role") == "predominant"]


def training_records(corpus: Path) -> tuple[dict, list[dict]]:
    """The corpus manifest and its training-song records (each with ``lead_sources``, the sources that
    play its predominant parts)."""
    manifest = Path(corpus) / "corpus.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} not found: is {corpus} a corpus rendered by corpus.synth?")
    rendered = json.loads(manifest.read_text())
    if "gm_soundfonts" not in rendered:
        raise ValueError(f"{manifest} does not say which soundfonts are General MIDI: run corpus.synth on "
                         f"{corpus} again with the same arguments (finished songs are kept) to refresh it")
    records = [r for r in rendered["records"] if r["split"] == "train"]
    for r in records:
        r["lead_sources"] = lead_sources(r)
    return rendered, records


def link_files(corpus: Path, records: list[dict], out: Path) -> Counter:
    """Symbolic links to the records' training excerpts in ``out`` (training layout); per class counts."""
    counts: Counter = Counter()
    for r in records:
        for rel in r["files"]:
            target = (Path(corpus) / rel).resolve()
            link = Path(out) / Path(rel).relative_to("train")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                os.symlink(target, link)
            counts[link.parent.name] += 1
    return counts


def link_subset(corpus: Path, out: Path, lead: str = "gm") -> Counter:
    """Link the training excerpts of ``corpus`` whose leads are all played by General MIDI soundfonts
    (``lead="gm"``) or none is (``"extra"``: real-sample soundfonts or recorded-note libraries); per class counts."""
    if lead not in ("gm", "extra"):
        raise ValueError(f"lead must be 'gm' or 'extra', got {lead!r}")
    rendered, records = training_records(corpus)
    gm_names = set(rendered["gm_soundfonts"])
    chosen = [r for r in records if all(s in gm_names for s in r["lead_sources"]) == (lead == "gm")]
    counts = link_files(corpus, chosen, out)
    if not counts:
        kind = "a General MIDI soundfont" if lead == "gm" else "real recordings"
        raise ValueError(f"no training excerpt of {corpus} has its lead played by {kind}")
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m corpus.subset", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--lead", choices=("gm", "extra"), default="gm")
    args = ap.parse_args(argv)
    try:
        counts = link_subset(args.corpus, args.out, args.lead)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{sum(counts.values())} excerpts linked into {args.out}: "
          + " ".join(f"{c}:{n}" for c, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
