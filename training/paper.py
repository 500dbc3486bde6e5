"""The paper's Table 3 and Table 4 results (training/paper_results.json) beside measured ones.

A run config names the paper row it reproduces (``paper_row``: "A".."D", "table4_title_description",
"table4_description"); ``wt5k-eval`` then adds two rows to its table and JSON, in the same layout as a measured
row (fractions, like training/metrics.py): ``paper <ROW>`` and ``<name> - paper <ROW>`` (measured minus paper).
Values the project has not transcribed from the paper are None and print as "-".
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

PAPER_RESULTS = Path(__file__).with_name("paper_results.json")


@lru_cache(maxsize=1)
def paper_results() -> dict:
    return json.loads(PAPER_RESULTS.read_text(encoding="utf-8"))


def paper_rows() -> tuple[str, ...]:
    return tuple(paper_results()["rows"])


def check_paper_row(row: str) -> str:
    if row not in paper_results()["rows"]:
        raise ValueError(f"unknown paper row {row!r}; the paper's rows: {', '.join(paper_rows())}")
    return row


def paper_metrics(row: str) -> dict[str, dict[str, dict[str, float | None]]]:
    """{dataset: {"t2a"|"a2t": {metric: fraction or None}}} of a paper row (the JSON holds percentages)."""
    percent = paper_results()["rows"][check_paper_row(row)]["percent"]
    return {ds: {d: {m: None if v is None else v / 100 for m, v in vals.items()} for d, vals in dirs.items()}
            for ds, dirs in percent.items()}


def compare_with_paper(name: str, measured: dict[str, dict], row: str) -> dict[str, dict]:
    """The two extra table rows for a measured row: the paper's values and measured minus paper, for the
    datasets both have (matched by label, case-insensitively: a config's "AudioCaps" test set is the paper's)."""
    paper = paper_metrics(row)
    by_label = {ds.casefold(): ds for ds in measured}
    paper_row, diff_row = {}, {}
    for ds, dirs in paper.items():
        paper_row[ds] = dirs
        label = by_label.get(ds.casefold())
        if label is None:
            continue
        diff_row[label] = {d: {m: None if v is None else measured[label][d][m] - v for m, v in vals.items()}
                           for d, vals in dirs.items()}
    return {f"paper {row}": paper_row, f"{name} - paper {row}": diff_row}
