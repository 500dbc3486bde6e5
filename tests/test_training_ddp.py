"""DistributedDataParallel on CPU with gloo: two ranks give the loss and the update of one process that
takes the same global batch (features gathered with gradients across ranks)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from training.model import CLAP, CLAPConfig
from tests.ports import free_port
from tests.training_fixtures import TINY_MODEL, make_manifest, run_config

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2


def _model() -> CLAP:
    torch.manual_seed(0)
    # eval mode: BatchNorm uses its running statistics (per-rank batch statistics would differ from the
    # global batch's on CPU, where gloo has no SyncBatchNorm) and nothing is random
    return CLAP(CLAPConfig.from_dict(TINY_MODEL)).eval()


def _batch() -> dict:
    g = torch.Generator().manual_seed(1)
    return {"waveform": 0.1 * torch.randn(4, 40640, generator=g),
            "texts": ["rain on a roof", "a dog barks", "rain on a roof again", "a bell rings"],
            "audio_keys": torch.tensor([0, 1, 0, 2]),  # pair 2 repeats pair 0's audio: a cross-rank positive
            "caption_keys": torch.tensor([0, 1, 2, 3])}


def _shard(batch: dict, rank: int, world: int) -> dict:
    n = len(batch["texts"]) // world
    return {k: v[rank * n:(rank + 1) * n] for k, v in batch.items()}


def _steps(model, batch) -> tuple[list[float], dict]:
    from training.train import train_step

    core = model.module if hasattr(model, "module") else model
    # plain SGD: the update is proportional to the gradient, so a wrongly scaled gradient would show
    opt = torch.optim.SGD(core.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    losses = [train_step(model, batch, opt, scaler, torch.device("cpu")).item() for _ in range(2)]
    return losses, {k: v.detach().clone() for k, v in core.state_dict().items()}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from training.train import setup_distributed

    setup_distributed()
    try:
        losses, state = _steps(DistributedDataParallel(_model()), _shard(_batch(), rank, WORLD))
        torch.save({"losses": losses, "state": state}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_two_ranks_equal_one_process(tmp_path, one_thread):
    out = str(tmp_path / "rank")
    mp.spawn(_worker, args=(free_port(), out), nprocs=WORLD, join=True)
    ref_losses, ref_state = _steps(_model(), _batch())
    assert ref_losses[1] != ref_losses[0]  # the first step changed the model
    for rank in range(WORLD):
        got = torch.load(f"{out}.{rank}", weights_only=True)
        assert got["losses"] == pytest.approx(ref_losses, rel=1e-5)
        for k, v in ref_state.items():
            torch.testing.assert_close(got["state"][k], v, rtol=1e-4, atol=1e-6, msg=f"parameter {k}")


def test_torchrun_two_ranks_trains_and_checkpoints(tmp_path):
    m = make_manifest(tmp_path / "data", 8)
    cfg = run_config(tmp_path / "runs", [{"manifest": str(m)}], [{"manifest": str(m), "name": "gen"}],
                     epochs=1, batch_size=4)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
         str(free_port()), "-m", "training.cli", "--config", str(tmp_path / "cfg.json"), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done:") == 1 and "n/a" not in proc.stdout  # rank 0 alone reports its best score
    run = tmp_path / "runs" / "t"
    ckpt = torch.load(run / "latest.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2  # 8 pairs / global batch 4
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["train", "train", "epoch", "val"]  # rank 0 alone logs
    assert (run / "best.pt").is_file()
