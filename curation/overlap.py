"""The leakage audit (``wt5k-curate overlap``): every pair of a training item and a test item that share audio or
a caption, however the audio was re-encoded, resampled, trimmed or excerpted.

Kinds of overlap, each pair reported once per kind (``exact`` replaces ``audio``/``contained``):
- ``exact``: equal decoded samples (rate and channels included): a WAV and its FLAC, a file copied twice;
- ``audio``: the same recording (landmark fingerprints, curation/fingerprint.py, agreeing at one time offset)
  over at least half of the longer file: re-encoded, resampled, downmixed, louder or softer, trimmed;
- ``contained``: the same, over less than half of the longer file: an excerpt inside a longer recording;
- ``text``: captions equal after normalising case, punctuation and whitespace, or with a character 3-gram
  Jaccard similarity of at least ``--text-threshold`` (curation/overlap_text.py).
"""
from __future__ import annotations

import csv
import json
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from manifests import read_manifest, write_manifest
from manifests.atomic import atomic_path
from manifests.hashing import sha256_file
from manifests.schema import SPLITS, resolve_audio

from .fingerprint import EXACT_ONLY, FRAME_S, HASH_SPACE, MIN_DURATION_S, VERSION, Fingerprint, FingerprintCache, fingerprint_file
from .folder import scan_audio
from .overlap_text import DEFAULT_THRESHOLD, caption_pairs

KINDS = ("exact", "audio", "contained", "text")
AUDIO_KINDS = ("exact", "audio", "contained")
COLUMNS = ("train_id", "test_id", "kind", "score", "train_start_s", "test_start_s", "overlap_s", "train_set",
           "test_set")
# A match needs MIN_HITS training hashes agreeing at one time offset (+-1 frame), a score (those hits over the
# hashes the overlapping stretch holds, of the sparser file) of MIN_SCORE, and a focus (the share of the two
# files' common hashes that fall at that offset) of MIN_FOCUS unless it has FOCUS_WAIVED_HITS hits: different
# sounds with a steady tone in common share hashes at many offsets, a copy at one (a periodic sound, an alarm,
# a loop, has several offsets but many hits). Calibrated on real sounds (curation/README.md, "Overlap audit").
MIN_HITS = 5
MIN_SCORE = 0.12
MIN_FOCUS = 0.3
FOCUS_WAIVED_HITS = 15
MARGIN_S = 2.5  # the overlap reported reaches this far beyond the first and last matched landmark (sparse sounds)
SHORT_S = 1.0  # files under this are listed as short: few landmarks, an audio match may be missed
LONG_S = 3600.0  # files of this length or more are listed as long (handled in blocks, matched as usual)
AUDIO_SHARE = 0.5  # a match over at least this share of the longer file is `audio`, less is `contained`
MAX_POSTINGS = 20_000  # a hash held this often in the index says nothing about which file (tones, clicks): skipped
SHARD_HASHES = 50_000_000  # training hashes per index shard (12 bytes each): bounds the matcher's memory


class UsageError(ValueError):
    """An audit that cannot start (a path that is neither a manifest nor a folder, an unsafe --drop)."""


@dataclass
class Source:
    """One --train or --test PATH: a manifest (optionally one split of it) or a folder of audio."""
    role: str
    spec: str
    path: Path
    split: str | None = None
    name: str = ""
    is_folder: bool = False
    ignored_files: int = 0


@dataclass
class Item:
    source: Source
    id: str
    audio: Path | None
    captions: list[str] = field(default_factory=list)
    fp: Fingerprint | None = None

    @property
    def key(self) -> str:
        return f"{self.source.name}\x00{self.id}"


@dataclass
class Pair:
    train: Item
    test: Item
    kind: str
    score: float
    train_start_s: float | None = None
    test_start_s: float | None = None
    overlap_s: float | None = None
    hits: int = 0  # hashes matched at the offset (audio and contained)
    focus: float = 0.0

    def row(self) -> dict[str, str]:
        def num(v: float | None, digits: int = 2) -> str:
            return "" if v is None else f"{v:.{digits}f}"
        return {"train_id": self.train.id, "test_id": self.test.id, "kind": self.kind, "score": num(self.score, 3),
                "train_start_s": num(self.train_start_s), "test_start_s": num(self.test_start_s),
                "overlap_s": num(self.overlap_s), "train_set": self.train.source.name,
                "test_set": self.test.source.name}


