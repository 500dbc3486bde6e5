"""Published pretrained weights: what is known, where it is cached, and a resumable, checked download.

The cache folder (``default_dir()``: ``$WT5K_WEIGHTS_DIR``, else ``~/.cache/wavtext5k/weights``) holds the files
under their published names and ``weights.json``, the registry: per name the URL it came from, the size and
sha256 of what was stored, and where that sha256 came from (``published``: the publisher's checksum, which the
download was checked against; ``measured``: computed at first download, because the publisher gives none).
Every reuse re-checks size and sha256 against the registry: a changed file is reported, never silently reused.

Downloads go to ``<file>.part`` and continue from its end with an HTTP Range request (``If-Range`` on the
server's ETag, so a file that changed upstream restarts); the finished file is checked, fsynced and renamed
into place, so the cache never holds a half-written file under its real name. Hugging Face model folders
(text encoders and their tokenizers) are fetched with ``huggingface_hub.snapshot_download`` into
``<dir>/<name>/`` and recorded file by file the same way.

Base URLs are endpoints by host (``zenodo``, ``hf``), overridable with ``$WT5K_ZENODO_ENDPOINT`` /
``$WT5K_HF_ENDPOINT`` (or ``$HF_ENDPOINT``) and the CLI's ``--endpoint host=URL``; tests point them at loopback.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from manifests.atomic import atomic_path
from manifests.hashing import file_digests

REGISTRY_FILE = "weights.json"
PART_SUFFIX = ".part"
REJECTED_SUFFIX = ".rejected"  # a finished download whose checksum or size is wrong
CHUNK = 1 << 20

DEFAULT_ENDPOINTS = {"zenodo": "https://zenodo.org", "hf": "https://huggingface.co"}
ENDPOINT_ENV = {"zenodo": ("WT5K_ZENODO_ENDPOINT",), "hf": ("WT5K_HF_ENDPOINT", "HF_ENDPOINT")}


@dataclass(frozen=True)
class WeightSource:
    """One published file (``kind`` "file"), Hugging Face model folder ("hf-snapshot"), or a file that can only
    be downloaded by hand ("manual": ``fetch`` then registers a copy placed in the cache, or takes ``--url``)."""
    name: str
    kind: str
    description: str
    filename: str = ""               # file: the published file name (the name in the cache)
    host: str = ""                   # endpoint key (file, hf-snapshot)
    path: str = ""                   # file: URL path under the endpoint
    repo_id: str = ""                # hf-snapshot: the model repository
    allow_patterns: tuple[str, ...] = ()  # hf-snapshot: which files (tokenizer + one weights format)
    page: str = ""                   # where a person finds it (record page, model card, Drive folder)
    published: dict = field(default_factory=dict)  # {"md5"|"sha256": hex} the publisher lists, if any
    published_note: str = ""         # where that checksum is listed
    size: int | None = None          # the published size in bytes, if listed
    config_key: str = ""             # the config entry that names this file


SOURCES: dict[str, WeightSource] = {s.name: s for s in (
    WeightSource(
        "cnn14", "file", "PANNs Cnn14 (AudioSet, mAP 0.431): audio encoder of configs exp_A/B/D, table4_*",
        filename="Cnn14_mAP=0.431.pth", host="zenodo", path="/records/3987831/files/Cnn14_mAP%3D0.431.pth",
        page="https://zenodo.org/records/3987831", published={"md5": "541141fa2ee191a88f24a3219fff024e"},
        size=327_428_481, published_note="md5 and size listed on Zenodo record 3987831",
        config_key="audio.cnn14_checkpoint"),
    WeightSource(
        "htsat-audioset", "manual", "HTS-AT AudioSet checkpoint: audio encoder of configs exp_C/D",
        filename="HTSAT_AudioSet_Saved_1.ckpt",
        page="https://drive.google.com/drive/folders/1f5VYMk0uos_YnuBshgmaTVioXbs7Kmz6",
        config_key="audio.htsat_checkpoint"),
    WeightSource(
        "msclap-2022", "file", "Microsoft CLAP 2022 (Cnn14 + BERT), msclap's CLAPWrapper version '2022'",
        filename="CLAP_weights_2022.pth", host="hf", path="/microsoft/msclap/resolve/main/CLAP_weights_2022.pth",
        page="https://huggingface.co/microsoft/msclap"),
    WeightSource(
        "msclap-2023", "file", "Microsoft CLAP 2023 (HTS-AT + GPT-2), msclap's CLAPWrapper version '2023'",
        filename="CLAP_weights_2023.pth", host="hf", path="/microsoft/msclap/resolve/main/CLAP_weights_2023.pth",
        page="https://huggingface.co/microsoft/msclap"),
    *(WeightSource(
        f"laion-clap-{stem.removesuffix('-best')}", "file",
        f"LAION-CLAP {stem}.pt ({desc}); laion_clap's CLAP_Module.load_ckpt model_id {i}",
        filename=f"{stem}.pt", host="hf", path=f"/lukewys/laion_clap/resolve/main/{stem}.pt",
        page="https://huggingface.co/lukewys/laion_clap")
      for i, (stem, desc) in enumerate((
          ("630k-best", "HTS-AT-tiny + RoBERTa, LAION-630k"),
          ("630k-audioset-best", "HTS-AT-tiny + RoBERTa, LAION-630k + AudioSet; laion_clap's default"),
          ("630k-fusion-best", "fused HTS-AT-tiny + RoBERTa, LAION-630k"),
          ("630k-audioset-fusion-best", "fused HTS-AT-tiny + RoBERTa, LAION-630k + AudioSet")))),
    *(WeightSource(
        name, "hf-snapshot", f"{desc}: tokenizer, config and weights (a folder usable as text.name)",
        host="hf", repo_id=repo, page=f"https://huggingface.co/{repo}",
        allow_patterns=("*.json", "*.txt", "model.safetensors"))
      for name, repo, desc in (
          ("roberta-base", "FacebookAI/roberta-base", "RoBERTa base: text encoder of the paper configs and LAION"),
          ("bert-base-uncased", "google-bert/bert-base-uncased", "BERT base uncased: msclap 2022's text side"),
          ("gpt2", "openai-community/gpt2", "GPT-2: msclap 2023's text side"))),
)}


class WeightsError(RuntimeError):
    """A fetch that cannot finish correctly: unknown name, bad server answer, checksum or size mismatch."""


class ChangedFileError(WeightsError):
    """A cached file no longer matches what the registry recorded at download."""


def default_dir() -> Path:
    """The cache folder: ``$WT5K_WEIGHTS_DIR`` if set, else ``~/.cache/wavtext5k/weights``."""
    env = os.environ.get("WT5K_WEIGHTS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wavtext5k" / "weights"


def endpoints(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Base URL per host: ``overrides``, then the environment, then the public hosts."""
    out = {}
    for host, default in DEFAULT_ENDPOINTS.items():
        env = next((os.environ[v] for v in ENDPOINT_ENV[host] if os.environ.get(v)), None)
        out[host] = ((overrides or {}).get(host) or env or default).rstrip("/")
    unknown = set(overrides or {}) - set(DEFAULT_ENDPOINTS)
    if unknown:
        raise WeightsError(f"unknown endpoint host(s) {sorted(unknown)}; known: {sorted(DEFAULT_ENDPOINTS)}")
    return out


