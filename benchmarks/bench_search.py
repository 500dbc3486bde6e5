"""Search speed: queries against 100,000 indexed items (target: well under 1 s per query), and index build time.

The index side holds random normalised embeddings (their values do not change the cost of exact search);
the query side is timed twice: the search alone (matrix-vector product + partial sort) and end to end with the
text encoded by a randomly initialised model of configs/tiny.json's shape, when the model code is present.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from training.index import AudioIndex

N_ITEMS = 100_000
DIM = 1024  # the paper's shared embedding size
N_QUERIES = 200


def _percentiles(times_s: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times_s)
    return {"median_ms": round(statistics.median(ms), 3), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
            "max_ms": round(ms[-1], 3)}


def _text_encoder_latency(n: int = 20) -> dict:
    """Per-query text encoding with a random-init model of the tiny config's shape (skipped if unavailable)."""
    try:
        import torch

        from training.model import CLAP, CLAPConfig
        cfg = json.loads(Path("configs/tiny.json").read_text())
        model_cfg = cfg.get("model", cfg)
        model = CLAP(CLAPConfig(**{k: v for k, v in model_cfg.items() if k in CLAPConfig.__dataclass_fields__}))
        model.eval()
    except Exception as e:  # the model area may not be there yet; the search figures stand alone
        return {"text_encode_skipped": f"{type(e).__name__}: {e}"}
    times = []
    with torch.no_grad():
        for i in range(n):
            t0 = time.perf_counter()
            model.encode_text([f"a dog barking number {i}"])
            times.append(time.perf_counter() - t0)
    return {f"text_encode_{k}": v for k, v in _percentiles(times).items()}


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
        **_text_encoder_latency(),
        "target": "query well under 1 s against 100,000 items",
    }
    return figures


if __name__ == "__main__":
    print(json.dumps(main(Path("bench_out/search")), indent=2))
