"""Dataset statistics with the columns of the paper's Table 1 (defined and computed in curation/table1.py), for
any manifest (curated, converted, or imported from the published CSV) or caption file, as JSON, Markdown and
figures."""
from __future__ import annotations

import json
import os
from pathlib import Path

from manifests import ManifestRow
from manifests.atomic import inside, write_text_inside

from .records import audio_durations
from .table1 import DEFINITIONS, AudioText, records_from_manifest_rows, table1_of_records, to_markdown


def table1(rows: list[ManifestRow], manifest_path: str | os.PathLike | None = None) -> list[dict]:
    """Table 1 of a manifest: one row per source, plus a total when there are several (curation/table1.py)."""
    return table1_of_records(records_from_manifest_rows(rows, audio_durations(rows, manifest_path)))


def write_report(rows: list[ManifestRow], out_dir: str | os.PathLike, manifest_path: str | os.PathLike | None = None,
                 figures: bool = True) -> dict:
    """Write stats.json, stats.md and (optionally) figures/*.png of a manifest into out_dir; return the JSON
    content."""
    recs = records_from_manifest_rows(rows, audio_durations(rows, manifest_path))
    return write_records_report(recs, out_dir, [manifest_path] if manifest_path else [], figures, headroom(rows))


def write_records_report(recs: list[AudioText], out_dir: str | os.PathLike, inputs: list[str | os.PathLike],
                         figures: bool = True, headroom_section: dict | None = None) -> dict:
    """stats.json, stats.md and figures/ of Table 1 records read from any inputs (curation/table1.py), with the
    headroom section (``headroom()``) of curated manifests when given."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = table1_of_records(recs)
    # portable: inputs relative to out_dir
    report = {"inputs": [os.path.relpath(p, out_dir) for p in inputs], "table1": table, "definitions": DEFINITIONS}
    md = "# Dataset statistics (Table 1 columns)\n\n" + to_markdown(table)
    if headroom_section is not None:
        report["headroom"] = headroom_section
        md += "\n" + headroom_markdown(headroom_section)
    if figures:
        from .figures import write_figures
        inside(out_dir, "figures")  # a planted link: no figure is drawn outside the output folder
        made, skipped = write_figures(recs, out_dir / "figures")
        report["figures"] = [str(p.relative_to(out_dir)) for p in made]
        report["figures_not_drawn"] = skipped
        md += "\n" + "\n".join(f"![{Path(f).stem}]({f})" for f in report["figures"]) + "\n"
        md += "".join(f"\n{name} not drawn: {why}.\n" for name, why in skipped.items())
    write_text_inside(out_dir, "stats.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_inside(out_dir, "stats.md", md)
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
