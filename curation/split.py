"""Deterministic train/val/test split from a hash of the id: the same id lands in the same split on every
machine and every run, whatever else is in the dataset."""
from __future__ import annotations

import hashlib

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAMES = ("train", "val", "test")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """"0.8,0.1,0.1" -> (0.8, 0.1, 0.1); they must be non-negative and sum to 1."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"split fractions must be numbers like 0.8,0.1,0.1, got {text!r}") from None
    return check_fractions(parts)


def check_fractions(fr) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fr)
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise ValueError(f"split fractions must be 3 non-negative numbers summing to 1, got {fr}")
    return fr  # type: ignore[return-value]


def assign_split(item_id: str, fractions=DEFAULT_FRACTIONS, salt: str = "wavtext5k") -> str:
    """The split of an id: the first 8 bytes of sha256(salt:id) as a fraction of 2**64, against the cumulative
    fractions."""
    fractions = check_fractions(fractions)
    u = int.from_bytes(hashlib.sha256(f"{salt}:{item_id}".encode()).digest()[:8], "big") / 2**64
    acc = 0.0
    for name, f in zip(SPLIT_NAMES, fractions):
        acc += f
        if u < acc:
            return name
    return next(n for n, f in zip(reversed(SPLIT_NAMES), reversed(fractions)) if f > 0)
