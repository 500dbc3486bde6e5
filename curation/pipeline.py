"""``curate``: inputs -> checked, resampled audio + manifest + rejects + statistics + figures.

Stages, in order; an item leaves at the first stage that rejects it, so every input is either a manifest row
or a line of rejects.csv:
  input/crawl  the crawler (or the input folder) has no usable file for it (its status and error)
  exclude      its id is on the exclusion list (e.g. overlaps an evaluation set)
  text         the paper's filter: no title and no description (with ``require_both``: either one missing)
  audio        the file fails a check in curation.audio (empty, unreadable, truncated, silent, ...), or "error"
               for an unexpected exception (retried on the next run)
  dedupe       its converted audio equals another item's: rejected with ``duplicate_of=<kept id>``; its converted
               file stays under audio/ (so a re-run has nothing to redo) but no manifest row points to it

Resumable: each audio result is appended to ``<out>/.state/results.jsonl`` as soon as it is done; a later run
reuses a result when the input file (path, size and mtime: the quick check of make and rsync), the audio
options and the output file are unchanged, so an interrupted run picks up where it stopped and a re-run over
the same inputs decodes nothing.
"""
from __future__ import annotations

import ctypes
import errno
import json
import math
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from manifests import ManifestRow, make_caption, write_manifest
from manifests.atomic import OutsideFolderError, append_inside, inside
from manifests.captions import BUILD_MODES, check_mode

from .audio import AudioOptions, AudioResult, process_audio
from .dedupe import find_duplicates
from .paths import output_paths
from .sources import Item, Reject, read_crawl_output, read_published_folder, write_rejects
from .split import DEFAULT_FRACTIONS, assign_split, check_fractions
from .stats import write_report
from .text import clean_tags, clean_text, missing_metadata

STATE_DIR = ".state"
RESULTS_FILE = "results.jsonl"
# The optional manifest columns curation writes (manifests/README.md).
MANIFEST_COLUMNS = ("title_raw", "description_raw", "tags_raw", "orig_sample_rate", "orig_channels", "gain_db",
                    "peak_dbfs", "clipped_samples")
ERROR_REASON = "error"  # an unexpected exception while processing: rejected this run, tried again on the next
# Errors that are no record's fault (a full disk, a read-only output): they stop the run, whose results so far
# are kept, instead of rejecting every remaining item.
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


@dataclass
class CurateOptions:
    caption_mode: str = "title_description"
    require_both: bool = False                # False: the paper's filter (a title or a description suffices)
    text_form: str = "NFC"                    # Unicode normal form: NFC, or NFKC to fold compatibility characters
    audio: AudioOptions = field(default_factory=AudioOptions)
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    exclude: frozenset[str] = frozenset()
    workers: int = 0                          # 0: all cores
    progress: bool = True
    manifest_name: str = "wavtext5k.csv"
    figures: bool = True
    allow_outside: tuple[str, ...] = ()       # folders inputs may be read from besides their own (--allow-outside)

    def __post_init__(self):
        check_mode(self.caption_mode, BUILD_MODES)
        if (Path(self.manifest_name).name != self.manifest_name or not self.manifest_name.endswith(".csv")
                or self.manifest_name in ("rejects.csv", ".csv")):
            raise ValueError(f"the manifest name must be a file name ending in .csv, other than rejects.csv, got "
                             f"{self.manifest_name!r}")
        self.fractions = check_fractions(self.fractions)
        self.exclude = frozenset(self.exclude)


@dataclass
class CurateReport:
    out_dir: Path
    manifest: Path
    rejects: Path
    n_inputs: int
    n_audios: int
    n_rows: int
    n_rejects: int
    processed: int                            # audio files decoded in this run
    reused: int                               # audio results taken from an earlier run
    rejects_by_reason: dict[str, int]
    stats: dict


@dataclass
class _Candidate:
    item: Item
    title: str
    description: str
    captions: list[tuple[str, str]]           # (raw, clean) caption of each manifest row


