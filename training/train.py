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
A non-finite loss stops the run with NonFiniteLossError before anything is saved from that step on (the
losses are checked every ``log_every`` steps and before every save: one GPU sync there, not one per step).

Several ranks (configs/README.md, "Multi-GPU and precision"): every rank builds the model from ``seed`` (the
same initial weights), then reseeds with ``seed + rank``, so dropout and drop-path masks differ between ranks
while data order and crops (keyed on seed, epoch and position) do not depend on the rank. Each rank's random
state (CPU and its one GPU) is gathered into the checkpoint and each rank restores its own; a checkpoint saved
by another number of ranks resumes with fresh per-rank streams (logged). Rank 0 validates and writes
checkpoints while the others wait in a barrier bounded by ``val_wait_s``; training collectives time out after
``collective_timeout_s``. Mixed precision: ``precision`` bf16 (no loss scaling) or fp16 (GradScaler).
"""
from __future__ import annotations

import functools
import inspect
import json
import logging
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
from training.encoders.text import tokenize_texts
from training.loss import contrastive_loss
from training.metrics import selection_score

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss (or, before a save, a parameter) became NaN or infinite: the run stops, no checkpoint."""


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    wait_group: object = None      # a gloo group for rank 0's solo work (validation, saving), own timeout
    wait_s: int = 1800

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def cuda_device_index(local_rank: int, device_count: int) -> int:
    """The GPU a process uses: its LOCAL_RANK's when it sees several, the only one when a launcher shows each
    process a single GPU (SLURM ``--gpus-per-task``, CUDA_VISIBLE_DEVICES set per rank)."""
    if device_count == 1:
        return 0
    if local_rank >= device_count:
        raise ValueError(f"LOCAL_RANK {local_rank} but this process sees only {device_count} GPUs: start at most "
                         f"{device_count} processes per node, or show each process one GPU")
    return local_rank


def setup_distributed(collective_timeout_s: int = 600, wait_s: int = 1800) -> DistInfo:
    """Join the process group described by torchrun's environment variables (if WORLD_SIZE > 1).

    Training collectives time out after ``collective_timeout_s``; the waits while rank 0 alone validates or
    saves use a separate gloo group whose barrier times out after ``wait_s`` (a hang surfaces then, not
    after hours)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cpu")
    if cuda:
        device = torch.device("cuda", cuda_device_index(local_rank, torch.cuda.device_count()))
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
    wait_group = None
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                                    timeout=timedelta(seconds=collective_timeout_s))
        wait_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=wait_s))
    return DistInfo(rank, world, local_rank, device, wait_group, wait_s)


def has_native_bf16(device: torch.device) -> bool:
    """Whether a CUDA ``device`` computes in bf16 natively (compute capability 8.0+: A100, H100, RTX 30xx on)."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast_dtype(amp: bool, precision: str, device: torch.device) -> torch.dtype | None:
    """The half type of mixed precision (None: float32). CUDA only; ``precision`` "auto" takes bf16 where the
    GPU computes in it natively (has_native_bf16), fp16 elsewhere."""
    if not amp or device.type != "cuda":
        return None
    native_bf16 = has_native_bf16(device)
    if precision == "bf16" and not native_bf16:
        raise ValueError(f"precision bf16: {torch.cuda.get_device_name(device)} has no native bf16; "
                         f"use precision=fp16 or auto")
    if precision == "bf16" or (precision == "auto" and native_bf16):
        return torch.bfloat16
    return torch.float16


def make_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only: bf16 has float32's exponent range and needs none."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: RunConfig, load_pretrained: bool = True):
    from training.model import CLAP, CLAPConfig

    return CLAP(CLAPConfig.from_dict(cfg.model), load_pretrained=load_pretrained)


