"""Curation throughput (seconds of audio per wall second) on a generated mix of inputs (48/96/22.05 kHz,
16/24-bit, mono/stereo, WAV/FLAC/MP3), 2 workers, side by side with the reference pipeline of the published
WavText5K download script (librosa 0.8 ``load(sr=44100)``: decode, mono float, resampy kaiser_best; then a
soundfile PCM_24 WAV write), emulated with soundfile + resampy on the same files, same workers, same run.
Plus peak memory (ru_maxrss of a subprocess) converting one 45-minute file.

Scale with WT5K_BENCH_FILES (default 36 files), WT5K_BENCH_SECONDS (default 60 s per file: ours then runs
for a few seconds, long enough not to be at the mercy of one slow second of a shared machine) and
WT5K_BENCH_REPEATS (default 3 interleaved runs of each pipeline; medians are compared).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from curation.pipeline import CurateOptions, curate
from curation.sources import Item
from tests.synth import make_mixed_folder, write_long_file

WORKERS = 2


def _ref_warm(_: int) -> None:
    import resampy
    time.sleep(0.2)  # hold this worker so that the other one takes the other warm-up task
    resampy.resample(np.zeros(4800, np.float32), 48000, 44100, filter="kaiser_best")  # numba JIT off the clock


def _valid_audio(y: np.ndarray) -> None:
    """librosa 0.8's util.valid_audio(y, mono=False): a float buffer of finite samples."""
    if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all():
        raise ValueError("invalid audio buffer")


def _ref_convert(job: tuple[str, str]) -> float:
    """The published download script's per-file work, step by step as librosa 0.8.1 does it:
    ``load(path, sr=44100)`` = soundfile read as float32, ``to_mono`` (validate, mean of the channels),
    ``resample`` (validate, resampy kaiser_best, fix_length, Fortran copy); then a soundfile PCM_24 write."""
    import resampy
    src, dst = job
    y, sr = sf.read(src, dtype="float32", always_2d=False)
    y = np.asfortranarray(y.T)
    _valid_audio(y)
    if y.ndim > 1:
        y = np.mean(y, axis=0)
    _valid_audio(y)
    if sr != 44100:
        n = int(np.ceil(y.shape[-1] * 44100 / sr))
        y_hat = resampy.resample(y, sr, 44100, filter="kaiser_best", axis=-1)
        y_hat = y_hat[:n] if len(y_hat) >= n else np.pad(y_hat, (0, n - len(y_hat)))  # util.fix_length
        y = np.asfortranarray(y_hat, dtype=y.dtype)
    sf.write(dst, y, 44100, subtype="PCM_24")
    return len(y) / 44100


