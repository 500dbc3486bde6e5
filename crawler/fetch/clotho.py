"""Clotho from Zenodo: every file of a version, checked against its published md5, the audio archives extracted.

Layout (``DIR`` = ``--out``)::

    DIR/clotho/<version>/clotho_captions_<split>.csv    caption CSVs (file_name, caption_1..caption_5)
    DIR/clotho/<version>/clotho_metadata_<split>.csv
    DIR/clotho/<version>/<split>/*.wav                   the audio of each split
    DIR/clotho/<version>/archives/clotho_audio_<split>.7z  the checked archives (delete them once extracted)

The file list of each version is data: ``registries/clotho-<version>.json`` (``{"files": [{"name", "url", "md5",
"split", "kind"}]}``, copied from aac-datasets 0.7.0, see its ``source``); ``--registry FILE`` replaces it.
URLs on zenodo.org follow the Zenodo endpoint override (``$WT5K_ZENODO_ENDPOINT``), as ``wt5k-weights`` does.
A file is downloaded once (resumable, atomic: ``download.py``); a wrong md5 keeps it as ``<name>.rejected``
and its archive is never extracted; extraction is ``extract.py``'s (safe, streaming, resumable).
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from manifests.atomic import atomic_path

from .download import DownloadError, checked_download
from .extract import ExtractError, extract_7z
from .hosts import REDIRECT_HOSTS, endpoints, rebase

REGISTRIES = Path(__file__).with_name("registries")
VERSIONS = ("v2.1", "v2", "v1")
SPLITS = ("development", "validation", "evaluation")
KINDS = ("audio", "captions", "metadata")
STATE_FILE = ".fetched.json"  # name -> size and mtime of each checked file: a rerun does not re-hash gigabytes


class ClothoError(RuntimeError):
    """A registry that cannot be used, or a version/split that does not exist; the message names the file."""


@dataclass
class FileOutcome:
    name: str
    split: str
    kind: str
    status: str          # "downloaded", "present", "rejected", "error"
    detail: str = ""


@dataclass
class ClothoReport:
    folder: Path
    files: list[FileOutcome] = field(default_factory=list)
    extracted: dict[str, int] = field(default_factory=dict)   # split -> audio files in its folder
    refused: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # split -> archive entries refused
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def load_registry(version: str, path: str | os.PathLike | None = None) -> list[dict]:
    """The file list of ``version`` (built in), or of the JSON at ``path``; every entry checked."""
    if path is None:
        if version not in VERSIONS:
            raise ClothoError(f"unknown Clotho version {version!r}; known: {', '.join(VERSIONS)}")
        path = REGISTRIES / f"clotho-{version}.json"
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ClothoError(f"{path}: cannot read the file list ({e})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not files:
        raise ClothoError(f"{path}: expected {{\"files\": [{{\"name\", \"url\", \"md5\", \"split\", \"kind\"}}]}}")
    for i, f in enumerate(files):
        problem = None
        if not isinstance(f, dict) or not all(isinstance(f.get(k), str) and f.get(k) for k in ("name", "url", "split", "kind")):
            problem = "needs the strings name, url, split and kind"
        elif f["kind"] not in KINDS:
            problem = f"kind {f['kind']!r} is not one of {', '.join(KINDS)}"
        elif "/" in f["name"] or "\\" in f["name"] or f["name"] in (".", "..") or f["name"].startswith("."):
            problem = f"name {f['name']!r} must be a plain file name"
        elif not f["url"].startswith(("http://", "https://")):
            problem = f"url {f['url']!r} is not http(s)"
        elif not isinstance(f.get("md5"), str) or not re.fullmatch(r"[0-9a-fA-F]{32}", f["md5"]):
            problem = "md5 must be given, 32 hex digits (every file is checked)"
        elif f["split"] in (".", "..") or "/" in f["split"] or f["split"].startswith("."):
            problem = f"split {f['split']!r} must be a plain folder name"
        if problem:
            raise ClothoError(f"{path}: file {i + 1}: {problem}")
    return files


def _read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(folder: Path, state: dict) -> None:
    with atomic_path(folder / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))


def _stamp(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def caption_rows(path: Path) -> int:
    """Data rows of a caption CSV (the header excluded); UTF-8, else cp949 (copies circulate in it)."""
    for encoding in ("utf-8-sig", "cp949"):
        try:
            with open(path, newline="", encoding=encoding) as f:
                return max(sum(1 for row in csv.reader(f) if any(cell.strip() for cell in row)) - 1, 0)
        except UnicodeDecodeError:
            continue
    raise ClothoError(f"{path}: neither UTF-8 nor cp949 text")


def fetch_clotho(out: str | os.PathLike, version: str = "v2.1", splits: tuple[str, ...] | None = None, *,
                 registry: str | os.PathLike | None = None, endpoint_overrides: dict[str, str] | None = None,
                 retries: int = 3, timeout: float = 60.0, progress: bool = True,
                 log: Callable[[str], None] = print) -> ClothoReport:
    """Download, check and extract Clotho ``version``'s ``splits`` under ``out/clotho/<version>/``. Problems with
    one file are recorded in the report (and the others go on); the report says what was done and why not.
    ``splits`` None: every split of the file list."""
    files = load_registry(version, registry)
    known = sorted({f["split"] for f in files})
    splits = tuple(splits or known)
    unknown = [s for s in splits if s not in known]
    if unknown:
        raise ClothoError(f"split(s) {', '.join(unknown)} not in Clotho {version}'s file list; it has "
                          f"{', '.join(known)}")
    eps = endpoints(endpoint_overrides)
    folder = Path(out) / "clotho" / version
    archives = folder / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    report = ClothoReport(folder)
    state = _read_state(folder)
    for f in (f for f in files if f["split"] in splits):
        target = (archives if f["kind"] == "audio" else folder) / f["name"]
        outcome = FileOutcome(f["name"], f["split"], f["kind"], "present")
        if not (target.is_file() and state.get(f["name"]) == _stamp(target)):
            url = rebase(f["url"], eps)
            log(f"clotho {version}: downloading {f['name']} from {url}")
            try:
                checked_download(url, target, expected={"md5": f["md5"]},
                                 where=f"md5 published in {registry or 'the built-in list (aac-datasets 0.7.0)'}",
                                 allowed_hosts=REDIRECT_HOSTS["zenodo"], retries=retries, timeout=timeout,
                                 progress=progress, log=log)
                outcome.status = "downloaded"
                state[f["name"]] = _stamp(target)
                _write_state(folder, state)
            except DownloadError as e:
                outcome.status = "rejected" if "kept as" in str(e) else "error"
                outcome.detail = str(e)
                report.errors.append(str(e))
        report.files.append(outcome)
        if outcome.status in ("rejected", "error"):
            continue
        if f["kind"] == "audio":
            dest = folder / f["split"]
            try:
                r = extract_7z(target, dest, log=log)
            except ExtractError as e:
                report.errors.append(str(e))
                continue
            if r.refused:
                report.refused[f["split"]] = r.refused
                for name, why in r.refused:
                    report.warnings.append(f"{target.name}: entry {name!r} refused ({why})")
            report.extracted[f["split"]] = sum(1 for p in dest.rglob("*") if p.is_file())
        elif f["kind"] == "captions" and f.get("rows") is not None:
            rows = caption_rows(target)
            if rows != f["rows"]:
                report.warnings.append(f"{target}: {rows} caption rows, Clotho {version} {f['split']} has "
                                       f"{f['rows']}: is this the version you asked for?")
    for split in splits:
        rows = next((f.get("rows") for f in files if f["split"] == split and f["kind"] == "captions"), None)
        n = report.extracted.get(split)
        if rows is not None and n is not None and n != rows:
            report.warnings.append(f"{folder / split}: {n} audio files, the caption CSV's version lists {rows}")
    return report
