"""`wt5k-search`: index audio with a trained checkpoint, then search it by text, by audio, or classify zero-shot.

    wt5k-search index --checkpoint runs/tiny/best.pt --manifest data/curated/wavtext5k.csv --out data/index
    wt5k-search index --checkpoint runs/tiny/best.pt --manifest data/curated/wavtext5k.csv:test --out data/index
    wt5k-search index --checkpoint runs/tiny/best.pt --folder ~/sounds --out data/index
    wt5k-search text "a dog barking" --index data/index -k 10        # text -> audio
    wt5k-search audio query.wav --index data/index -k 10             # audio -> captions
    wt5k-search similar query.wav --index data/index -k 10           # audio -> audio (a file or an indexed id)
    wt5k-search classify a.wav b.wav --labels "dog,rain,siren" --index data/index
    wt5k-search classify --labels "dog,rain,siren" --index data/index   # every indexed sound
    wt5k-search serve --index data/index [--host 127.0.0.1] [--port 8000]  # a page to search and listen

Queries load the checkpoint the index was built with (``--checkpoint`` overrides it). ``--json`` prints the
results as one JSON object (text, audio, similar: "hits" with rank, score, id, path, text; classify: per sound
every label's probability, best first); ``--quiet`` shows no progress bar. Released CLAP checkpoints (msclap
2022/2023, LAION-CLAP) index too: their format is told from the keys (``--checkpoint-format`` overrides it) and
``--text-model`` names the text side's tokenizer and architecture (a local folder or hub name; default the
published one); ``--trust-checkpoint`` reads a file that holds objects beyond tensors (full unpickling: only
files you trust); the index remembers the first two (and the checkpoint's sha256, checked on every query) for
its queries, never the trust: a query that loads such a file needs the flag again. The log (stderr) shows each checkpoint's load
report; ``--quiet`` keeps only warnings and errors there.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from manifests.cli_args import port
from manifests.progress import silence_progress_bars
from search.index import DEFAULT_TEMPLATE, AudioIndex, Hit, classify, format_hits, label_prompts
from manifests.logs import show_logs
from training.cli import QUIET_HELP, add_released_arguments


def _embedder(a, index: AudioIndex | None = None):
    from search.build import embedder_for  # torch and the model load only when a command needs them

    return embedder_for(a.checkpoint, index, checkpoint_format=a.checkpoint_format, text_model=a.text_model,
                        min_share=a.min_share, trusted=a.trust_checkpoint)


def _cmd_index(a) -> int:
    t0 = time.perf_counter()
    from search.build import build_index

    from training.config import ManifestSpec

    spec = ManifestSpec.from_arg(a.manifest) if a.manifest else None
    index = build_index(a.checkpoint, a.out, spec.manifest if spec else None, a.folder, a.batch_size, a.window_s,
                        split=spec.split if spec else None, checkpoint_format=a.checkpoint_format,
                        text_model=a.text_model, min_share=a.min_share, trusted=a.trust_checkpoint,
                        allow_outside=a.allow_outside)
    print(f"indexed {len(index)} sounds and {index.n_captions} captions in "
          f"{time.perf_counter() - t0:.1f} s -> {Path(a.out).resolve()}")
    skipped, ignored = index.meta.get("skipped") or [], index.meta.get("ignored_files") or {}
    if skipped:
        print(f"skipped {len(skipped)} file(s) that could not be read (all listed in index.json 'skipped'):",
              file=sys.stderr)
        for s in skipped[:5]:
            print(f"  {s['reason']}", file=sys.stderr)
    if ignored:
        print(f"not read: {sum(ignored.values())} file(s) without an audio extension ("
              + ", ".join(f"{ext} {n}" for ext, n in list(ignored.items())[:6]) + ")", file=sys.stderr)
    return 0


def _cmd_text(a) -> int:
    index = AudioIndex.load(a.index)
    emb = _embedder(a, index)
    hits = index.search_audio(emb.embed_texts([a.query])[0], a.k)
    _print_hits(a, "text -> audio", hits, f'text -> audio: "{a.query}"  ({len(index)} sounds in {a.index})')
    return 0


def _print_hits(a, kind: str, hits: list[Hit], title: str) -> None:
    """The results as a table under a title, or (``--json``) as one JSON object."""
    if a.json:
        print(json.dumps({"kind": kind, "query": a.query, "index": str(a.index),
                          "hits": [dataclasses.asdict(h) for h in hits]}, indent=2, ensure_ascii=False))
    else:
        print(title)
        print(format_hits(hits))


def _query_audio(a, index: AudioIndex) -> tuple[np.ndarray, str | None]:
    """The embedding of the query: an audio file, or an id already in the index."""
    if Path(a.query).is_file():
        return _embedder(a, index).embed_audio_files([a.query])[0], None
    try:
        return index.embedding_of(a.query), a.query
    except KeyError:
        raise ValueError(f"{a.query!r} is neither an audio file nor an id in the index") from None


def _cmd_audio(a) -> int:
    index = AudioIndex.load(a.index)
    query, _ = _query_audio(a, index)
    hits = index.search_captions(query, a.k)
    _print_hits(a, "audio -> text", hits, f"audio -> text: {a.query}  ({index.n_captions} captions in "
                                          f"{a.index})")
    return 0


def _cmd_similar(a) -> int:
    index = AudioIndex.load(a.index)
    query, own_id = _query_audio(a, index)
    hits = index.similar_audio(query, a.k, exclude_id=own_id)
    _print_hits(a, "audio -> audio", hits, f"audio -> audio: {a.query}  ({len(index)} sounds in {a.index})")
    return 0


def _cmd_classify(a) -> int:
    labels = a.labels.split(",") if a.labels else []
    if a.labels_file:
        labels += Path(a.labels_file).read_text(encoding="utf-8").splitlines()
    labels = [label.strip() for label in labels if label.strip()]
    prompts = label_prompts(labels, a.template)
    index = AudioIndex.load(a.index) if a.index else None
    emb = _embedder(a, index)
    if a.files:
        sounds, audio = [(None, f) for f in a.files], emb.embed_audio_files(a.files)
    elif index is not None:
        sounds, audio = [(it["id"], it["path"]) for it in index.items], np.asarray(index.audio)
    else:
        raise ValueError("give audio files to classify, or an --index whose sounds to classify")
    probs = classify(audio, emb.embed_texts(prompts), emb.logit_scale)
    shown = min(a.top, len(labels))
    if a.json:
        results = [{"id": sid, "path": path, "labels": [{"label": labels[j], "probability": float(p[j])}
                                                       for j in np.argsort(-p, kind="stable")]}
                   for (sid, path), p in zip(sounds, probs)]
        print(json.dumps({"kind": "zero-shot", "template": a.template, "labels": labels, "results": results},
                         indent=2, ensure_ascii=False))
        return 0
    print(f"zero-shot over {len(labels)} labels, prompt {a.template!r}")
    for (sid, path), p in zip(sounds, probs):
        order = np.argsort(-p, kind="stable")[:shown]
        print(f"{f'{sid}  {path}' if sid is not None else path}\n  "
              + "  ".join(f"{labels[j]}: {p[j]:.3f}" for j in order))
    return 0


def _cmd_serve(a) -> int:
    from search.server import serve

    index = AudioIndex.load(a.index)
    emb = _embedder(a, index)  # loaded once, for every request
    serve(a.index, emb, a.host, a.port, log_level="warning" if a.quiet else "info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="wt5k-search", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the results as JSON")

    p = sub.add_parser("index", parents=[common], help="embed a manifest or a folder of audio and save the index")
    p.add_argument("--checkpoint", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", metavar="PATH[:SPLIT]",
                     help="manifest CSV, optionally only its train/val/test rows (captions are indexed too)")
    src.add_argument("--folder", help="folder of audio files (searched recursively)")
    p.add_argument("--out", required=True, help="index folder to write (a new folder, or an index folder: "
                                                "replaced whole, atomically)")
    p.add_argument("--allow-outside", action="append", default=[], type=Path, metavar="ROOT",
                   help="also index a manifest's audio under ROOT (by default an audio_path that leads out of "
                        "the manifest's folder is refused); repeatable")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--window-s", type=float, default=None, help="model input window (default: from the run config)")
    add_released_arguments(p)
    p.set_defaults(func=_cmd_index)

    def query_parser(name: str, help_: str, query_help: str, func) -> None:
        q = sub.add_parser(name, parents=[common, as_json], help=help_)
        q.add_argument("query", help=query_help)
        q.add_argument("--index", required=True, help="index folder (from `wt5k-search index`)")
        q.add_argument("-k", type=int, default=10, help="results to show")
        q.add_argument("--checkpoint", help="override the checkpoint the index was built with")
        add_released_arguments(q)
        q.set_defaults(func=func)

    query_parser("text", "text -> audio: sounds matching a description", "the description", _cmd_text)
    query_parser("audio", "audio -> text: captions matching a sound", "audio file or indexed id", _cmd_audio)
    query_parser("similar", "audio -> audio: sounds like a sound", "audio file or indexed id", _cmd_similar)

    c = sub.add_parser("classify", parents=[common, as_json],
                       help="zero-shot classification of sounds over a list of labels")
    c.add_argument("files", nargs="*", help="audio files (default: every sound in --index)")
    c.add_argument("--labels", help="comma-separated labels")
    c.add_argument("--labels-file", help="file with one label per line")
    c.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt, '{}' is replaced by the label")
    c.add_argument("--index", help="index folder (its checkpoint, and its sounds when no files are given)")
    c.add_argument("--checkpoint")
    add_released_arguments(c)
    c.add_argument("--top", type=int, default=3, help="labels to show per sound (--json gives them all)")
    c.set_defaults(func=_cmd_classify)

    s = sub.add_parser("serve", parents=[common], help="a local web page to search the index and listen to the "
                                                      "results (and its JSON API, search/README.md)")
    s.add_argument("--index", required=True, help="index folder (from `wt5k-search index`)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    s.add_argument("--port", type=port, default=8000, help="TCP port (default 8000; 0: any free one)")
    s.add_argument("--checkpoint", help="override the checkpoint the index was built with")
    add_released_arguments(s)
    s.set_defaults(func=_cmd_serve)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "k", 1) < 1:
        parser.error("-k must be at least 1")  # exit 2, like every usage error
    show_logs(args.quiet)
    if args.quiet:
        silence_progress_bars()
    try:
        return args.func(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:  # usage errors and unusable inputs: exit 2
        print(f"wt5k-search {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
