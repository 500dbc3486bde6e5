"""Several ranks (gloo on CPU) and the GPU-only paths simulated: per-rank randomness, each rank's RNG state
in the checkpoint, resuming on another number of ranks, the loss scaler, precision and device choice, the
bounded wait for rank 0, the loader's tokenising workers, and `make gpu-check`'s CPU smoke run."""
from __future__ import annotations

import json
import logging
import os
import time

import pytest
import torch
import torch.multiprocessing as mp

import training.train as train_module
from training.checkpoint import load_checkpoint, rng_state
from training.config import RunConfig
from training.train import (DistInfo, NonFiniteLossError, _check_finite_parameters, autocast_dtype,
                            cuda_device_index, load_scaler_state, restore_rng_states, seed_everything, train)
from tests.ports import free_port
from tests.test_training_run import _one_thread, manifest  # noqa: F401  (fixtures: one torch thread, 8 clips)
from tests.training_fixtures import run_config

WORLD = 2


def _config(out_dir, manifest, **top) -> dict:
    cfg = run_config(out_dir, [{"manifest": str(manifest)}], [{"manifest": str(manifest), "name": "gen"}],
                     batch_size=4, **top)
    cfg["model"] = {**cfg["model"], "projection": {"dim": 16, "dropout": 0.5}}  # something random per step
    return cfg


def _spawn(fn, *args) -> None:
    """fn(rank, port, *args) on WORLD gloo ranks; fails (instead of hanging) after 120 s."""
    # fork: the ranks start in a second instead of re-importing torch and transformers (the parent has no
    # process group and runs torch on one thread, which is what makes forking safe)
    ctx = mp.start_processes(fn, args=(free_port(), *args), nprocs=WORLD, join=False, start_method="fork")
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the ranks did not finish within 120 s")