def _reference(files: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(WORKERS) as pool:
        list(pool.map(_ref_warm, range(WORKERS)))
        t0 = time.perf_counter()
        list(pool.map(_ref_convert, [(str(f), str(out / f"{f.stem}.wav")) for f in files]))
        return time.perf_counter() - t0


def _ours(files: list[Path], out: Path) -> tuple[float, dict]:
    items = [Item(id=f"bench:{f.stem}", source="bench", source_id=f.stem, audio=str(f.resolve()),
                  title_raw="Bench", description_raw=f"Generated {f.suffix} file.") for f in files]
    t0 = time.perf_counter()
    rep = curate(out, items=items, options=CurateOptions(workers=WORKERS, progress=False, figures=False))
    wall = time.perf_counter() - t0
    if rep.n_audios != len(files):
        raise RuntimeError(f"benchmark inputs rejected: {rep.rejects_by_reason}")
    return wall, {"processed": rep.processed}


# Peak RSS of the converting process. VmHWM (the high-water mark of this process's own memory, the figure behind
# ru_maxrss) is read from /proc because Linux carries ru_maxrss over from the forking parent across exec.
_MEM_SCRIPT = """
import json, re, resource, sys, time
def hwm_kib():
    try:
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from curation.audio import process_audio
base = hwm_kib()
t0 = time.perf_counter()
r = process_audio(sys.argv[1], sys.argv[2])
print(json.dumps({"status": r.status, "reason": r.reason, "wall_s": time.perf_counter() - t0,
                  "duration_s": r.duration_s, "base_kib": base, "peak_kib": hwm_kib()}))
"""


def _long_file_memory(out: Path, seconds: float) -> dict:
    src = out / "long_45min.flac"
    if not src.is_file() or abs(sf.info(str(src)).duration - seconds) > 1:
        write_long_file(src, seconds, sr=48000, channels=2, subtype="PCM_16")
    proc = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, str(src), str(out / "long_out.flac")],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    (out / "long_out.flac").unlink(missing_ok=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    info = sf.info(str(src))
    return {
        "long_file_s": round(info.duration, 1),
        "long_file_format": f"{info.format} {info.subtype} {info.samplerate} Hz {info.channels} ch",
        "long_status": r["status"] or r["reason"],
        "long_wall_s": round(r["wall_s"], 2),
        "long_peak_rss_mib": round(r["peak_kib"] / 1024, 1),
        "long_rss_after_imports_mib": round(r["base_kib"] / 1024, 1),
        "long_whole_file_float32_mib": round(info.frames * info.channels * 4 / 2**20, 1),
    }


def main(out_dir: str | os.PathLike) -> dict:
    out = Path(out_dir)
    n_files = int(os.environ.get("WT5K_BENCH_FILES", 36))
    seconds = float(os.environ.get("WT5K_BENCH_SECONDS", 60))
    repeats = int(os.environ.get("WT5K_BENCH_REPEATS", 3))
    files = make_mixed_folder(out / "inputs", n_files, seconds)
    audio_s = sum(sf.info(str(f)).duration for f in files)
    # Interleaved repeats, each from an empty output folder: a shared machine's slow spells hit both pipelines,
    # and the medians are compared. Dirty pages are flushed before each timed run, so that neither pipeline pays
    # for writing back the other's output (the reference writes ~130 KB of WAV per second of audio).
    ours_walls, ref_walls = [], []
    for _ in range(repeats):
        shutil.rmtree(out / "ours", ignore_errors=True)
        os.sync()
        ours_walls.append(_ours(files, out / "ours")[0])
        os.sync()
        ref_walls.append(_reference(files, out / "reference"))
    rerun_wall, rerun = _ours(files, out / "ours")  # unchanged inputs: nothing to do
    ours_wall, ref_wall = statistics.median(ours_walls), statistics.median(ref_walls)
    ours_tp, ref_tp = audio_s / ours_wall, audio_s / ref_wall
    figures = {
        "files": n_files, "audio_s": round(audio_s, 1), "workers": WORKERS, "cpu_count": os.cpu_count(),
        "mix": "48/96/22.05 kHz, 16/24-bit, mono/stereo, WAV/FLAC/MP3 -> 44.1 kHz mono FLAC (soxr HQ)",
        "repeats": repeats, "ours_walls_s": [round(w, 2) for w in ours_walls],
        "reference_walls_s": [round(w, 2) for w in ref_walls],
        "ours_wall_s": round(ours_wall, 2), "ours_audio_s_per_s": round(ours_tp, 1),
        "ours_audio_s_per_s_per_core": round(ours_tp / WORKERS, 1),
        "reference_wall_s": round(ref_wall, 2), "reference_audio_s_per_s": round(ref_tp, 1),
        "reference_audio_s_per_s_per_core": round(ref_tp / WORKERS, 1),
        "speedup_vs_reference": round(ours_tp / ref_tp, 1),
        "speedup_range": [round(min(ref_walls) / max(ours_walls), 1), round(max(ref_walls) / min(ours_walls), 1)],
        "target_speedup_10x_met": ours_tp / ref_tp >= 10, "target_200_per_core_met": ours_tp / WORKERS >= 200,
        "rerun_wall_s": round(rerun_wall, 2), "rerun_files_processed": rerun["processed"],
    }
    figures.update(_long_file_memory(out, float(os.environ.get("WT5K_BENCH_LONG_SECONDS", 45 * 60))))
    return figures


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "bench_out/curation"), indent=2))