@dataclass
class AuditReport:
    out_dir: Path
    pairs: list[Pair]
    problems: list[dict]
    summary: dict
    dropped: list[str] = field(default_factory=list)  # one line per --drop manifest written


# ---------------------------------------------------------------- inputs

def parse_source(spec: str, role: str) -> Source:
    """``FILE.csv``, ``FILE.csv:SPLIT`` or a folder."""
    path = Path(spec)
    if path.is_dir():
        return Source(role, spec, path, is_folder=True)
    if path.is_file():
        return Source(role, spec, path)
    head, sep, split = spec.rpartition(":")
    if sep and split in SPLITS and split and Path(head).is_file():
        return Source(role, spec, Path(head), split=split)
    raise UsageError(f"--{role} {spec!r}: no such manifest (FILE.csv or FILE.csv:SPLIT with SPLIT train, val or "
                     "test) or folder")


def _name_sources(sources: list[Source]) -> None:
    """Dataset names for the summary: the manifest's file stem (with :SPLIT) or the folder's name, made unique."""
    seen: dict[str, int] = {}
    for s in sources:
        if s.is_folder:
            base = s.path.resolve().name or str(s.path)
        else:
            base = s.path.stem + (f":{s.split}" if s.split else "")
        n = seen[base] = seen.get(base, 0) + 1
        s.name = base if n == 1 else f"{base}#{n}"


def read_items(src: Source, problems: list[dict]) -> list[Item]:
    """The items of a source; a folder without audio and a manifest row without its audio go to ``problems``."""
    if src.is_folder:
        files, other, _ = scan_audio(src.path)  # the walk of `wt5k-curate folder`: the same files are audio
        items = [Item(src, rel, src.path / rel) for rel in files]
        others = src.ignored_files = sum(other.values())
        if not items:
            problems.append(_problem(src.name, "", src.path, "no_audio", f"a folder with no audio file ({others} other "
                                                                         "files)"))
        return items
    by_id: dict[str, Item] = {}
    for row in read_manifest(src.path):
        if src.split is not None and row.split != src.split:
            continue
        it = by_id.get(row.id)
        if it is None:
            it = by_id[row.id] = Item(src, row.id, resolve_audio(src.path, row))
        if row.caption.strip():
            it.captions.append(row.caption)
    if not by_id:
        what = f"no row of split {src.split}" if src.split else "no row"
        problems.append(_problem(src.name, "", src.path, "no_rows", what))
    return list(by_id.values())


# ---------------------------------------------------------------- fingerprints

def _problem(set_name: str, id_: str, path: Path, reason: str, detail: str) -> dict:
    """A file (or a folder, id "") the audit could not read, or read only in part: one row of the summary."""
    return {"set": set_name, "id": id_, "path": str(path), "reason": reason, "detail": detail}


def _fingerprint_job(path: str, cache_dir: str, query: bool) -> tuple[Fingerprint, bool]:
    """(fingerprint, taken from the cache) of one file; in a worker process when --workers > 1."""
    sha = sha256_file(path)
    cache = FingerprintCache(cache_dir)
    fp = cache.get(sha, query)
    if fp is not None:
        return fp, True
    fp = fingerprint_file(path, sha, query)
    cache.put(fp)
    return fp, False


def fingerprint_items(items: list[Item], cache_dir: Path, workers: int, progress: bool,
                      problems: list[dict]) -> dict[str, int]:
    """Fill every item's ``fp`` (each file read once); missing and unreadable files go to ``problems``."""
    by_path: dict[Path, list[Item]] = defaultdict(list)
    for it in items:
        if it.audio is not None:
            by_path[it.audio].append(it)
    todo = []
    query = {p: any(it.source.role == "test" for it in its) for p, its in by_path.items()}
    for p, its in by_path.items():
        if p.is_file():
            todo.append(p)
            continue
        for it in its:
            problems.append(_problem(it.source.name, it.id, p, "missing_audio", "no such file"))
    counts = {"files": len(todo), "cached": 0, "computed": 0}
    bar = tqdm(total=len(todo), unit="file", desc="fingerprint", disable=not progress or not todo)

    def results() -> Iterator[tuple[Path, Fingerprint | Exception, bool]]:
        if workers <= 1:
            for p in todo:
                try:
                    yield p, *_fingerprint_job(str(p), str(cache_dir), query[p])
                except OSError as e:
                    yield p, e, False
            return
        with ProcessPoolExecutor(workers) as pool:
            futures = [(p, pool.submit(_fingerprint_job, str(p), str(cache_dir), query[p])) for p in todo]
            for p, fut in futures:
                try:
                    yield p, *fut.result()
                except OSError as e:
                    yield p, e, False

    for p, fp, cached in results():
        bar.update(1)
        if isinstance(fp, Exception):
            for it in by_path[p]:
                problems.append(_problem(it.source.name, it.id, p, "unreadable", str(fp)))
            continue
        counts["cached" if cached else "computed"] += 1
        for it in by_path[p]:
            it.fp = fp
            if fp.problem:
                problems.append(_problem(it.source.name, it.id, p, fp.problem, fp.detail))
            elif fp.duration_s < SHORT_S:
                problems.append(_problem(it.source.name, it.id, p, "short", f"{fp.duration_s:.2f} s < {SHORT_S:g} s: "
                                         "few landmarks, an audio match may be missed"))
            elif fp.duration_s >= LONG_S:
                problems.append(_problem(it.source.name, it.id, p, "long", f"{fp.duration_s / 3600:.1f} h: "
                                         "fingerprinted in blocks, in bounded memory; matched as usual"))
    bar.close()
    return counts


