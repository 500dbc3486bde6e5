"""Search speed: queries against 100,000 indexed items (target: well under 1 s per query), and index build time.

The index side holds random normalised embeddings (their values do not change the cost of exact search);
the query is timed alone (matrix-vector product + partial sort) and the text encoding of a query, with a randomly
initialised model of demo/demo.json's shape, separately (a query costs their sum). Index build: from
embeddings to a saved index, plus the audio embedding throughput that building from audio files adds.

The page (`wt5k-search serve`): server-side p50/p95 of GET /api/search (text encoding + search + items, as the
app's Server-Timing header reports it) over the same 100,000 items with that model, every query a new text.
Memory: peak RSS of a text query on a 1,000,000-item, 256-d index with captions, in a fresh process, against a
bare numpy baseline (np.load of the same array, one matrix-vector product); target within 1.3x.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from demo.run import DEMO_CONFIG
from search.index import AudioIndex

N_ITEMS = 100_000
DIM = 1024  # the paper's shared embedding size
N_QUERIES = 200


def _percentiles(times_s: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times_s)
    return {"median_ms": round(statistics.median(ms), 3), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
            "max_ms": round(ms[-1], 3)}


def _model():
    from training.config import load_config
    from training.inference import Embedder
    from training.train import build_model

    return Embedder(build_model(load_config(DEMO_CONFIG), load_pretrained=False), batch_size=16)


def _model_figures(n_texts: int = 20, n_clips: int = 32) -> dict:
    """Text encoding per query and audio embedding throughput (for an index's build time) with a randomly
    initialised model of demo/demo.json's shape (the demo's model; weights do not change the cost)."""
    import torch

    emb = _model()
    times = []
    for i in range(n_texts):
        t0 = time.perf_counter()
        emb.embed_texts([f"a dog barking number {i}"])
        times.append(time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(int(3 * 44100)).astype(np.float32) * 0.1 for _ in range(n_clips)]
    t0 = time.perf_counter()
    emb.embed_audio(clips, 44100)
    per_clip = (time.perf_counter() - t0) / n_clips
    return {**{f"text_encode_{k}": v for k, v in _percentiles(times).items()},
            "audio_embed_clips_per_s": round(1 / per_clip, 1), "torch_threads": torch.get_num_threads(),
            "est_index_build_100k_3s_clips_min": round(100_000 * per_clip / 60, 1)}


def _server_figures(out_dir: Path, n_items: int = N_ITEMS, n_queries: int = 100) -> dict:
    """Server-side latency of text queries through the page's API (in-process ASGI client, no sockets) over
    n_items of the demo model's dimension, with that model (random weights: the same cost)."""
    from starlette.testclient import TestClient

    from search.server import SearchService, create_app

    emb = _model()
    index_dir = out_dir / "index_page"
    _write_big_index(index_dir, n_items, emb.embed_texts(["x"]).shape[1])
    service = SearchService(AudioIndex.load(index_dir), emb, out_dir / "server_cache")
    client = TestClient(create_app(service), base_url="http://127.0.0.1:8000")
    client.get("/api/search", params={"q": "warm up", "k": 10})
    server_s, total_s = [], []
    for i in range(n_queries):
        t0 = time.perf_counter()
        r = client.get("/api/search", params={"q": f"a dog barking in the rain, take {i}", "k": 10})
        total_s.append(time.perf_counter() - t0)
        assert r.status_code == 200 and len(r.json()["results"]) == 10
        server_s.append(float(r.headers["server-timing"].split("dur=")[1]) / 1000)
    shutil.rmtree(index_dir)
    return {"n_items": len(service.index), "dim": service.index.dim, "n_queries": n_queries,
            **{f"server_{k.replace('median', 'p50')}": v for k, v in _percentiles(server_s).items()},
            **{f"request_{k.replace('median', 'p50')}": v for k, v in _percentiles(total_s).items()},
            "target": "server-side p50/p95 of a text query over 100,000 items well under 1 s"}


_PEAK = """
import re, sys, numpy as np
def rss():  # the process's peak resident set (VmHWM: ru_maxrss would start from the parent's at fork), MiB
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s*(\d+)", f.read()).group(1)) / 1024
mode, folder = sys.argv[1], sys.argv[2]
if mode == "toolkit":
    from search.index import AudioIndex
q = np.random.default_rng(1).standard_normal(256).astype(np.float32)
before = rss()
if mode == "bare":
    a = np.load(folder + "/audio.npy")
    s = a @ (q / np.linalg.norm(q))
    top = np.argpartition(-s, 9)[:10]
else:
    index = AudioIndex.load(folder)
    hits = index.search_audio(q, 10)
    assert len(hits) == 10 and hits[0].id.startswith("item:")
print(before, rss())
"""