def train_step(model: torch.nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device, dtype: torch.dtype | None = None,
               grad_clip_norm: float | None = None) -> torch.Tensor:
    """One optimisation step on a batch (autocast to ``dtype`` when given); returns the (global-batch) loss as
    a detached tensor on ``device``: reading it waits for the GPU, so the loop reads losses only every few
    steps (``check_losses``). ``model`` may be DDP-wrapped. ``batch["tokens"]`` (tokenised in the loader's
    workers) is used when present, else ``batch["texts"]``."""
    core = model.module if isinstance(model, DistributedDataParallel) else model
    waveform = batch["waveform"].to(device, non_blocking=True)
    texts = batch["texts"]
    if "tokens" in batch:
        texts = {k: v.to(device, non_blocking=True) for k, v in batch["tokens"].items()}
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = model(waveform, texts)
    loss = contrastive_loss(out["audio"], out["text"], out["logit_scale"],
                            batch["audio_keys"].to(device), batch["caption_keys"].to(device))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip_norm:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(core.parameters(), grad_clip_norm)
    scaler.step(optimizer)
    scaler.update()
    core.clamp_logit_scale_()
    return loss.detach()


def check_losses(losses: list[torch.Tensor], first_step: int) -> list[float]:
    """The losses of steps ``first_step``, ``first_step + 1``, ... as floats (one device sync for all of them);
    NonFiniteLossError at the first non-finite one."""
    if not losses:
        return []
    values = torch.stack(losses).float().cpu().tolist()
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise NonFiniteLossError(f"non-finite loss ({value}) at step {first_step + i}; stopping without "
                                     f"saving a checkpoint")
    return values


def _check_finite_parameters(model: torch.nn.Module) -> None:
    """One fused check (a norm per parameter in one multi-tensor kernel, one sync), not a sync per parameter;
    the parameters are scanned one by one only to name the culprits once something is non-finite."""
    params = [p.detach() for p in model.parameters()]
    if not params or bool(torch.isfinite(torch.stack(torch._foreach_norm(params)).float()).all()):
        return
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


def json_or_none(line: str) -> dict | None:
    """A metrics.jsonl line's record; None for a blank line or one cut short (a run killed while writing it)."""
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


class MetricsLog:
    """metrics.jsonl and TensorBoard of the main rank (other ranks log nothing)."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int | None):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # records written after the checkpoint we resume from would be repeated: drop them, and a last
            # line cut short by a kill (it is newer than the checkpoint)
            keep = [line for line in self.path.read_text().splitlines()
                    if (record := json_or_none(line)) is not None and record.get("step", 0) <= resume_step]
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
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's losses so far (checked)
    last_loss: float | None = None
    pending: list[torch.Tensor] = field(default_factory=list)  # losses of the latest steps, not yet read


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
    dtype: torch.dtype | None      # autocast's half type; None: float32
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

    def check_losses(self) -> None:
        """Read the losses of the steps since the last check (one sync); NonFiniteLossError on a bad one."""
        p = self.progress
        values = check_losses(p.pending, p.step - len(p.pending) + 1)
        p.pending = []
        if values:
            p.epoch_losses += values
            p.last_loss = values[-1]

    def save(self, path: Path, also_whole: Path | None = None) -> None:
        """A checkpoint holding model, optimiser, scheduler, scaler, progress, every rank's RNG state and the
        config together. Called on every rank (the checks and the RNG gathering are collective); rank 0
        writes. Frozen encoders go to one sibling file written once per run; ``also_whole`` (best.pt) gets
        the same state self-contained."""
        self.check_losses()  # on every rank (the same global loss): all stop together
        _check_finite_parameters(self.core)  # likewise (identical parameters)
        rng = self.gather_rng_states()
        if not self.dist.is_main:
            return
        p = self.progress
        state = {
            "model": self.core.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "epoch": p.epoch,
            "batch_in_epoch": p.batch_in_epoch, "step": p.step, "best_score": p.best_score,
            "config": self.saved_config, "epoch_losses": list(p.epoch_losses) if p.batch_in_epoch else [],
            "rng": rng, "world_size": self.dist.world_size,
        }
        save_checkpoint(path, state, separate=frozen_prefixes(self.saved_config["model"]))
        if also_whole is not None:
            save_checkpoint(also_whole, state)

    def gather_rng_states(self) -> list[dict]:
        """Every rank's random state (CPU and its one device), in rank order, on rank 0 (others get [])."""
        state = rng_state(self.dist.device)
        if self.dist.world_size == 1:
            return [state]
        out = [None] * self.dist.world_size if self.dist.is_main else None
        dist.gather_object(state, out, dst=0, group=self.dist.wait_group)
        return out or []

    def wait_for_main(self, what: str) -> None:
        """Every rank waits here while rank 0 alone ``what`` (validates, writes a checkpoint): a gloo barrier
        bounded by ``val_wait_s``, so a hung rank 0 fails the others after that time, not hours later."""
        if self.dist.world_size == 1:
            return
        try:
            dist.barrier(group=self.dist.wait_group)
        except RuntimeError as e:
            raise RuntimeError(f"rank {self.dist.rank}: rank 0 {what} took longer than val_wait_s="
                               f"{self.dist.wait_s} s (or failed: see its log): {str(e).splitlines()[0]}") from None


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