# ---------------------------------------------------------------- matching

@dataclass
class AudioMatch:
    train: int  # index into the index's fingerprints
    score: float
    hits: int
    train_start_s: float
    test_start_s: float
    overlap_s: float
    focus: float  # share of the two files' common hashes that agree at this offset


class HashIndex:
    """An inverted index hash -> (file, anchor frame) over training fingerprints: a query looks up its hashes,
    histograms (file, time offset) and keeps the files whose hashes agree at one offset."""

    def __init__(self, fps: list[Fingerprint]):
        self.fps = fps
        lens = np.array([len(fp.hashes) for fp in fps], np.int64)
        h = np.concatenate([fp.hashes for fp in fps]) if fps else np.zeros(0, np.uint32)
        t = np.concatenate([fp.times for fp in fps]) if fps else np.zeros(0, np.uint32)
        f = np.repeat(np.arange(len(fps), dtype=np.uint32), lens)
        order = np.argsort(h, kind="stable")
        self.f, self.t = f[order], t[order]
        # hash -> its postings self.f/self.t[starts[hash]:starts[hash + 1]]: a lookup, not a search
        self.starts = np.zeros(HASH_SPACE + 1, np.int64)
        np.cumsum(np.bincount(h, minlength=HASH_SPACE), out=self.starts[1:])
        # each file's anchor frames, sorted (fingerprints keep them in time order), for the overlap's hash count
        self.times = [fp.times for fp in fps]

    def query(self, q: Fingerprint) -> list[AudioMatch]:
        qh, qt = np.concatenate([q.hashes, q.q_hashes]), np.concatenate([q.times, q.q_times])
        lo, cnt = self.starts[qh], self.starts[qh.astype(np.int64) + 1] - self.starts[qh]
        cnt[cnt > MAX_POSTINGS] = 0
        total = int(cnt.sum())
        if total == 0:
            return []
        qi = np.repeat(np.arange(len(qh)), cnt)
        starts = np.cumsum(cnt) - cnt
        pos = np.arange(total) - np.repeat(starts - lo, cnt)
        files = self.f[pos].astype(np.int64)
        offs = self.t[pos].astype(np.int64) - qt[qi].astype(np.int64)
        key = (files << 32) | (offs + (1 << 31))
        order = np.argsort(key, kind="stable")
        key, pos, hit_times = key[order], pos[order], qt[qi][order]
        uk, c = np.unique(key, return_counts=True)
        ufiles, inv = np.unique(uk >> 32, return_inverse=True)
        per_file = dict(zip(ufiles.tolist(), np.bincount(inv, weights=c).tolist()))  # hits at any offset
        smooth = c.copy()  # hits at offset d, d - 1 and d + 1: frame boundaries move with a trim
        nxt = uk[1:] == uk[:-1] + 1
        smooth[1:] += np.where(nxt, c[:-1], 0)
        smooth[:-1] += np.where(nxt, c[1:], 0)
        good = smooth >= MIN_HITS
        if not good.any():
            return []
        uk, smooth = uk[good], smooth[good]
        best = np.lexsort((-smooth, uk >> 32))  # per file, its best offset first
        uk = uk[best]
        out = []
        for k in uk[np.r_[True, (uk >> 32)[1:] != (uk >> 32)[:-1]]]:
            lo_i, hi_i = np.searchsorted(key, [k - 1, k + 2])
            m = self._verify(q, int(k >> 32), int(k & 0xFFFFFFFF) - (1 << 31), pos[lo_i:hi_i], hit_times[lo_i:hi_i],
                             per_file[int(k >> 32)])
            if m is not None:
                out.append(m)
        return out

    def _verify(self, q: Fingerprint, fi: int, off: int, pos: np.ndarray, hit_times: np.ndarray, all_hits: float
                ) -> AudioMatch | None:
        """The match with file ``fi`` at offset ``off``, given its hits at offsets off - 1 .. off + 1, or None
        below the thresholds. ``hits`` counts the training hashes matched (each once, whichever query shift
        matched it)."""
        hits = len(np.unique(pos))
        if hits < MIN_HITS:
            return None
        tfp = self.fps[fi]
        qlen, tlen = q.duration_s / FRAME_S, tfp.duration_s / FRAME_S
        # the stretch both files cover at this offset (query frames), cut to the matched hashes +- MARGIN_S: two
        # mixes holding the same sound amid different material share only that much
        r0, r1 = max(0.0, -off), min(qlen, tlen - off)
        matched = hit_times.astype(np.int64)
        r0, r1 = max(r0, matched.min() - MARGIN_S / FRAME_S), min(r1, matched.max() + MARGIN_S / FRAME_S)
        nq = np.count_nonzero((q.times >= r0) & (q.times < r1))
        tt = self.times[fi]
        nt = int(np.searchsorted(tt, r1 + off, "left") - np.searchsorted(tt, r0 + off, "left"))
        score = min(1.0, hits / max(min(nq, nt), 1))
        focus = len(pos) / all_hits
        if score < MIN_SCORE or (focus < MIN_FOCUS and hits < FOCUS_WAIVED_HITS):
            return None
        return AudioMatch(fi, score, hits, (r0 + off) * FRAME_S, r0 * FRAME_S, (r1 - r0) * FRAME_S,
                          focus)


