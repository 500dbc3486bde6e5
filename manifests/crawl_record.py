"""The crawl record: one line of ``<raw>/<spider>/items.jsonl``, the contract between the crawler and curation.

A crawl folder holds ``items.jsonl`` (one JSON object per line, every field of ``CrawlRecord`` present, null when
unknown) and the downloaded files under it (``file_path`` is relative to the folder). A resumed crawl may append
a newer record of the same id: the last one wins. This module needs no Scrapy: curation, the demo and users read
crawl folders with ``read_crawl_records``; the crawler writes them with ``record_line``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

from .atomic import atomic_path

ITEMS_FILE = "items.jsonl"
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # JSON "\ud800" escapes decode to lone surrogates: not text

# What happened to a sound's download. "ok": the file is at file_path with file_size and sha256.
# "cancelled": the crawl stopped (a signal, --max-bytes) before the sound was done: a resumed crawl fetches it
# again. "host_down": the host failed to resolve or refused connections several times in a row. "refused_url":
# a link the crawler does not follow (another scheme than http/https, another host, an internal address).
STATUSES = ("ok", "http_error", "not_audio", "empty", "too_large", "timeout", "truncated", "connection_error",
            "host_down", "refused_url", "no_audio_link", "robots_forbidden", "bad_row", "ignored", "cancelled",
            "unsafe_path", "error",
            # wt5k-fetch audiocaps (YouTube): removed/private, age/region-restricted, 429 Too Many Requests
            "unavailable", "blocked", "rate_limited")


@dataclass
class CrawlRecord:
    """One sound as crawled. Field order is the key order of items.jsonl."""
    id: str                                  # "<source>:<source_id>", e.g. "soundbible:2219"
    source: str | None = None                # "soundbible", "bigsoundbank", or a host name
    source_id: str | None = None
    title: str | None = None                 # raw texts, as the page shows them
    description: str | None = None
    tags: list[str] | None = None
    author: str | None = None
    license: str | None = None
    view_link: str | None = None             # the sound's page
    download_link: str | None = None         # the URL the file came from
    audio_urls: list[str] | None = None      # candidate audio URLs, in preference order
    duration_s: float | None = None          # as the page states them (curation measures its own)
    sample_rate: int | None = None
    bit_depth: int | None = None
    channels: int | None = None
    recorder: str | None = None
    listing_position: int | None = None
    crawl_time: str | None = None            # ISO 8601, UTC
    spider: str | None = None
    status: str | None = None                # one of STATUSES
    error: str | None = None                 # why, when status is not "ok"
    file_path: str | None = None             # relative to the items.jsonl folder
    file_size: int | None = None
    sha256: str | None = None
    audio_format: str | None = None          # sniffed from the bytes: wav, flac, ogg, aiff, mp3

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CrawlRecord":
        """A record from a parsed JSON object; unknown keys are ignored (records from other tools carry more)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = tuple(f.name for f in fields(CrawlRecord))


@dataclass(frozen=True)
class RecordLine:
    """One non-blank line of an items.jsonl: a record, or why the line is not one."""
    path: Path
    line: int                                # 1-based
    record: CrawlRecord | None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _parse_line(raw: bytes, first: bool) -> tuple[CrawlRecord | None, str | None]:
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte order mark written by some editors and Windows tools
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not UTF-8: byte {raw[e.start:e.start + 1]!r} at column {e.start + 1}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"not JSON: {e.msg} at column {e.colno}"
    except RecursionError:  # e.g. 100,000 nested brackets: one bad line, not a crashed crawl or curation
        return None, "not a record: JSON nested too deeply"
    except ValueError as e:  # an integer of more digits than Python converts
        return None, f"not a record: {e}"
    if not isinstance(obj, dict):
        return None, f"not a JSON object but {type(obj).__name__}"
    rid = obj.get("id")
    if not isinstance(rid, str) or not rid.strip():
        return None, "no id" if rid in (None, "") else f"id is not a non-empty string: {_short(rid)}"
    if "\x00" in rid or _SURROGATE.search(rid):
        return None, f"id is not valid text (a NUL or a lone surrogate): {_short(rid)}"
    tags = obj.get("tags")
    if tags is not None and not isinstance(tags, (list, str)):
        return None, f"tags is not a list: {_short(tags)}"
    return CrawlRecord.from_dict(obj), None


def _short(value: Any, n: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + f"... ({len(text)} characters)"


def read_crawl_records(path: str | os.PathLike) -> Iterator[RecordLine]:
    """Every non-blank line of an items.jsonl as a RecordLine. Never raises for a line's content (undecodable
    bytes, a BOM, bad JSON, JSON nested too deeply, a missing id, an id holding a NUL or a lone surrogate, tags
    that are not a list become ``error``s naming the line: every reader, crawl resume and curation, checks
    the same way); a torn last line after a
    kill reads as an error line too. A missing file yields nothing."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            raw = raw.strip()
            if not raw:
                continue
            record, error = _parse_line(raw, n == 1)
            yield RecordLine(path, n, record, error)


def last_records(path: str | os.PathLike) -> dict[str, CrawlRecord]:
    """The final record of each id of an items.jsonl (lines that are no records are skipped)."""
    out: dict[str, CrawlRecord] = {}
    for line in read_crawl_records(path):
        if line.record is not None:
            out.pop(line.record.id, None)  # re-insert: order follows the last record
            out[line.record.id] = line.record
    return out


def record_line(record: CrawlRecord | dict[str, Any]) -> str:
    """One items.jsonl line (with its newline): every field, in FIELDS order."""
    if isinstance(record, dict):
        record = CrawlRecord.from_dict(record)
    return json.dumps(record.to_dict(), ensure_ascii=False) + "\n"


def write_crawl_records(path: str | os.PathLike, records: Iterable[CrawlRecord | dict[str, Any]]) -> Path:
    """Write a whole items.jsonl atomically (synced before the rename: a kill -9 must not tear the log)."""
    path = Path(path)
    with atomic_path(path, fsync=True) as tmp:
        tmp.write_text("".join(record_line(r) for r in records), encoding="utf-8")
    return path
