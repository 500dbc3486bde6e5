"""The manifest contract: one CSV format shared by curation, training and users.

Every column is documented in manifests/README.md. One row is one (audio, caption) pair; a dataset with
several captions per audio repeats the audio's row with the same ``id`` and another caption.
"""
from __future__ import annotations

import codecs
import csv
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable, Iterator

from .atomic import atomic_path
from .file_kind import binary_kind

SPLITS = ("train", "val", "test", "")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Columns every manifest has, in the order they are written.
COLUMNS = (
    "id", "source", "audio_path", "duration_s", "sample_rate", "channels", "sha256",
    "title", "description", "caption", "tags", "author", "license", "view_link", "download_link", "split",
)
# Columns a manifest may have; readers fill them with defaults where absent.
OPTIONAL_COLUMNS = ("title_raw", "description_raw", "tags_raw", "duplicate_of", "orig_sample_rate", "orig_channels",
                    "gain_db", "peak_dbfs", "clipped_samples")


class ManifestError(ValueError):
    """A manifest that breaks the contract; names the file, the row (1-based line number) and the column."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, column: str | None, message: str):
        self.path, self.line, self.column, self.message = path, line, column, message
        where = [str(path) if path else "<manifest>"]
        if line is not None:
            where.append(f"row {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass
class ManifestRow:
    id: str
    source: str
    audio_path: str
    caption: str
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    sha256: str = ""
    title: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    author: str = ""
    license: str = ""
    view_link: str = ""
    download_link: str = ""
    split: str = ""
    title_raw: str = ""
    description_raw: str = ""
    tags_raw: str = ""
    duplicate_of: str = ""
    orig_sample_rate: int | None = None
    orig_channels: int | None = None
    gain_db: float | None = None
    peak_dbfs: float | None = None
    clipped_samples: int | None = None

    def to_csv_dict(self) -> dict[str, str]:
        out = {}
        for k, v in asdict(self).items():
            if k == "tags":
                out[k] = json.dumps(v, ensure_ascii=False) if v else ""
            elif v is None:
                out[k] = ""
            elif isinstance(v, float):
                out[k] = f"{v:.6f}".rstrip("0").rstrip(".") if v == v else ""
            else:
                out[k] = str(v)
        return out


_POSITIVE = (int, lambda v: v > 0, "positive")
# Numeric columns: (type, condition, what a value must be); empty means unknown (None); inf and NaN never pass.
_NUMBERS = {
    "duration_s": (float, lambda v: v >= 0, "a finite non-negative number"),
    "sample_rate": _POSITIVE, "channels": _POSITIVE, "orig_sample_rate": _POSITIVE, "orig_channels": _POSITIVE,
    "gain_db": (float, lambda v: v <= 0, "a finite number at most 0"),
    "peak_dbfs": (float, lambda v: True, "a finite number"),
    "clipped_samples": (int, lambda v: v >= 0, "zero or more"),
}
_FIELD_NAMES = tuple(f.name for f in fields(ManifestRow))


def _parse_row(raw: dict[str, str], path, line: int) -> ManifestRow:
    def err(col: str, msg: str) -> ManifestError:
        return ManifestError(path, line, col, msg)

    vals: dict = {}
    for name in _FIELD_NAMES:
        text = raw.get(name)
        text = "" if text is None else text
        if name in _NUMBERS:
            kind, ok, must = _NUMBERS[name]
            if text.strip() == "":
                vals[name] = None
                continue
            try:
                v = kind(text)
            except ValueError:
                raise err(name, f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
            if not (math.isfinite(v) and ok(v)):
                raise err(name, f"must be {must}, got {text!r}")
            vals[name] = v
        elif name == "tags":
            if text.strip() == "":
                vals[name] = []
                continue
            try:
                tags = json.loads(text)
            except json.JSONDecodeError as e:
                raise err(name, f"not a JSON list of strings: {e.msg}") from None
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise err(name, "not a JSON list of strings")
            vals[name] = tags
        else:
            vals[name] = text
    for col in ("id", "source", "audio_path"):
        if not vals[col].strip():
            raise err(col, "must not be empty")
    if os.path.isabs(vals["audio_path"]):
        raise err("audio_path", f"must be relative to the manifest, got {vals['audio_path']!r}")
    if not vals["caption"].strip() and not _metadata_only(vals):
        raise err("caption", "must not be empty (only a row with no title, no description and no split may "
                             "lack one: published metadata kept as it is, used by no split)")
    if vals["sha256"] and not _SHA256.match(vals["sha256"]):
        raise err("sha256", f"not a lowercase hex sha256: {vals['sha256']!r}")
    if vals["split"] not in SPLITS:
        raise err("split", f"must be one of train, val, test or empty, got {vals['split']!r}")
    return ManifestRow(**vals)


def _metadata_only(vals: dict) -> bool:
    """A row that nothing can caption and that no split uses: import-published keeps the published rows
    without title and description this way, so that the published CSV survives a round trip whole."""
    return not vals["title"].strip() and not vals["description"].strip() and not vals["split"]


def iter_manifest(path: str | os.PathLike) -> Iterator[ManifestRow]:
    """Yield validated rows; raise ManifestError naming the row and column of the first problem."""
    for _, row in _iter_numbered(path):
        yield row


def iter_csv(path: str | os.PathLike, required: Iterable[str], allowed: Iterable[str] | None = None,
             what: str = "manifest", encoding: str = "utf-8-sig",
             hint: str = "", one_of: Iterable[str] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row dict) of a CSV whose header has every ``required`` column, at least one of ``one_of``
    when given (and, when ``allowed`` is given, no other); structural problems raise ManifestError naming the
    row and column, and bytes that are not ``encoding`` text name the row and the encoding tried (``hint`` says
    what the user can do about it); a known kind of file that is not text (an image, an archive) is named as
    such. The default -sig: spreadsheet exports start with a byte order mark."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, None, None, f"no such {what} file")
    required = list(required)
    kind = binary_kind(path)
    if kind:  # a file given in the wrong place: say what it is, not which byte failed to decode
        raise ManifestError(path, None, None, f"not a {what}: the file is {kind}, not CSV text")
    with open(path, "rb") as f:
        reader = csv.DictReader(decoded_lines(f, path, encoding, hint))
        header = reader.fieldnames = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(path, 1, missing[0], f"not a {what}: missing column(s): {', '.join(missing)}")
        one_of = list(one_of)
        if one_of and not set(one_of) & set(header):
            raise ManifestError(path, 1, None, f"not a {what}: it needs a column {' or '.join(one_of)}; "
                                               f"its columns: {', '.join(header) or 'none'}")
        if allowed is not None:
            unknown = [c for c in header if c not in required and c not in set(allowed)]
            if unknown:
                raise ManifestError(path, 1, unknown[0], f"unknown column(s): {', '.join(unknown)}")
        try:
            for raw in reader:
                if None in raw:
                    raise ManifestError(path, reader.line_num, None, "more fields than the header has")
                yield reader.line_num, raw
        except csv.Error as e:  # a field over the csv module's limit (128 KiB), a NUL byte, ...
            raise ManifestError(path, reader.line_num, None, str(e)) from None


def encoding_label(encoding: str) -> str:
    """How messages name an encoding: "UTF-8" for both UTF-8 codecs (with and without a byte order mark)."""
    return "UTF-8" if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") else encoding


def decoded_lines(f, path: Path, encoding: str, hint: str) -> Iterator[str]:
    """The lines of a binary file as text, decoded one by one so that an undecodable byte is reported with the
    line it is on (the csv module counts the same physical lines)."""
    for n, raw in enumerate(f, 1):
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise ManifestError(path, n, None, f"not {encoding_label(encoding)} text: bytes "
                                               f"{raw[e.start:e.start + 4]!r} at byte "
                                               f"{e.start + 1} of the line{'; ' + hint if hint else ''}") from None


def _iter_numbered(path: str | os.PathLike) -> Iterator[tuple[int, ManifestRow]]:
    for line, raw in iter_csv(path, COLUMNS, OPTIONAL_COLUMNS):
        yield line, _parse_row(raw, path, line)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read and validate a whole manifest (see iter_manifest)."""
    return list(iter_manifest(path))


