"""Item pipelines: download the audio (Scrapy's FilesPipeline, one candidate URL after another) and
store every item in items.jsonl with its status. Spiders only parse; everything written happens here."""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.http.request import NO_CALLBACK
from scrapy.pipelines.files import FilesPipeline

from manifests.atomic import OutsideFolderError, atomic_path, inside

from .items import SoundItem
from .state import FILES_DIR, PART_SUFFIX
from .streaming import HEAD_SIZE, STREAM_TO, STREAMED, StreamedBody
from .statuses import DownloadFailed, classify_failure, describe_head
from .stopping import request_stop, stop_requested

logger = logging.getLogger(__name__)


def sniff_audio_format(head: bytes) -> str | None:
    """The audio container of a file from its first bytes, or None when it is not a known audio file."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"  # an ID3 tag or an MPEG audio frame sync
    return None


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def audio_relpath(source: str, source_id: str, fmt: str) -> str:
    """files/<source>/<source_id>.<fmt>, each part reduced to [A-Za-z0-9_-]: never a remote file name,
    never a path that leaves the output folder."""
    parts = [_UNSAFE.sub("_", str(p)).strip("_") or "unknown" for p in (source, source_id, fmt)]
    return f"{FILES_DIR}/{parts[0]}/{parts[1]}.{parts[2]}"


def safe_target(root: Path, relpath: str) -> Path:
    """root/relpath, refusing any path outside root."""
    try:
        return inside(root, relpath)
    except OutsideFolderError as e:
        raise DownloadFailed("unsafe_path", str(e)) from None


def write_atomically(root: Path, relpath: str, data: bytes) -> Path:
    """Write data to root/relpath through a temporary file and a rename; refuses paths outside root."""
    target = safe_target(root, relpath)
    with atomic_path(target, suffix=PART_SUFFIX) as tmp:
        tmp.write_bytes(data)
    return target


def copy_atomically(root: Path, source: Path, relpath: str) -> Path:
    """Copy a file to root/relpath in chunks, through a temporary file and a rename."""
    target = safe_target(root, relpath)
    with atomic_path(target, suffix=PART_SUFFIX) as tmp:
        shutil.copyfile(source, tmp)
    return target


class _RecordedFailures(logging.Filter):
    """Drops Scrapy's traceback log of a media download that failed in a way we record as a status:
    JsonlStorePipeline logs one line per failed sound instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        value = record.msg.value if hasattr(record.msg, "value") else None  # a Failure logged as the message
        return not isinstance(value, DownloadFailed)


logging.getLogger("scrapy.pipelines.media").addFilter(_RecordedFailures())


