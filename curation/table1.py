"""The paper's Table 1 from the data: one record per audio (``AudioText``; curation/records.py reads what users
have into them: a manifest, a published-format CSV, AudioCaps or Clotho caption CSVs), counted with the
definitions below. No audio is needed: durations are reported only where they are known.

Definitions (also printed under every table, see ``DEFINITIONS``): words are whitespace-separated tokens of the
text as read (``str.split()``: several spaces count as one separator, a punctuation-only token such as "-" is a
word), as the paper counts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from manifests import ManifestRow
from manifests.sources import source_info

DEFINITIONS = {
    "n_audios": "audios: distinct audio ids (a published-format row is one audio)",
    "n_captions": "captions: non-empty captions (manifest rows; AudioCaps rows; filled Clotho caption cells)",
    "n_empty_captions": "empty captions: caption cells that are empty or only whitespace (not counted as captions)",
    "n_titles": "titles: audios whose title is not empty",
    "n_descriptions": "descriptions: audios whose description is not empty",
    "n_with_tags": "rows with tags: audios with at least one tag",
    "duration_h": "duration (h): sum of the durations of the distinct audios whose duration is known",
    "max_duration_s": "max duration (s): longest known duration",
    "avg_duration_s": "avg duration (s): mean over the audios whose duration is known",
    "max_description_words": "max description words: most whitespace words in one description",
    "avg_description_words": "avg description words (over audios): all description words / all audios, "
                             "an audio without description counting 0 (how the paper computes its 12.5)",
    "avg_description_words_per_description": "avg description words (per description): all description words / "
                                             "audios with a description",
    "max_caption_words": "max caption words: most whitespace words in one caption",
    "avg_caption_words": "avg caption words: all caption words / captions (Table 1's words for AudioCaps, Clotho)",
}


@dataclass
class AudioText:
    """The text of one audio as Table 1 counts it. ``title``, ``description`` and ``has_tags`` are None for
    human-captioned datasets, which have none."""
    group: str                        # the table row: a source, or "<dataset> <split>" for caption CSVs
    id: str
    source: str
    captions: list[str] = field(default_factory=list)
    n_empty_captions: int = 0
    title: str | None = None
    description: str | None = None
    has_tags: bool | None = None
    duration_s: float | None = None


def records_from_manifest_rows(rows: list[ManifestRow], durations: dict[str, float | None] | None = None
                               ) -> list[AudioText]:
    """One record per id of a manifest (rows sharing an id are that audio's captions)."""
    by_id: dict[str, AudioText] = {}
    for r in rows:
        rec = by_id.get(r.id)
        if rec is None:
            web = not source_info(r.source).captioned  # human captions: no title, description, tags
            rec = by_id[r.id] = AudioText(
                group=r.source, id=r.id, source=r.source, title=r.title if web else None,
                description=r.description if web else None, has_tags=bool(r.tags) if web else None,
                duration_s=(durations or {}).get(r.id, r.duration_s))
        if r.caption.strip():
            rec.captions.append(r.caption)
        else:
            rec.n_empty_captions += 1
    return list(by_id.values())


def records_from_captions(source: str, split: str, captions_by_id: dict[str, list[str]]) -> list[AudioText]:
    recs = []
    for audio_id, caps in captions_by_id.items():
        filled = [c for c in caps if c.strip()]
        recs.append(AudioText(group=f"{source} {split}", id=audio_id, source=source, captions=filled,
                              n_empty_captions=len(caps) - len(filled)))
    return recs


def _words(text: str) -> int:
    return len(text.split())


def _round(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def distinct_audios(recs: list[AudioText]) -> list[AudioText]:
    """One record per audio id, the first met (an audio in two splits' files is one audio of the total)."""
    first: dict[str, AudioText] = {}
    for r in recs:
        first.setdefault(r.id, r)
    return list(first.values())


def table_row(name: str, recs: list[AudioText]) -> dict:
    """One Table 1 row (see DEFINITIONS) of the given records."""
    audios = distinct_audios(recs)
    durs = [r.duration_s for r in audios if r.duration_s is not None]
    captions = [c for r in recs for c in r.captions]  # every caption row of every input
    cap_words = [_words(c) for c in captions]
    web = [r for r in audios if r.description is not None]
    desc_words = [_words(r.description) for r in web]
    n_desc = sum(1 for r in web if r.description.strip())
    sources = sorted({r.source for r in audios})
    return {
        "source": name,
        "language": "/".join(sorted({source_info(s).language for s in sources})),
        "text_source": "; ".join(sorted({source_info(s).text_source for s in sources})),
        "n_audios": len(audios),
        "n_captions": len(captions),
        "n_empty_captions": sum(r.n_empty_captions for r in recs),
        "n_titles": sum(1 for r in web if r.title.strip()) if web else None,
        "n_descriptions": n_desc if web else None,
        "n_with_tags": sum(1 for r in web if r.has_tags) if web else None,
        "duration_h": _round(sum(durs) / 3600, 3) if durs else None,
        "max_duration_s": _round(max(durs)) if durs else None,
        "avg_duration_s": _round(sum(durs) / len(durs)) if durs else None,
        "n_audios_with_duration": len(durs),
        "max_description_words": max(desc_words) if web else None,
        "avg_description_words": _round(sum(desc_words) / len(web)) if web else None,
        "avg_description_words_per_description": _round(sum(desc_words) / n_desc) if n_desc else None,
        "max_caption_words": max(cap_words) if cap_words else None,
        "avg_caption_words": _round(sum(cap_words) / len(cap_words)) if cap_words else None,
    }


def table1_of_records(recs: list[AudioText]) -> list[dict]:
    """One row per group (source, or dataset split), then a total when there are several groups."""
    groups: dict[str, list[AudioText]] = {}
    for r in recs:
        groups.setdefault(r.group, []).append(r)
    table = [table_row(g, groups[g]) for g in sorted(groups)]
    if len(groups) > 1:
        table.append(table_row("total", recs))
    return table


# The paper's Table 1 columns first: its "words" are description words for WavText5K (web metadata) and caption
# words for the human-captioned datasets; the column "words of" says which.
_PAPER_HEAD = ("Source", "Language", "Duration (h)", "# audios", "# captions", "Max dur. (s)", "Avg dur. (s)",
               "Max words", "Avg words", "Words of", "Text source")
_MORE_HEAD = ("Source", "# titles", "# descriptions", "# with tags", "Avg desc. words (per description)",
              "Max caption words", "Avg caption words", "Empty captions")


def _fmt(v) -> str:
    return "n/a" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:.2f}" if isinstance(v, float) else str(v))


def to_markdown(table: list[dict]) -> str:
    if not table:
        return "No audio in the input (a header without rows).\n"
    lines = ["| " + " | ".join(_PAPER_HEAD) + " |", "|" + "---|" * len(_PAPER_HEAD)]
    for t in table:
        desc = bool(t["n_descriptions"])  # no description at all (a folder's labels): its captions' words
        words = ("max_description_words", "avg_description_words") if desc else ("max_caption_words",
                                                                                 "avg_caption_words")
        cells = [t["source"], t["language"], t["duration_h"], t["n_audios"], t["n_captions"], t["max_duration_s"],
                 t["avg_duration_s"], t[words[0]], t[words[1]], "descriptions (over audios)" if desc else "captions",
                 t["text_source"]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    lines += ["", "| " + " | ".join(_MORE_HEAD) + " |", "|" + "---|" * len(_MORE_HEAD)]
    for t in table:
        cells = [t["source"], t["n_titles"], t["n_descriptions"], t["n_with_tags"],
                 t["avg_description_words_per_description"], t["max_caption_words"], t["avg_caption_words"],
                 t["n_empty_captions"]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    missing = [t for t in table if t["n_audios_with_duration"] < t["n_audios"]]
    if missing:
        lines += ["", "Durations known for " + ", ".join(
            f"{t['n_audios_with_duration']} of {t['n_audios']} audios ({t['source']})" for t in missing)
            + "; n/a where none is known (no audio read), never invented."]
    lines += ["", "Definitions (words: whitespace-separated tokens, `str.split()`):"]
    lines += [f"- {d}" for d in DEFINITIONS.values()]
    return "\n".join(lines) + "\n"
