"""Zero-shot classification benchmarks: ESC-50, UrbanSound8K or a folder of class subfolders, scored by how often
a class's prompt is the audio's nearest text (top-1, top-5, per class, per fold), as the CLAP papers report it.

Class names are cleaned for the prompts (``dog_bark`` -> "dog bark"); several prompt templates are averaged in
embedding space (prompt ensembling, as in CLIP): each class's text embedding is the normalised mean of its
prompts' embeddings.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from manifests.atomic import atomic_path, inside
from manifests.audio_formats import AUDIO_EXTENSIONS
from training.inference import embed_readable_files

DEFAULT_TEMPLATE = "This is a sound of {}."
DEFAULT_TEMPLATES = (DEFAULT_TEMPLATE,)
KINDS = ("esc50", "us8k", "folder")


def clean_class_name(name: str) -> str:
    """A dataset's class name as words for a prompt: ``dog_bark`` / ``Dog-Bark`` -> "dog bark"."""
    words = re.sub(r"[_\-\s]+", " ", name).strip()
    if not words:
        raise ValueError(f"class name {name!r} holds no words")
    return words.lower()


def prompts_for(labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """The texts embedded for zero-shot labels: the template with '{}' replaced by each label."""
    if "{}" not in template:
        raise ValueError(f"the prompt template must contain '{{}}' where the label goes, got {template!r}")
    labels = [label.strip() for label in labels]
    if not labels or not all(labels):
        raise ValueError("zero-shot classification needs a list of non-empty labels")
    return [template.replace("{}", label) for label in labels]


def label_embeddings(embed_texts: Callable[[Sequence[str]], np.ndarray], labels: Sequence[str],
                     templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
    """[L, D] normalised text embeddings of the labels, each the mean over the templates (prompt ensembling)."""
    if not templates:
        raise ValueError("give at least one prompt template")
    total = None
    for t in templates:
        e = np.asarray(embed_texts(prompts_for(labels, t)), dtype=np.float32)
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        total = e if total is None else total + e
    return total / np.linalg.norm(total, axis=1, keepdims=True)


# --- datasets ---------------------------------------------------------------------------------------------------
@dataclass
class ZeroShotSet:
    """Labelled sounds: ``files[i]`` is of class ``classes[targets[i]]`` in fold ``folds[i]``."""
    kind: str
    root: Path
    classes: list[str]  # as the dataset names them (dog_bark); prompts use clean_class_name
    files: list[str] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    folds: list[str] = field(default_factory=list)


def parse_zero_shot_arg(arg: str) -> tuple[str, Path]:
    """``KIND:PATH`` -> (kind, path); kind is one of KINDS."""
    kind, sep, path = arg.partition(":")
    if not sep or kind not in KINDS or not path:
        raise ValueError(f"--zero-shot takes KIND:PATH with KIND one of {', '.join(KINDS)}, got {arg!r}")
    return kind, Path(path).expanduser()


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} at {path} (the dataset's own layout is expected)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in columns if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: " + (f"no column(s) {', '.join(missing)}" if rows else "no rows"))
    return rows


def _from_rows(kind: str, root: Path, rows: list[dict], name_col: str, target_col: str, fold_col: str,
               file_of: Callable[[dict], Path]) -> ZeroShotSet:
    names: dict[int, str] = {}
    for n, r in enumerate(rows, 2):
        try:
            t = int(r[target_col])
        except (TypeError, ValueError):
            raise ValueError(f"{kind}: row {n}: {target_col} {r[target_col]!r} is not an integer") from None
        if names.setdefault(t, r[name_col]) != r[name_col]:
            raise ValueError(f"{kind}: class {t} is named both {names[t]!r} and {r[name_col]!r}")
    order = sorted(names)
    position = {t: i for i, t in enumerate(order)}
    return ZeroShotSet(kind, root, [names[t] for t in order], [str(file_of(r)) for r in rows],
                       [position[int(r[target_col])] for r in rows], [str(r[fold_col]).strip() for r in rows])


def read_esc50(root: Path) -> ZeroShotSet:
    """ESC-50: ``meta/esc50.csv`` (filename, fold, target, category) and ``audio/<filename>``; 5 folds."""
    rows = _read_csv(root / "meta" / "esc50.csv", ("filename", "fold", "target", "category"))
    return _from_rows("esc50", root, rows, "category", "target", "fold", lambda r: root / "audio" / r["filename"])


def read_us8k(root: Path) -> ZeroShotSet:
    """UrbanSound8K: ``metadata/UrbanSound8K.csv`` (slice_file_name, fold, classID, class) and
    ``audio/fold<N>/<slice_file_name>``; 10 folds."""
    rows = _read_csv(root / "metadata" / "UrbanSound8K.csv", ("slice_file_name", "fold", "classID", "class"))
    return _from_rows("us8k", root, rows, "class", "classID", "fold",
                      lambda r: root / "audio" / f"fold{str(r['fold']).strip()}" / r["slice_file_name"])


def read_class_folders(root: Path) -> ZeroShotSet:
    """One subfolder per class (its name is the class), its audio files (at any depth) the examples; one fold."""
    if not root.is_dir():
        raise NotADirectoryError(f"no such folder: {root}")
    data = ZeroShotSet("folder", root, [])
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            continue
        data.classes.append(sub.name)
        data.files += [str(f) for f in files]
        data.targets += [len(data.classes) - 1] * len(files)
        data.folds += ["all"] * len(files)
    if len(data.classes) < 2:
        raise ValueError(f"{root}: zero-shot classification needs at least 2 subfolders of audio (one per class), "
                         f"found {len(data.classes)}")
    return data


READERS = {"esc50": read_esc50, "us8k": read_us8k, "folder": read_class_folders}


def read_zero_shot_set(arg: str) -> ZeroShotSet:
    kind, root = parse_zero_shot_arg(arg)
    return READERS[kind](root)


# --- scoring ----------------------------------------------------------------------------------------------------
def embed_files(embedder, files: Sequence[str], group: int = 32) -> tuple[np.ndarray, list[int], list[dict]]:
    """(embeddings of the readable files, their positions in ``files``, [{"file", "reason"}] of the others)."""
    audio, kept, failed = embed_readable_files(embedder, files, group)
    return audio, kept, [{"file": files[j], "reason": reason} for j, reason in failed]


def score(similarity: np.ndarray, targets: Sequence[int], folds: Sequence[str], classes: Sequence[str]) -> dict:
    """Accuracy figures of a [N, C] audio-class similarity matrix: top-1, top-5, per fold (and their mean),
    per class, chance levels, the confusion matrix (rows: true class, columns: predicted)."""
    sim = np.asarray(similarity, dtype=np.float64)
    t = np.asarray(targets)
    n, c = sim.shape
    if n == 0:
        raise ValueError("no sounds to score")
    order = np.argsort(-sim, axis=1, kind="stable")
    k5 = min(5, c)
    top1 = order[:, 0] == t
    top5 = (order[:, :k5] == t[:, None]).any(axis=1)
    fold_names = sorted(set(folds), key=lambda f: (len(f), f))
    f_arr = np.asarray(folds)
    per_fold = {f: {"n": int((f_arr == f).sum()), "top1": float(top1[f_arr == f].mean()),
                    "top5": float(top5[f_arr == f].mean())} for f in fold_names}
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (t, order[:, 0]), 1)
    counts = np.bincount(t, minlength=c)
    per_class = {name: {"n": int(counts[i]), "top1": float(top1[t == i].mean()) if counts[i] else None}
                 for i, name in enumerate(classes)}
    return {"n": int(n), "n_classes": int(c), "top1": float(top1.mean()), "top5": float(top5.mean()),
            "folds": per_fold, "mean_fold_top1": float(np.mean([v["top1"] for v in per_fold.values()])),
            "mean_fold_top5": float(np.mean([v["top5"] for v in per_fold.values()])),
            "chance": {"top1": 1 / c, "top5": k5 / c, "majority_class": float(counts.max() / n)},
            "per_class": per_class, "confusion": confusion.tolist()}


def evaluate_zero_shot(embedder, data: ZeroShotSet, templates: Sequence[str] = DEFAULT_TEMPLATES) -> dict:
    """Embed the set's sounds and its cleaned class names (prompt-ensembled over ``templates``) and score."""
    labels = [clean_class_name(c) for c in data.classes]
    text = label_embeddings(embedder.embed_texts, labels, templates)
    audio, kept, skipped = embed_files(embedder, data.files)
    if not kept:
        raise ValueError(f"{data.kind}:{data.root}: none of the {len(data.files)} files could be read, e.g. "
                         f"{skipped[0]['reason']}")
    result = score(audio @ text.T, [data.targets[i] for i in kept], [data.folds[i] for i in kept], labels)
    return {"kind": data.kind, "path": str(data.root), "templates": list(templates), "classes": list(data.classes),
            "labels": labels, **result, "n_files": len(data.files), "skipped": skipped}


def write_confusion_png(result: dict, path: str | os.PathLike, title: str = "",
                        root: str | os.PathLike | None = None) -> Path:
    """The confusion matrix as a picture: rows true class, columns predicted, each row as shares of its class.
    Written atomically; with ``root`` (the default folder beside a checkpoint) never through a link planted
    there."""
    from matplotlib.figure import Figure

    m = np.asarray(result["confusion"], dtype=np.float64)
    shares = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    c = len(result["labels"])
    size = max(4.0, 0.28 * c + 2.5)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(c), result["labels"], rotation=90, fontsize=7)
    ax.set_yticks(range(c), result["labels"], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    ax.set_title(title or f"{result['kind']}: top-1 {100 * result['top1']:.1f} % "
                          f"(chance {100 * result['chance']['top1']:.1f} %)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the class")
    fig.tight_layout()
    path = inside(root, Path(path).relative_to(root)) if root is not None else Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def format_zero_shot(name: str, r: dict) -> str:
    """A few lines per checkpoint and dataset: accuracy against chance, per fold."""
    lines = [f"{name}  zero-shot {r['kind']} ({r['n']} sounds, {r['n_classes']} classes"
             + (f", {len(r['skipped'])} unreadable" if r["skipped"] else "") + f"; {len(r['templates'])} template(s))",
             f"  top-1 {100 * r['top1']:5.1f} %  (chance {100 * r['chance']['top1']:.1f} %)   "
             f"top-5 {100 * r['top5']:5.1f} %  (chance {100 * r['chance']['top5']:.1f} %)"]
    if len(r["folds"]) > 1:
        lines.append("  per fold top-1: " + "  ".join(f"{f}: {100 * v['top1']:.1f}" for f, v in r["folds"].items())
                     + f"   mean {100 * r['mean_fold_top1']:.1f} %")
    worst = sorted((v["top1"], k) for k, v in r["per_class"].items() if v["top1"] is not None)
    if worst:
        lines.append("  hardest classes: " + ", ".join(f"{k} {100 * a:.0f} %" for a, k in worst[:3]))
    return "\n".join(lines)


def zero_shot_main(args) -> int:
    """``wt5k-eval --zero-shot KIND:PATH [--template T ...]``: each checkpoint on each set; prints the figures,
    writes ``zeroshot_<checkpoint stem>.json`` and a confusion-matrix PNG per set beside the retrieval results."""
    from training.evaluate import write_json
    from training.inference import Embedder

    sets = [read_zero_shot_set(arg) for arg in args.zero_shot]
    templates = args.template or list(DEFAULT_TEMPLATES)
    for t in templates:
        prompts_for(["x"], t)  # every template has its '{}' before anything is embedded
    names = args.name or []
    if names and len(names) != len(args.checkpoint):
        raise ValueError("give one name per checkpoint")
    first = Path(args.checkpoint[0])
    out_dir = Path(args.json).parent if args.json else first.parent
    for i, ckpt in enumerate(args.checkpoint):
        emb = Embedder.from_checkpoint(ckpt, batch_size=args.batch_size, device=args.device,
                                       format=args.checkpoint_format, text_model=args.text_model,
                                       min_share=args.min_share, trusted=args.trust_checkpoint)
        name = names[i] if names else f"{Path(ckpt).parent.name}/{Path(ckpt).stem}"
        results = {}
        for data in sets:
            r = evaluate_zero_shot(emb, data, templates)
            r["confusion_png"] = str(write_confusion_png(
                r, out_dir / f"zeroshot_{Path(ckpt).stem}_{data.kind}_{data.root.name}_confusion.png",
                root=None if args.json else out_dir))
            results[f"{data.kind}:{data.root}"] = r
            print(format_zero_shot(name, r))
        # as wt5k-eval's own JSON: atomically, and beside the checkpoint never through a link planted there
        out = write_json(out_dir / f"zeroshot_{Path(ckpt).stem}.json",
                         {"checkpoint": str(ckpt), "name": name, "results": results},
                         root=None if args.json else out_dir)
        print(f"zero-shot results written to {out}")
    return 0
