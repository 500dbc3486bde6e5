"""What a crawl folder already holds: the resume logic shared by spiders and pipelines.

`<folder>/items.jsonl` is an append-only log (one line per finished item, flushed at once), so a crawl
killed at any moment loses at most the items in flight. On start the log is read (a torn last line is
dropped), every "ok" file is verified (exists, size and sha256 match) and the log is rewritten with the
last record per id (temporary file, then rename). A re-run then skips ids whose record is final: ok and
verified, or failed unless retry_failed. Scrapy's JOBDIR is not used: listing pages must be fetched again
anyway to find new sounds, and a kill -9 can leave its queue inconsistent; this done-set needs neither.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from manifests.atomic import TMP_SUFFIX, append_fd_inside, inside
from manifests.hashing import sha256_file
from manifests.crawl_record import ITEMS_FILE, CrawlRecord, read_crawl_records, record_line, write_crawl_records

logger = logging.getLogger(__name__)
FILES_DIR = "files"
PART_SUFFIX = TMP_SUFFIX


class CrawlState:
    def __init__(self, folder: str | os.PathLike, retry_failed: bool = False):
        self.folder = Path(folder)
        self.items_path = self.folder / ITEMS_FILE
        self.retry_failed = retry_failed
        self.records: dict[str, CrawlRecord] = {}  # last record per id
        self.verified: set[str] = set()         # ids whose ok file checks out
        self.written: set[str] = set()          # ids written during this run
        self._fd: int | None = None             # items.jsonl, opened for appending
        self.write_error: str | None = None      # why items.jsonl can no longer be written (a full disk)

    def open(self) -> "CrawlState":
        self.folder.mkdir(parents=True, exist_ok=True)
        for part in self.folder.rglob(f"*{PART_SUFFIX}"):  # leftovers of an interrupted write
            part.unlink(missing_ok=True)
        for line in read_crawl_records(self.items_path):
            if line.record is None:
                logger.warning("%s: %s (torn write?): ignored", line.where, line.error)
                continue
            self.records[line.record.id] = line.record
        for sid, rec in self.records.items():
            if rec.status == "ok" and self._file_ok(rec):
                self.verified.add(sid)
        self.compact()
        self._fd = append_fd_inside(self.folder, ITEMS_FILE)  # never through a link planted in the folder
        bad = sum(1 for r in self.records.values() if r.status == "ok") - len(self.verified)
        logger.info("%s: %d records, %d verified files, %d ok records whose file is missing or changed",
                    self.items_path, len(self.records), len(self.verified), bad)
        return self

    def _file_ok(self, rec: CrawlRecord) -> bool:
        rel = rec.file_path
        if not rel:
            return False
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder.resolve()) or not path.is_file():
            return False
        return path.stat().st_size == rec.file_size and sha256_file(path) == rec.sha256

    def should_fetch(self, sound_id: str) -> bool:
        """True when this run must (re)process the sound: new, failed with retry_failed, or an ok record
        whose file is gone or changed, or one left `cancelled` by a stopped crawl. Also False for ids already
        finished during this run."""
        if sound_id in self.written:
            return False
        rec = self.records.get(sound_id)
        if rec is None:
            return True
        if rec.status == "ok":
            return sound_id not in self.verified
        if rec.status == "cancelled":  # the crawl stopped before this sound was done: not a failure
            return True
        return self.retry_failed

    def append(self, record: CrawlRecord) -> None:
        """Append one line, whole or not at all: a write that fails (a full disk) is cut back to the last
        complete line, and every later append fails at once with the same reason (OSError)."""
        if self.write_error:
            raise OSError(self.write_error)
        data = record_line(record).encode("utf-8")
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as e:
            self.write_error = f"cannot write {self.items_path}: {e.strerror or e}"
            try:
                os.ftruncate(self._fd, end)
            except OSError:
                pass
            raise OSError(self.write_error) from e
        self.records[record.id] = record
        self.written.add(record.id)
        if record.status == "ok":
            self.verified.add(record.id)

    def compact(self) -> None:
        """Rewrite items.jsonl with one line per id (the last record), atomically; on a full disk the log is
        left as it is (still valid: the last record of an id wins)."""
        if self.items_path.exists() or self.records:
            try:
                write_crawl_records(inside(self.folder, ITEMS_FILE), self.records.values())
            except OSError as e:
                logger.warning("%s not compacted (%s): it stays valid, the last record of each id wins",
                               self.items_path, e.strerror or e)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.compact()
