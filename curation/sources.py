"""Reading curation inputs: crawl outputs (``<raw>/<spider>/items.jsonl`` + files) and a folder of audio with a
CSV in the published WavText5K format. Both give ``Item``s; inputs that cannot become items give ``Reject``s,
so that every input is accounted for. Inputs are only read, never modified."""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from manifests import ManifestError, parse_tags, read_published_csv
from manifests.atomic import atomic_path
from manifests.spreadsheet import neutralise, restore
from manifests.published import format_tags
from manifests.crawl_record import ITEMS_FILE, CrawlRecord, read_crawl_records

from .paths import contained
from .text import SURROGATE

_NOT_TEXT = re.compile("\x00|" + SURROGATE.pattern)


@dataclass
class Item:
    """One sound to curate. ``captions`` set means fixed captions (AudioCaps, Clotho: one manifest row each);
    otherwise the caption is built from title and description. ``split`` set means a fixed split."""
    id: str
    source: str
    source_id: str
    audio: str | None                 # absolute path of the input audio, None when there is none
    title_raw: str = ""
    description_raw: str = ""
    tags: list[str] = field(default_factory=list)
    tags_raw: str = ""                # the tags as published (Python-list string), for the manifest's tags_raw
    author: str = ""
    license: str = ""
    view_link: str = ""
    download_link: str = ""
    status: str = "ok"                # not "ok": rejected before any audio work, with ``error`` as detail
    error: str = ""
    fail_stage: str = "crawl"         # the rejects' stage for a status other than "ok"
    split: str = ""
    captions: list[str] | None = None


@dataclass(frozen=True)
class Reject:
    id: str
    stage: str    # input, crawl, exclude, text, audio, dedupe
    reason: str
    detail: str = ""


REJECT_COLUMNS = ("id", "stage", "reason", "detail")
# Why a record's file path is refused before any audio work (stage "input").
INPUT_PATH_REASONS = ("unsafe_path", "bad_path")


