"""Figures of a manifest as PNG: most frequent description words without stop words (the paper's Figure 1),
durations, caption lengths."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from manifests import ManifestRow  # noqa: E402

from .text import count_words, words  # noqa: E402

# A short English stop-word list (articles, pronouns, auxiliaries, prepositions, conjunctions) so that Figure 1
# shows content words; small enough to read, no extra dependency for it.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
off on once only or other our ours ourselves out over own s same she should so some such t than that the their
theirs them themselves then there these they this those through to too under until up very was we were what
when where which while who whom why will with would you your yours yourself yourselves one two x
""".split())


def top_words(rows: list[ManifestRow], n: int = 30) -> list[tuple[str, int]]:
    """Most frequent lower-cased words of the descriptions (each audio's description counted once)."""
    seen, counts = set(), Counter()
    for r in rows:
        if (r.id, r.description) in seen:
            continue
        seen.add((r.id, r.description))
        counts.update(w for w in (w.lower() for w in words(r.description))
                      if w not in STOP_WORDS and len(w) > 1 and not w.isdigit())
    return counts.most_common(n)


def write_figures(rows: list[ManifestRow], out_dir: Path, durations: dict[str, float | None]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    top = top_words(rows)
    fig, ax = plt.subplots(figsize=(8, 7))
    if top:
        ax.barh([w for w, _ in reversed(top)], [c for _, c in reversed(top)], color="tab:blue")
    ax.set_xlabel("occurrences in descriptions")
    ax.set_title(f"Most frequent description words (stop words removed), {len({r.id for r in rows})} audios")
    paths.append(_save(fig, out_dir / "top_words.png"))

    durs = [d for d in durations.values() if d is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    if durs:
        ax.hist(durs, bins=50, color="tab:green")
        ax.set_yscale("log")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("audios")
    ax.set_title(f"Audio durations ({len(durs)} audios with a known duration)")
    paths.append(_save(fig, out_dir / "duration_hist.png"))

    lengths = [count_words(r.caption) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    if lengths:
        ax.hist(lengths, bins=range(0, max(lengths) + 2), color="tab:orange")
    ax.set_xlabel("caption length (words)")
    ax.set_ylabel("captions")
    ax.set_title(f"Caption lengths ({len(lengths)} captions)")
    paths.append(_save(fig, out_dir / "caption_length_hist.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
