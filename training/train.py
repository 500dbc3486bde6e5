"""CLAP training: one process or many (torchrun + DistributedDataParallel), CPU or CUDA.

``wt5k-train --config configs/tiny.json`` (or ``torchrun --nproc-per-node N -m training.cli --config ...``).
Distributed runs read RANK / WORLD_SIZE / LOCAL_RANK from the environment (torchrun sets them) and use nccl
on CUDA, gloo on CPU. The contrastive loss gathers every rank's features (training/loss.py), so the loss
and the update equal those of one process with the same global batch. On CUDA with several ranks BatchNorm
is synchronised (``sync_batchnorm``); on CPU it is not (gloo has no SyncBatchNorm), so BatchNorm statistics
there come from each rank's part of the batch.

Per run folder ``<out_dir>/<name>/``: ``latest.pt`` (after every epoch, and every ``save_every_steps``
steps), ``best.pt`` (best mean mAP@10 on the validation manifests, validated every ``val_every`` epochs and after
the last; the latest epoch when there are no validation manifests),
``metrics.jsonl`` and TensorBoard events. Frozen encoders (``audio.freeze`` / ``text.freeze``) are kept out of
``latest.pt``, in one ``frozen-<sha256>.pt`` beside it written once (training/checkpoint.py); ``best.pt`` is
whole. ``--resume`` continues from ``latest.pt`` exactly: the same batches, crops, dropout masks and learning
rates as the run would have had without interruption.
A non-finite loss stops the run with NonFiniteLossError before anything is saved from that step on.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.checkpoint import (check_resumed_text, frozen_prefixes, resume_checkpoint, rng_state, save_checkpoint,
                                 set_rng_state)
from training.config import RunConfig
from training.data import MixingBatchSampler, PairDataset, collate_pairs, read_pairs, window_samples
from training.loss import contrastive_loss
from training.metrics import selection_score


class NonFiniteLossError(RuntimeError):
    """The loss (or, before a save, a parameter) became NaN or infinite: the run stops, no checkpoint."""


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistInfo:
    """Join the process group described by torchrun's environment variables (if WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
    if world > 1 and not dist.is_initialized():
        # validation runs on rank 0 while the others wait: a generous timeout
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                                timeout=timedelta(hours=2))
    return DistInfo(rank, world, local_rank, device)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: RunConfig, load_pretrained: bool = True):
    from training.model import CLAP, CLAPConfig

    return CLAP(CLAPConfig.from_dict(cfg.model), load_pretrained=load_pretrained)


def train_step(model: torch.nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device, amp: bool,
               grad_clip_norm: float | None = None) -> float:
    """One optimisation step on a batch; returns the (global-batch) loss. ``model`` may be DDP-wrapped."""
    core = model.module if isinstance(model, DistributedDataParallel) else model
    waveform = batch["waveform"].to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        out = model(waveform, batch["texts"])
    loss = contrastive_loss(out["audio"], out["text"], out["logit_scale"],
                            batch["audio_keys"].to(device), batch["caption_keys"].to(device))
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLossError(f"non-finite loss ({value}); stopping without saving a checkpoint")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip_norm:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(core.parameters(), grad_clip_norm)
    scaler.step(optimizer)
    scaler.update()
    core.clamp_logit_scale_()
    return value


def _check_finite_parameters(model: torch.nn.Module) -> None:
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise NonFiniteLossError(f"non-finite parameters ({bad[:3]}...); refusing to save a broken checkpoint")


def evaluate_on(model, specs, caption_mode: str, window_samples: int, batch_size: int,
                device: torch.device) -> dict[str, dict]:
    """Retrieval metrics of ``model`` on each manifest spec (training/evaluate.py), then back to train mode."""
    from training.evaluate import evaluate_model

    was_training = model.training
    try:
        return evaluate_model(model, specs, caption_mode, window_samples, batch_size, device)
    finally:
        model.train(was_training)