def write_rejects(path: str | os.PathLike, rejects: list[Reject]) -> Path:
    """rejects.csv, atomically; a file for people: cells a spreadsheet would run as formulas are neutralised
    (manifests/spreadsheet.py; read_rejects gives the exact values back)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(REJECT_COLUMNS)
        for r in sorted(rejects, key=lambda r: (r.id, r.stage)):
            w.writerow([neutralise(v) for v in (r.id, r.stage, r.reason, r.detail)])
    return path


def read_rejects(path: str | os.PathLike) -> list[Reject]:
    with open(path, newline="", encoding="utf-8") as f:
        return [Reject(**{k: restore(v) for k, v in row.items()}) for row in csv.DictReader(f)]


def _s(v) -> str:
    """A record's value as text that any CSV reader takes and UTF-8 can hold: NULs and lone surrogates (from
    JSON escapes) become U+FFFD."""
    return "" if v is None else _NOT_TEXT.sub("\ufffd", str(v))


def find_items_files(raw: str | os.PathLike) -> list[Path]:
    """Every items.jsonl under a crawl output folder (``<raw>/<spider>/items.jsonl``, or raw itself)."""
    raw = Path(raw)
    if raw.is_file():
        return [raw]
    if not raw.is_dir():
        raise FileNotFoundError(f"no crawl output at {raw}")
    return sorted(raw.rglob(ITEMS_FILE))


def read_crawl_output(raw: str | os.PathLike, allow_outside: Iterable[str | os.PathLike] = ()
                      ) -> tuple[list[Item], list[Reject]]:
    """Items from every items.jsonl under ``raw``; the last record of an id wins (a resumed crawl may repeat one).
    Lines that are not records (not UTF-8, not JSON, not an object, no id, an id holding a NUL or a lone
    surrogate, tags that are not a list) are rejected with stage "input", the reject's id naming the file and
    line; so is a record whose ``file_path`` leads out of its items.jsonl folder (``unsafe_path``), unless into
    one of ``allow_outside``."""
    items: dict[str, Item] = {}
    rejects: list[Reject] = []
    root = Path(raw) if Path(raw).is_dir() else Path(raw).parent
    files = find_items_files(raw)
    if not files:
        raise FileNotFoundError(f"no {ITEMS_FILE} under {raw} (expected <raw>/<spider>/{ITEMS_FILE})")
    for path in files:
        for line in read_crawl_records(path):
            where = f"{path.relative_to(root)}:{line.line}"  # the reject's id: file and line
            if line.record is None:  # what is no record (bad JSON, an id that is no text, ...) is said by the reader
                rejects.append(Reject(where, "input", "bad_record", line.error or "not a record"))
                continue
            item = _item_from_record(line.record, path.parent, allow_outside)
            items.pop(item.id, None)  # re-insert so that order follows the last record
            items[item.id] = item
    return list(items.values()), rejects


def _item_from_record(rec: CrawlRecord, base: Path, allow_outside: Iterable[str | os.PathLike] = ()) -> Item:
    rid = _s(rec.id)
    prefix, colon, rest = rid.partition(":")
    # An id without a "source:" prefix is its own source_id.
    source = _s(rec.source) or (prefix if colon else "") or "unknown"
    source_id = _s(rec.source_id) or (rest if colon else rid)
    fp = rec.file_path
    tags = rec.tags or []
    tags_raw = tags if isinstance(tags, str) else format_tags(_s(t) for t in tags)
    if isinstance(tags, str):  # tolerate a Python-list string as in the published CSV
        tags = parse_tags(tags)
    status = _s(rec.status) or "missing_status"
    error = _s(rec.error)
    if status == "ok" and not fp:
        status, error = "no_file", "status ok but no file_path"
    audio, reason, problem = input_path(base, fp, allow_outside) if fp else (None, "", "")
    if problem and status == "ok":
        status, error = reason, problem
    return Item(
        id=rid, source=source, source_id=source_id, audio=audio,
        title_raw=_s(rec.title), description_raw=_s(rec.description), tags=[_s(t) for t in tags],
        tags_raw=tags_raw,
        author=_s(rec.author), license=_s(rec.license), view_link=_s(rec.view_link),
        download_link=_s(rec.download_link), status=status, error=error,
        fail_stage="input" if status in INPUT_PATH_REASONS else "crawl",
    )


def input_path(base: Path, rel: object, allow_outside: Iterable[str | os.PathLike] = ()) -> tuple[str | None, str, str]:
    """(absolute path, "", "") of a record's file, relative to ``base``; else (None, reason, why): ``unsafe_path``
    when it leads out of ``base`` (an absolute path, ``..``, a symbolic link pointing elsewhere) and not into
    one of ``allow_outside``, ``bad_path`` when it cannot name a file (not a string, a NUL, a name too long)."""
    if not isinstance(rel, str):
        return None, "bad_path", f"file_path is not a string: {rel!r}"
    if "\x00" in rel:
        return None, "bad_path", f"file_path holds a NUL character: {rel!r}"
    try:
        path = Path(os.path.realpath(base / rel))
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass  # missing: the audio stage's missing_file
    except (OSError, ValueError) as e:  # what can never name a file: a name too long, a loop of links
        return None, "bad_path", f"file_path {rel!r} cannot name a file: {getattr(e, 'strerror', None) or e}"
    if contained(path, [base, *allow_outside]):
        return str(path), "", ""
    return None, "unsafe_path", (f"file_path {rel!r} leads out of {base} (to {path}); pass --allow-outside ROOT "
                                 "to read files under ROOT")


def read_published_folder(csv_path: str | os.PathLike, audio_dir: str | os.PathLike,
                          allow_outside: Iterable[str | os.PathLike] = ()) -> tuple[list[Item], list[Reject]]:
    """Items from a CSV in the published WavText5K format plus the folder holding its ``fname`` files (an
    ``fname`` that leads out of that folder is rejected as ``unsafe_path``, unless into one of ``allow_outside``)."""
    audio_dir = Path(audio_dir).resolve()
    items: dict[str, Item] = {}
    rejects: list[Reject] = []
    too_long: list[tuple[int, str]] = []
    published = read_published_csv(csv_path, too_long)
    rejects.extend(Reject(f"{csv_path}:{line}", "input", "bad_row", why) for line, why in too_long)
    for row in published:
        try:
            rid, source, source_id = row.id, row.source, row.source_id
        except ValueError as e:
            rejects.append(Reject(f"{csv_path}:{row.line}", "input", "bad_link", str(e)))
            continue
        audio, reason, problem = input_path(audio_dir, row.fname, allow_outside) if row.fname else (None, "", "")
        ok = audio is not None and os.path.isfile(audio)
        items[rid] = Item(
            id=rid, source=source, source_id=source_id, audio=audio if ok else None,
            title_raw=row.title, description_raw=row.description, tags=parse_tags(row.tags), tags_raw=row.tags,
            view_link=row.view_link, download_link=row.download_link,
            status="ok" if ok else reason or "missing_audio",
            error="" if ok else problem or f"no file {row.fname!r} in {audio_dir}", fail_stage="input",
        )
    return list(items.values()), rejects


def read_id_list(path: str | os.PathLike) -> set[str]:
    """Ids from a text file, one per line (``#`` comments and blank lines ignored), or from a CSV with an ``id``
    column (e.g. another manifest)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text.strip() else ""
    if "," in first and "id" in [c.strip() for c in first.split(",")]:
        with open(path, newline="", encoding="utf-8") as f:
            return {r["id"].strip() for r in csv.DictReader(f) if (r.get("id") or "").strip()}
    ids = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.add(line)
    if not ids and text.strip():
        raise ManifestError(path, None, "id", "no ids found")
    return ids