def source(name: str) -> WeightSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(SOURCES)}") from None


def file_url(src: WeightSource, eps: dict[str, str]) -> str:
    return eps[src.host] + src.path


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


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX flock on ``path``) while the block runs, so that two fetches of one name
    or two registry updates never interleave: another process or thread waits its turn. No lock off POSIX."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_registry_entry(folder: Path, name: str, entry: dict) -> None:
    with _locked(Path(folder) / f".{REGISTRY_FILE}.lock"):  # read-modify-write: entries of others are kept
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


# --- HTTP download ----------------------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a HEAD stops at the first answer: HF puts hashes on the 302
        return None


def probe(url: str, timeout: float) -> dict:
    """The sha256 and size a server publishes for a file, from a HEAD request that does not follow redirects:
    Hugging Face sends an LFS file's sha256 and size as ``X-Linked-Etag`` / ``X-Linked-Size`` on its redirect
    to the storage host. Empty when the server sends neither (Zenodo) or does not answer HEAD. (A plain
    Content-Length is not taken: on a redirect it is the redirect page's; the download checks the real one.)"""
    req = urllib.request.Request(url, method="HEAD")
    try:
        resp = urllib.request.build_opener(_NoRedirect).open(req, timeout=timeout)
        headers = resp.headers
    except urllib.error.HTTPError as e:  # a 3xx surfaces here with the no-redirect opener
        if not 300 <= e.code < 400:
            return {}
        headers = e.headers
    except (urllib.error.URLError, OSError):
        return {}
    out = {}
    linked = (headers.get("X-Linked-Etag") or "").strip('"').lower()
    if re.fullmatch(r"[0-9a-f]{64}", linked):
        out["sha256"] = linked
    size = headers.get("X-Linked-Size")
    if size and size.isdigit():
        out["size"] = int(size)
    return out


