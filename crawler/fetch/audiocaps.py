"""AudioCaps from YouTube: each clip's 10 s section, audio only, through yt-dlp's Python API.

Layout (``DIR`` = ``--out``)::

    DIR/audiocaps/<version>/<split>.csv          the caption CSVs (downloaded from the AudioCaps repository, or copied
                                                 from ``--csv``)
    DIR/audiocaps/<version>/clips/<youtube_id>_<start_time>.flac   where ``wt5k-curate audiocaps --clips`` finds them
    DIR/audiocaps/<version>/items.jsonl          one crawl record per clip (manifests/crawl_record.py), last wins
    DIR/audiocaps/<version>/coverage.json        the coverage table printed at the end

Per clip: ``[start_time, start_time + 10 s]`` only (yt-dlp's ``download_ranges`` with cuts at the exact times,
ffmpeg from the ``imageio-ffmpeg`` wheel), converted to FLAC (lossless: the decoded samples as they came). Status
per clip: ok, unavailable (removed, private, 404), blocked (age, region, 403), rate_limited (429: the run waits
for Retry-After and stops after repeated 429s), bad_row (a CSV row that names no clip), error (anything else,
with yt-dlp's message). A rerun skips ok clips (their file checked) and recorded failures unless
``--retry-failed``; rate-limited clips are always tried again. Nothing is written outside ``DIR``.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from manifests.atomic import OutsideFolderError, append_inside, inside, write_text_inside
from manifests.crawl_record import ITEMS_FILE, CrawlRecord, last_records, record_line
from manifests.hashing import sha256_file

from .coverage import PAPER
from .download import DownloadError, checked_download

SPLITS = ("train", "val", "test")
CLIP_SECONDS = 10
CSV_URLS = {"1": "https://raw.githubusercontent.com/cdjkim/audiocaps/master/dataset/{split}.csv",
            "2": "https://raw.githubusercontent.com/cdjkim/audiocaps/master/dataset2.0/{split}.csv"}
DEFAULT_URL_TEMPLATE = "https://www.youtube.com/watch?v={youtube_id}"
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
SPIDER = "wt5k-fetch audiocaps"
COVERAGE_FILE = "coverage.json"
PAPER_TRAIN_CLIPS = PAPER[("AudioCaps", "train")][0]  # (section 4.1) the train clips the paper could download
MAX_RETRY_AFTER = 600.0

# yt-dlp's messages, by status (lower case; the first match wins)
_UNAVAILABLE = ("video unavailable", "private video", "has been removed", "is not available", "no longer available",
                "account associated with this video has been terminated", "http error 404", "http error 410",
                "does not exist", "this video has been removed", "unable to download webpage: http error 404")
_BLOCKED = ("sign in to confirm your age", "age-restricted", "age restricted", "inappropriate for some users",
            "not made this video available in your country", "blocked it in your country", "geo restrict",
            "http error 403", "members-only", "requires payment")
_RATE_LIMITED = ("http error 429", "too many requests", "confirm you're not a bot", "confirm you’re not a bot")


class AudioCapsError(RuntimeError):
    """A run that cannot go on (CSV unreadable, repeated 429s); the message says why and what to do."""


class RateLimitedError(AudioCapsError):
    """The server answered 429 too many times in a row: the run stopped."""


@dataclass(frozen=True)
class Clip:
    youtube_id: str
    start: int
    split: str

    @property
    def stem(self) -> str:
        return f"{self.youtube_id}_{self.start}"

    @property
    def id(self) -> str:
        return f"audiocaps:{self.stem}"


@dataclass
class CsvRows:
    clips: dict[str, Clip] = field(default_factory=dict)        # stem -> clip
    captions: dict[str, int] = field(default_factory=dict)      # stem -> caption rows
    bad_rows: list[tuple[str, str]] = field(default_factory=list)  # (where, why)


def read_audiocaps_csv(path: Path, split: str, rows: CsvRows | None = None) -> CsvRows:
    """The clips of one AudioCaps CSV; a row naming no valid clip is listed in ``bad_rows`` with its reason."""
    rows = rows if rows is not None else CsvRows()
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise AudioCapsError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        try:
            reader = csv.DictReader(f)
            missing = [c for c in ("youtube_id", "start_time") if c not in (reader.fieldnames or [])]
            if missing:
                raise AudioCapsError(f"{path}: not an AudioCaps CSV (no column {', '.join(missing)}; expected "
                                     f"{', '.join(COLUMNS)})")
            for line, row in enumerate(reader, 2):
                where = f"{path}:{line}"
                ytid = (row.get("youtube_id") or "").strip()
                start_text = (row.get("start_time") or "").strip()
                if not ytid:
                    rows.bad_rows.append((where, "empty youtube_id"))
                    continue
                if not YOUTUBE_ID.fullmatch(ytid):
                    rows.bad_rows.append((where, f"youtube_id {ytid[:40]!r} is not 11 characters of A-Z a-z 0-9 _ -"))
                    continue
                try:
                    start_f = float(start_text)
                except ValueError:
                    start_f = math.nan
                if not math.isfinite(start_f) or start_f < 0:
                    rows.bad_rows.append((where, f"start_time {start_text[:40]!r} is not a number of seconds >= 0"))
                    continue
                clip = Clip(ytid, int(start_f), split)
                rows.clips.setdefault(clip.stem, clip)
                rows.captions[clip.stem] = rows.captions.get(clip.stem, 0) + 1
        except UnicodeDecodeError:
            raise AudioCapsError(f"{path}: not UTF-8 text") from None
        except csv.Error as e:
            raise AudioCapsError(f"{path}: not a CSV ({e})") from None
    return rows


def private_ffmpeg(folder: Path) -> Path:
    """A folder holding ``ffmpeg``: a link to imageio-ffmpeg's bundled binary (yt-dlp looks for an executable
    named ``ffmpeg``; the wheel's is ``ffmpeg-linux-x86_64-v...``)."""
    import imageio_ffmpeg

    exe = Path(imageio_ffmpeg.get_ffmpeg_exe())
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / ("ffmpeg.exe" if os.name == "nt" else "ffmpeg")
    if not (link.exists() and link.resolve() == exe.resolve()):
        link.unlink(missing_ok=True)
        try:
            link.symlink_to(exe)
        except OSError:  # no symlinks (some Windows setups): a copy
            shutil.copy2(exe, link)
    return folder


