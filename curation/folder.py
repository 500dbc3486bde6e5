"""A folder of your own sounds read into items, with captions from one of three places:

- a CSV (``file`` relative to the folder, subfolders allowed; ``caption``, or ``title`` and/or ``description``;
  optional ``tags``, ``author``, ``license``, ``split``): with a ``caption`` column a file may be listed on
  several rows, one caption each; otherwise title and description make the caption, as for the web sources;
- the subfolder names as class labels (``dog_bark/x.wav`` is titled "dog bark");
- a text file beside each sound (``x.wav`` + ``x.txt`` or ``x.wav.txt``): its text is the description.

Every audio file under the folder (by extension, manifests/audio_formats.py) becomes an item or a reject: one
the caption source says nothing about is rejected as ``text/no_caption``, a path that leads out of the folder as
``input/unsafe_path``, a bad CSV row as ``input/bad_record`` (id ``<csv name>:<row>``). Other files are counted
by extension. Ids are ``<name>:<path relative to the folder>``. Nothing here writes."""
from __future__ import annotations

import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from manifests import parse_tags
from manifests.audio_formats import is_audio_name
from manifests.file_kind import binary_kind
from manifests.schema import SPLITS, encoding_label
from manifests.sources import SOURCES, Source, register

from .dataset_files import DEFAULT_ENCODING, ENCODING_HINT, read_csv
from .sources import Item, Reject, input_path

TEXT_COLUMNS = ("caption", "title", "description")
SIDECAR_MAX_BYTES = 64 << 10  # a caption, not a book: a larger "text file" is someone else's file
_LABEL_SEPARATORS = re.compile(r"[_\-.\s]+")


@dataclass
class FolderScan:
    items: list[Item] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    audio_files: int = 0
    other_files: Counter = field(default_factory=Counter)   # files that are not audio, by extension
    not_followed: list[str] = field(default_factory=list)   # symbolic links to folders (not walked into)


def scan_audio(folder: Path, skip: Iterable[Path] = ()) -> tuple[list[str], Counter, list[str]]:
    """(audio files as paths relative to ``folder``, sorted; other files by extension; symbolic links to folders,
    which are not walked into). Folders in ``skip`` (the output folder, when it lies inside) are left out."""
    skip_real = {os.path.realpath(s) for s in skip}
    audio, other, links = [], Counter(), []
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        keep = []
        for d in sorted(dirs):
            full = os.path.join(root, d)
            if os.path.islink(full):
                links.append(posixpath.normpath(posixpath.join(rel_root.replace(os.sep, "/"), d)))
            elif os.path.realpath(full) not in skip_real:
                keep.append(d)
        dirs[:] = keep
        for name in files:
            rel = posixpath.normpath(posixpath.join(rel_root.replace(os.sep, "/"), name))
            if is_audio_name(name):
                audio.append(rel)
            else:
                other[os.path.splitext(name)[1].lower() or "(no extension)"] += 1
    return sorted(audio), other, sorted(links)


def describe_folder_source(name: str, text_source: str) -> None:
    """Tell Table 1 where a folder's captions come from (its language stays unknown); a registered source of
    the same name (bigsoundbank, clotho...) keeps its own facts."""
    if name not in SOURCES:
        register(Source(name, text_source=text_source))


def label_of(folder_name: str) -> str:
    """A class label from a folder name: ``dog_bark``, ``dog-bark`` and ``dog bark`` are "dog bark"."""
    return " ".join(_LABEL_SEPARATORS.sub(" ", folder_name).split())


def split_tags(text: str) -> list[str]:
    """Tags from a cell: a Python or JSON list (``['dog', 'bark']``), or words separated by commas or
    semicolons (``dog, bark``)."""
    text = (text or "").strip()
    if text.startswith("["):
        return parse_tags(text)
    return [t.strip() for t in re.split(r"[,;]", text) if t.strip()]


def folder_items(folder: str | os.PathLike, name: str, *, captions: str | os.PathLike | None = None,
                 labels_from_subfolders: bool = False, sidecar_text: bool = False,
                 encoding: str = DEFAULT_ENCODING, allow_outside: Iterable[str | os.PathLike] = (),
                 skip: Iterable[str | os.PathLike] = ()) -> FolderScan:
    """Items of the sounds under ``folder`` with captions from exactly one source (see the module's doc);
    ``name`` is the dataset's name: the items' source and id prefix."""
    chosen = [captions is not None, labels_from_subfolders, sidecar_text]
    if sum(chosen) != 1:
        raise ValueError("give exactly one caption source: a captions CSV, labels from subfolders or sidecar text")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of sounds at {folder}")
    base = Path(os.path.realpath(folder))
    files, other, links = scan_audio(folder, [Path(s) for s in skip])
    scan = FolderScan(audio_files=len(files), other_files=other, not_followed=links)
    if captions is not None:
        described = _from_csv(Path(captions), folder, base, name, files, encoding, allow_outside, scan)
        scan.items = list(described.values())
        scan.rejects += [Reject(f"{name}:{rel}", "text", "no_caption", f"not listed in {Path(captions).name}")
                         for rel in files if rel not in described]
        return scan
    for rel in files:
        item = _item(name, rel, base, allow_outside)
        if item.status == "ok":
            why = _label(item, rel) if labels_from_subfolders else _sidecar(item, rel, base, encoding, allow_outside)
            if why:
                scan.rejects.append(why)
                continue
        scan.items.append(item)
    return scan


