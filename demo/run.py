"""`make demo` = `python -m demo --out data/demo` (or `wt5k-demo`): the whole toolkit, offline, in a few minutes on a CPU.

1. generate a few hundred procedural sounds with captions that describe them (demo/sounds.py);
2. serve them from the project's mirror of SoundBible and BigSoundBank (crawler.mirror) on loopback;
3. crawl the mirror with the real spiders (`wt5k-crawl` in a subprocess, politeness off, base URLs -> mirror);
4. curate the crawl (`wt5k-curate run`): 44.1 kHz FLAC, manifest, rejects, statistics, split;
5. train a small CLAP on CPU (`wt5k-train`, demo/demo.json with the curated manifest);
6. evaluate it (`wt5k-eval`): Table 3 metrics on the test split, with the chance levels beside them, on the
   curated captions and on five other wordings of each test sound;
7. index every curated sound (`wt5k-search index`) and run a few searches and a zero-shot classification.

Every stage is the code a user runs on the real sites; only the base URLs differ. Everything goes under --out.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from manifests.cli_args import positive
from manifests.crawl_record import ITEMS_FILE, last_records
from manifests.progress import silence_progress_bars
from manifests.schema import ManifestRow, read_manifest, write_manifest

# Package data: the demo runs the same from a source checkout and from an installed wheel.
DEMO_CONFIG = Path(__file__).with_name("demo.json")
MARKER = ".wt5k-demo"  # marks a folder as the demo's own, so that a re-run may clear it
SUBFOLDERS = ("sounds", "raw", "curated", "runs", "index", "logs")
SPLIT_FRACTIONS = "0.75,0.1,0.15"
TEXT_QUERIES = ("a loud high-pitched tone followed by a burst of noise", "a quiet rising sweep",
                "fast clicking", "slow low beeps, then a falling sweep")
ZERO_SHOT_LABELS = ("a steady tone", "a rising sweep", "a falling sweep", "clicks", "a noise burst", "beeps")
# --quick: the same pipeline on fewer sounds and 64 training steps (the test suite runs it)
QUICK = {"n_sounds": 160, "overrides": ["epochs=8", "data.samples_per_epoch=256", "val_every=8"]}


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise FileExistsError(f"{out} exists and is not a demo folder; choose another --out")
    for sub in SUBFOLDERS:
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("created by python -m demo; re-runs clear this folder's demo outputs\n")
    (out / "logs").mkdir()


def _stage(n: int, title: str) -> float:
    print(f"\n=== [{n}/7] {title}", flush=True)
    return time.perf_counter()


def _crawl(csv_path: Path, audio_dir: Path, raw: Path, log: Path) -> dict:
    """Serve the sounds from the mirror and crawl it with both site spiders in a subprocess."""
    from crawler.mirror import start_mirror

    with start_mirror(csv_path, audio_dir=audio_dir) as mirror:
        cmd = [sys.executable, "-m", "crawler.cli", "--out", str(raw), "--no-polite", "--log-level", "WARNING",
               "--url", f"soundbible={mirror.soundbible_url}", "--url", f"bigsoundbank={mirror.bigsoundbank_url}",
               "soundbible", "bigsoundbank"]
        print("$ wt5k-crawl " + " ".join(cmd[3:]), flush=True)
        with open(log, "w") as f:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"error: the crawl failed (exit {rc}); see {log}")
    counts = {}
    for items in sorted(raw.glob(f"*/{ITEMS_FILE}")):
        statuses = [r.status for r in last_records(items).values()]
        counts[items.parent.name] = {s: statuses.count(s) for s in sorted(set(statuses))}
    return counts


def _varied_caption_manifest(curated: Path, captions_json: Path, out_path: Path) -> Path:
    """The test sounds again, each with five other wordings of what it holds (the multi-caption layout of Clotho):
    a test of whether the model learnt the sounds rather than the exact words of their pages."""
    captions = json.loads(captions_json.read_text())
    rows = []
    for r in read_manifest(curated):
        if r.split != "test":
            continue
        audio = os.path.relpath(curated.parent / r.audio_path, out_path.parent)
        for c in captions[r.id]["captions"]:
            rows.append(ManifestRow(id=r.id, source=r.source, audio_path=audio, caption=c, split="test",
                                    duration_s=r.duration_s, sample_rate=r.sample_rate, channels=r.channels))
    return write_manifest(out_path, rows)


def _print_metrics(rows: dict) -> dict:
    """The headline: R@1, R@10, mAP@10 of both directions against their chance levels."""
    summary = {}
    print(f"\n{'dataset':<24} {'direction':<9} {'R@1':>14} {'R@10':>14} {'mAP@10':>8}   (model vs chance, %)")
    for per_dataset in rows.values():
        for label, m in per_dataset.items():
            chance = m["chance"]  # retrieval_metrics' exact chance levels of this dataset
            summary[label] = {"n_audios": m["n_audios"], "n_captions": m["n_captions"], "model": {}, "chance": chance}
            for d in ("t2a", "a2t"):
                summary[label]["model"][d] = {k: m[d][k] for k in ("R@1", "R@5", "R@10", "mAP@10")}
                r1, r10 = m[d]["R@1"], m[d]["R@10"]
                c1, c10 = chance[d]["R@1"], chance[d]["R@10"]
                print(f"{label:<24} {d:<9} {100 * r1:6.1f} vs {100 * c1:4.1f} {100 * r10:6.1f} vs {100 * c10:4.1f} "
                      f"{100 * m[d]['mAP@10']:8.1f}")
    return summary


def _searches(checkpoint: Path, curated: Path, index_dir: Path) -> list[dict]:
    """Index every curated sound, then text -> audio, audio -> text, audio -> audio and zero-shot queries."""
    from search.build import build_index
    from search.index import AudioIndex, classify, format_hits, label_prompts
    from training.inference import Embedder

    emb = Embedder.from_checkpoint(checkpoint)  # read once: it builds the index and answers the queries
    index = build_index(str(checkpoint), index_dir, manifest=str(curated), embedder=emb)
    print(f"indexed {len(index)} sounds and {index.n_captions} captions -> {index_dir}")
    index = AudioIndex.load(index_dir)  # searched from disk, as `wt5k-search` does
    results = []
    for q in TEXT_QUERIES:
        hits = index.search_audio(emb.embed_texts([q])[0], 3)
        print(f'\n$ wt5k-search text "{q}" --index {index_dir} -k 3')
        print(format_hits(hits))
        results.append({"query": q, "kind": "text", "hits": [h.__dict__ for h in hits]})
    test = [r for r in read_manifest(curated) if r.split == "test"][:2]
    for r in test:
        path = str(curated.parent / r.audio_path)
        query = emb.embed_audio_files([path])[0]
        hits = index.search_captions(query, 3)
        print(f"\n$ wt5k-search audio {path} --index {index_dir} -k 3     # its own caption: {r.caption!r}")
        print(format_hits(hits))
        results.append({"query": path, "kind": "audio", "hits": [h.__dict__ for h in hits]})
        hits = index.similar_audio(query, 3, exclude_id=r.id)
        print(f"\n$ wt5k-search similar {r.id} --index {index_dir} -k 3")
        print(format_hits(hits))
        results.append({"query": r.id, "kind": "similar", "hits": [h.__dict__ for h in hits]})
    prompts = label_prompts(ZERO_SHOT_LABELS, "the sound of {}")
    probs = classify(emb.embed_audio_files([str(curated.parent / r.audio_path) for r in test]),
                     emb.embed_texts(prompts), emb.logit_scale)
    print(f"\n$ wt5k-search classify <files> --labels \"{','.join(ZERO_SHOT_LABELS)}\" "
          f"--template \"the sound of {{}}\" --index {index_dir}")
    for r, p in zip(test, probs):
        best = sorted(zip(ZERO_SHOT_LABELS, p), key=lambda t: -t[1])[:3]
        print(f"{r.title}\n  " + "  ".join(f"{label}: {prob:.3f}" for label, prob in best))
        results.append({"query": r.id, "kind": "classify", "labels": {l: float(x) for l, x in zip(ZERO_SHOT_LABELS, p)}})
    return results


def run_demo(out: str | Path, n_sounds: int = 400, seed: int = 0, config: str | Path = DEMO_CONFIG,
             overrides: list[str] | None = None, quiet: bool = False) -> dict:
    """Run every stage into ``out``; returns (and writes to out/summary.json) metrics, chance levels, timings
    and the paths of every artefact."""
    from training.cli import eval_main, train_main
    from curation.cli import main as curate_main
    from demo.sounds import generate_demo_sounds

    out = Path(out).resolve()
    _prepare(out)
    t_start = time.perf_counter()
    times: dict[str, float] = {}
    paths = {sub: out / sub for sub in SUBFOLDERS}

    t0 = _stage(1, f"generate {n_sounds} procedural sounds with captions")
    csv_path = generate_demo_sounds(paths["sounds"], n_sounds, seed)
    print(f"{csv_path} (published WavText5K format) and {n_sounds} files in {paths['sounds'] / 'audio'}")
    times["generate"] = time.perf_counter() - t0

    t0 = _stage(2, "serve them from the offline mirror and crawl it with the SoundBible and BigSoundBank spiders")
    counts = _crawl(csv_path, paths["sounds"] / "audio", paths["raw"], paths["logs"] / "crawl.log")
    for spider, c in counts.items():
        print(f"{spider}: {c}  -> {paths['raw'] / spider / ITEMS_FILE}")
    times["mirror+crawl"] = time.perf_counter() - t0

    t0 = _stage(3, "curate the crawl")
    args = ["run", "--raw", str(paths["raw"]), "--out", str(paths["curated"]), "--no-progress",
            "--fractions", SPLIT_FRACTIONS]
    print("$ wt5k-curate " + " ".join(args), flush=True)
    if curate_main(args) != 0:
        raise SystemExit("error: curation failed")
    curated = paths["curated"] / "wavtext5k.csv"
    times["curate"] = time.perf_counter() - t0

    t0 = _stage(4, "train the demo CLAP on CPU")
    cfg = json.loads(Path(config).read_text())
    for split in ("train", "val", "test"):
        for spec in cfg["data"].get(split, []):
            spec["manifest"] = str(curated)
    cfg["out_dir"] = str(paths["runs"])
    run_config = paths["runs"] / "demo_config.json"
    run_config.parent.mkdir(parents=True, exist_ok=True)
    run_config.write_text(json.dumps(cfg, indent=2))
    train_args = ["--config", str(run_config)] + (["--quiet"] if quiet or not sys.stderr.isatty() else []) + list(overrides or [])
    print("$ wt5k-train " + " ".join(train_args), flush=True)
    if train_main(train_args) != 0:
        raise SystemExit("error: training failed")
    run_dir = paths["runs"] / cfg["name"]
    checkpoint = run_dir / "best.pt"
    times["train"] = time.perf_counter() - t0

    t0 = _stage(5, "evaluate on the test split (Table 3 layout)")
    varied = _varied_caption_manifest(curated, paths["sounds"] / "captions.json",
                                      paths["curated"] / "test_varied.csv")
    eval_json = run_dir / "eval_test.json"
    eval_args = ["--checkpoint", str(checkpoint), "--name", "demo", "--manifest", f"{curated}:test",
                 "--manifest", str(varied), "--json", str(eval_json)]
    print("$ wt5k-eval " + " ".join(eval_args), flush=True)
    if eval_main(eval_args) != 0:
        raise SystemExit("error: evaluation failed")
    metrics = _print_metrics(json.loads(eval_json.read_text()))
    times["evaluate"] = time.perf_counter() - t0

    t0 = _stage(6, "index every curated sound and search")
    searches = _searches(checkpoint, curated, paths["index"])
    times["index+search"] = time.perf_counter() - t0

    times["total"] = time.perf_counter() - t_start
    artefacts = {
        "sounds (published-format CSV, audio, every caption)": paths["sounds"],
        "crawl (items.jsonl + files per spider; crawl log)": paths["raw"],
        "curated manifest": curated, "curation rejects": paths["curated"] / "rejects.csv",
        "curation statistics (Table 1) and figures": paths["curated"] / "stats.md",
        "test manifest with varied captions": varied,
        "run (config, checkpoints, metrics.jsonl, TensorBoard)": run_dir, "best checkpoint": checkpoint,
        "evaluation (JSON)": eval_json, "search index": paths["index"], "summary": out / "summary.json",
    }
    summary = {"wall_s": {k: round(v, 1) for k, v in times.items()}, "n_sounds": n_sounds, "crawl": counts,
               "metrics": metrics, "searches": searches, "artefacts": {k: str(v) for k, v in artefacts.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    _stage(7, "where everything went")
    for what, p in artefacts.items():
        print(f"{what:<55} {p}")
    print("\ntimes (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    print(f"try: wt5k-search text \"a quiet falling sweep\" --index {paths['index']} -k 5")
    print(f"listen to the results in a browser (then open http://127.0.0.1:8000/):\n"
          f"  wt5k-search serve --index {paths['index']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", default="data/demo", help="folder for everything the demo writes (cleared on re-run)")
    ap.add_argument("--sounds", type=positive, default=None, help="number of generated sounds (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=str(DEMO_CONFIG), help="training config (manifest paths are filled in)")
    ap.add_argument("--quick", action="store_true", help="a shortened run (160 sounds, 8 short epochs: 64 training "
                                                         "steps): checks the pipeline, not the model's quality")
    ap.add_argument("--quiet", action="store_true", help="no progress bars (also off when stderr is not a terminal)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides, e.g. epochs=10")
    a = ap.parse_args(argv)
    if a.quiet:
        silence_progress_bars()
    n = a.sounds or (QUICK["n_sounds"] if a.quick else 400)
    overrides = (QUICK["overrides"] if a.quick else []) + a.overrides
    # usage errors found now, not after minutes of crawling and curating
    if Path(a.out).exists() and not Path(a.out).is_dir():
        ap.error(f"--out {a.out} exists and is not a folder")
    from training.config import load_config
    try:
        load_config(a.config, overrides)
    except ValueError as e:  # no such file, not JSON, an override that is not key=value or of the wrong type
        ap.error(f"--config {a.config}: {e}")
    try:
        run_demo(a.out, n, a.seed, a.config, overrides, a.quiet)
    except FileExistsError as e:  # a usage error: exit 2
        print(f"python -m demo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
