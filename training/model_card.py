"""Write ``instrec/models/MODEL_CARD.md`` from the manifest, the evaluation and the real-recording check.

    python -m training.model_card [--models instrec/models] [--run runs/default] [--real-audio check.json]
    python -m training.model_card --models instrec/models --refresh --real-audio check.json

Every number in the card is read from files the pipeline wrote; nothing is typed in by hand. ``--refresh``
rewrites only what the manifest's fusion and the real-recording check decide (the opening paragraph and
model table, the head's section, "Real recordings", "Thresholds tuned again" and the head's and the
retune's commands), keeping what the existing card says of the CNNs' training run: after
``training.retune`` changes the fusion, the card is made again without the run's folder.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

from instrec.labels import CODES, NAMES
from instrec.params import REPRESENTATIONS
from instrec.recognizer import HEAD, MODELS_DIR

PUBLISHED = [
    ("Han et al. 2017 (mel CNN, IRMAS)", 0.60, 0.50),
    ("the seed: mel + modgd + CQT fusion (IRMAS)", 0.648, 0.561),
    ("Lekshmi & Rajan 2023 (IRMAS)", 0.69, 0.62),
]


def runs(run: Path) -> list[Path]:
    """``run`` and the runs it was fine-tuned from, oldest first (from each run's ``command.json``)."""
    chain = [Path(run)]
    while (chain[0] / "command.json").exists():
        parent = json.loads((chain[0] / "command.json").read_text()).get("init_run")
        if not parent or Path(parent) in chain:
            break
        chain.insert(0, Path(parent))
    return chain


def commands(run: Path) -> list[str]:
    """The pipeline commands that made ``run``, oldest first, as recorded in ``command.json``."""
    found = [json.loads((r / "command.json").read_text())["command"] for r in runs(run) if (r / "command.json").exists()]
    return found or ["python -m training.pipeline --out " + str(run) + "   # (command not recorded)"]


#: who made the real-sample soundfonts the corpus can use (--extra-soundfonts), and their licences
SOUNDFONT_CREDITS = {
    "karoryfer-weresax": "Karoryfer Samples, weresax (alto saxophone), CC0 1.0",
    "karoryfer-shinyguitar": "D. Smolken / Karoryfer Samples, shinyguitar (archtop guitar), CC0 1.0",
    "nyanshell-strat": "Gestalt LUR, nyanshell.strat (Stratocaster), MIT",
    "solfege-voice": "Chengu Wang, solfege-samples (male voice), GPL-3.0",
}


@functools.cache
def credit(name: str) -> str | None:
    """A library's credit and licence as ``corpus/libraries.json`` gives them (None for a name it lacks)."""
    from corpus.samples import catalogue

    e = next((e for e in catalogue() if e["name"] == name), None)
    return f"{e['credit']} ({e['licence']})" if e else None


def sources_section(corpus: dict, notes_only: list[str] = ()) -> list[str]:
    """The sources of each class and the credits of every recording the CNNs heard: the corpus's
    libraries and those that played only its isolated notes (``notes_only``)."""
    if not corpus.get("sources"):
        return []
    lines = ["", "## What the models heard", "", "| class | sources |", "|---|---|"]
    lines += [f"| {NAMES[c]} | {', '.join(corpus['sources'].get(c, []))} |" for c in CODES]
    lines += ["", f"Real recordings played {corpus.get('real_share', 0):.0%} of the lead parts of each class that "
              "has any; every song went through a simulated room or reverb"
              + (" and a recording chain (microphone, compression, background noise, lossy encoding)"
                 if corpus.get("recording_chain") else "") + ".", "", "Credits:", ""]
    for name in [*corpus.get("libraries", []), *notes_only]:
        if made_by := credit(name):
            lines.append(f"- `{name}`: {made_by}" + ("; in the isolated notes only" if name in notes_only else ""))
    for font in corpus.get("soundfonts", []):
        made_by = next((v for k, v in SOUNDFONT_CREDITS.items() if font.startswith(k)), None)
        if made_by:
            lines.append(f"- `{font}`: {made_by}")
    return lines


def extra_text(extra: dict) -> str:
    """A sentence on a further training folder (``training.pipeline --extra-train``) and what made it."""
    counts = extra.get("counts", {})
    text = (f"Beside it, `{extra['root']}`: {sum(counts.values())} excerpts ("
            + ", ".join(f"{c} {n}" for c, n in counts.items()) + ")")
    made = extra.get("made_by") or {}
    if made.get("module") == "experiments.stk_notes":
        text += (" of isolated notes from the physical and FM instrument models of the Synthesis ToolKit "
                 f"(`python -m experiments.stk_notes`, seed {made.get('seed')}; "
                 + ", ".join(f"`{m}`" for m in made.get("models", []))
                 + "; STK: Perry R. Cook and Gary P. Scavone, its own MIT-style licence)")
    return text + ". "


def freq_norm_text(info: dict) -> str:
    """How a manifest entry's CNN normalises frequency rows, for its row of the model table."""
    if info.get("freq_norm") is None:
        return ""
    centred = " (rows centred)" if info.get("freq_norm_kind") == "centre" else ""
    return f"; frequency-wise normalisation {info['freq_norm']:g}{centred}"


def pcen_text(info: dict) -> str:
    """Whether a manifest entry's CNN takes its input through PCEN, for its row of the model table."""
    return "" if info.get("pcen") is None else f"; PCEN on the input ({info['pcen']:.0f} frames' time constant)"


def recording_text(corpus: dict) -> str:
    """The corpus's recording-chain options that differ from the defaults (clipping, the guitar rig)."""
    parts = [f"{corpus['clipping']:.0%} of its excerpts clipped (`--clipping {corpus['clipping']:g}`)"] if corpus.get("clipping") else []
    if corpus.get("guitar_rig", "tanh") != "tanh":
        parts.append(f"electric guitars through `--guitar-rig {corpus['guitar_rig']}`")
    return "".join(f"; {p}" for p in parts)


#: what each musicnn model was trained on, by file name (those in instrec/pretrained, and musicnn's other
#: VGG model as export/musicnn_to_onnx.py names it in the docs)
TAGGERS = {"musicnn_mtt.onnx": "the real song excerpts of MagnaTagATune",
           "musicnn_msd.onnx": "the real songs of the Million Song Dataset",
           "musicnn_mtt_vgg.onnx": "the real song excerpts of MagnaTagATune; musicnn's VGG network",
           "musicnn_msd_vgg.onnx": "the real songs of the Million Song Dataset; musicnn's VGG network"}


def head_taggers(head: dict) -> list[str]:
    """The musicnn model files a head listens through (heads fitted before there was a choice: MagnaTagATune's)."""
    return [t["file"] for t in head.get("taggers", [{"file": "musicnn_mtt.onnx"}])]


def head_section(m: dict) -> list[str]:
    """What the manifest says of the classifier on musicnn's embedding, when the fusion has one."""
    if HEAD not in m["models"]:
        return []
    info = m["models"][HEAD]
    head = info["training"]
    taggers = [f"`{t}` (trained on {TAGGERS.get(t, 'what its provider says')})" for t in head_taggers(head)]
    return ["", f"A fourth model, `{HEAD}` ({info['bytes'] / 1e6:.1f} MB, `{info['sha256'][:16]}...`), is a "
            "logistic regression over the eleven classes (inverse regularisation C " + format(head["c"], "g")
            + ") on the embedding of musicnn (J. Pons and X. Serra, \"musicnn: pre-trained convolutional neural "
            "networks for music audio tagging\", ISMIR 2019 late-breaking demo; ISC licence): "
            + (f"the models {', '.join(taggers[:-1])} and {taggers[-1]}, side by side" if len(taggers) > 1 else f"the model {taggers[0]}")
            + "; only the logistic regression learnt from the corpus: "
            f"{head['train_files']} excerpts of " + ", ".join(f"`{t}`" for t in head["train"])
            + ", by `python -m training.head`. " + head_hearing(info.get("stride", 1))
            + "".join(f" The head alone also heard `{name}`: {credit(name)}." for name in head_only_libraries(m))]


def cnn_libraries(m: dict) -> tuple[list[str], list[str]]:
    """The libraries that played the CNNs' training songs, and those that played only their isolated notes."""
    data = m["training_data"]
    songs = data.get("synthetic_corpus", {}).get("libraries", [])
    return songs, [name for name in (data.get("notes") or {}).get("libraries", []) if name not in songs]


def head_only_libraries(m: dict) -> list[str]:
    """The libraries that played the musicnn head's training folders and none of the CNNs'."""
    heard = [name for names in cnn_libraries(m) for name in names]
    return [name for name in m["models"][HEAD]["training"].get("libraries", []) if name not in heard]


def head_hearing(stride: int) -> str:
    """How the head hears a file, one patch per ``stride`` windows (the card's sentence)."""
    if stride == 1:
        return "It hears the 3 seconds around each 1-second window (`instrec.embedding.WindowPatches`)."
    return (f"It hears one 3-second patch per group of {stride} one-second windows (the 3 seconds around the "
            "group's second window), whose probabilities every window of the group gets "
            f"(`instrec.embedding.WindowPatches`, stride {stride}).")


def head_command(m: dict) -> list[str]:
    """The command that fitted the head, when the fusion has one."""
    if HEAD not in m["models"]:
        return []
    head = m["models"][HEAD]["training"]
    taggers = head_taggers(head)
    folder = re.search(r"--head (\S+)", (m.get("fusion_tuning") or {}).get("command", ""))  # where the retune read it
    return ["python -m training.head " + " ".join(f"--train {t}" for t in head["train"]) + f" --c {head['c']:g}"
            + ("".join(f" --tagger instrec/pretrained/{t}" for t in taggers) if taggers != ["musicnn_mtt.onnx"] else "")
            + f" --out {folder.group(1) if folder else 'runs/head'}"]


def head_and_tuning_commands(m: dict) -> list[str]:
    """The commands after the CNNs' training run: the head's fit and the retune, when they were run."""
    tuning = (m.get("fusion_tuning") or {}).get("command")
    return head_command(m) + ([tuning] if tuning else [])


def intro(m: dict) -> list[str]:
    """The card's title, its opening paragraph (models, fusion) and the table of models."""
    f = m["fusion"]
    lines = [
        "# instrec default models", "",
        "Three CNNs (the seed's Table 5 for the log mel-spectrogram and the modgdgram, Table 6 for the CQT "
        "chromagram) exported to ONNX (opset " + str(m["versions"]["opset"]) + ", dynamic batch)"
        + (f", and a classifier on a pretrained tagger's embedding (`{HEAD}`, below)," if HEAD in m["models"] else "")
        + " fused with "
        f"per-instrument thresholds: rule **{f['rule']}**"
        + (" (weighted: " + ", ".join(f"{k} {w:g}" for k, w in f["weights"].items()) + ")" if f.get("weights") else "")
        + f", window aggregation **{f['aggregation']}**, "
        + ("thresholds tuned on the validation set (see \"Thresholds tuned again\")" if m.get("fusion_tuning")
           else "chosen on the validation set") + (f"; windows more than {f['quiet_db']:g} dB under a file's loudest are left out of its "
                                "scores" if f.get("quiet_db") is not None else "") + ".", "",
        "| model | input | size | epochs | augmentation | started from | best validation loss | sha256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rep, info in m["models"].items():
        if rep == HEAD:  # not a CNN: its own section below
            continue
        training = info.get("training") or {}
        lines.append(f"| {rep} | {' x '.join(map(str, info['input_shape'][1:]))} | {info['bytes'] / 1e6:.1f} MB | "
                     f"{(str(info['epochs_before']) + ' + ') if info.get('epochs_before') else ''}{info['epochs']} | "
                     f"{', '.join(training.get('augment') or []) or 'none'}"
                     f"{'; weights averaged over ' + format(training['ema'], 'g') + ' epochs' if training.get('ema') else ''}"
                     f"{'; cosine learning rate' if training.get('lr_schedule') == 'cosine' else ''}"
                     f"{'; source adversary, weight ' + format(training['adversary'], 'g') if training.get('adversary') else ''}"
                     f"{freq_norm_text(info)}{pcen_text(info)} | "
                     f"{started_from(training)} | "
                     f"{info['best_val_loss']:.3f} | `{info['sha256'][:16]}...` |")
    return lines + head_section(m)


def started_from(training: dict) -> str:
    """What a CNN's training began with: ``scratch``, or the checkpoint or exported model (its sha256 when
    recorded, since an exported model's path may hold another model later)."""
    if not training.get("init"):
        return "scratch"
    sha = training.get("init_sha256")
    return f"`{training['init']}`" + (f" (sha256 `{sha[:16]}...`)" if sha else "")


def real_section(real: dict | None) -> list[str]:
    """"Real recordings": the real-recording check (``python -m training.real_audio --json``), clip by clip."""
    if not real:
        return []
    lines = ["", "## Real recordings", "",
             f"On {real['n']} real solo excerpts (Medley-solos-DB, CC BY 4.0: clarinet and voice, in "
             "`tests/data/real/`), the right instrument ranks first for "
             f"**{real['top1_correct']} of {real['n']} ({real['top1_share']:.0%})**; chance is 1 in 11 (9 %). "
             + (f"The clips come from {real['n_recordings']} recordings; most clips of {real['recordings_right']} "
                "of them are right first. " if "n_recordings" in real else "")
             + "Each model alone: " + ", ".join(f"{k} {v:.0%}" for k, v in real["top1_share_per_model"].items())
             + ". Per instrument: " + ", ".join(f"{NAMES[k]} {v['correct']}/{v['n']}" for k, v in real["per_label"].items())
             + ".", "", "| clip | truth | ranked first | rank of truth | fused score of truth |", "|---|---|---|---|---|"]
    for c in real["clips"]:
        lines.append(f"| {c['file']} | {c['label']} | {c['top']} | {c['rank']} | {c['score']:.2f} |")
    return lines


def tuning_section(m: dict) -> list[str]:
    """"Thresholds tuned again", when ``training.retune`` tuned the fusion."""
    tuning = m.get("fusion_tuning") or {}
    return tuning["card"].rstrip("\n").split("\n") if tuning.get("card") else []


def card(models: Path, run: Path, real_audio: Path | None = None) -> str:
    """The card of the models in ``models``, trained as ``run``; the real-recording check is read from
    ``real_audio`` (``python -m training.real_audio --json`` of these models), default ``run/real_audio.json``."""
    m = json.loads((models / "manifest.json").read_text())
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    real_path = real_audio or run / "real_audio.json"
    real = json.loads(real_path.read_text()) if real_path.exists() else None
    data = m["training_data"]
    corpus = data.get("synthetic_corpus", {})
    lines = intro(m)
    lines += [
        "", "## Training data: synthetic", "",
        f"Trained on `{data['root']}`: the synthetic IRMAS-style corpus rendered by `python -m corpus.synth` "
        f"(seed {corpus.get('seed')}, scale {corpus.get('scale')}{recording_text(corpus)}) from the soundfonts "
        + ", ".join(f"`{s}`" for s in corpus.get("soundfonts", []))
        + (" and the recorded-note libraries " + ", ".join(f"`{s}`" for s in corpus["libraries"])
           if corpus.get("libraries") else "") + ". "
        + (f"Beside it, `{data['notes']['root']}`: {sum(data['notes']['summary']['counts'].values())} excerpts "
           "of isolated notes rendered by `python -m corpus.notes` "
           f"({data['notes']['per_class']} per class, every source of the class in turn, real recordings "
           f"{data['notes']['real_share']:.0%} of each class's{recording_text(data['notes'])}). "
           if data.get("notes") else "")
        + "".join(extra_text(e) for e in data.get("extra", []))
        + f"{data.get('n_train_files')} training and {data.get('n_val_files')} validation excerpts (a song-aware "
        "15 % split); thresholds tuned on "
        f"`{m['validation']['data']}` ({m['validation']['n_files']} files); tested on "
        f"`{metrics['data']}` ({metrics['n_files']} files), never used for tuning.",
        *sources_section(corpus, cnn_libraries(m)[1]), "",
        "These models have heard no real music, only single recorded notes and synthesised instruments put "
        "together. They are a working default, not IRMAS-grade models: for real accuracy, train on IRMAS with "
        "the same commands (see the README).", "",
        "## Synthetic test set (seed Tables 8-10)", "",
        "| models | rule | agg. | accuracy | precision | recall | F1 micro | F1 macro | LRAP |", "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in metrics["configs"].items():
        t = r["test"]
        lines.append(f"| {name} | {r['fusion']['rule']} | {r['fusion']['aggregation']} | {t['accuracy']:.3f} | "
                     f"{t['precision_micro']:.3f} | {t['recall_micro']:.3f} | {t['f1_micro']:.3f} | "
                     f"{t['f1_macro']:.3f} | {t['lrap']:.3f} |")
    for key in ("accuracy", "f1"):
        lines += ["", f"Per-instrument {key}:", "", "| instrument | " + " | ".join(metrics["configs"]) + " |",
                  "|---|" + "---|" * len(metrics["configs"])]
        for code in CODES:
            lines.append(f"| {NAMES[code]} | " + " | ".join(
                f"{r['test']['per_instrument'][code][key]:.3f}" for r in metrics["configs"].values()) + " |")
    lines += real_section(real)
    lines += tuning_section(m)
    lines += ["", "## What to expect on IRMAS", "",
              "Published IRMAS results for this design (micro / macro F1), what models trained on IRMAS with these "
              "commands should approach:", ""]
    lines += [f"- {name}: {micro:.3f} / {macro:.3f}" for name, micro, macro in PUBLISHED]
    lines += ["", "Several published IRMAS figures were obtained with thresholds tuned on the test set; instrec "
              "tunes on validation data only.", "", "## Reproduce", "", "```bash"]
    lines += commands(run) + head_and_tuning_commands(m)
    lines += [f"python -m training.model_card --models {models} --run {run}", "```", ""]
    for r in runs(run):
        t = r / "pipeline_times.json"
        if t.exists():
            lines += [f"Stage times of `{r}` (2-core x86_64 CPU, no GPU): " + ", ".join(
                f"{k} {_duration(v)}" for k, v in json.loads(t.read_text()).items()) + ".", ""]
        trained = {rep: json.loads(h.read_text())["history"] for rep in REPRESENTATIONS
                   if (h := r / rep / "history.json").exists()}
        if trained:  # a CNN trained before the command ran, or over several calls, still shows its time here
            lines += [f"Training time of each CNN of `{r}`, summed over its epochs: " + ", ".join(
                f"{rep} {_duration(sum(e['seconds'] for e in h))} ({len(h)} epoch{'s' * (len(h) != 1)})"
                for rep, h in trained.items()) + ".", ""]
    lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f". Exported {m['created']}.", ""]
    return "\n".join(lines)


def refresh(models: Path, real_audio: Path) -> str:
    """The card in ``models`` with what the manifest's fusion and the real-recording check ``real_audio``
    decide written anew, and what it says of the CNNs' training run (training data, synthetic test, the run's
    commands and times) kept."""
    path = models / "MODEL_CARD.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no card to refresh (python -m training.model_card --run RUN writes one)")
    old = path.read_text()
    m = json.loads((models / "manifest.json").read_text())
    heads = {name: old.find(f"\n## {name}\n") for name in ("Training data: synthetic", "Real recordings",
                                                           "Thresholds tuned again", "What to expect on IRMAS", "Reproduce")}
    for name in ("Training data: synthetic", "What to expect on IRMAS", "Reproduce"):
        if heads[name] < 0:
            raise ValueError(f"{path}: no section \"{name}\": not a card training.model_card wrote")
    trained_end = min(i for i in (heads["Real recordings"], heads["Thresholds tuned again"], heads["What to expect on IRMAS"]) if i >= 0)
    reproduce = old[heads["Reproduce"]:].split("\n")
    block_end = reproduce.index("```", reproduce.index("```bash") + 1)
    kept = [line for line in reproduce[reproduce.index("```bash") + 1 : block_end]
            if not line.startswith(("python -m training.head ", "python -m training.retune ", "python -m training.model_card "))]
    lines = intro(m) + [old[heads["Training data: synthetic"] : trained_end].rstrip("\n")]
    lines += real_section(json.loads(Path(real_audio).read_text())) + tuning_section(m)
    lines += [old[heads["What to expect on IRMAS"] : heads["Reproduce"]].rstrip("\n")]
    lines += ["", "## Reproduce", "", "```bash", *kept, *head_and_tuning_commands(m),
              f"python -m training.model_card --models {models} --refresh --real-audio {real_audio}", "```",
              *reproduce[block_end + 1 :]]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    """A stage's time as the card gives it: seconds under two minutes (a stage that only checked its output
    takes seconds), minutes above."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.model_card", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--run", type=Path, default=Path("runs/default"))
    ap.add_argument("--real-audio", type=Path, metavar="JSON",
                    help="the models' real-recording check (python -m training.real_audio --json; default "
                         "RUN/real_audio.json)")
    ap.add_argument("--refresh", action="store_true",
                    help="rewrite only what the fusion and the real-recording check (--real-audio) decide, keeping "
                         "what the existing card says of the training run")
    args = ap.parse_args(argv)
    if args.refresh:
        if args.real_audio is None:
            ap.error("--refresh needs --real-audio")
        try:
            text = refresh(args.models, args.real_audio)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    else:
        text = card(args.models, args.run, args.real_audio)
    (args.models / "MODEL_CARD.md").write_text(text)
    print(f"-> {args.models / 'MODEL_CARD.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