def _part_meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def download(url: str, target: Path, *, retries: int = 3, timeout: float = 60.0, progress: bool = True,
             log: Callable[[str], None] = print) -> Path:
    """Download ``url`` into ``target + '.part'``, resuming a previous partial file with a Range request, and
    retrying an interrupted transfer up to ``retries`` times from where it stopped. Returns the .part path
    (complete: its size equals the server's); the caller checks it and renames it into place."""
    from tqdm import tqdm

    part = target.with_name(target.name + PART_SUFFIX)
    meta_path = _part_meta_path(part)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() and part.is_file() else {}
    if meta.get("url") != url:  # a partial file of another URL is not continued
        part.unlink(missing_ok=True)
        meta = {"url": url}
    attempt = 0
    while True:
        have = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": "wavtext5k-weights"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if meta.get("etag"):
                headers["If-Range"] = meta["etag"]
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send: the part may already be complete
                total = _total_from_content_range(e.headers.get("Content-Range"))
                if total == have:
                    return part
                part.unlink(missing_ok=True)  # the server's file is shorter than our part: start again
                continue
            raise WeightsError(f"{url}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            attempt += 1
            if attempt > retries:
                raise WeightsError(f"{url}: {e} (after {retries} retries; {have} bytes kept in {part})") from e
            time.sleep(min(2 ** attempt, 10) * 0.1)
            continue
        with resp:
            if resp.status == 206:
                start = _start_from_content_range(resp.headers.get("Content-Range"))
                if start != have:
                    raise WeightsError(f"{url}: asked for bytes from {have}, server sent from {start}")
                total = _total_from_content_range(resp.headers.get("Content-Range"))
                mode = "ab"
            else:  # 200: the whole file (the server ignores Range, or the file changed: If-Range)
                if have:
                    log(f"  {target.name}: server sent the whole file, restarting from byte 0")
                have, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            meta["etag"] = resp.headers.get("ETag") or meta.get("etag")
            meta_path.write_text(json.dumps(meta))
            if have:
                log(f"  {target.name}: resuming at byte {have}")
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=target.name,
                       disable=not progress, leave=False)
            error: Exception | None = None
            try:
                with open(part, mode) as f:
                    while chunk := resp.read(CHUNK):
                        f.write(chunk)
                        bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
            except (OSError, urllib.error.URLError) as e:  # a reset connection, a timeout, IncompleteRead
                error = e
            finally:
                bar.close()
        size = part.stat().st_size if part.is_file() else 0
        if error is None and total is not None and size != total:  # the server hung up early without an error
            error = ConnectionError(f"connection closed at {size} of {total} bytes")
        if error is not None:
            attempt += 1
            if attempt > retries:
                raise WeightsError(f"{url}: transfer interrupted ({error}) after {retries} retries; {size} bytes "
                                   f"kept in {part}, run fetch again to resume") from error
            time.sleep(min(2 ** attempt, 10) * 0.1)
            continue
        meta_path.unlink(missing_ok=True)
        return part


def _start_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/", value or "")
    return int(m.group(1)) if m else None


def _total_from_content_range(value: str | None) -> int | None:
    m = re.search(r"/(\d+)$", value or "")
    return int(m.group(1)) if m else None


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
    with _locked(folder / f".{name}.lock"):  # a concurrent fetch of the same name waits, then finds it present
        if src.kind == "hf-snapshot":
            return _fetch_snapshot(src, folder, endpoints(endpoint_overrides), force, progress, log)
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
    the_url = url or file_url(src, endpoints(endpoint_overrides))
    info = probe(the_url, timeout)
    expected = dict(src.published)
    note = src.published_note
    if "sha256" in info and "sha256" not in expected:
        expected["sha256"], note = info["sha256"], "sent by the server as X-Linked-Etag"
    log(f"{name}: downloading {the_url}")
    part = download(the_url, target, retries=retries, timeout=timeout, progress=progress, log=log)
    rejected = target.with_name(target.name + REJECTED_SUFFIX)
    want_size = src.size if src.size is not None else info.get("size")
    if want_size is not None and part.stat().st_size != want_size:
        os.replace(part, rejected)  # out of the way, so that the next fetch starts afresh
        raise WeightsError(f"{name}: the download holds {rejected.stat().st_size} bytes, "
                           f"{'published' if src.size is not None else 'announced by the server'}: {want_size}; "
                           f"kept as {rejected} for inspection")
    digests = file_digests(part, ("sha256", "md5"))
    try:
        _check_published(part, digests, expected, f"published ({note})")
    except WeightsError as e:
        os.replace(part, rejected)
        raise WeightsError(f"{name}: {e}; kept as {rejected} for inspection, not registered") from None
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    os.replace(part, target)
    entry = {"file": src.filename, "url": the_url, "size": target.stat().st_size, "recorded_at": _now(),
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
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    log(f"{src.name}: downloading {src.repo_id} from {eps['hf']}")
    switch_bars = not progress and not are_progress_bars_disabled()  # put back only what this call changes
    if switch_bars:
        disable_progress_bars()
    try:  # snapshot_download resumes and renames atomically itself; it checks LFS files' sha256
        snapshot_download(src.repo_id, local_dir=target, endpoint=eps["hf"], force_download=force,
                          allow_patterns=list(src.allow_patterns))
    except Exception as e:  # huggingface_hub raises many types (HTTP, offline, repo not found)
        raise WeightsError(f"{src.name}: {type(e).__name__}: {' '.join(str(e).split())}") from e  # one line
    finally:
        if switch_bars:
            enable_progress_bars()
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
        elif path.with_name(path.name + PART_SUFFIX).is_file():
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