def _shards(fps: list[Fingerprint]) -> Iterator[list[Fingerprint]]:
    shard, n = [], 0
    for fp in fps:
        if shard and n + len(fp.hashes) > SHARD_HASHES:
            yield shard
            shard, n = [], 0
        shard.append(fp)
        n += len(fp.hashes)
    if shard:
        yield shard


def audio_pairs(train: list[Item], test: list[Item], progress: bool) -> list[Pair]:
    """exact, audio and contained pairs between the items' fingerprints."""
    pairs: list[Pair] = []
    by_pcm: dict[str, list[Item]] = defaultdict(list)
    for it in train:
        if it.fp and it.fp.pcm_sha256 and it.fp.problem in ("", *EXACT_ONLY):
            by_pcm[it.fp.pcm_sha256].append(it)
    for it in test:
        if it.fp and it.fp.pcm_sha256 and it.fp.problem in ("", *EXACT_ONLY):
            for tr in by_pcm.get(it.fp.pcm_sha256, ()):
                pairs.append(Pair(tr, it, "exact", 1.0, 0.0, 0.0, it.fp.duration_s))

    def unique(items: list[Item]) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = defaultdict(list)
        for it in items:
            if it.fp and it.fp.matchable:
                out[it.fp.sha256].append(it)
        return out

    tr_by_sha, te_by_sha = unique(train), unique(test)
    tr_fps = [its[0].fp for its in tr_by_sha.values()]
    te_fps = [its[0].fp for its in te_by_sha.values()]
    shards = list(_shards(tr_fps))
    bar = tqdm(total=len(te_fps) * len(shards), unit="file", desc="match", disable=not progress or not te_fps)
    for shard in shards:
        index = HashIndex(shard)
        for q in te_fps:
            bar.update(1)
            for m in index.query(q):
                t_fp = shard[m.train]
                if t_fp.pcm_sha256 == q.pcm_sha256:
                    continue  # exact, reported above
                kind = "audio" if m.overlap_s >= AUDIO_SHARE * max(t_fp.duration_s, q.duration_s) else "contained"
                for tr in tr_by_sha[t_fp.sha256]:
                    for te in te_by_sha[q.sha256]:
                        pairs.append(Pair(tr, te, kind, m.score, m.train_start_s, m.test_start_s, m.overlap_s,
                                          m.hits, m.focus))
        del index
    bar.close()
    return pairs


def text_pairs(train: list[Item], test: list[Item], threshold: float) -> list[Pair]:
    tr = {it.key: it for it in train if it.captions}
    te = {it.key: it for it in test if it.captions}
    found = caption_pairs({k: it.captions for k, it in tr.items()}, {k: it.captions for k, it in te.items()},
                          threshold)
    return [Pair(tr[a], te[b], "text", s) for (a, b), s in found.items()]