def _write_big_index(folder: Path, n: int, dim: int, chunk: int = 100_000) -> None:
    """A saved n-item index with one caption per item, written in chunks (the builder never holds it whole)."""
    from numpy.lib.format import open_memmap

    tmp = folder.parent / f"{folder.name}_arrays"
    tmp.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for name in ("audio", "captions"):
        arrays[name] = open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        for i in range(0, n, chunk):
            x = rng.standard_normal((min(chunk, n - i), dim), dtype=np.float32)
            arrays[name][i:i + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
        arrays[name].flush()

    class Items:  # the items, made when the index writes them
        def __len__(self):
            return n

        def __iter__(self):
            return ({"id": f"item:{i}", "path": f"/audio/{i:07d}.flac", "captions": [f"caption of sound {i}"]}
                    for i in range(n))

    refs = np.stack([np.arange(n), np.zeros(n, dtype=np.int64)], axis=1)
    AudioIndex(arrays["audio"], Items(), arrays["captions"], refs, {"source": "bench"}).save(folder)
    shutil.rmtree(tmp)


def _memory_figures(out_dir: Path, n: int = 1_000_000, dim: int = 256) -> dict:
    folder = out_dir / "index_1m"
    t0 = time.perf_counter()
    _write_big_index(folder, n, dim)
    build_s = time.perf_counter() - t0
    peaks = {}
    for mode in ("bare", "toolkit"):
        out = subprocess.run([sys.executable, "-c", _PEAK, mode, str(folder)], capture_output=True, text=True,
                             check=True).stdout.split()
        peaks[mode] = (float(out[0]), float(out[1]))
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in folder.iterdir() if p.is_file()}
    shutil.rmtree(folder)
    array_mib = n * dim * 4 / 2**20
    grow = {m: after - before for m, (before, after) in peaks.items()}
    return {"n_items": n, "dim": dim, "array_mib": round(array_mib, 1), "files_mib": sizes,
            "write_index_s": round(build_s, 1),
            "bare_peak_rss_mib": round(peaks["bare"][1], 1), "toolkit_peak_rss_mib": round(peaks["toolkit"][1], 1),
            "bare_query_growth_mib": round(grow["bare"], 1), "toolkit_query_growth_mib": round(grow["toolkit"], 1),
            "toolkit_imports_rss_mib": round(peaks["toolkit"][0], 1),
            "growth_ratio_toolkit_over_bare": round(grow["toolkit"] / grow["bare"], 3),
            "target": "a text query's memory within 1.3x of the bare array's"}


def main(out_dir: str | Path, n_items: int = N_ITEMS, dim: int = DIM, n_queries: int = N_QUERIES) -> dict:
    out_dir = Path(out_dir)
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n_items, dim), dtype=np.float32)
    items = [{"id": f"item:{i}", "path": f"/audio/{i}.flac", "captions": [f"caption {i}"]} for i in range(n_items)]

    t0 = time.perf_counter()
    index = AudioIndex.from_embeddings(emb, items)
    index.save(out_dir / "index")
    build_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    index = AudioIndex.load(out_dir / "index")
    load_s = time.perf_counter() - t0

    queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
    index.search_audio(queries[0], k=10)  # warm up BLAS
    times = []
    for q in queries:
        t0 = time.perf_counter()
        hits = index.search_audio(q, k=10)
        times.append(time.perf_counter() - t0)
    assert len(hits) == 10
    # the search must be exact: compare one query with a full sort
    full = np.argsort(-(index.audio @ (queries[-1] / np.linalg.norm(queries[-1]))), kind="stable")[:10]
    exact = [items[i]["id"] for i in full] == [h.id for h in hits]

    figures = {
        "n_items": n_items, "dim": dim, "n_queries": n_queries, "k": 10, "exact_top10": exact,
        "index_build_and_save_s": round(build_s, 3), "index_load_s": round(load_s, 3),
        "index_size_mb": round(sum(p.stat().st_size for p in (out_dir / "index").iterdir()) / 2**20, 1),
        **{f"query_{k}": v for k, v in _percentiles(times).items()},
        "queries_per_s": round(n_queries / sum(times), 1),
        **_model_figures(),
        "target": "query well under 1 s against 100,000 items",
        "page": _server_figures(out_dir),
        "memory_1m": _memory_figures(out_dir),
    }
    return figures


if __name__ == "__main__":
    print(json.dumps(main(Path("bench_out/search")), indent=2))