class AudioDownloadPipeline(FilesPipeline):
    """Tries the item's audio_urls in order until one gives audio. Each attempt is one FilesPipeline
    download (redirects followed, retries by the downloader middleware) whose body the download handler
    streams to a temporary file (crawler.streaming); the body is checked by its first bytes, the file
    renamed to a path built from source and id with the extension of the format received, and the size
    and sha256 computed while streaming are recorded. The item's status says what happened; the item is
    never dropped."""

    # Bytes of audio written by this process (every spider of one wt5k-crawl run), for WT5K_MAX_BYTES.
    bytes_written = 0

    def budget_left(self) -> int | None:
        budget = self.crawler.settings.getint("WT5K_MAX_BYTES")
        return max(0, budget - AudioDownloadPipeline.bytes_written) if budget > 0 else None

    def audio_cap(self) -> int:
        """The size cap of one audio file before the disk budget (0: none)."""
        settings = self.crawler.settings
        return settings.getint("WT5K_AUDIO_MAXSIZE") or settings.getint("DOWNLOAD_MAXSIZE")

    async def process_item(self, item: SoundItem) -> SoundItem:
        if item.get("status"):  # the spider already recorded why there is nothing to download
            return item
        urls = list(dict.fromkeys(item.get("audio_urls") or []))
        if not urls:
            item.update(status="no_audio_link", error="no audio link found on the page")
            return item
        failures: list[tuple[str, str]] = []
        down: dict[str, int] = {}  # host -> URLs of this sound not requested because the host is down
        for url in urls:
            if why := self._why_not_start(url):
                failures.append(("cancelled", why))
                break
            if (host := urlsplit(url).netloc.lower()) in down:
                down[host] += 1
                continue
            item["download_link"] = url
            item = await super().process_item(item)  # -> get_media_requests ... item_completed
            if item["status"] == "ok":
                return item
            failures.append((item["status"], f"{url}: {item['status']}: {item['error']}"))
            if item["status"] == "host_down":
                down[host] = 0
        # All failed: the status of the preferred URL, every attempt in the message; a sound whose URLs were
        # not all tried because the crawl stopped is `cancelled`, fetched again by the next run.
        status = "cancelled" if any(s == "cancelled" for s, _ in failures) else failures[0][0]
        skipped = [f"{n} more URLs on {host} not requested" for host, n in down.items() if n]
        item.update(download_link=urls[0], status=status, error=" | ".join([m for _, m in failures] + skipped))
        return item

    def _why_not_start(self, url: str) -> str | None:
        """Why no (further) download of an item is started: the crawl is stopping, or its disk budget is spent."""
        if stop_requested(self.crawler):
            why = " (the disk budget, --max-bytes, was reached)" if self.crawler.stats.get_value(
                "wt5k/max_bytes_reached") is not None else ""
            return f"{url}: cancelled: the crawl stopped{why} before it was requested"
        if (left := self.budget_left()) is not None and left <= 0:
            self._budget_reached()
            return (f"{url}: cancelled: the disk budget (--max-bytes "
                    f"{self.crawler.settings.getint('WT5K_MAX_BYTES')}) was reached")
        return None

    def _budget_reached(self) -> None:
        """Stop the crawl (finish reason max_bytes): what is left is recorded as cancelled."""
        if self.crawler.stats.get_value("wt5k/max_bytes_reached") is None:
            self.crawler.stats.set_value("wt5k/max_bytes_reached", AudioDownloadPipeline.bytes_written)
            logger.error("disk budget reached: %d bytes of audio written, --max-bytes (WT5K_MAX_BYTES) is %d: "
                         "stopping", AudioDownloadPipeline.bytes_written,
                         self.crawler.settings.getint("WT5K_MAX_BYTES"))
        request_stop(self.crawler, "max_bytes")

    def get_media_requests(self, item: SoundItem, info) -> list[Request]:
        # The body goes to a temporary file in the spider's folder (renamed into files/ once checked),
        # uncompressed: Scrapy's decompression middleware only sees an empty body. Audio alone gets the large
        # size cap (pages keep DOWNLOAD_MAXSIZE), bounded by what is left of the disk budget.
        cap = self.audio_cap()
        if (left := self.budget_left()) is not None and (cap == 0 or left < cap):
            cap = left
        meta = {STREAM_TO: self.store.basedir, "download_maxsize": cap,
                "download_warnsize": self.crawler.settings.getint("WT5K_AUDIO_WARNSIZE")}
        return [Request(item["download_link"], callback=NO_CALLBACK, meta=meta,
                        headers={"Accept-Encoding": "identity"})]

    def media_to_download(self, request, info, *, item=None):
        return None  # what is already done is decided per id (crawler.state), before any page is fetched

    async def media_downloaded(self, response, request, info, *, item=None) -> dict:
        streamed: StreamedBody | None = response.meta.get(STREAMED)
        try:
            return self._store(response, streamed, item)
        finally:
            if streamed is not None:  # renamed when it was audio; a page or an error leaves nothing behind
                streamed.path.unlink(missing_ok=True)

    def _store(self, response, streamed: StreamedBody | None, item: SoundItem) -> dict:
        if response.status != 200:
            raise DownloadFailed("http_error", f"HTTP {response.status} from {response.url}")
        # A streamed body is on disk; an empty one (or any body when streaming is switched off) is in memory.
        head = streamed.head if streamed else response.body[:HEAD_SIZE]
        size = streamed.size if streamed else len(response.body)
        if not size:
            raise DownloadFailed("empty", f"empty body with HTTP 200 from {response.url}")
        fmt = sniff_audio_format(head)
        if fmt is None:  # said, never quoted: a site's bytes do not go into items.jsonl or the log
            ctype = response.headers.get("Content-Type", b"").decode("latin-1")[:60]
            raise DownloadFailed("not_audio", f"not an audio file: {size} bytes of {describe_head(head)} "
                                              f"(Content-Type {ctype!r}) from {response.url}")
        if (left := self.budget_left()) is not None and size > left:  # downloads running side by side
            self._budget_reached()
            raise DownloadFailed("cancelled", f"the disk budget (--max-bytes) left {left} bytes for these {size}: "
                                              f"not kept")
        AudioDownloadPipeline.bytes_written += size
        relpath = audio_relpath(item["source"], item["source_id"], fmt)
        root = Path(self.store.basedir)
        if streamed:
            target = safe_target(root, relpath)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(streamed.path, target)
            checksum = streamed.sha256
        else:
            target = write_atomically(root, relpath, response.body)
            checksum = hashlib.sha256(response.body).hexdigest()
        for sibling in target.parent.glob(f"{target.stem}.*"):  # an older file of this id in another format
            if sibling != target and not sibling.name.endswith(PART_SUFFIX):
                sibling.unlink(missing_ok=True)
        self.inc_stats("downloaded")
        return {"url": response.url, "path": relpath, "checksum": checksum, "size": size, "format": fmt,
                "status": "downloaded"}

    def media_failed(self, failure, request, info):
        status, message = classify_failure(failure.value)
        raise DownloadFailed(status, message)

    def item_completed(self, results, item: SoundItem, info) -> SoundItem:
        ok, value = results[0]
        if ok:
            path = audio_relpath(item["source"], item["source_id"], value["format"])
            if path != value["path"]:
                # Scrapy reuses a finished download for a URL seen before in this run: the same file
                # serves another sound, which gets its own copy under its own id.
                root = Path(self.store.basedir)
                copy_atomically(root, root / value["path"], path)
            item.update(status="ok", error="", file_path=path, file_size=value["size"],
                        sha256=value["checksum"], audio_format=value["format"])
        else:
            status, message = classify_failure(value.value)
            # too large for what the budget left, not for the file cap: the budget stops the crawl
            if status == "too_large" and (left := self.budget_left()) is not None and left < (
                    self.audio_cap() or 1 << 62):
                status, message = "cancelled", f"the disk budget (--max-bytes) left {left} bytes: {message}"
                self._budget_reached()
            item.update(status=status, error=message, file_path=None, file_size=None, sha256=None,
                        audio_format=None)
        return item

    def file_path(self, request, response=None, info=None, *, item=None) -> str:
        if response is None:
            fmt = None
        else:
            streamed = response.meta.get(STREAMED)
            fmt = sniff_audio_format(streamed.head if streamed else response.body[:HEAD_SIZE])
        return audio_relpath(item["source"], item["source_id"], fmt or "bin")


class JsonlStorePipeline:
    """Appends each finished item to <FILES_STORE>/items.jsonl through the spider's CrawlState."""

    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler) -> "JsonlStorePipeline":
        return cls(crawler)

    def process_item(self, item: SoundItem) -> SoundItem:
        spider = self.crawler.spider
        item["crawl_time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        item["spider"] = spider.name
        if not item.get("status"):
            item.update(status="error", error="no status set by the pipelines")
        if item.get("error") is None:
            item["error"] = ""
        try:
            spider.state.append(item.record())
        except OSError as e:  # a full disk: stop; sounds without a record are fetched by the next run
            spider.crawler.stats.inc_value("wt5k/not_recorded")
            if spider.crawler.stats.get_value("wt5k/not_recorded") == 1:
                logger.error("%s: stopping the crawl; the sounds not recorded are fetched again by the next run", e)
            request_stop(spider.crawler, "write_error")
            return item
        if item["status"] != "ok":
            logger.warning("%s: %s: %s", item["id"], item["status"], item["error"])
        spider.crawler.stats.inc_value(f"wt5k/status/{item['status']}")
        return item
