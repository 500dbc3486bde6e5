"""One resumable, checked HTTP download for everything the toolkit fetches outside Scrapy and Hugging Face
(Zenodo files: Clotho's archives and caption CSVs, the PANNs Cnn14 checkpoint; a mirror given by URL).

A file downloads to ``<target>.part`` and continues from its end with an HTTP Range request (``If-Range`` on the
server's ETag, so a file that changed upstream restarts from byte 0). ``checked_download`` then compares the
size and digests with what is expected: a match is fsynced and renamed to its real name (nothing unchecked is
ever under it); a mismatch becomes ``<target>.rejected``, kept for inspection and never used. Redirects are
followed only to the hosts allowed for the download (its own host and those named), bodies are capped.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from manifests.file_kind import describe_file
from manifests.hashing import file_digests

PART_SUFFIX = ".part"
REJECTED_SUFFIX = ".rejected"  # a finished download whose checksum or size is wrong
CHUNK = 1 << 20
USER_AGENT = "wavtext5k-fetch (+https://github.com/; research dataset tools)"
DEFAULT_MAX_BYTES = 32 << 30  # no single file the toolkit fetches comes near 32 GiB (Clotho's largest: ~5 GB)


class DownloadError(RuntimeError):
    """A download that cannot finish correctly: bad server answer, redirect off the allowed hosts, size or
    checksum mismatch, body over its cap. The message names the URL or file and says what to do."""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX ``flock``) held while the block runs, so that two processes or threads
    never fetch one file at once; the lock file is removed on the way out (another waiter that opened the
    removed file notices and takes a fresh one). No lock off POSIX."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(path)
    while True:
        f = open(path, "a")
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            same = os.path.samestat(os.stat(path), os.fstat(f.fileno()))
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()  # the holder before us removed this file: lock the new one
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def host_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Whether ``url`` is http(s) on one of ``allowed`` hosts (``example.org`` exactly, ``.example.org`` any
    subdomain)."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    for a in allowed:
        a = a.lower()
        if host == a.lstrip(".") or (a.startswith(".") and host.endswith(a)):
            return True
    return False


def _redirect_guard(allowed: tuple[str, ...]) -> type[urllib.request.HTTPRedirectHandler]:
    class Guard(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not host_allowed(newurl, allowed):
                raise DownloadError(f"{req.full_url}: redirected to {newurl}, not one of the allowed hosts "
                                    f"{', '.join(allowed)}; refused")
            return super().redirect_request(req, fp, code, msg, headers, newurl)
    return Guard


def describe_bytes(path: Path) -> str:
    """What a file looks like from its first bytes, for messages about a file that is not what was asked for."""
    try:
        return describe_file(path)
    except OSError:
        return "unreadable"


def _part_meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _start_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/", value or "")
    return int(m.group(1)) if m else None


def _total_from_content_range(value: str | None) -> int | None:
    m = re.search(r"/(\d+)$", value or "")
    return int(m.group(1)) if m else None


def download(url: str, target: Path, *, allowed_hosts: Iterable[str] = (), max_bytes: int = DEFAULT_MAX_BYTES,
             retries: int = 3, timeout: float = 60.0, progress: bool = True,
             log: Callable[[str], None] = print) -> Path:
    """Download ``url`` into ``target + '.part'``, resuming a previous partial file with a Range request, and
    retrying an interrupted transfer up to ``retries`` times from where it stopped. Redirects go only to the
    URL's own host or ``allowed_hosts``; more than ``max_bytes`` is refused. Returns the .part path (complete:
    its size equals the server's); the caller checks it and renames it into place (``checked_download``)."""
    from tqdm import tqdm

    allowed = (urllib.parse.urlsplit(url).hostname or "", *allowed_hosts)
    opener = urllib.request.build_opener(_redirect_guard(tuple(allowed)))
    part = target.with_name(target.name + PART_SUFFIX)
    meta_path = _part_meta_path(part)
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() and part.is_file() else {}
    except ValueError:
        meta = {}
    if meta.get("url") != url:  # a partial file of another URL is not continued
        part.unlink(missing_ok=True)
        meta = {"url": url}
    attempt = 0
    while True:
        have = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
            if meta.get("etag"):
                headers["If-Range"] = meta["etag"]
        try:
            resp = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to send: the part may already be complete
                total = _total_from_content_range(e.headers.get("Content-Range"))
                if total == have:
                    return part
                part.unlink(missing_ok=True)  # the server's file is shorter than our part: start again
                continue
            raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            attempt += 1
            if attempt > retries:
                kept = (f"{have} bytes kept in {part}, run it again to resume" if have
                        else "nothing was downloaded")
                reason = getattr(e, "reason", e)
                raise DownloadError(f"{url}: {reason} (after {retries} retries; {kept})") from e
            time.sleep(min(2 ** attempt, 10) * 0.1)
            continue
        with resp:
            if resp.status == 206:
                start = _start_from_content_range(resp.headers.get("Content-Range"))
                if start != have:
                    raise DownloadError(f"{url}: asked for bytes from {have}, server sent from {start}")
                total = _total_from_content_range(resp.headers.get("Content-Range"))
                mode = "ab"
            else:  # 200: the whole file (the server ignores Range, or the file changed: If-Range)
                if have:
                    log(f"  {target.name}: server sent the whole file, restarting from byte 0")
                have, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise DownloadError(f"{url}: the server announces {total} bytes, over the cap of {max_bytes}; "
                                    f"refused")
            meta["etag"] = resp.headers.get("ETag") or meta.get("etag")
            meta_path.write_text(json.dumps(meta))
            if have:
                log(f"  {target.name}: resuming at byte {have}")
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=target.name,
                       disable=not progress, leave=False)
            error: Exception | None = None
            try:
                with open(part, mode) as f:
                    written = have
                    while chunk := resp.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise DownloadError(f"{url}: more than {max_bytes} bytes; refused (partial file "
                                                f"{part} removed)")
                        f.write(chunk)
                        bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
            except DownloadError:
                part.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
                raise
            except (OSError, urllib.error.URLError) as e:  # a reset connection, a timeout, IncompleteRead, ENOSPC
                error = e
            finally:
                bar.close()
        size = part.stat().st_size if part.is_file() else 0
        if error is None and total is not None and size != total:  # the server hung up early without an error
            error = ConnectionError(f"connection closed at {size} of {total} bytes")
        if error is not None:
            attempt += 1
            if attempt > retries:
                if size == 0:
                    part.unlink(missing_ok=True)
                    meta_path.unlink(missing_ok=True)
                kept = f"{size} bytes kept in {part}, run it again to resume" if size else "nothing was downloaded"
                raise DownloadError(f"{url}: transfer interrupted ({error}) after {retries} retries; {kept}") from error
            time.sleep(min(2 ** attempt, 10) * 0.1)
            continue
        meta_path.unlink(missing_ok=True)
        return part


