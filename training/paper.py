"""The paper's Table 3 and Table 4 results (training/paper_results.json) beside measured ones.

A run config names the paper row it reproduces (``paper_row``: "A".."D", "table4_title_description",
"table4_description"; "benchmark" is Table 3's "Benchmark [11]"); rows are matched case-insensitively.
``wt5k-eval`` then adds rows to its table and JSON, in the same layout as a measured row (fractions, like
training/metrics.py): ``paper <ROW>``, ``<name> - paper <ROW>`` (measured minus paper) and ``paper benchmark``.
Values the paper does not print are None and print as "-". The paper's test sets have a known size
(``test_sets``): ``size_warnings`` says when a measured one is far from it, since figures measured on
another set of clips are not comparable.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

PAPER_RESULTS = Path(__file__).with_name("paper_results.json")
BENCHMARK_ROW = "benchmark"
# A measured test set whose clip or caption count differs from the paper's by more than this share is "far":
# AudioCaps clips vanish from YouTube, and R@k over another set of clips measures something else.
SIZE_TOLERANCE = 0.05


@lru_cache(maxsize=1)
def paper_results() -> dict:
    return json.loads(PAPER_RESULTS.read_text(encoding="utf-8"))


def paper_rows() -> tuple[str, ...]:
    return tuple(paper_results()["rows"])


def check_paper_row(row: str) -> str:
    """The paper's name of ``row`` (matched case-insensitively); ValueError for a row the paper lacks."""
    by_key = {r.casefold(): r for r in paper_results()["rows"]}
    found = by_key.get(str(row).casefold())
    if found is None:
        raise ValueError(f"unknown paper row {row!r}; the paper's rows: {', '.join(paper_rows())}")
    return found


def paper_metrics(row: str) -> dict[str, dict[str, dict[str, float | None]]]:
    """{dataset: {"t2a"|"a2t": {metric: fraction or None}}} of a paper row (the JSON holds percentages)."""
    percent = paper_results()["rows"][check_paper_row(row)]["percent"]
    return {ds: {d: {m: None if v is None else v / 100 for m, v in vals.items()} for d, vals in dirs.items()}
            for ds, dirs in percent.items()}


def _paper_label(ds: str, measured: dict[str, dict]) -> str | None:
    """The measured dataset label that is the paper's test set ``ds`` (case-insensitively), if any."""
    return {label.casefold(): label for label in measured}.get(ds.casefold())


def compare_with_paper(name: str, measured: dict[str, dict], row: str) -> dict[str, dict]:
    """The extra table rows for a measured row: the paper's values, measured minus paper (for the datasets both
    have, matched by label case-insensitively: a config's "AudioCaps" test set is the paper's), then the
    paper's benchmark row (unless ``row`` is it)."""
    row = check_paper_row(row)
    paper_row, diff_row = {}, {}
    for ds, dirs in paper_metrics(row).items():
        label = _paper_label(ds, measured)
        paper_row[label or ds] = dirs  # under the measured set's label: one column per test set
        if label is not None:
            diff_row[label] = {d: {m: None if v is None else measured[label][d][m] - v for m, v in vals.items()}
                               for d, vals in dirs.items()}
    out = {f"paper {row}": paper_row, f"{name} - paper {row}": diff_row}
    if row != BENCHMARK_ROW:
        out[f"paper {BENCHMARK_ROW}"] = {_paper_label(ds, measured) or ds: dirs
                                         for ds, dirs in paper_metrics(BENCHMARK_ROW).items()}
    return out


def size_warnings(measured: dict[str, dict]) -> list[str]:
    """One line per measured dataset that is one of the paper's test sets but whose clip or caption count is far
    (SIZE_TOLERANCE) from the paper's."""
    out = []
    for ds, size in paper_results()["test_sets"].items():
        label = _paper_label(ds, measured)
        if label is None or "n_audios" not in measured[label]:
            continue
        clips, captions = measured[label]["n_audios"], measured[label]["n_captions"]
        if any(abs(n - want) > SIZE_TOLERANCE * want for n, want in ((clips, size["clips"]),
                                                                      (captions, size["captions"]))):
            out.append(f"{label}: {clips:,} clips / {captions:,} captions, the paper's {ds} {size['split']} set has "
                       f"{size['clips']:,} / {size['captions']:,}: the differences from the paper compare "
                       f"different test sets")
    return out