def curate(out_dir: str | os.PathLike, *, raw: Iterable[str | os.PathLike] = (),
           published: Iterable[tuple[str | os.PathLike, str | os.PathLike]] = (),
           items: Iterable[Item] = (), rejects: Iterable[Reject] = (),
           options: CurateOptions | None = None) -> CurateReport:
    """Curate crawl outputs (``raw``: folders holding ``<spider>/items.jsonl``), published-format CSVs with their
    audio folders (``published``: (csv, audio_dir) pairs) and/or ready-made ``items`` into ``out_dir``."""
    opts = options or CurateOptions()
    out_dir = Path(out_dir)
    all_rejects: list[Reject] = list(rejects)
    by_id: dict[str, Item] = {}
    sources = ([read_crawl_output(r, opts.allow_outside) for r in raw]
               + [read_published_folder(c, a, opts.allow_outside) for c, a in published])
    for its, rej in sources + [(list(items), [])]:
        all_rejects.extend(rej)
        for it in its:
            by_id.pop(it.id, None)  # a later input overrides an earlier one with the same id
            by_id[it.id] = it

    candidates: list[_Candidate] = []
    for item in by_id.values():
        rej = _early_reject(item, opts)
        if isinstance(rej, Reject):
            all_rejects.append(rej)
        else:
            candidates.append(rej)

    results, processed, reused = _run_audio(candidates, out_dir, opts)
    rows: list[ManifestRow] = []
    ok = {c.item.id: results[c.item.id] for c in candidates if results[c.item.id]["status"] == "ok"}
    for c in candidates:
        r = results[c.item.id]
        if r["status"] != "ok":
            all_rejects.append(Reject(c.item.id, "audio", r["reason"], r["detail"]))
    dups = find_duplicates({i: r["content_hash"] for i, r in ok.items()})
    for d, kept in dups.items():
        all_rejects.append(Reject(d, "dedupe", "duplicate", f"duplicate_of={kept}"))

    manifest = out_dir / opts.manifest_name
    for c in sorted(candidates, key=lambda c: c.item.id):
        if c.item.id in ok and c.item.id not in dups:
            rows.extend(_rows(c, ok[c.item.id], out_dir, manifest.parent, opts))
    write_manifest(inside(out_dir, opts.manifest_name), rows, optional=MANIFEST_COLUMNS)
    rejects_path = write_rejects(inside(out_dir, "rejects.csv"), all_rejects)

    stats = write_report(rows, out_dir, manifest, figures=opts.figures)
    by_reason: dict[str, int] = {}
    for r in all_rejects:
        by_reason[f"{r.stage}/{r.reason}"] = by_reason.get(f"{r.stage}/{r.reason}", 0) + 1
    return CurateReport(out_dir=out_dir, manifest=manifest, rejects=rejects_path,
                        n_inputs=len(by_id) + sum(1 for r in all_rejects if r.id not in by_id),
                        n_audios=len({r.id for r in rows}), n_rows=len(rows), n_rejects=len(all_rejects),
                        processed=processed, reused=reused, rejects_by_reason=dict(sorted(by_reason.items())),
                        stats=stats)


def _early_reject(item: Item, opts: CurateOptions) -> Reject | _Candidate:
    """The checks that need no audio: crawl status, exclusion list, text."""
    if item.status != "ok":
        return Reject(item.id, item.fail_stage, item.status, item.error)
    if item.id in opts.exclude:
        return Reject(item.id, "exclude", "excluded", "id is on the exclusion list")
    title = clean_text(item.title_raw, opts.text_form)
    description = clean_text(item.description_raw, opts.text_form)
    if item.captions is not None:
        captions = [(raw, c) for raw, c in ((raw, clean_text(raw, opts.text_form)) for raw in item.captions) if c]
        if not captions:
            return Reject(item.id, "text", "empty_caption", f"{len(item.captions)} caption(s), all empty")
    else:
        missing = missing_metadata(title, description, opts.require_both)
        if missing:
            return Reject(item.id, "text", "empty_metadata", missing)
        captions = [(item.description_raw, make_caption(title, description, opts.caption_mode))]
    if not item.audio:
        return Reject(item.id, "audio", "missing_file", "no audio file for this item")
    return _Candidate(item, title, description, captions)


def _work(item_id: str, src: str, out_dir: str, rel: str, opts: AudioOptions) -> dict:
    """One audio job, in a worker process: the result record that goes to the state file."""
    st = os.stat(src) if os.path.isfile(src) else None
    try:
        res = process_audio(src, Path(out_dir) / rel, opts)
    except Exception as e:  # an unforeseen failure (a library bug) costs this item, not the whole run ...
        if isinstance(e, OSError) and e.errno in FATAL_ERRNOS:  # ... but a full disk stops it
            raise
        res = AudioResult(status="rejected", reason=ERROR_REASON, detail=f"{type(e).__name__}: {e}")
    return {"id": item_id, "input": src, "size": st.st_size if st else None, "mtime_ns": st.st_mtime_ns if st else None,
            "options": opts.key(), "output": rel, **asdict(res)}


# glibc mallopt parameters.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _init_worker() -> None:
    """Keep freed block buffers in the worker's heap. By default glibc hands a few MB back to the kernel after
    every block and faults them in again for the next one: about ten times the page faults, and about 10 %
    of a worker's CPU time (measured with 2 workers). Workers are our own processes, so their allocator can
    be tuned; elsewhere (not glibc) this does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 16 << 20)  # also stops glibc from adjusting the thresholds itself
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        pass


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(show: bool, total: int):
    """A tqdm bar, or nothing at all: even a disabled tqdm starts its monitor thread, and a live thread makes the
    next run start its workers with the slower forkserver (see _mp_context)."""
    return tqdm(total=total, unit="file", desc="curate audio") if show and total else _NoProgress()


def _mp_context():
    """fork (workers start at once) when this process runs no other thread; otherwise forkserver, so that workers
    never inherit locks held by the caller's threads (a forkserver costs about a second to start)."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def _load_state(path: Path) -> dict[str, dict]:
    state: dict[str, dict] = {}
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut off by an interrupted run
                    continue
                if isinstance(rec, dict) and "id" in rec:
                    state[rec["id"]] = rec
    return state


