"""Caption overlap for the leakage audit: captions equal after normalising, and near-duplicates by the Jaccard
similarity of their character 3-gram sets.

Candidates come from prefix filtering (Bayardo et al. 2007, "Scaling up all pairs similarity search"): each
set's grams are ordered rarest first, and two sets with Jaccard >= t must share one of the first
|s| - ceil(t |s|) + 1 grams of each. Only those candidates are compared, so the cost follows the number of
similar pairs, not the product of the two sides."""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict

DEFAULT_THRESHOLD = 0.8
_NOT_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Case-folded NFKC text with punctuation and symbols turned into spaces and whitespace collapsed."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def trigrams(norm: str) -> frozenset[str]:
    """Character 3-grams of a normalised caption, padded so that a word's first and last letters count."""
    padded = f"  {norm}  "
    return frozenset(padded[i:i + 3] for i in range(len(padded) - 2))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def caption_pairs(train: dict[str, list[str]], test: dict[str, list[str]], threshold: float = DEFAULT_THRESHOLD
                  ) -> dict[tuple[str, str], float]:
    """{(train key, test key): similarity} for every pair of items with a caption each whose normalised forms
    are equal (1.0) or whose 3-gram Jaccard similarity is at least ``threshold`` (the best caption pair)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"text threshold must be in (0, 1], got {threshold}")
    tr = {k: {normalise(c) for c in caps} - {""} for k, caps in train.items()}
    te = {k: {normalise(c) for c in caps} - {""} for k, caps in test.items()}
    grams = {n: trigrams(n) for caps in (*tr.values(), *te.values()) for n in caps}
    df = Counter(g for gs in grams.values() for g in gs)

    def prefix(gs: frozenset) -> list[str]:
        ordered = sorted(gs, key=lambda g: (df[g], g))
        return ordered[:len(ordered) - math.ceil(threshold * len(ordered)) + 1]

    index: dict[str, set[str]] = defaultdict(set)  # prefix gram -> normalised train captions
    by_caption: dict[str, list[str]] = defaultdict(list)  # normalised train caption -> train keys
    for k, caps in tr.items():
        for n in caps:
            by_caption[n].append(k)
            for g in prefix(grams[n]):
                index[g].add(n)
    best: dict[tuple[str, str], float] = {}
    for tk, caps in te.items():
        for n in caps:
            cands = set().union(*(index.get(g, ()) for g in prefix(grams[n])))
            for c in cands:
                s = 1.0 if c == n else jaccard(grams[c], grams[n])
                if s >= threshold:
                    for k in by_caption[c]:
                        if s > best.get((k, tk), -1):
                            best[(k, tk)] = s
    return best
