"""Leakage audit (wt5k-curate overlap) speed and memory, extrapolated to WavText5K + AudioCaps + Clotho (about
60,000 files, 200 h: 12 s per file on average) and to a WavCaps-size set (400,000 files, 7,500 h).

Material: generated recordings (notes, sweeps and noise bursts; 12 s each, 44.1 kHz mono FLAC as the curation
writes them) as the training side, and disguised copies of a quarter of them (MP3 or Vorbis, resampled, gain,
trimmed) as the test side. Measured, in one process: fingerprints per second of both sides (a test file is
analysed at 4 shifts) in CPU seconds, a re-run from the cache, the CPU time of one query against indexes of a
quarter of and of WT5K_BENCH_OVERLAP_INDEX_H hours (the training fingerprints repeated with their hashes
XOR-ed by a random mask per copy: the same hash statistics, no true matches) and the memory of the index per
hash; peak memory (VmHWM of a subprocess) fingerprinting a 30-minute stereo file, beside that of the same
imports alone. Then the extrapolation: fingerprints of 200 h on 2 cores, 2,000 test files (AudioCaps test and
Clotho evaluation) queried against 200 h of index (the query time extrapolated linearly from the two sizes).

Scale with WT5K_BENCH_OVERLAP_FILES (default 48 training files) and WT5K_BENCH_OVERLAP_INDEX_H (default 20 h).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from curation import overlap as ov
from curation.fingerprint import Fingerprint
from tests.overlap_disguises import chirps, disguises, melody, noise_bursts, write_disguise
from tests.synth import write_long_file

SECONDS = 12.0  # 200 h / 60,000 files
FULL_FILES, FULL_HOURS, FULL_TEST_FILES = 60_000, 200.0, 2_000
WAVCAPS_FILES, WAVCAPS_HOURS = 400_000, 7_500.0
WORKERS = 2


def _material(folder: Path, n: int) -> tuple[list[str], list[str], set[tuple[str, str]]]:
    train, test = folder / "train", folder / "test"
    train.mkdir(parents=True, exist_ok=True)
    kinds = [d for d in disguises() if d != "mono"]
    expected = set()
    for i in range(n):
        x = melody(i, SECONDS, 44100) + chirps(1000 + i, SECONDS, 44100) + noise_bursts(2000 + i, SECONDS, 44100)
        x = 0.5 * x / np.abs(x).max()
        sf.write(train / f"{i:04d}.flac", x, 44100, subtype="PCM_16")
        if i % 4 == 0:
            p = write_disguise(x, 44100, kinds[(i // 4) % len(kinds)], test / f"{i:04d}")
            expected.add((f"{i:04d}.flac", p.name))
    return [str(train)], [str(test)], expected


def _peak_rss_mib(code: str) -> float:
    """VmHWM of a fresh interpreter running ``code`` (Linux carries ru_maxrss over from the forking parent across
    exec, so ru_maxrss would report this benchmark's own memory)."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport re; print(re.search(r'VmHWM:\\s+(\\d+)', "
                          "open('/proc/self/status').read()).group(1))"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return int(out.stdout.split()[-1]) / 1024


def main(out_dir: str | Path, n_files: int | None = None, index_hours: float | None = None) -> dict:
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)  # a first run computes every fingerprint
    n_files = n_files or int(os.environ.get("WT5K_BENCH_OVERLAP_FILES", 48))
    index_hours = index_hours or float(os.environ.get("WT5K_BENCH_OVERLAP_INDEX_H", 20))
    train, test, expected = _material(out_dir / "audio", n_files)

    t0 = time.perf_counter()
    rep = ov.audit(train, test, out_dir / "audit", progress=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    ov.audit(train, test, out_dir / "audit", progress=False)
    cached = time.perf_counter() - t0
    found = {(p.train.id, p.test.id) for p in rep.pairs if p.kind in ("audio", "contained")}
    false = {(p.train.id, p.test.id) for p in rep.pairs} - expected

    # fingerprinting alone, each side (the audit above also matched, a small part of its time); CPU seconds of
    # this process, which a machine shared with other jobs does not inflate as it does wall seconds
    from curation.fingerprint import fingerprint_file
    tr_files = sorted(Path(train[0]).glob("*.flac"))
    te_files = sorted(Path(test[0]).iterdir())
    t0, c0 = time.perf_counter(), time.process_time()
    tr_fps = [fingerprint_file(p) for p in tr_files]
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    te_fps = [fingerprint_file(p, query=True) for p in te_files]
    t_test, c_test = time.perf_counter() - t0, time.process_time() - c0
    audio_s = sum(fp.duration_s for fp in tr_fps)
    hashes_per_s = sum(len(fp.hashes) for fp in tr_fps) / audio_s

    # a query against indexes of index_hours / 4 and index_hours, built from masked copies of the training
    # fingerprints: the cost per query grows linearly with the index (postings per hash), extrapolated from both
    rng = np.random.default_rng(0)
    timing = {}
    for hours in (index_hours / 4, index_hours):
        copies = max(1, int(hours * 3600 / audio_s))
        fps = [Fingerprint(sha256=f"{r}:{fp.sha256}", duration_s=fp.duration_s, times=fp.times,
                           hashes=fp.hashes ^ np.uint32(rng.integers(1, 1 << 20) if r else 0))
               for r in range(copies) for fp in tr_fps]
        n_hashes = sum(len(fp.hashes) for fp in fps)
        c0 = time.process_time()
        index = ov.HashIndex(fps)
        c_build = time.process_time() - c0
        index_bytes = index.f.nbytes + index.t.nbytes + index.starts.nbytes
        c0 = time.process_time()
        for _ in range(3):
            hits = sum(1 for q in te_fps for _ in index.query(q))
        timing[copies * audio_s / 3600] = ((time.process_time() - c0) / 3 / len(te_fps), c_build, n_hashes,
                                           index_bytes, hits)
        del index, fps
    (h1, (q1, b1, *_)), (h2, (q2, b2, n_hashes, index_bytes, hits)) = sorted(timing.items())
    per_query = q2 + (q2 - q1) / (h2 - h1) * (FULL_HOURS - h2)  # at 200 h
    build_full = b2 * FULL_HOURS / h2

    long_file = write_long_file(out_dir / "long.flac", 1800, sr=44100, channels=2)
    rss_long = _peak_rss_mib(f"from curation.fingerprint import fingerprint_file; "
                             f"fingerprint_file({str(long_file)!r}, query=True)")
    rss_base = _peak_rss_mib("import numpy, soundfile, soxr, curation.fingerprint")
    long_file.unlink()  # 150 MB of FLAC

    train_rate = audio_s / c_train  # audio seconds fingerprinted per CPU second
    test_rate = sum(fp.duration_s for fp in te_fps) / c_test
    full_fp_s = FULL_HOURS * 3600 / train_rate / WORKERS + FULL_TEST_FILES * SECONDS / test_rate / WORKERS
    full_match_s = FULL_TEST_FILES * per_query + build_full
    full_hashes = FULL_HOURS * 3600 * hashes_per_s
    return {
        "train_files": len(tr_files), "test_files": len(te_files), "seconds_per_file": SECONDS,
        "recall": f"{len(found & expected)}/{len(expected)}", "false_pairs": len(false),
        "audit_first_run_s": round(first, 2), "audit_cached_run_s": round(cached, 2),
        "fingerprint_train_files_per_s": round(len(tr_files) / t_train, 1),
        "fingerprint_train_files_per_cpu_s": round(len(tr_files) / c_train, 1),
        "fingerprint_train_audio_x_realtime_per_cpu": round(train_rate, 1),
        "fingerprint_test_files_per_s": round(len(te_files) / t_test, 1),
        "fingerprint_test_files_per_cpu_s": round(len(te_files) / c_test, 1),
        "hashes_per_audio_s": round(hashes_per_s, 1),
        "index_hours": round(h2, 1), "index_hashes": n_hashes, "index_build_cpu_s": round(b2, 2),
        "index_bytes_per_hash": round(index_bytes / n_hashes, 1),
        f"query_cpu_ms_at_{h1:.0f}h": round(q1 * 1000, 2), f"query_cpu_ms_at_{h2:.0f}h": round(q2 * 1000, 2),
        "query_cpu_ms_at_200h_extrapolated": round(per_query * 1000, 1), "query_matches": hits,
        "peak_rss_mib_fingerprint_30min_stereo_file": round(rss_long, 1),
        "peak_rss_mib_interpreter_and_imports": round(rss_base, 1),
        "est_200h_60k_files_fingerprint_min_2_cores": round(full_fp_s / 60, 1),
        "est_200h_2k_test_files_match_min": round(full_match_s / 60, 1),
        "est_200h_total_min": round((full_fp_s + full_match_s) / 60, 1),
        # the same from wall seconds measured here (on a machine shared with other jobs: an upper bound)
        "est_200h_total_min_at_this_runs_wall_speed": round((full_fp_s * t_train / c_train + full_match_s) / 60, 1),
        # 8 B a hash (file, time) + the 8 MiB lookup table, and the argsort's 8 B a hash while it is built
        "est_200h_index_mib": round(full_hashes * 16 / 2 ** 20 + 8),
        "est_200h_cache_mib": round(full_hashes * 8 / 2 ** 20),
        "est_wavcaps_7500h_fingerprint_h_2_cores": round(WAVCAPS_HOURS * 3600 / train_rate / WORKERS / 3600, 1),
        "est_wavcaps_index_shards": int(np.ceil(WAVCAPS_HOURS * 3600 * hashes_per_s / ov.SHARD_HASHES)),
        "est_wavcaps_index_mib_per_shard": round(ov.SHARD_HASHES * 16 / 2 ** 20 + 8),
    }


if __name__ == "__main__":
    import json
    print(json.dumps(main(Path("bench_out") / "overlap"), indent=2))