def _item(name: str, rel: str, base: Path, allow_outside: Iterable[str | os.PathLike]) -> Item:
    """An item of the file at ``rel`` (relative to the folder), or one that the input stage rejects: a path that
    leads out of the folder or cannot name a file, a file that is not there."""
    audio, reason, problem = input_path(base, rel, allow_outside)
    item = Item(id=f"{name}:{rel}", source=name, source_id=rel, audio=audio, fail_stage="input")
    if problem:
        item.status, item.error = reason, problem
    elif not os.path.isfile(audio):
        item.status, item.error, item.audio = "missing_audio", f"no file {rel!r} in {base}", None
    return item


def _label(item: Item, rel: str) -> Reject | None:
    parts = rel.split("/")[:-1]
    labels = [label_of(p) for p in parts]
    if not labels or not labels[-1]:
        return Reject(item.id, "text", "no_caption", "at the top of the folder: no subfolder name to label it")
    item.title_raw, item.tags = labels[-1], [t for t in labels if t]
    return None


def _sidecar(item: Item, rel: str, base: Path, encoding: str,
             allow_outside: Iterable[str | os.PathLike]) -> Reject | None:
    stem = posixpath.splitext(rel)[0]
    for txt in (f"{stem}.txt", f"{rel}.txt"):
        path, reason, problem = input_path(base, txt, allow_outside)
        if problem and reason == "unsafe_path":
            return Reject(item.id, "input", reason, f"sidecar text: {problem}")
        if path is None or not os.path.isfile(path):
            continue
        kind = binary_kind(path)
        if kind:
            return Reject(item.id, "input", "bad_record", f"sidecar {txt} is {kind}, not text")
        with open(path, "rb") as f:
            data = f.read(SIDECAR_MAX_BYTES + 1)
        if len(data) > SIDECAR_MAX_BYTES:
            return Reject(item.id, "input", "bad_record", f"sidecar {txt} is larger than {SIDECAR_MAX_BYTES} bytes")
        try:
            item.description_raw = data.decode(encoding)
        except UnicodeDecodeError as e:
            return Reject(item.id, "input", "bad_record",
                          f"sidecar {txt} is not {encoding_label(encoding)} text (bytes {data[e.start:e.start + 4]!r} "
                          f"at byte {e.start + 1}); {ENCODING_HINT}")
        return None
    return Reject(item.id, "text", "no_caption", f"no {posixpath.basename(stem)}.txt beside it")


def _from_csv(csv_path: Path, folder: Path, base: Path, name: str, files: list[str], encoding: str,
              allow_outside: Iterable[str | os.PathLike], scan: FolderScan) -> dict[str, Item]:
    """Items of the files the CSV lists, by their path relative to the folder."""
    rows = read_csv(csv_path, ("file",), encoding, one_of=TEXT_COLUMNS)
    by_name: dict[str, list[str]] = {}
    for rel in files:
        by_name.setdefault(posixpath.basename(rel), []).append(rel)
    items: dict[str, Item] = {}
    first_row: dict[str, int] = {}
    for line, row in rows:
        where = f"{csv_path.name}:{line}"
        has_caption = "caption" in row
        rel = row["file"].strip().replace("\\", "/")
        if not rel:
            scan.rejects.append(Reject(where, "input", "bad_record", "the file column is empty"))
            continue
        rel = posixpath.normpath(rel)
        split = row.get("split", "").strip()
        if split not in SPLITS:
            scan.rejects.append(Reject(where, "input", "bad_record", f"split must be train, val, test or empty, "
                                                                     f"got {split!r}"))
            continue
        item = items.get(rel)
        if item is not None:
            if not has_caption:  # title/description: one row per sound
                scan.rejects.append(Reject(where, "input", "bad_record",
                                           f"{rel!r} is listed again (first on row {first_row[rel]})"))
            else:
                item.captions.append(row["caption"])
            continue
        item = _item(name, rel, base, allow_outside)
        if item.status == "missing_audio" and by_name.get(posixpath.basename(rel)):
            item.error += (f" (found {', '.join(repr(f) for f in by_name[posixpath.basename(rel)][:3])}: the file "
                           f"column is relative to {folder})")
        item.title_raw, item.description_raw = row.get("title", ""), row.get("description", "")
        item.tags, item.tags_raw = split_tags(row.get("tags", "")), row.get("tags", "")
        item.author, item.license, item.split = row.get("author", ""), row.get("license", ""), split
        if has_caption:
            item.captions = [row["caption"]]
        items[rel] = item
        first_row[rel] = line
    return items


_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


def check_name(name: str) -> str:
    """A dataset name, the manifest's file name and the items' source: letters, digits, ``_``, ``-`` and ``.``,
    not starting with a dot."""
    if not _NAME.fullmatch(name or ""):
        raise ValueError(f"a dataset name is letters, digits, '_', '-' or '.' (not first), got {name!r}")
    return name


def default_name(folder: str | os.PathLike) -> str:
    """The dataset name of a folder: its own name, other characters as ``_`` (``My Sounds`` -> ``My_Sounds``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", Path(os.path.realpath(folder)).name).lstrip("._") or "folder"
