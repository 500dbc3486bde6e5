"""Command-line entry points: ``wt5k-train`` and ``wt5k-eval``.

    wt5k-train --config configs/tiny.json [--resume] [key=value ...]
    torchrun --nproc-per-node 4 -m training.cli --config configs/exp_B.json     # several GPUs
    wt5k-eval --checkpoint runs/tiny/best.pt [--checkpoint runs/other/best.pt] [--manifest PATH[:SPLIT] ...]
              [--split test|val] [--paper ROW] [--json out.json] [--quiet] [--trust-checkpoint]
    wt5k-eval --checkpoint CLAP_weights_2022.pth --text-model bert-base-uncased --manifest PATH:test
              (released msclap / LAION-CLAP files; --checkpoint-format overrides the format told from the keys;
              --trust-checkpoint reads files holding objects beyond tensors)

Each command logs to stderr (checkpoint load reports among others); --quiet keeps warnings and errors only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from manifests.captions import CAPTION_MODES
from manifests.logs import show_logs
from manifests.progress import silence_progress_bars
from training.config import ManifestSpec, load_config


QUIET_HELP = ("no progress bars, and of the log (stderr: checkpoint load reports and other notes) only warnings "
              "and errors")


def train_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wt5k-train", description="Train a CLAP model from a run config.")
    p.add_argument("--config", required=True, help="run config JSON (configs/*.json)")
    p.add_argument("--resume", action="store_true", help="continue the run from its latest.pt")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides with JSON values, e.g. epochs=2 optim.lr=3e-4 data.num_workers=0")
    args = p.parse_args(argv)
    show_logs(args.quiet)
    if args.quiet:
        silence_progress_bars()
    from training.train import NonFiniteLossError, train

    import torch.distributed as dist

    try:
        cfg = load_config(args.config, args.overrides)
        summary = train(cfg, resume=args.resume, show_progress=not args.quiet)
    except NonFiniteLossError as e:
        print(f"wt5k-train: training stopped: {e}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"wt5k-train: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if summary["rank"] != 0:  # under torchrun rank 0 alone reports (the best score is its own)
        return 0
    best = "n/a (no validation manifests)" if summary["best_score"] is None else f"{summary['best_score']:.4f}"
    print(f"done: {summary['epochs']} epochs, {summary['step']} steps, best validation score {best}, "
          f"checkpoints in {summary['run_dir']}")
    return 0


def add_released_arguments(p: argparse.ArgumentParser) -> None:
    """--checkpoint-format, --text-model, --min-share, --trust-checkpoint: how a checkpoint (a released one:
    msclap, LAION-CLAP) is read."""
    from training.released import FORMATS

    p.add_argument("--checkpoint-format", choices=FORMATS,
                   help="format of --checkpoint (default: told from its keys)")
    p.add_argument("--text-model", help="released checkpoints hold weights only: the text side's tokenizer and "
                                        "architecture, a local folder or hub name (default: the published one, "
                                        "bert-base-uncased / gpt2 / roberta-base)")
    p.add_argument("--min-share", type=float, default=1.0,
                   help="share of a released checkpoint's keys that must load (default 1: every encoder and "
                        "projection weight; below 1 allows a partial load, reported key by key)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="read the checkpoint with full unpickling: needed by files that hold objects beyond tensors "
                        "(PyTorch Lightning's HTS-AT checkpoint, some LAION-CLAP files); unpickling runs code the "
                        "file names, so only for files you trust")


def eval_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wt5k-eval", description="Retrieval metrics (Table 3 layout) of checkpoints.")
    p.add_argument("--checkpoint", action="append", required=True, help="checkpoint .pt (repeat for more rows)")
    p.add_argument("--name", action="append", help="row name per checkpoint (default: run/file stem)")
    p.add_argument("--manifest", action="append", type=ManifestSpec.from_arg,
                   help="manifest to evaluate, optionally PATH:SPLIT (repeatable; default: the run's own)")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="which manifest list of the run config to use when no --manifest is given")
    p.add_argument("--caption-mode", choices=CAPTION_MODES)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--paper", metavar="ROW", help="print the paper's row beside each checkpoint's, with the "
                   "difference (A, B, C, D, table4_title_description, table4_description; default: the row the "
                   "checkpoint's config names in paper_row, if any)")
    p.add_argument("--json", help="write the metrics here (default: eval_<checkpoint stem>.json beside the first "
                                  "checkpoint)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    add_released_arguments(p)
    args = p.parse_args(argv)
    show_logs(args.quiet)
    if args.quiet:
        silence_progress_bars()
    from training.evaluate import evaluate_checkpoints, format_table, write_json
    from training.paper import check_paper_row

    try:
        if args.paper:
            check_paper_row(args.paper)
        rows = evaluate_checkpoints(args.checkpoint, args.manifest, args.split, args.caption_mode,
                                    args.batch_size, args.device, args.name, args.paper,
                                    args.checkpoint_format, args.text_model, args.min_share,
                                    trusted=args.trust_checkpoint)
    except (ValueError, FileNotFoundError) as e:
        print(f"wt5k-eval: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    first = Path(args.checkpoint[0])
    out = write_json(args.json or first.parent / f"eval_{first.stem}.json", rows)
    print(f"metrics written to {out}")
    return 0


if __name__ == "__main__":  # torchrun -m training.cli ... trains
    sys.exit(train_main())