def _join(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def _masks_worker(rank: int, port: int, cfg: dict, out: str) -> None:
    _join(rank, port)
    import torch.distributed as dist

    d = train_module.setup_distributed(wait_s=1)
    weights, real_distribute = {}, train_module.distribute

    def spy(model, *args):  # the weights as this rank built them, before DDP copies rank 0's everywhere
        weights.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_distribute(model, *args)

    train_module.distribute = spy
    try:
        run = train_module.start_run(RunConfig.from_dict(cfg), None, d)
        run.core.train()
        x = torch.ones(3, run.core.audio_projection.linear1.in_features)
        masked = run.core.audio_projection(x).detach()  # dropout 0.5 inside: a mask from this rank's stream
        first_batch = next(iter(run.loader))["audio_ids"]
        wait_error = None
        if rank == 1:  # rank 0 "validates" for longer than val_wait_s=1: rank 1 must give up, with a reason
            try:
                run.wait_for_main("validating")
            except RuntimeError as e:
                wait_error = str(e)
        else:
            time.sleep(3)
        torch.save({"weights": weights, "masked": masked, "ids": first_batch, "wait_error": wait_error},
                   f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_ranks_start_from_the_same_weights_and_draw_their_own_dropout(tmp_path, manifest):
    cfg = _config(tmp_path / "runs", manifest)
    seed_everything(RunConfig.from_dict(cfg).seed)
    alone = train_module.build_model(RunConfig.from_dict(cfg)).state_dict()  # (and the forked ranks inherit
    _spawn(_masks_worker, cfg, str(tmp_path / "r"))                        # transformers already imported)
    r0, r1 = (torch.load(f"{tmp_path / 'r'}.{rank}", weights_only=True) for rank in range(WORLD))
    for k, v in alone.items():  # the weights one process builds from the seed: on every rank
        assert torch.equal(r0["weights"][k], v) and torch.equal(r1["weights"][k], v), k
    assert not torch.equal(r0["masked"], r1["masked"]), "both ranks drew the same dropout mask"
    assert set(r0["ids"]).isdisjoint(r1["ids"]), "each rank takes its own part of the global batch"
    assert r0["wait_error"] is None
    assert "rank 0 validating took longer than val_wait_s=1 s" in r1["wait_error"]


def _train_worker(rank: int, port: int, cfg: dict, resume: bool, log_file: str) -> None:
    _join(rank, port)
    handler = logging.FileHandler(f"{log_file}.{rank}")
    logging.getLogger("training.train").addHandler(handler)
    train(RunConfig.from_dict(cfg), resume=resume, show_progress=False)
    handler.close()
    import torch.distributed as dist

    dist.destroy_process_group()


def test_a_run_saved_by_two_ranks_resumes_on_one_and_back(tmp_path, manifest, caplog):
    """2 ranks -> 1 -> 2: every rank's state is saved; another rank count continues with fresh per-rank
    streams, says so, and keeps the data order (each run takes the same global batches)."""
    cfg = _config(tmp_path / "runs", manifest, epochs=1)
    logs = str(tmp_path / "log")
    _spawn(_train_worker, cfg, False, logs)
    ckpt = load_checkpoint(tmp_path / "runs" / "t" / "latest.pt")
    assert (ckpt["epoch"], ckpt["step"], ckpt["world_size"], len(ckpt["rng"])) == (1, 2, 2, 2)
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"]), "one random stream per rank"

    cfg["epochs"] = 2
    with caplog.at_level(logging.WARNING, logger="training.train"):
        train(RunConfig.from_dict(cfg), resume=True, show_progress=False)
    assert "random state of 2 rank(s) and this run has 1" in caplog.text and "fresh per-rank streams" in caplog.text
    ckpt = load_checkpoint(tmp_path / "runs" / "t" / "latest.pt")
    assert (ckpt["epoch"], ckpt["step"], ckpt["world_size"], len(ckpt["rng"])) == (2, 4, 1, 1)

    cfg["epochs"] = 3
    _spawn(_train_worker, cfg, True, logs)
    said = [open(f"{logs}.{rank}").read() for rank in range(WORLD)]
    assert "random state of 1 rank(s) and this run has 2" in said[0] and said[1] == "", "rank 0 alone says it"
    ckpt = load_checkpoint(tmp_path / "runs" / "t" / "latest.pt")
    assert (ckpt["epoch"], ckpt["step"], ckpt["world_size"], len(ckpt["rng"])) == (3, 6, 2, 2)
    steps = [json.loads(x)["step"] for x in (tmp_path / "runs" / "t" / "metrics.jsonl").read_text().splitlines()
             if '"train"' in x]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_each_rank_restores_its_own_random_state():
    saved = []
    for seed in (11, 12):
        seed_everything(seed)
        saved.append(rng_state())
    for rank in (1, 0):
        assert restore_rng_states(saved, DistInfo(rank=rank, world_size=2), seed=0, step=5) is None
        assert torch.equal(torch.get_rng_state(), saved[rank]["torch"])
    old = saved[0]  # older files hold one dict (one rank's state): restored on one rank
    assert restore_rng_states(old, DistInfo(), seed=0, step=5) is None
    assert torch.equal(torch.get_rng_state(), old["torch"])
    fresh = []
    for rank in (0, 1, 0):
        note = restore_rng_states(saved, DistInfo(rank=rank, world_size=3), seed=0, step=5)
        assert "2 rank(s) and this run has 3" in note
        fresh.append(torch.get_rng_state())
    assert torch.equal(fresh[0], fresh[2]) and not torch.equal(fresh[0], fresh[1])
    assert not any(torch.equal(fresh[0], s["torch"]) for s in saved)


def test_an_empty_scaler_state_loads_into_an_enabled_scaler(tmp_path, manifest, monkeypatch):
    enabled = torch.amp.GradScaler("cpu", init_scale=256.0)  # stands in for CUDA's fp16 scaler
    with pytest.raises(RuntimeError, match="empty"):
        enabled.load_state_dict({})  # what resuming an amp-off run with fp16 on did
    load_scaler_state(enabled, {})
    assert enabled.get_scale() == 256.0
    other = torch.amp.GradScaler("cpu", init_scale=8.0)
    load_scaler_state(other, enabled.state_dict())
    assert other.get_scale() == 256.0
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    load_scaler_state(disabled, enabled.state_dict())  # fp16 -> bf16 / fp32: nothing to take
    assert not disabled.is_enabled()

    # a whole resume: a CPU (scaler-less) run continued by one with an enabled scaler
    cfg = _config(tmp_path / "runs", manifest, epochs=1)
    train(RunConfig.from_dict(cfg), show_progress=False)
    assert load_checkpoint(tmp_path / "runs" / "t" / "latest.pt")["scaler"] == {}
    scalers = []
    monkeypatch.setattr(train_module, "make_scaler",
                        lambda dtype, device: scalers.append(torch.amp.GradScaler("cpu", init_scale=64.0))
                        or scalers[-1])
    cfg["epochs"] = 2
    train(RunConfig.from_dict(cfg), resume=True, show_progress=False)
    ckpt = load_checkpoint(tmp_path / "runs" / "t" / "latest.pt")
    assert ckpt["step"] == 4 and ckpt["scaler"]["scale"] == scalers[0].get_scale()


def test_precision_and_device_choice(monkeypatch):
    cpu = torch.device("cpu")
    assert autocast_dtype(True, "auto", cpu) is None and autocast_dtype(True, "bf16", cpu) is None
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    for capability, auto in (((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16), ((7, 0), torch.float16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert autocast_dtype(True, "auto", gpu) == auto
        assert autocast_dtype(True, "fp16", gpu) == torch.float16
        assert autocast_dtype(False, "auto", gpu) is None
    with pytest.raises(ValueError, match="V100 has no native bf16"):
        autocast_dtype(True, "bf16", gpu)
    assert train_module.make_scaler(torch.bfloat16, cpu).is_enabled() is False
    assert train_module.make_scaler(torch.float16, cpu).is_enabled() is True
    with pytest.raises(ValueError, match="precision must be one of"):
        RunConfig.from_dict({"name": "x", "model": {}, "data": {"train": ["m.csv"]}, "precision": "fp8"})
    # one visible GPU per process (SLURM --gpus-per-task): device 0 whatever LOCAL_RANK says
    assert cuda_device_index(3, 1) == 0 and cuda_device_index(3, 8) == 3
    with pytest.raises(ValueError, match="LOCAL_RANK 4 but this process sees only 2 GPUs"):
        cuda_device_index(4, 2)


def test_one_finiteness_check_names_the_bad_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    _check_finite_parameters(model)
    with torch.no_grad():
        model[1].bias[0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"1\.bias"):
        _check_finite_parameters(model)


def test_loader_workers_tokenise_and_persist(tmp_path, manifest):
    # two epochs through one persistent worker give the batches (and losses) of the main process
    logs = {}
    for workers in (0, 1):
        cfg = _config(tmp_path / f"w{workers}", manifest, epochs=2, data={"num_workers": workers})
        train(RunConfig.from_dict(cfg), show_progress=False)
        logs[workers] = [{k: v for k, v in json.loads(x).items() if k not in ("samples_per_s", "time_s")}
                         for x in (tmp_path / f"w{workers}" / "t" / "metrics.jsonl").read_text().splitlines()]
    assert logs[0] == logs[1] and len([r for r in logs[0] if r["event"] == "train"]) == 4

    cfg = RunConfig.from_dict(_config(tmp_path / "runs", manifest, data={"num_workers": 1}))
    run = train_module.start_run(cfg, None, DistInfo())
    assert run.loader.persistent_workers
    run.sampler.set_epoch(0)
    batch = next(iter(run.loader))
    expected = run.core.tokenize(batch["texts"])
    assert set(batch["tokens"]) == set(expected)
    assert all(torch.equal(batch["tokens"][k], v) for k, v in expected.items())
    run.core.eval()
    with torch.no_grad():
        torch.testing.assert_close(run.core.encode_text(batch["tokens"]), run.core.encode_text(batch["texts"]))


def test_gpu_check_cpu_smoke(tmp_path, capsys):
    from training.gpu_check import main

    if not torch.cuda.is_available():
        assert main([]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert main(["--cpu-smoke", "--batch", "4", "--steps", "9", "--warmup", "1", "--lr", "1e-3",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {(r["phase"], r["precision"]): r for r in summary["rows"]}
    assert set(rows) == {("steps", "fp32"), ("steps", "fp16"), ("steps", "bf16"), ("resume", "fp32")}
    for key in (("steps", "fp32"), ("steps", "bf16")):
        r = rows[key]
        assert r["finite"] and r["falls"] and r["samples_per_s"] > 0 and r["peak_mem_gib"] > 0
    assert rows[("steps", "fp32")]["losses"] != rows[("steps", "bf16")]["losses"], "bf16 really ran"
    assert "skipped" in rows[("steps", "fp16")]
    resume = rows[("resume", "fp32")]
    assert resume["ok"] and 0 < resume["resumed_from_step"] < resume["final_step"] == 6
    assert "killed -9 at step" in out and "phase" in out.splitlines()[2]


def test_resume_after_a_kill_that_cut_a_log_line(tmp_path, manifest):
    """kill -9 while metrics.jsonl was being appended leaves half a line: --resume drops it (it is newer than
    latest.pt) instead of failing on it."""
    cfg = _config(tmp_path / "runs", manifest, epochs=1)
    train(RunConfig.from_dict(cfg), show_progress=False)
    log = tmp_path / "runs" / "t" / "metrics.jsonl"
    whole = log.read_text()
    log.write_text(whole + '{"event": "train", "epoch": 2, "st')
    cfg["epochs"] = 2
    train(RunConfig.from_dict(cfg), resume=True, show_progress=False)
    lines = log.read_text().splitlines()
    assert log.read_text().startswith(whole) and all(json.loads(x) for x in lines)
    assert [json.loads(x)["step"] for x in lines if '"train"' in x] == [1, 2, 3, 4]