# ---------------------------------------------------------------- outputs

def summarise(sources: list[Source], pairs: list[Pair], problems: list[dict], n_items: dict[str, int],
              fp_counts: dict, text_threshold: float, seconds: float) -> dict:
    counts: dict[str, dict[str, dict[str, int]]] = {}
    groups: dict[tuple[str, str, str], list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[(p.train.source.name, p.test.source.name, p.kind)].append(p)
    for (a, b, kind), ps in sorted(groups.items()):
        counts.setdefault(f"{a} -> {b}", {})[kind] = {
            "pairs": len(ps), "train_items": len({p.train.id for p in ps}), "test_items": len({p.test.id for p in ps})}
    reasons: dict[str, int] = defaultdict(int)
    for pr in problems:
        reasons[pr["reason"]] += 1
    return {
        "fingerprint_version": VERSION,
        "thresholds": {"min_hits": MIN_HITS, "min_score": MIN_SCORE, "min_focus": MIN_FOCUS,
                       "focus_waived_hits": FOCUS_WAIVED_HITS, "audio_share": AUDIO_SHARE,
                       "text_jaccard_3gram": text_threshold, "min_fingerprint_s": MIN_DURATION_S},
        "inputs": [{"set": s.name, "role": s.role, "path": s.spec, "items": n_items.get(s.name, 0),
                    **({"ignored_files": s.ignored_files} if s.is_folder else {})} for s in sources],
        "pairs_by_kind": {k: sum(1 for p in pairs if p.kind == k) for k in KINDS},
        "test_items_by_kind": {k: len({p.test.key for p in pairs if p.kind == k}) for k in KINDS},
        "pairs_by_sets": counts,
        "fingerprints": fp_counts,
        "problems_by_reason": dict(sorted(reasons.items())),
        "problems": problems,
        "seconds": round(seconds, 2),
    }


def summary_markdown(s: dict) -> str:
    lines = ["# Overlap audit", "", "| set | role | path | items |", "| --- | --- | --- | ---: |"]
    lines += [f"| {i['set']} | {i['role']} | `{i['path']}` | {i['items']} |" for i in s["inputs"]]
    lines += ["", "## Overlapping pairs", "", "| train -> test | " + " | ".join(KINDS) + " |",
              "| --- |" + " ---: |" * len(KINDS)]
    for sets, kinds in s["pairs_by_sets"].items():
        cells = [f"{kinds[k]['pairs']} ({kinds[k]['test_items']} test items)" if k in kinds else "0" for k in KINDS]
        lines.append(f"| {sets} | " + " | ".join(cells) + " |")
    if not s["pairs_by_sets"]:
        lines.append("| (none) |" + " 0 |" * len(KINDS))
    t = s["thresholds"]
    lines += ["", f"Audio: a landmark fingerprint match needs {t['min_hits']} hashes at one time offset, a score "
              f"(matched share of the overlapping stretch's hashes) of {t['min_score']} and a focus (share of the "
              f"common hashes at that offset) of {t['min_focus']} (waived from {t['focus_waived_hits']} hits); "
              f"`audio` covers at least "
              f"{t['audio_share']:.0%} of the longer file, `contained` less. Text: normalised captions equal, or "
              f"character 3-gram Jaccard >= {t['text_jaccard_3gram']}. Files under {t['min_fingerprint_s']:g} s "
              "are compared as exact duplicates only.", "",
              f"## Files not (fully) audited: {len(s['problems'])}", ""]
    if s["problems"]:
        lines += ["| set | id | reason | detail |", "| --- | --- | --- | --- |"]
        lines += [f"| {p['set']} | {p['id'] or '(folder)'} | {p['reason']} | {p['detail'].replace('|', '/')} |"
                  for p in s["problems"]]
    fp = s["fingerprints"]
    lines += ["", f"Fingerprints: {fp['computed']} computed, {fp['cached']} from the cache; {s['seconds']} s.", ""]
    return "\n".join(lines)


def write_pairs(path: Path, pairs: list[Pair]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for p in pairs:
            w.writerow(p.row())


def drop_targets(sources: list[Source], out: Path) -> dict[Path, Path]:
    """{training manifest: the file --drop writes for it in ``out``} (same name; -2, -3 where two share one);
    an input manifest is never overwritten (checked before the audit starts)."""
    targets: dict[Path, Path] = {}
    out = out.resolve()
    for s in sources:
        mpath = s.path.resolve()
        if s.role != "train" or s.is_folder or mpath in targets:
            continue
        name, n = mpath.name, 1
        while out / name in targets.values():
            n += 1
            name = f"{mpath.stem}-{n}{mpath.suffix}"
        targets[mpath] = out / name
    inputs = {s.path.resolve() for s in sources if not s.is_folder}
    for target in targets.values():
        if target in inputs:
            raise UsageError(f"--drop {out} would overwrite the input manifest {target}: choose another folder")
    return targets


def drop_overlaps(sources: list[Source], pairs: list[Pair], out: Path, kinds: Iterable[str]) -> list[str]:
    """Write each training manifest to ``out`` without the rows of its audited split(s) whose id overlaps a
    test item by one of ``kinds``; audio paths are rewritten relative to ``out``. One line per source."""
    kinds = set(kinds)
    drop: dict[Path, dict[str | None, set[str]]] = defaultdict(lambda: defaultdict(set))
    for p in pairs:
        if p.kind in kinds and not p.train.source.is_folder:
            drop[p.train.source.path.resolve()][p.train.source.split].add(p.train.id)
    out = out.resolve()
    lines = []
    for mpath, target in drop_targets(sources, out).items():
        by_split = drop[mpath]
        rows = read_manifest(mpath)
        kept, gone_ids = [], set()
        for r in rows:
            if r.id in by_split.get(None, ()) or r.id in by_split.get(r.split, ()):
                gone_ids.add(r.id)
                continue
            r.audio_path = os.path.relpath(resolve_audio(mpath, r), out)
            kept.append(r)
        write_manifest(target, kept)
        lines.append(f"{target}: {len(rows) - len(kept)} rows ({len(gone_ids)} audios) dropped from {mpath.name}, "
                     f"{len(kept)} rows left")
    for s in sources:
        if s.role == "train" and s.is_folder:
            n = len({p.train.id for p in pairs if p.kind in kinds and p.train.source is s})
            lines.append(f"{s.spec}: a folder, no manifest to rewrite ({n} overlapping files listed in overlap.csv)")
    return lines


def audit(train: list[str], test: list[str], out_dir: str | os.PathLike, drop: str | os.PathLike | None = None,
          drop_kinds: Iterable[str] = AUDIO_KINDS, text_threshold: float = DEFAULT_THRESHOLD,
          cache_dir: str | os.PathLike | None = None, workers: int = 1, progress: bool = True) -> AuditReport:
    """Run the audit and write ``overlap.csv``, ``summary.json`` and ``summary.md`` into ``out_dir``."""
    t0 = time.perf_counter()
    if not 0 < text_threshold <= 1:
        raise UsageError(f"text threshold must be in (0, 1], got {text_threshold}")
    bad = set(drop_kinds) - set(KINDS)
    if bad:
        raise UsageError(f"unknown kind(s) to drop: {sorted(bad)} (kinds: {', '.join(KINDS)})")
    sources = [parse_source(s, "train") for s in train] + [parse_source(s, "test") for s in test]
    _name_sources(sources)
    if drop is not None:
        drop_targets(sources, Path(drop))  # refuses to overwrite an input before any work
    out_dir = Path(out_dir)
    problems: list[dict] = []
    items = {s.name: read_items(s, problems) for s in sources}
    tr = [it for s in sources if s.role == "train" for it in items[s.name]]
    te = [it for s in sources if s.role == "test" for it in items[s.name]]
    fp_counts = fingerprint_items(tr + te, Path(cache_dir) if cache_dir else out_dir / "fingerprints", workers,
                                  progress, problems)
    pairs = audio_pairs(tr, te, progress) + text_pairs(tr, te, text_threshold)
    order = {k: i for i, k in enumerate(KINDS)}
    pairs.sort(key=lambda p: (order[p.kind], p.train.source.name, p.train.id, p.test.source.name, p.test.id))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_pairs(out_dir / "overlap.csv", pairs)
    summary = summarise(sources, pairs, problems, {k: len(v) for k, v in items.items()}, fp_counts, text_threshold,
                        time.perf_counter() - t0)
    report = AuditReport(out_dir, pairs, problems, summary)
    if drop is not None:
        report.dropped = drop_overlaps(sources, pairs, Path(drop), drop_kinds)
        summary["dropped"] = report.dropped
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary), encoding="utf-8")
    return report