def write_manifest(path: str | os.PathLike, rows: Iterable[ManifestRow], optional: Iterable[str] | None = None) -> Path:
    """Write rows atomically (temporary file, then rename). Optional columns are written when any row uses them,
    or when named in ``optional``."""
    path = Path(path)
    rows = list(rows)
    opt = set(optional or ())
    for r in rows:
        for c in OPTIONAL_COLUMNS:
            if getattr(r, c) not in ("", None):
                opt.add(c)
    header = list(COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in opt]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r.to_csv_dict())
    return path


def resolve_audio(manifest_path: str | os.PathLike, row: ManifestRow) -> Path:
    """The audio file of a row: audio_path is relative to the manifest's folder."""
    return (Path(manifest_path).parent / row.audio_path).resolve()


def validate_manifest(path: str | os.PathLike, check_audio: bool = False) -> list[ManifestRow]:
    """Read a manifest and check what a single row cannot: that rows sharing an id agree on their audio,
    and (optionally) that every audio file exists."""
    rows = []
    seen: dict[str, tuple[str, str]] = {}
    for line, r in _iter_numbered(path):
        rows.append(r)
        prev = seen.setdefault(r.id, (r.audio_path, r.split))
        if prev != (r.audio_path, r.split):
            raise ManifestError(path, line, "audio_path", f"id {r.id!r} appears with different audio_path/split")
        if check_audio and not resolve_audio(path, r).is_file():
            raise ManifestError(path, line, "audio_path", f"audio file not found: {r.audio_path!r}")
    return rows
