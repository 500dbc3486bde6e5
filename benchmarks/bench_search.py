"""Search speed: queries against 100,000 indexed items (target: well under 1 s per query), and index build time.

The index side holds random normalised embeddings (their values do not change the cost of exact search);
the query is timed alone (matrix-vector product + partial sort) and the text encoding of a query, with a randomly
initialised model of demo/demo.json's shape, separately (a query costs their sum). Index build: from
embeddings to a saved index, plus the audio embedding throughput that building from audio files adds.
"""
from __future__ import annotations

import json
import statistics
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


def _model_figures(n_texts: int = 20, n_clips: int = 32) -> dict:
    """Text encoding per query and audio embedding throughput (for an index's build time) with a randomly
    initialised model of demo/demo.json's shape (the demo's model; weights do not change the cost)."""
    import torch

    from training.config import load_config
    from training.inference import Embedder
    from training.train import build_model

    model = build_model(load_config(DEMO_CONFIG), load_pretrained=False)
    emb = Embedder(model, batch_size=16)
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
    }
    return figures


if __name__ == "__main__":
    print(json.dumps(main(Path("bench_out/search")), indent=2))