def _reusable(rec: dict | None, src: str, rel: str, key: str, out_dir: Path) -> dict | None:
    """The earlier result if still valid, else None."""
    if not rec or rec.get("reason") == ERROR_REASON or rec.get("options") != key or rec.get("input") != src or rec.get("output") != rel:
        return None
    try:
        st = os.stat(src)
    except OSError:  # still missing: the earlier "missing_file" result stands
        return rec if rec.get("reason") == "missing_file" else None
    # No content hash of the input: reading every input a second time cost 5-8 % of the throughput, and a touched
    # file is merely converted again (to the same result).
    if st.st_size != rec.get("size") or st.st_mtime_ns != rec.get("mtime_ns"):
        return None
    if rec.get("status") == "ok" and not (out_dir / rel).is_file():
        return None
    return rec


def _run_audio(cands: list[_Candidate], out_dir: Path, opts: CurateOptions) -> tuple[dict[str, dict], int, int]:
    state_path = out_dir / STATE_DIR / RESULTS_FILE
    state = _load_state(state_path)
    key = opts.audio.key()
    results: dict[str, dict] = {}
    jobs = []
    with append_inside(out_dir, state_path.relative_to(out_dir)) as log:
        def record(rec: dict) -> None:
            results[rec["id"]] = rec
            log.write(json.dumps(rec) + "\n")
            log.flush()  # written as it finishes: an interrupted run keeps everything done so far

        refused = 0
        rels = output_paths(((c.item.id, c.item.source, c.item.source_id) for c in cands), opts.audio.extension)
        for c in cands:
            rel = rels[c.item.id]
            try:
                inside(out_dir, rel)  # audio/<source> may be a planted link: the file never lands outside
            except OutsideFolderError as e:
                record({"id": c.item.id, "status": "rejected", "reason": "unsafe_path", "detail": str(e)})
                refused += 1
                continue
            old = state.get(c.item.id)
            rec = _reusable(old, c.item.audio, rel, key, out_dir)
            if rec is None:
                jobs.append((c.item.id, c.item.audio, str(out_dir), rel, opts.audio))
            else:
                results[rec["id"]] = rec
        # Largest files first: the long ones start early instead of finishing alone at the end.
        jobs.sort(key=lambda j: os.path.getsize(j[1]) if os.path.isfile(j[1]) else 0, reverse=True)
        workers = opts.workers or os.cpu_count() or 1
        if workers <= 1 or len(jobs) <= 1:
            bar = _progress(opts.progress, len(jobs))
            for job in jobs:
                record(_work(*job))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=_mp_context(),
                                     initializer=_init_worker) as pool:
                futures = [pool.submit(_work, *job) for job in jobs]
                bar = _progress(opts.progress, len(jobs))  # after the workers have started: tqdm runs a thread
                try:
                    for fut in as_completed(futures):
                        record(fut.result())
                        bar.update()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
        bar.close()
    return results, len(jobs), len(cands) - len(jobs) - refused


def _rows(c: _Candidate, res: dict, out_dir: Path, manifest_dir: Path, opts: CurateOptions) -> list[ManifestRow]:
    it = c.item
    audio_path = os.path.relpath(out_dir / res["output"], manifest_dir).replace(os.sep, "/")
    split = it.split or assign_split(it.id, opts.fractions)
    tags = clean_tags(it.tags, opts.text_form)
    fixed = it.captions is not None
    return [ManifestRow(
        id=it.id, source=it.source, audio_path=audio_path, caption=cap,
        duration_s=round(res["duration_s"], 6), sample_rate=res["sample_rate"], channels=res["channels"],
        sha256=res["sha256"], title=c.title, description=cap if fixed else c.description, tags=tags,
        author=it.author, license=it.license, view_link=it.view_link, download_link=it.download_link, split=split,
        title_raw=it.title_raw, description_raw=raw, tags_raw=it.tags_raw,
        orig_sample_rate=res["orig_sample_rate"], orig_channels=res["orig_channels"],
        gain_db=round(_db(res["gain"]), 6), peak_dbfs=round(_db(res["out_peak"]), 6),
        clipped_samples=res["clipped_samples"],
    ) for raw, cap in c.captions]


def _db(x: float) -> float:
    return 20 * math.log10(x)
