"""Dataset statistics with the columns of the paper's Table 1, for any manifest (curated, converted, or imported
from the published CSV), as JSON and Markdown."""
from __future__ import annotations

import json
import os
from pathlib import Path

import soundfile as sf

from manifests import ManifestRow, resolve_audio

from .text import count_words

# Where each source's captions come from (Table 1's "text source").
TEXT_SOURCE = {
    "soundbible": "web metadata (title, description)",
    "bigsoundbank": "web metadata (title, description)",
    "audiocaps": "human annotation (crowdsourced)",
    "clotho": "human annotation (crowdsourced)",
}
LANGUAGE = {"bigsoundbank": "English", "soundbible": "English", "audiocaps": "English", "clotho": "English"}
COLUMNS = ("source", "language", "duration_h", "n_audios", "n_captions", "max_duration_s", "avg_duration_s",
           "max_words", "avg_words", "text_source")
_HEAD = ("Source", "Language", "Duration (h)", "# audios", "# captions", "Max dur. (s)", "Avg dur. (s)",
         "Max words", "Avg words", "Text source")


def audio_durations(rows: list[ManifestRow], manifest_path: str | os.PathLike | None = None) -> dict[str, float | None]:
    """Duration of each id: the manifest's duration_s, else measured from the audio file when it exists."""
    out: dict[str, float | None] = {}
    for r in rows:
        if r.id in out and out[r.id] is not None:
            continue
        d = r.duration_s
        if d is None and manifest_path is not None:
            p = resolve_audio(manifest_path, r)
            if p.is_file():
                try:
                    d = sf.info(str(p)).duration
                except RuntimeError:
                    d = None
        out[r.id] = d
    return out


def _row(name: str, rows: list[ManifestRow], durations: dict[str, float | None]) -> dict:
    ids = list(dict.fromkeys(r.id for r in rows))
    durs = [durations[i] for i in ids if durations.get(i) is not None]
    words = [count_words(r.caption) for r in rows]
    sources = sorted({r.source for r in rows})
    return {
        "source": name,
        "language": "/".join(sorted({LANGUAGE.get(s, "unknown") for s in sources})),
        "duration_h": round(sum(durs) / 3600, 3) if durs else None,
        "n_audios": len(ids),
        "n_captions": len(rows),
        "max_duration_s": round(max(durs), 2) if durs else None,
        "avg_duration_s": round(sum(durs) / len(durs), 2) if durs else None,
        "max_words": max(words) if words else 0,
        "avg_words": round(sum(words) / len(words), 2) if words else 0,
        "text_source": "; ".join(sorted({TEXT_SOURCE.get(s, "unknown") for s in sources})),
        "n_audios_with_duration": len(durs),
    }


def table1(rows: list[ManifestRow], manifest_path: str | os.PathLike | None = None) -> list[dict]:
    """One Table 1 row per source, plus a total when there are several sources."""
    durations = audio_durations(rows, manifest_path)
    by_source: dict[str, list[ManifestRow]] = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    table = [_row(s, by_source[s], durations) for s in sorted(by_source)]
    if len(by_source) > 1:
        table.append(_row("total", rows, durations))
    return table


def to_markdown(table: list[dict]) -> str:
    def fmt(v) -> str:
        return "n/a" if v is None else (f"{v:,}" if isinstance(v, int) else str(v))
    lines = ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    lines += ["| " + " | ".join(fmt(t[c]) for c in COLUMNS) + " |" for t in table]
    missing = [t for t in table if t["n_audios_with_duration"] < t["n_audios"]]
    if missing:
        lines.append("")
        lines.append("Durations known for " + ", ".join(
            f"{t['n_audios_with_duration']} of {t['n_audios']} audios ({t['source']})" for t in missing)
            + "; n/a where none is known (no audio yet).")
    return "\n".join(lines) + "\n"


def write_report(rows: list[ManifestRow], out_dir: str | os.PathLike, manifest_path: str | os.PathLike | None = None,
                 figures: bool = True) -> dict:
    """Write stats.json, stats.md and (optionally) figures/*.png into out_dir; return the JSON content."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table1(rows, manifest_path)
    manifest = os.path.relpath(manifest_path, out_dir) if manifest_path else None  # portable: relative to out_dir
    report = {"manifest": manifest, "table1": table, "headroom": headroom(rows)}
    if figures:
        from .figures import write_figures
        report["figures"] = [str(p.relative_to(out_dir)) for p in write_figures(rows, out_dir / "figures",
                                                                              audio_durations(rows, manifest_path))]
    (out_dir / "stats.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md = "# Dataset statistics (Table 1 columns)\n\n" + to_markdown(table) + "\n" + headroom_markdown(report["headroom"])
    if figures:
        md += "\n" + "\n".join(f"![{Path(f).stem}]({f})" for f in report["figures"]) + "\n"
    (out_dir / "stats.md").write_text(md, encoding="utf-8")
    return report


def headroom(rows: list[ManifestRow]) -> dict:
    """What the headroom policy did, over distinct audios: how many were attenuated (``gain_db`` < 0) and by how
    much at most, and how many hold clipped samples (``--on-overshoot clip``). Audios without the columns (a
    manifest from elsewhere) are counted as unknown."""
    first = {r.id: r for r in reversed(rows)}  # one row per audio
    known = [r for r in first.values() if r.gain_db is not None]
    gains = [r.gain_db for r in known if r.gain_db < 0]
    clipped = [r.clipped_samples for r in known if r.clipped_samples]
    return {
        "n_audios": len(first), "n_known": len(known),
        "n_attenuated": len(gains), "max_attenuation_db": round(-min(gains), 2) if gains else 0.0,
        "n_clipped": len(clipped), "clipped_samples": sum(clipped),
    }


def headroom_markdown(h: dict) -> str:
    if not h["n_known"]:
        return "Headroom: not recorded in this manifest (no gain_db column).\n"
    text = (f"Headroom: {h['n_attenuated']} of {h['n_known']} audios attenuated so that no sample clips"
            + (f" (at most {h['max_attenuation_db']} dB)" if h["n_attenuated"] else "")
            + f"; {h['n_clipped']} hold clipped samples ({h['clipped_samples']:,} in all).")
    if h["n_known"] < h["n_audios"]:
        text += f" Not recorded for {h['n_audios'] - h['n_known']} audios."
    return text + "\n"
