"""Command-line entry points: ``wt5k-train`` and ``wt5k-eval``.

    wt5k-train --config configs/tiny.json [--resume [FILE]] [--check] [key=value ...]
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
import os
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
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="FILE",
                   help="continue the run from its latest.pt, or from the checkpoint FILE (e.g. its best.pt when "
                        "latest.pt is damaged)")
    p.add_argument("--check", action="store_true",
                   help="list what the run needs (manifests and their row counts, missing audio, pretrained files, "
                        "the text model, the output folder) and every problem, in seconds, loading no model; "
                        "exit 0 when the run can start, 2 when not (wt5k-train always runs this check first)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides with JSON values, e.g. epochs=2 optim.lr=3e-4 data.num_workers=0")
    args = p.parse_args(argv)
    if isinstance(args.resume, str) and "=" in args.resume and not Path(args.resume).exists():
        args.overrides, args.resume = [args.resume, *args.overrides], True  # "--resume epochs=3": an override
    show_logs(args.quiet)
    if args.quiet:
        silence_progress_bars()
    from training.preflight import check_run

    try:
        cfg = load_config(args.config, args.overrides)
    except ValueError as e:
        print(f"wt5k-train: {e}", file=sys.stderr)
        return 2
    report = check_run(cfg, resume=args.resume)
    main_rank = os.environ.get("RANK", "0") == "0"  # torchrun: one report, not one per rank
    if args.check:
        print(report.format())
        return 0 if report.ok else 2
    if not report.ok:
        if main_rank:
            print(report.format(), file=sys.stderr)
            print("wt5k-train: stopped before loading anything (wt5k-train --check lists the same)", file=sys.stderr)
        return 2
    if main_rank:
        for line in report.warnings:
            print(f"wt5k-train: warning: {line}", file=sys.stderr)
    from training.train import NonFiniteLossError, train

    import torch.distributed as dist

    try:
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
                                        "bert-base-uncased / gpt2 / roberta-base); for a training checkpoint, its "
                                        "tokenizer (needed when its config names a package or an uncached hub model)")
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
                   "difference, then the paper's benchmark row (A, B, C, D, table4_title_description, "
                   "table4_description, benchmark; any case; default: the row the checkpoint's config names in "
                   "paper_row, if any)")
    p.add_argument("--json", help="write the metrics here (default: eval_<checkpoint stem>.json beside the first "
                                  "checkpoint)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.add_argument("--zero-shot", action="append", metavar="KIND:PATH",
                   help="zero-shot classification on esc50:PATH, us8k:PATH (each in its own layout) or folder:PATH "
                        "(one subfolder per class); repeatable; without --manifest only zero-shot is run")
    p.add_argument("--template", action="append", help="zero-shot prompt, '{}' replaced by the class name "
                   "(repeat to average several: prompt ensembling; default 'This is a sound of {}.')")
    add_released_arguments(p)
    args = p.parse_args(argv)
    show_logs(args.quiet)
    if args.quiet:
        silence_progress_bars()
    if args.zero_shot:  # training/zeroshot.py
        from training.zeroshot import zero_shot_main

        try:
            zero_shot_main(args)
        except (ValueError, FileNotFoundError, NotADirectoryError) as e:
            print(f"wt5k-eval: {e}", file=sys.stderr)
            return 2
        if not args.manifest:
            return 0
    from training.evaluate import evaluate_checkpoints, format_table, write_json
    from training.paper import check_paper_row, size_warnings

    try:
        if args.paper:
            args.paper = check_paper_row(args.paper)
        rows = evaluate_checkpoints(args.checkpoint, args.manifest, args.split, args.caption_mode,
                                    args.batch_size, args.device, args.name, args.paper,
                                    args.checkpoint_format, args.text_model, args.min_share,
                                    trusted=args.trust_checkpoint)
    except (ValueError, FileNotFoundError) as e:
        print(f"wt5k-eval: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    for line in dict.fromkeys(w for per_dataset in rows.values() for w in size_warnings(per_dataset)):
        print(f"warning: {line}")
    first = Path(args.checkpoint[0])
    try:
        out = (write_json(args.json, rows) if args.json
               else write_json(first.parent / f"eval_{first.stem}.json", rows, root=first.parent))
    except (OSError, ValueError) as e:
        print(f"wt5k-eval: {e}", file=sys.stderr)
        return 2
    print(f"metrics written to {out}")
    return 0


if __name__ == "__main__":  # torchrun -m training.cli ... trains
    sys.exit(train_main())
