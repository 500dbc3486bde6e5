"""Published pretrained weights: a resumable, checked download into a cache folder, and what the cache holds.

The cache folder (``default_dir()``: ``$WT5K_WEIGHTS_DIR``, else ``~/.cache/wavtext5k/weights``) holds the files
under their published names and ``weights.json``, the registry: per name the URL it came from, the size and
sha256 of what was stored, and where that sha256 came from (``published``: the publisher's checksum, which the
download was checked against; ``measured``: computed at first download, because the publisher gives none).
Every reuse re-checks size and sha256 against the registry: a changed file is reported, never silently reused.

Where each file comes from: ``weights_sources.py``. Zenodo files (and any ``--url``) go through the toolkit's
one HTTP download (``download.py``: Range resume, atomic, redirects only to the host's known hosts, size cap);
Hugging Face files through ``huggingface_hub.hf_hub_download`` and model folders through ``snapshot_download``
(both resume and place files atomically themselves); every file is then checked against its pinned or announced
size and sha256 before it takes its real name. Training reads these files from disk only.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from manifests.atomic import atomic_path
from manifests.hashing import file_digests

from .download import (PART_SUFFIX, REJECTED_SUFFIX, DownloadError, check_and_place, checked_download,
                       host_allowed, locked)
from .hosts import UnknownHostError
from .weights_sources import (REDIRECT_HOSTS, SOURCES, ChangedFileError, WeightsError, WeightSource, endpoints,
                              file_url, source)

T = TypeVar("T")

__all__ = ["SOURCES", "WeightSource", "WeightsError", "ChangedFileError", "FetchResult", "default_dir", "fetch",
           "status", "read_registry", "check_recorded", "probe", "endpoints", "source"]


def _endpoints(overrides: dict[str, str] | None) -> dict[str, str]:
    try:
        return endpoints(overrides)
    except UnknownHostError as e:
        raise WeightsError(str(e)) from None


def default_dir() -> Path:
    """The cache folder: ``$WT5K_WEIGHTS_DIR`` if set, else ``~/.cache/wavtext5k/weights``."""
    env = os.environ.get("WT5K_WEIGHTS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wavtext5k" / "weights"


REGISTRY_FILE = "weights.json"


# --- registry -------------------------------------------------------------------------------------------------

def read_registry(folder: Path) -> dict:
    path = Path(folder) / REGISTRY_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: unreadable registry ({e}); move it away to start a new one") from e
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: registry is not a JSON object")
    return data


def _write_registry_entry(folder: Path, name: str, entry: dict) -> None:
    with locked(Path(folder) / f".{REGISTRY_FILE}.lock"):  # read-modify-write: entries of others are kept
        data = read_registry(folder)
        data[name] = entry
        with atomic_path(Path(folder) / REGISTRY_FILE, fsync=True) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_recorded(path: Path, recorded: dict) -> list[str]:
    """Differences between a file and its registry record (size, then sha256); empty when it matches."""
    if not path.is_file():
        return [f"{path.name}: missing"]
    size = path.stat().st_size
    if size != recorded.get("size"):
        return [f"{path.name}: size {size} bytes, recorded {recorded.get('size')}"]
    sha = file_digests(path)["sha256"]
    if sha != recorded.get("sha256"):
        return [f"{path.name}: sha256 {sha}, recorded {recorded.get('sha256')}"]
    return []


def _check_published(path: Path, digests: dict[str, str], expected: dict[str, str], where: str) -> None:
    for algo, want in expected.items():
        if digests[algo] != want.lower():
            raise WeightsError(f"{path.name}: {algo} {digests[algo]} does not match the {want} {where}")


def _sha_record(digests: dict, published: dict, note: str) -> dict:
    if "sha256" in published:
        how = f"published ({note})"
    elif published:
        how = f"measured at first download; checked against the published {'/'.join(published)} ({note})"
    else:
        how = "measured at first download (no published checksum)"
    return {"sha256": digests["sha256"], "sha256_source": how}


# --- fetch -------------------------------------------------------------------------------------------------------

@dataclass
class FetchResult:
    name: str
    path: Path
    status: str  # "downloaded", "present" (checked against the registry), "registered" (manual file recorded)
    entry: dict


def fetch(name: str, folder: str | os.PathLike | None = None, *, endpoint_overrides: dict[str, str] | None = None,
          url: str | None = None, force: bool = False, retries: int = 3, timeout: float = 60.0,
          progress: bool = True, log: Callable[[str], None] = print) -> FetchResult:
    """Make ``name`` present and checked in the cache; download only what is missing.

    A present file is re-hashed and compared with its record (``ChangedFileError`` when it differs; ``force``
    downloads it again). ``url`` replaces the published URL (a mirror, or the manual HTS-AT file)."""
    src = source(name)
    folder = Path(folder) if folder is not None else default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / f".{name}.lock"):  # a concurrent fetch of the same name waits, then finds it present
        if src.kind == "hf-snapshot":
            return _fetch_snapshot(src, folder, _endpoints(endpoint_overrides), force, progress, log)
        return _fetch_file(src, folder, endpoint_overrides, url, force, retries, timeout, progress, log)


def _fetch_file(src: WeightSource, folder: Path, endpoint_overrides: dict[str, str] | None, url: str | None,
                force: bool, retries: int, timeout: float, progress: bool, log: Callable[[str], None]
                ) -> FetchResult:
    name = src.name
    target = folder / src.filename
    recorded = read_registry(folder).get(name)
    if target.is_file() and not force:
        if recorded:
            problems = check_recorded(target, recorded)
            if problems:
                raise ChangedFileError(f"{name}: {target} changed since it was recorded ({'; '.join(problems)}); "
                                       f"fetch --force downloads it again")
            return FetchResult(name, target, "present", recorded)
        if url is None:  # placed by hand (the manual HTS-AT file, or a copy): check what can be checked, record it
            if src.size is not None and target.stat().st_size != src.size:
                raise WeightsError(f"{name}: {target} holds {target.stat().st_size} bytes, the published file "
                                   f"{src.size} ({src.published_note})")
            digests = file_digests(target, ("sha256", "md5"))
            _check_published(target, digests, src.published, f"published ({src.published_note})")
            entry = {"file": src.filename, "url": None, "size": target.stat().st_size, "recorded_at": _now(),
                     **_sha_record(digests, src.published, src.published_note)}
            entry["sha256_source"] = entry["sha256_source"].replace("at first download", "when first registered "
                                                                    "(file placed in the cache by hand)")
            _write_registry_entry(folder, name, entry)
            return FetchResult(name, target, "registered", entry)
    if src.kind == "manual" and url is None:
        raise WeightsError(f"{name}: no direct download; get {src.filename} from {src.page}, put it at {target} "
                           f"and run fetch {name} again to record it (or pass --url with a direct link)")
    eps = _endpoints(endpoint_overrides)
    if src.host == "hf" and url is None:
        return _fetch_hf_file(src, folder, eps, force, timeout, progress, log)
    the_url = url or file_url(src, eps)
    expected, note = dict(src.published), src.published_note
    log(f"{name}: downloading {the_url}")
    try:
        digests = checked_download(
            the_url, target, size=src.size, expected=expected, where=f"published ({note})",
            allowed_hosts=REDIRECT_HOSTS.get(src.host, ()) if url is None else (),
            max_bytes=src.max_size, retries=retries, timeout=timeout, progress=progress, log=log)
    except DownloadError as e:
        raise WeightsError(f"{name}: {e}") from None
    entry = {"file": src.filename, "url": the_url, "size": target.stat().st_size, "recorded_at": _now(),
             **_sha_record(digests, expected, note)}
    _write_registry_entry(folder, name, entry)
    return FetchResult(name, target, "downloaded", entry)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a HEAD stops at the first answer: HF puts hashes on the 302
        return None


def probe(url: str, timeout: float) -> dict:
    """What a Hugging Face-style server announces for a file, from a HEAD request that does not follow
    redirects: ``sha256`` and ``size`` (an LFS file's ``X-Linked-Etag`` / ``X-Linked-Size``, sent on its
    redirect to the storage host) and ``location`` (where it redirects). Empty when the server does not answer.
    (A plain Content-Length is not taken: on a redirect it is the redirect page's.)"""
    import re

    req = urllib.request.Request(url, method="HEAD")
    try:
        resp = urllib.request.build_opener(_NoRedirect).open(req, timeout=timeout)
        headers = resp.headers
    except urllib.error.HTTPError as e:  # a 3xx surfaces here with the no-redirect opener
        if not 300 <= e.code < 400:
            return {"error": f"HTTP {e.code} {e.reason}"}
        headers = e.headers
    except (urllib.error.URLError, OSError) as e:
        return {"error": str(getattr(e, "reason", e))}
    out: dict = {}
    linked = (headers.get("X-Linked-Etag") or "").strip('"').lower()
    if re.fullmatch(r"[0-9a-f]{64}", linked):
        out["sha256"] = linked
    size = headers.get("X-Linked-Size")
    if size and size.isdigit():
        out["size"] = int(size)
    if headers.get("Location"):
        out["location"] = urllib.parse.urljoin(url, headers["Location"])
    return out


def _hub_call(name: str, progress: bool, call: Callable[[], T]) -> T:
    """A huggingface_hub download: its progress bars off unless ``progress`` (put back as they were), its errors
    (many types: HTTP, offline, repo not found) one line as a WeightsError."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    switch_bars = not progress and not are_progress_bars_disabled()  # put back only what this call changes
    if switch_bars:
        disable_progress_bars()
    try:
        return call()
    except Exception as e:
        raise WeightsError(f"{name}: {type(e).__name__}: {' '.join(str(e).split())}") from e
    finally:
        if switch_bars:
            enable_progress_bars()


def _fetch_hf_file(src: WeightSource, folder: Path, eps: dict[str, str], force: bool, timeout: float,
                   progress: bool, log: Callable[[str], None]) -> FetchResult:
    """One file of a Hugging Face repository through ``hf_hub_download`` (its resume, its atomic placement),
    into ``<folder>/.incoming/``; then checked against the pinned, else the hub's announced, sha256 and size
    and only then renamed to its real name."""
    from huggingface_hub import hf_hub_download

    name, target = src.name, folder / src.filename
    url = file_url(src, eps)
    info = probe(url, timeout)
    if "error" in info:
        raise WeightsError(f"{name}: {url}: {info['error']}")
    allowed = (urllib.parse.urlsplit(eps["hf"]).hostname or "", *REDIRECT_HOSTS["hf"])
    if "location" in info and not host_allowed(info["location"], allowed):
        raise WeightsError(f"{name}: {url} redirects to {info['location']}, not one of the allowed hosts "
                           f"{', '.join(allowed)}; refused")
    expected, note = dict(src.published), src.published_note
    if "sha256" not in expected and "sha256" in info:
        expected["sha256"], note = info["sha256"], "announced by the hub as X-Linked-Etag"
    size = src.size if src.size is not None else info.get("size")
    if size is not None and size > src.max_size:
        raise WeightsError(f"{name}: {url} announces {size} bytes, over the cap of {src.max_size}; refused")
    if "sha256" not in expected:
        log(f"  {name}: neither a pinned nor an announced sha256: it is measured and recorded, not checked")
    log(f"{name}: downloading {url}")
    got = Path(_hub_call(name, progress, lambda: hf_hub_download(
        src.repo_id, src.filename, local_dir=folder / ".incoming", endpoint=eps["hf"], force_download=force,
        etag_timeout=timeout)))
    if got.stat().st_size > src.max_size:
        got.unlink()
        raise WeightsError(f"{name}: the download holds more than the cap of {src.max_size} bytes; removed")
    try:
        digests = check_and_place(got, target, size=size, expected=expected, where=f"published ({note})")
    except DownloadError as e:
        raise WeightsError(f"{name}: {e}") from None
    entry = {"file": src.filename, "url": url, "size": target.stat().st_size, "recorded_at": _now(),
             **_sha_record(digests, expected, note)}
    _write_registry_entry(folder, name, entry)
    return FetchResult(name, target, "downloaded", entry)


def _fetch_snapshot(src: WeightSource, folder: Path, eps: dict[str, str], force: bool, progress: bool,
                    log: Callable[[str], None]) -> FetchResult:
    target = folder / src.name
    recorded = read_registry(folder).get(src.name)
    if recorded and target.is_dir() and not force:
        problems = [p for rel, rec in recorded["files"].items() for p in check_recorded(target / rel, rec)]
        if problems:
            raise ChangedFileError(f"{src.name}: {target} changed since it was recorded ({'; '.join(problems)}); "
                                   f"fetch --force downloads it again")
        return FetchResult(src.name, target, "present", recorded)
    from huggingface_hub import snapshot_download

    log(f"{src.name}: downloading {src.repo_id} from {eps['hf']}")
    # snapshot_download resumes and renames atomically itself; it checks LFS files' sha256
    _hub_call(src.name, progress, lambda: snapshot_download(
        src.repo_id, local_dir=target, endpoint=eps["hf"], force_download=force,
        allow_patterns=list(src.allow_patterns)))
    files = {}
    for path in sorted(p for p in target.rglob("*") if p.is_file() and ".cache" not in p.relative_to(target).parts):
        files[path.relative_to(target).as_posix()] = {"size": path.stat().st_size,
                                                      "sha256": file_digests(path)["sha256"]}
    if not files:
        raise WeightsError(f"{src.name}: {src.repo_id} gave no files matching {list(src.allow_patterns)}")
    entry = {"repo_id": src.repo_id, "endpoint": eps["hf"], "files": files, "recorded_at": _now(),
             "sha256_source": "measured after download (huggingface_hub checks LFS files against the hub)"}
    _write_registry_entry(folder, src.name, entry)
    return FetchResult(src.name, target, "downloaded", entry)


def _hf_incomplete(folder: Path, src: WeightSource) -> bool:
    """Whether hf_hub_download left a partial file of ``src`` in ``<folder>/.incoming`` (it resumes from it)."""
    if src.kind != "file" or src.host != "hf":
        return False
    pending = folder / ".incoming" / ".cache" / "huggingface" / "download"
    return any(pending.glob(f"{src.filename}*.incomplete")) or (folder / ".incoming" / src.filename).is_file()


# --- list ---------------------------------------------------------------------------------------------------------

def status(folder: str | os.PathLike | None = None, names: Iterable[str] | None = None,
           verify: bool = False) -> list[dict]:
    """Per known name: where it would be, its state (absent, partial, rejected, unrecorded, present, changed,
    missing) and (``verify``: by sha256, else by size) whether it still matches its record; ``rejected``: the
    path of a download kept as ``<file>.rejected`` (also named in ``problems``), else None."""
    folder = Path(folder) if folder is not None else default_dir()
    registry = read_registry(folder)
    rows = []
    for name in names or SOURCES:
        src = source(name)
        rec = registry.get(name)
        path = folder / (src.name if src.kind == "hf-snapshot" else src.filename)
        if src.kind == "hf-snapshot":
            checks = [(path / rel, r) for rel, r in (rec or {}).get("files", {}).items()]
            present = path.is_dir() and any(path.iterdir())
        else:
            checks = [(path, rec)] if rec else []
            present = path.is_file()
        rejected = path.with_name(path.name + REJECTED_SUFFIX)  # a finished download that failed its checks
        problems = []
        for p, r in checks:
            if verify:
                problems += check_recorded(p, r)
            elif not p.is_file() or p.stat().st_size != r.get("size"):
                problems.append(f"{p.name}: size differs from the record" if p.is_file() else f"{p.name}: missing")
        if rec and not present:
            state, problems = "missing", [f"{path.name}: recorded but not in {folder}"]
        elif rec:
            state = "changed" if problems else "present"
        elif present:
            state = "unrecorded"  # placed by hand: fetch NAME checks and records it
        elif path.with_name(path.name + PART_SUFFIX).is_file() or _hf_incomplete(folder, src):
            state = "partial"
        else:
            state = "rejected" if rejected.is_file() else "absent"
        if rejected.is_file():  # whatever the state: a file kept for inspection takes room and wants a look
            problems.append(f"rejected download kept as {rejected} (wrong checksum or size; never used; delete "
                            f"it once inspected)")
        size = rec.get("size") if rec and "size" in rec else (
            sum(f["size"] for f in rec["files"].values()) if rec and "files" in rec else None)
        rows.append({"name": name, "kind": src.kind, "state": state, "path": str(path), "size": size,
                     "sha256_source": (rec or {}).get("sha256_source"), "problems": problems,
                     "rejected": str(rejected) if rejected.is_file() else None,
                     "description": src.description, "config_key": src.config_key})
    return rows
