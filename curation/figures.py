"""Figures of Table 1 records as PNG: the paper's Figure 1 (most frequent description words, punctuation and stop
words removed), and the caption-length and duration histograms per source. A figure whose quantity is unknown
(no descriptions, no durations) is not drawn: the caller reports why instead of an empty plot."""
from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from manifests.atomic import atomic_path  # noqa: E402

from .table1 import AudioText, distinct_audios  # noqa: E402

STOP_WORDS_FILE = Path(__file__).with_name("stopwords_en.txt")


def load_stop_words(path: Path = STOP_WORDS_FILE) -> frozenset[str]:
    """The shipped stop-word list (scikit-learn's English list; its origin is in the file's header)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


STOP_WORDS = load_stop_words()


def _strip_punctuation(token: str) -> str:
    """A token without its leading and trailing punctuation and symbols ("(dog," -> "dog"; "--" -> "")."""
    start, end = 0, len(token)
    while start < end and unicodedata.category(token[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(token[end - 1])[0] in "PS":
        end -= 1
    return token[start:end]


def figure1_words(text: str, stop_words: frozenset[str] = STOP_WORDS) -> list[str]:
    """Figure 1's words of a description: whitespace tokens, lower-cased, leading/trailing punctuation removed;
    empty tokens, stop words, one-letter tokens and numbers dropped."""
    out = []
    for token in text.lower().split():
        w = _strip_punctuation(token)
        if len(w) > 1 and w not in stop_words and not w.replace(".", "").replace(",", "").isdigit():
            out.append(w)
    return out


def top_words(recs: list[AudioText], n: int = 30) -> list[tuple[str, int]]:
    """Most frequent Figure 1 words over the descriptions (each audio's description counted once)."""
    counts: Counter = Counter()
    for r in distinct_audios(recs):
        if r.description:
            counts.update(figure1_words(r.description))
    return counts.most_common(n)


def write_figures(recs: list[AudioText], out_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """(figures written, {figure not drawn: why})."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    skipped: dict[str, str] = {}
    audios = distinct_audios(recs)
    groups = sorted({r.group for r in audios})

    top = top_words(audios)
    if top:
        fig, ax = plt.subplots(figsize=(8, 7))
        ax.barh([w for w, _ in reversed(top)], [c for _, c in reversed(top)], color="tab:blue")
        ax.set_xlabel("occurrences in descriptions")
        n_desc = sum(1 for r in audios if r.description)
        ax.set_title(f"Most frequent description words ({n_desc} descriptions;\n"
                     "punctuation and stop words removed)")
        paths.append(_save(fig, out_dir / "top_words.png"))
    else:
        skipped["top_words.png"] = "no descriptions (human-captioned data has captions only)"

    lengths = {g: [len(c.split()) for r in recs if r.group == g for c in r.captions] for g in groups}
    lengths = {g: v for g, v in lengths.items() if v}
    if lengths:
        top_len = max(max(v) for v in lengths.values())
        paths.append(_per_source_hist(lengths, range(0, top_len + 2), "captions", "caption length (whitespace words)",
                                      "Caption lengths per source", out_dir / "caption_length_hist.png"))
    else:
        skipped["caption_length_hist.png"] = "no captions"

    durations = {g: [r.duration_s for r in audios if r.group == g and r.duration_s is not None] for g in groups}
    durations = {g: v for g, v in durations.items() if v}
    if durations:
        paths.append(_per_source_hist(durations, 50, "audios", "duration (s)",
                                      "Audio durations per source (audios with a known duration)",
                                      out_dir / "duration_hist.png", log=True))
    else:
        skipped["duration_hist.png"] = "no audio duration is known (no audio read)"
    return paths, skipped


def _per_source_hist(values: dict[str, list[float]], bins, unit: str, xlabel: str, title: str, path: Path,
                     log: bool = False) -> Path:
    """One step histogram per source, in one figure."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(list(values.values()), bins=bins, histtype="step", linewidth=1.5,
            label=[f"{g} ({len(v)} {unit})" for g, v in values.items()])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:  # a link planted at figures/<name>.png is replaced, not followed
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