def distribute(model: torch.nn.Module, d: DistInfo, sync_batchnorm: bool = True,
               find_unused_parameters: bool = False) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the model to call, the model itself): moved to the rank's device; with several ranks wrapped in
    DistributedDataParallel, with SyncBatchNorm on CUDA when ``sync_batchnorm``."""
    model.to(d.device)
    sync_bn = d.world_size > 1 and d.device.type == "cuda" and sync_batchnorm
    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if d.world_size == 1:
        return model, model
    # SyncBatchNorm keeps the running statistics identical on every rank (and the other buffers are
    # constants): re-broadcasting rank 0's buffers before every forward would only cost time.
    # (torch 2.13 renamed broadcast_buffers, whose False also skips the initial sync, to forward_sync_buffers)
    new_name = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    buffers = {"forward_sync_buffers" if new_name else "broadcast_buffers": not sync_bn}
    wrapped = DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None,
                                      find_unused_parameters=find_unused_parameters, **buffers)
    return wrapped, model


def restore_rng_states(saved: list[dict] | dict, d: DistInfo, seed: int, step: int) -> str | None:
    """Give this rank its own saved random state. A checkpoint saved by another number of ranks cannot give
    every rank its stream: then each rank starts a fresh one seeded from (seed, step, rank) and the message
    saying so is returned (None when the states were restored)."""
    states = [saved] if isinstance(saved, dict) else list(saved)  # a dict: older files, one rank's state
    if len(states) == d.world_size:
        set_rng_state(states[d.rank], d.device)
        return None
    seed_everything(int(np.random.SeedSequence([seed, step, d.rank]).generate_state(1)[0]))
    return (f"the checkpoint holds the random state of {len(states)} rank(s) and this run has {d.world_size}: "
            f"data order, crops, weights and optimiser continue exactly; dropout and other random draws "
            f"continue from fresh per-rank streams (seeded from seed {seed}, step {step} and the rank)")


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

    seed_everything(cfg.seed)  # the same initial weights on every rank
    model = start.build() if start else build_model(cfg, load_pretrained=ckpt is None)
    seed_everything(cfg.seed + d.rank)  # then each rank its own dropout / drop-path stream (as open_clip does)
    cfg.model = model.config.to_dict()  # complete (e.g. the text architecture) so checkpoints rebuild offline
    model, core = distribute(model, d, cfg.sync_batchnorm, cfg.find_unused_parameters)

    weights = None if cfg.data.train[0].weight is None else [s.weight for s in cfg.data.train]
    sampler = MixingBatchSampler(dataset.group_sizes, cfg.batch_size, weights, cfg.data.samples_per_epoch,
                                 cfg.seed, d.rank, d.world_size)
    # Captions are tokenised in the loader's workers (the tokenizer alone travels there, not the model);
    # persistent workers keep their decoded-audio cache (data.cache_mb) from one epoch to the next.
    tokenize = functools.partial(tokenize_texts, core.text_encoder.tokenizer,
                                 max_length=core.config.text.max_length)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=TokenizingCollate(tokenize),
                        num_workers=cfg.data.num_workers, pin_memory=d.device.type == "cuda",
                        persistent_workers=cfg.data.num_workers > 0,
                        generator=torch.Generator().manual_seed(cfg.seed))  # keeps the global RNG untouched

    params = [p for p in core.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.optim.lr_step_epochs, cfg.optim.lr_gamma)
    dtype = autocast_dtype(cfg.amp, cfg.precision, d.device)
    scaler = make_scaler(dtype, d.device)
    progress = Progress()
    if ckpt is not None:
        core.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        load_scaler_state(scaler, ckpt["scaler"])
        progress = Progress(ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"], ckpt["best_score"],
                            list(ckpt["epoch_losses"]))
        note = restore_rng_states(ckpt["rng"], d, cfg.seed, ckpt["step"])
        if note and d.is_main:
            log.warning("resuming %s: %s", cfg.run_dir / "latest.pt", note)

    saved_config = cfg.to_dict()
    saved_config["data"]["crop_s"] = window / sample_rate  # the effective window, for inference tools
    if d.is_main:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "config.json").write_text(json.dumps(saved_config, indent=2))
        if ckpt is None and core.load_reports:  # what the pretrained / released files gave, key by key
            (cfg.run_dir / "load_report.json").write_text(json.dumps(core.load_reports, indent=2))
    logs = MetricsLog(cfg.run_dir, d.is_main, progress.step if ckpt is not None else None)
    return Run(cfg, d, model, core, sampler, loader, optimizer, scheduler, scaler, dtype, window, saved_config,
               logs, progress)


class TokenizingCollate:
    """collate_pairs plus ``tokens``: the captions tokenised (in the DataLoader worker that collates)."""

    def __init__(self, tokenize):
        self.tokenize = tokenize

    def __call__(self, items: list[dict]) -> dict:
        batch = collate_pairs(items)
        batch["tokens"] = self.tokenize(batch["texts"])
        return batch


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict) -> None:
    """A saved loss-scaler state into ``scaler`` when both have one: a run saved without fp16 (CPU, amp off,
    bf16) holds ``{}``, which an enabled scaler refuses; it then starts from its initial scale."""
    if state and scaler.is_enabled():
        scaler.load_state_dict(state)
    elif scaler.is_enabled():
        log.info("the checkpoint holds no fp16 loss-scaler state: starting from the initial scale %s",
                 scaler.get_scale())


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
        p.pending.append(train_step(run.model, batch, run.optimizer, run.scaler, run.dist.device, run.dtype,
                                    cfg.optim.grad_clip_norm))
        p.step += 1
        p.batch_in_epoch += 1
        seen += cfg.batch_size
        if p.step % cfg.log_every == 0:
            run.check_losses()
            bar.set_postfix(loss=f"{p.last_loss:.4f}")
            lr, scale = run.optimizer.param_groups[0]["lr"], float(run.core.scale().detach())
            rate = seen / (time.perf_counter() - t0)
            run.logs.write({"event": "train", "epoch": p.epoch + 1, "step": p.step, "loss": p.last_loss, "lr": lr,
                            "logit_scale": scale, "samples_per_s": rate},
                           {"train/loss": p.last_loss, "train/lr": lr, "train/logit_scale": scale,
                            "train/samples_per_s": rate})
        if (cfg.save_every_steps and p.step % cfg.save_every_steps == 0
                and p.batch_in_epoch < run.sampler.batches_per_epoch):
            run.save(run.latest)
            run.wait_for_main("writing latest.pt")
    run.check_losses()
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
    Without validation manifests best.pt follows latest.pt; epochs not validated never become best.
    Called on every rank; ``score`` and the decision are rank 0's."""
    p = run.progress
    improved = (not run.cfg.data.val) or (score is not None and (p.best_score is None or score > p.best_score))
    if improved and score is not None:
        p.best_score = score
    run.save(run.latest, also_whole=run.best if improved else None)


def train(cfg: RunConfig, resume: bool | str | os.PathLike = False, show_progress: bool = True) -> dict:
    """Train a run to ``cfg.epochs`` epochs (from its latest.pt with ``resume``, or from the checkpoint file
    ``resume`` names); returns a summary."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    d = setup_distributed(cfg.collective_timeout_s, cfg.val_wait_s)
    ckpt = read_resume_checkpoint(cfg, resume)
    run = start_run(cfg, ckpt, d)
    del ckpt
    try:
        while run.progress.epoch < cfg.epochs:
            train_one_epoch(run, show_progress)
            _check_finite_parameters(run.core)  # on every rank (identical parameters): all stop together
            # rank 0 validates before the RNG states are gathered: its loaders draw from the global generator
            score = validate(run) if d.is_main else None
            run.wait_for_main("validating")
            save_epoch_checkpoints(run, score)
            run.wait_for_main("writing checkpoints")
    finally:
        run.logs.close()
    p = run.progress
    return {"run_dir": str(cfg.run_dir), "epochs": p.epoch, "step": p.step, "best_score": p.best_score,
            "last_loss": p.last_loss, "latest": str(run.latest), "best": str(run.best), "rank": d.rank}
