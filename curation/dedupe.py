"""Exact duplicates: items whose converted audio is identical (the same samples written at the same rate,
channels and bit depth, whatever container or rate the inputs had). The smallest id
of each group is kept; the others point to it."""
from __future__ import annotations

from collections import defaultdict


def find_duplicates(content_hashes: dict[str, str]) -> dict[str, str]:
    """{id: content hash} -> {duplicate id: kept id}. Deterministic: independent of input order."""
    groups: dict[str, list[str]] = defaultdict(list)
    for item_id, h in content_hashes.items():
        if h:
            groups[h].append(item_id)
    out = {}
    for ids in groups.values():
        kept, *rest = sorted(ids)
        out.update({d: kept for d in rest})
    return out