class MetricsLog:
    """metrics.jsonl and TensorBoard of the main rank (other ranks log nothing)."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # records written after the checkpoint we resume from would be repeated: drop them
            keep = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in keep))
        elif resume_step is None:
            self.path.unlink(missing_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tensorboard"),
                                purge_step=None if resume_step is None else resume_step + 1)

    def write(self, record: dict, scalars: dict[str, float] | None = None) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in (scalars or {}).items():
            self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _model_config_differences(given: dict, saved: dict, prefix: str = "") -> list[str]:
    """Keys the config file sets that disagree with the checkpoint's model config."""
    out = []
    for k, v in given.items():
        if isinstance(v, dict) and isinstance(saved.get(k), dict):
            out += _model_config_differences(v, saved[k], f"{prefix}{k}.")
        elif k in saved and v is not None and v != saved[k] and not (
                isinstance(v, (list, tuple)) and list(v) == list(saved[k] or [])):
            out.append(f"model.{prefix}{k}: config {v!r} vs checkpoint {saved[k]!r}")
    return out


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so that a resumed run continues exactly."""
    epoch: int = 0                 # epochs finished
    batch_in_epoch: int = 0        # batches of the current epoch finished
    step: int = 0
    best_score: float | None = None
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's losses so far
    last_loss: float | None = None


@dataclass
class Run:
    """Everything the loop of one run works with (built by ``start_run``)."""
    cfg: RunConfig
    dist: DistInfo
    model: torch.nn.Module         # DDP-wrapped when distributed
    core: torch.nn.Module          # the CLAP module itself
    sampler: MixingBatchSampler
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp: bool
    window: int                    # training crop = validation window, in samples
    saved_config: dict
    logs: MetricsLog
    progress: Progress

    @property
    def latest(self) -> Path:
        return self.cfg.run_dir / "latest.pt"

    @property
    def best(self) -> Path:
        return self.cfg.run_dir / "best.pt"

    def save(self, path: Path, also_whole: Path | None = None) -> None:
        """A checkpoint holding model, optimiser, scheduler, scaler, progress, RNG states and config together.
        Frozen encoders go to one sibling file written once per run; ``also_whole`` (best.pt) gets the same
        state self-contained."""
        _check_finite_parameters(self.core)  # on every rank (identical parameters): all stop together
        if not self.dist.is_main:
            return
        p = self.progress
        state = {
            "model": self.core.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "epoch": p.epoch,
            "batch_in_epoch": p.batch_in_epoch, "step": p.step, "best_score": p.best_score,
            "config": self.saved_config, "epoch_losses": list(p.epoch_losses) if p.batch_in_epoch else [],
            "rng": rng_state(),
        }
        save_checkpoint(path, state, separate=frozen_prefixes(self.saved_config["model"]))
        if also_whole is not None:
            save_checkpoint(also_whole, state)

    def barrier(self) -> None:
        if self.dist.world_size > 1:
            dist.barrier()


def read_resume_checkpoint(cfg: RunConfig, resume: bool | str | os.PathLike) -> dict | None:
    """The run's latest.pt when resuming (its model config must agree with ``cfg``'s, and replaces it), else
    None after checking that the run folder holds no run yet."""
    latest = cfg.run_dir / "latest.pt"
    if not resume:
        if latest.exists():
            raise FileExistsError(f"{cfg.run_dir} already holds a run: pass --resume, or choose another name/out_dir")
        return None
    ckpt = resume_checkpoint(cfg.run_dir, resume)  # latest.pt, or the file --resume names
    check_resumed_text(cfg.model, ckpt["config"]["model"], cfg.init_from, str(latest if resume is True else resume))
    diffs = _model_config_differences(cfg.model, ckpt["config"]["model"])
    if diffs:
        raise ValueError("cannot resume with a different model: " + "; ".join(diffs))
    cfg.model = ckpt["config"]["model"]
    return ckpt


def start_run(cfg: RunConfig, ckpt: dict | None, d: DistInfo) -> Run:
    """Data, model, optimiser and logs of a run, restored from ``ckpt`` when resuming."""
    from training.model import CLAPConfig

    # Data first: a bad manifest or a missing file fails before a large model is loaded, and a bad
    # validation manifest before the first epoch rather than after it.
    start = None
    if cfg.init_from and ckpt is None:  # a released checkpoint: architecture and weights from the file
        from training.released import ReleasedStart

        start = ReleasedStart(cfg.init_from, cfg.model)
    model_config = start.config() if start else CLAPConfig.from_dict(cfg.model)
    window, sample_rate = window_samples(model_config, cfg.data.crop_s), model_config.audio.frontend.sample_rate
    dataset = PairDataset(cfg.data.train, cfg.data.caption_mode, window, cfg.data.cache_mb, sample_rate,
                          positives=cfg.loss_positives)
    for spec in cfg.data.val:
        read_pairs(spec, cfg.data.caption_mode)

    seed_everything(cfg.seed)
    model = start.build() if start else build_model(cfg, load_pretrained=ckpt is None)
    cfg.model = model.config.to_dict()  # complete (e.g. the text architecture) so checkpoints rebuild offline
    model.to(d.device)
    if d.world_size > 1 and d.device.type == "cuda" and cfg.sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    core = model
    if d.world_size > 1:
        model = DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None,
                                        find_unused_parameters=cfg.find_unused_parameters)

    weights = None if cfg.data.train[0].weight is None else [s.weight for s in cfg.data.train]
    sampler = MixingBatchSampler(dataset.group_sizes, cfg.batch_size, weights, cfg.data.samples_per_epoch,
                                 cfg.seed, d.rank, d.world_size)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_pairs,
                        num_workers=cfg.data.num_workers, pin_memory=d.device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global RNG untouched

    params = [p for p in core.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.optim.lr_step_epochs, cfg.optim.lr_gamma)
    amp = cfg.amp and d.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    progress = Progress()
    if ckpt is not None:
        core.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        progress = Progress(ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"], ckpt["best_score"],
                            list(ckpt["epoch_losses"]))
        set_rng_state(ckpt["rng"])

    saved_config = cfg.to_dict()
    saved_config["data"]["crop_s"] = window / sample_rate  # the effective window, for inference tools
    if d.is_main:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "config.json").write_text(json.dumps(saved_config, indent=2))
        if ckpt is None and core.load_reports:  # what the pretrained / released files gave, key by key
            (cfg.run_dir / "load_report.json").write_text(json.dumps(core.load_reports, indent=2))
    logs = MetricsLog(cfg.run_dir, d.is_main, progress.step if ckpt is not None else None)
    return Run(cfg, d, model, core, sampler, loader, optimizer, scheduler, scaler, amp, window, saved_config,
               logs, progress)


def train_one_epoch(run: Run, show_progress: bool = True) -> None:
    """The rest of the current epoch (all of it, or what a resumed checkpoint left), then the LR step."""
    cfg, p = run.cfg, run.progress
    run.sampler.set_epoch(p.epoch, p.batch_in_epoch)
    run.model.train()
    t0, seen = time.perf_counter(), 0
    bar = tqdm(run.loader, desc=f"epoch {p.epoch + 1}/{cfg.epochs}",
               disable=not (show_progress and run.dist.is_main), initial=p.batch_in_epoch,
               total=run.sampler.batches_per_epoch, dynamic_ncols=True)
    for batch in bar:
        p.last_loss = train_step(run.model, batch, run.optimizer, run.scaler, run.dist.device, run.amp,
                                 cfg.optim.grad_clip_norm)
        p.epoch_losses.append(p.last_loss)
        p.step += 1
        p.batch_in_epoch += 1
        seen += cfg.batch_size
        bar.set_postfix(loss=f"{p.last_loss:.4f}")
        if p.step % cfg.log_every == 0:
            lr, scale = run.optimizer.param_groups[0]["lr"], float(run.core.scale().detach())
            rate = seen / (time.perf_counter() - t0)
            run.logs.write({"event": "train", "epoch": p.epoch + 1, "step": p.step, "loss": p.last_loss, "lr": lr,
                            "logit_scale": scale, "samples_per_s": rate},
                           {"train/loss": p.last_loss, "train/lr": lr, "train/logit_scale": scale,
                            "train/samples_per_s": rate})
        if (cfg.save_every_steps and p.step % cfg.save_every_steps == 0
                and p.batch_in_epoch < run.sampler.batches_per_epoch):
            run.save(run.latest)
            run.barrier()
    run.scheduler.step()
    p.epoch, p.batch_in_epoch = p.epoch + 1, 0
    record = {"event": "epoch", "epoch": p.epoch, "step": p.step, "time_s": time.perf_counter() - t0,
              "train_loss": float(np.mean(p.epoch_losses))}
    run.logs.write(record, {"epoch/train_loss": record["train_loss"]})
    p.epoch_losses = []


def validate(run: Run) -> float | None:
    """Mean mAP@10 over the validation manifests (logged), or None when this epoch is not validated."""
    cfg, p = run.cfg, run.progress
    if not cfg.data.val or not (p.epoch % cfg.val_every == 0 or p.epoch == cfg.epochs):
        return None
    results = evaluate_on(run.core, cfg.data.val, cfg.data.caption_mode, run.window, cfg.data.eval_batch_size,
                          run.dist.device)
    score = selection_score(results)
    scalars = {f"val/{name}/{direction}_{k}": v for name, r in results.items()
               for direction in ("t2a", "a2t") for k, v in r[direction].items()}
    run.logs.write({"event": "val", "epoch": p.epoch, "step": p.step, "score": score, "metrics": results},
                   {"val/score": score, **scalars})
    return score


def save_epoch_checkpoints(run: Run, score: float | None) -> None:
    """The checkpoint policy: latest.pt after every epoch; best.pt when the validation score improved.
    Without validation manifests best.pt follows latest.pt; epochs not validated never become best."""
    p = run.progress
    improved = (not run.cfg.data.val) or (score is not None and (p.best_score is None or score > p.best_score))
    if improved and score is not None:
        p.best_score = score
    run.save(run.latest, also_whole=run.best if improved else None)


def train(cfg: RunConfig, resume: bool | str | os.PathLike = False, show_progress: bool = True) -> dict:
    """Train a run to ``cfg.epochs`` epochs (from its latest.pt with ``resume``, or from the checkpoint file
    ``resume`` names); returns a summary."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    d = setup_distributed()
    ckpt = read_resume_checkpoint(cfg, resume)
    run = start_run(cfg, ckpt, d)
    del ckpt
    try:
        while run.progress.epoch < cfg.epochs:
            train_one_epoch(run, show_progress)
            _check_finite_parameters(run.core)  # on every rank (identical parameters): all stop together
            if d.is_main:
                save_epoch_checkpoints(run, validate(run))
            run.barrier()
    finally:
        run.logs.close()
    p = run.progress
    return {"run_dir": str(cfg.run_dir), "epochs": p.epoch, "step": p.step, "best_score": p.best_score,
            "last_loss": p.last_loss, "latest": str(run.latest), "best": str(run.best)}