def reject(part: Path, target: Path) -> Path:
    """Move a finished download that failed its checks out of the way, as ``<target>.rejected``."""
    rejected = target.with_name(target.name + REJECTED_SUFFIX)
    os.replace(part, rejected)
    return rejected


def check_and_place(part: Path, target: Path, *, size: int | None = None, expected: dict[str, str] | None = None,
                    where: str = "published") -> dict[str, str]:
    """Check a complete ``.part`` file against ``size`` and ``expected`` digests ({"md5"|"sha256": hex}); on a
    match fsync and rename it to ``target`` and return its sha256 and md5; else keep it as ``.rejected`` and
    raise ``DownloadError`` saying what the file looks like."""
    expected = {k: v.lower() for k, v in (expected or {}).items()}
    got = part.stat().st_size
    if size is not None and got != size:
        looks = describe_bytes(part)
        rejected = reject(part, target)
        raise DownloadError(f"{target.name}: the download holds {got} bytes ({looks}), {where}: {size}; kept as "
                            f"{rejected} for inspection, not used")
    digests = file_digests(part, tuple(sorted({"sha256", "md5", *expected})))
    for algo, want in expected.items():
        if digests[algo] != want:
            looks = describe_bytes(part)
            rejected = reject(part, target)
            raise DownloadError(f"{target.name}: {algo} {digests[algo]} does not match the {want} {where} ({looks}); "
                                f"kept as {rejected} for inspection, not used")
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    os.replace(part, target)
    return digests


def checked_download(url: str, target: Path, *, size: int | None = None, expected: dict[str, str] | None = None,
                     where: str = "published", allowed_hosts: Iterable[str] = (), max_bytes: int | None = None,
                     retries: int = 3, timeout: float = 60.0, progress: bool = True,
                     log: Callable[[str], None] = print) -> dict[str, str]:
    """``download`` then ``check_and_place``: the file is at ``target`` only once complete and checked. A known
    ``size`` is also the body cap. Returns the file's digests."""
    cap = size if size is not None else (max_bytes or DEFAULT_MAX_BYTES)
    part = download(url, target, allowed_hosts=allowed_hosts, max_bytes=cap, retries=retries, timeout=timeout,
                    progress=progress, log=log)
    return check_and_place(part, target, size=size, expected=expected, where=where)