def classify(message: str) -> str:
    """The status a yt-dlp error message stands for."""
    low = message.lower()
    for status, needles in (("rate_limited", _RATE_LIMITED), ("unavailable", _UNAVAILABLE), ("blocked", _BLOCKED)):
        if any(n in low for n in needles):
            return status
    return "error"


def retry_after(exc: BaseException) -> float | None:
    """The Retry-After (seconds) of the HTTP 429 behind a yt-dlp error, when its answer carried one."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        response = getattr(e, "response", None)
        if getattr(e, "status", None) == 429 and response is not None:
            value = (response.headers.get("Retry-After") or "").strip()
            if value.isdigit():
                return float(value)
            try:
                from email.utils import parsedate_to_datetime
                return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
            except (TypeError, ValueError):
                return None
        exc_info = getattr(e, "exc_info", None)
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__,
                 exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None]
    return None


class _Quiet:
    """yt-dlp's logger: nothing on the terminal (the progress bar and the records say what happened)."""

    def debug(self, msg):
        pass

    info = warning = debug

    def error(self, msg):
        pass


@dataclass
class Options:
    url_template: str = DEFAULT_URL_TEMPLATE
    workers: int = 2
    delay: float = 2.0                 # seconds each worker waits between clips
    cookies: str | None = None
    retry_failed: bool = False
    max_rate_limited: int = 5          # consecutive 429s before the run stops
    default_backoff: float = 60.0      # seconds to wait after a 429 without Retry-After
    socket_timeout: float = 30.0
    progress: bool = True
    limit: int | None = None           # at most this many clips attempted (a trial run)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Run:
    def __init__(self, folder: Path, opts: Options, log: Callable[[str], None]):
        self.folder, self.opts, self.log = folder, opts, log
        self.clips_dir = folder / "clips"
        self.tmp = folder / ".incoming"
        self.items = folder / ITEMS_FILE
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.consecutive_429 = 0
        self.stop_reason = ""

    def ydl_options(self, clip: Clip, ffmpeg_dir: Path) -> dict:
        from yt_dlp.utils import download_range_func

        opts = {
            "format": "bestaudio/best",
            "outtmpl": {"default": str(self.tmp / clip.stem / f"{clip.stem}.%(ext)s")},
            "download_ranges": download_range_func(None, [(clip.start, clip.start + CLIP_SECONDS)]),
            "force_keyframes_at_cuts": True,
            # The cut decodes the section (exact to the sample); ffmpeg would re-encode it with the container's
            # lossy default (Opus, Vorbis, AAC): a second generation of loss. FLAC in Matroska instead: lossless.
            "external_downloader_args": {"ffmpeg_o": ["-c:a", "flac", "-f", "matroska"]},
            "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": "flac"}],
            "ffmpeg_location": str(ffmpeg_dir),
            "noplaylist": True, "quiet": True, "no_warnings": True, "noprogress": True, "logger": _Quiet(),
            "socket_timeout": self.opts.socket_timeout, "retries": 1, "fragment_retries": 1,
            "overwrites": True, "continuedl": False, "cachedir": False,
            "paths": {"home": str(self.tmp / clip.stem), "temp": str(self.tmp / clip.stem)},
        }
        if self.opts.cookies:  # a copy: yt-dlp writes its cookie jar back on exit, and nothing outside --out is touched
            opts["cookiefile"] = str(self.folder / ".cookies.txt")
        return opts

    def record(self, clip: Clip, url: str, status: str, error: str | None = None, path: Path | None = None) -> None:
        rec = CrawlRecord(
            id=clip.id, source="audiocaps", source_id=clip.stem,
            view_link=f"https://www.youtube.com/watch?v={clip.youtube_id}&t={clip.start}s", download_link=url,
            crawl_time=_now(), spider=SPIDER, status=status, error=error,
            duration_s=float(CLIP_SECONDS) if path else None)
        if path is not None:
            rec.file_path = path.relative_to(self.folder).as_posix()
            rec.file_size = path.stat().st_size
            rec.sha256 = sha256_file(path)
            rec.audio_format = path.suffix.lstrip(".")
        self.append(rec)

    def append(self, rec: CrawlRecord) -> None:
        """One record, flushed and synced (a kill -9 loses at most the clip under way); never through a link
        planted in the folder."""
        with self.lock, append_inside(self.folder, ITEMS_FILE) as f:
            f.write(record_line(rec))
            f.flush()
            os.fsync(f.fileno())

    def fetch_one(self, clip: Clip, ffmpeg_dir: Path) -> str:
        from yt_dlp import YoutubeDL
        from yt_dlp.utils import YoutubeDLError

        url = self.opts.url_template.format(youtube_id=clip.youtube_id, start_time=clip.start)
        work = self.tmp / clip.stem
        while not self.stop.is_set():
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            try:
                with YoutubeDL(self.ydl_options(clip, ffmpeg_dir)) as ydl:
                    ydl.download([url])
                out = next((p for p in work.iterdir() if p.suffix == ".flac"), None)
                if out is None or out.stat().st_size == 0:
                    raise YoutubeDLError(f"no audio came out (files: {sorted(p.name for p in work.iterdir())})")
                final = self.clips_dir / f"{clip.stem}.flac"
                os.replace(out, final)
                with self.lock:
                    self.consecutive_429 = 0
                self.record(clip, url, "ok", path=final)
                return "ok"
            except YoutubeDLError as e:
                message = " ".join(str(e).split()).removeprefix("ERROR: ")
                status = classify(message)
                if status != "rate_limited":
                    with self.lock:
                        self.consecutive_429 = 0
                    self.record(clip, url, status, message)
                    return status
                wait_s = retry_after(e)
                with self.lock:
                    self.consecutive_429 += 1
                    n = self.consecutive_429
                if n >= self.opts.max_rate_limited:
                    self.stop_reason = (f"the server answered 429 Too Many Requests {n} times in a row (last: "
                                        f"{clip.youtube_id}); stopped. Clips already fetched are kept: run the same "
                                        f"command again later (fewer --workers, a longer --delay, or --cookies)")
                    self.stop.set()
                    self.record(clip, url, "rate_limited", message)
                    return "rate_limited"
                pause = min(wait_s if wait_s is not None else self.opts.default_backoff * n, MAX_RETRY_AFTER)
                self.log(f"  {clip.youtube_id}: 429 Too Many Requests; waiting {pause:.0f} s"
                         f"{' (Retry-After)' if wait_s is not None else ''}")
                if self.stop.wait(pause):
                    break
            finally:
                shutil.rmtree(work, ignore_errors=True)
        self.record(clip, url, "rate_limited", "run stopped before this clip was tried again")
        return "rate_limited"


def _clip_done(folder: Path, rec: CrawlRecord) -> bool:
    if rec.status != "ok" or not rec.file_path:
        return False
    path = folder / rec.file_path
    return path.is_file() and path.stat().st_size == rec.file_size


def fetch_audiocaps(out: str | os.PathLike, version: str = "1", splits: tuple[str, ...] = SPLITS, *,
                    csvs: dict[str, str | os.PathLike] | None = None, csv_url: str | None = None,
                    options: Options | None = None, log: Callable[[str], None] = print) -> dict:
    """Fetch the clips of ``splits`` into ``out/audiocaps/v<version>/``; returns the coverage per split.
    Raises ``RateLimitedError`` (after recording everything done) when repeated 429s stopped the run."""
    from tqdm import tqdm

    opts = options or Options()
    if version not in CSV_URLS:
        raise AudioCapsError(f"unknown AudioCaps version {version!r}; known: {', '.join(CSV_URLS)}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise AudioCapsError(f"unknown split(s) {', '.join(unknown)}; AudioCaps has {', '.join(SPLITS)}")
    if "{youtube_id}" not in opts.url_template:
        raise AudioCapsError(f"--url-template {opts.url_template!r} must contain {{youtube_id}}")
    folder = Path(out) / "audiocaps" / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    rows_by_split: dict[str, CsvRows] = {}
    for split in splits:
        target = folder / f"{split}.csv"
        given = (csvs or {}).get(split)
        if given is not None:
            if Path(given).resolve() != target.resolve():
                if not Path(given).is_file():
                    raise AudioCapsError(f"{given}: no such CSV (--csv {split}=...)")
                shutil.copyfile(given, target)
        elif not target.is_file():
            url = (csv_url or CSV_URLS[version]).format(split=split)
            log(f"audiocaps v{version}: downloading {url}")
            try:
                checked_download(url, target, allowed_hosts=("raw.githubusercontent.com",), max_bytes=64 << 20,
                                 progress=False, log=log)
            except DownloadError as e:
                raise AudioCapsError(str(e)) from None
        rows_by_split[split] = read_audiocaps_csv(target, split)
    try:  # a planted link: said once here, before any clip (the writes refuse it too)
        for name in (ITEMS_FILE, COVERAGE_FILE):
            inside(folder, name)
    except OutsideFolderError as e:
        raise AudioCapsError(str(e)) from None
    run = _Run(folder, opts, log)
    run.clips_dir.mkdir(exist_ok=True)
    if opts.cookies:
        try:
            shutil.copyfile(opts.cookies, folder / ".cookies.txt")
        except OSError as e:
            raise AudioCapsError(f"{opts.cookies}: cannot read the cookies file ({e.strerror})") from None
    shutil.rmtree(run.tmp, ignore_errors=True)  # a killed run's half-made clips: never under clips/
    done = last_records(run.items)
    for split, rows in rows_by_split.items():  # bad rows get a record each (the CSV line and why)
        for where, why in rows.bad_rows:
            key = f"audiocaps:bad_row:{where}"
            if key not in done:
                run.append(CrawlRecord(id=key, source="audiocaps", spider=SPIDER, crawl_time=_now(),
                                       status="bad_row", error=f"{where}: {why}"))
    todo = []
    seen = set()
    for split, rows in rows_by_split.items():
        for clip in rows.clips.values():
            if clip.stem in seen:
                continue
            seen.add(clip.stem)
            rec = done.get(clip.id)
            if rec is not None and _clip_done(folder, rec):
                continue
            if rec is not None and rec.status not in ("ok", "rate_limited") and not opts.retry_failed:
                continue
            todo.append(clip)
    if opts.limit is not None:
        todo = todo[:opts.limit]
    ffmpeg_dir = private_ffmpeg(folder / ".ffmpeg")
    old_path = os.environ.get("PATH", "")
    # yt-dlp's availability check for a partial download looks for ffmpeg on PATH, not at ffmpeg_location
    os.environ["PATH"] = f"{ffmpeg_dir}{os.pathsep}{old_path}"
    counts: dict[str, int] = {}
    try:
        if todo:
            log(f"audiocaps v{version}: {len(todo)} clips to fetch ({opts.workers} at a time, {opts.delay:g} s apart)")
        bar = tqdm(total=len(todo), unit="clip", disable=not opts.progress or not todo, desc="audiocaps")
        starts = iter(todo)
        with ThreadPoolExecutor(max(opts.workers, 1)) as pool:
            pending = set()

            def submit_next() -> bool:
                clip = next(starts, None)
                if clip is None or run.stop.is_set():
                    return False
                pending.add(pool.submit(run.fetch_one, clip, ffmpeg_dir))
                return True

            for _ in range(max(opts.workers, 1)):
                if not submit_next():
                    break
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    pending.discard(fut)
                    status = fut.result()
                    counts[status] = counts.get(status, 0) + 1
                    bar.update(1)
                    bar.set_postfix(counts, refresh=False)
                    if not run.stop.is_set() and opts.delay > 0:
                        run.stop.wait(opts.delay)
                    submit_next()
        bar.close()
    finally:
        os.environ["PATH"] = old_path
        shutil.rmtree(run.tmp, ignore_errors=True)
    coverage = coverage_table(folder, rows_by_split)
    write_text_inside(folder, COVERAGE_FILE, json.dumps(coverage, indent=1) + "\n")
    if run.stop.is_set():
        raise RateLimitedError(run.stop_reason)
    return coverage


def coverage_table(folder: Path, rows_by_split: dict[str, CsvRows]) -> dict:
    """Per split: clips and captions in the CSV, clips obtained, captions covered, and clips per status."""
    records = last_records(folder / ITEMS_FILE)
    out = {}
    for split, rows in rows_by_split.items():
        row = {"clips": len(rows.clips), "captions": sum(rows.captions.values()), "obtained": 0,
               "captions_covered": 0, "bad_rows": len(rows.bad_rows), "statuses": {}}
        for stem, clip in rows.clips.items():
            rec = records.get(clip.id)
            status = rec.status if rec is not None else "not_tried"
            if rec is not None and status == "ok" and not _clip_done(folder, rec):
                status = "missing_file"
            row["statuses"][status] = row["statuses"].get(status, 0) + 1
            if status == "ok":
                row["obtained"] += 1
                row["captions_covered"] += rows.captions[stem]
        out[split] = row
    return out


def format_coverage(coverage: dict) -> str:
    lines = [f"{'split':<6} {'clips in CSV':>12} {'obtained':>9} {'%':>6} {'captions':>9} {'covered':>8}  statuses"]
    for split, r in coverage.items():
        pct = 100 * r["obtained"] / r["clips"] if r["clips"] else 0.0
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        lines.append(f"{split:<6} {r['clips']:>12,} {r['obtained']:>9,} {pct:>5.1f}% {r['captions']:>9,} "
                     f"{r['captions_covered']:>8,}  {statuses}" + (f"; bad rows {r['bad_rows']}" if r["bad_rows"] else ""))
    if "train" in coverage:
        lines.append(f"(the paper obtained {PAPER_TRAIN_CLIPS:,} AudioCaps train clips)")
    return "\n".join(lines)
