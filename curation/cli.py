"""``wt5k-curate``: curation, statistics, published-CSV import/export, AudioCaps and Clotho conversion.

  wt5k-curate run --raw data/raw --out data/curated            # crawl output -> curated dataset
  wt5k-curate run --published meta.csv audio/ --out data/curated
  wt5k-curate stats manifests/wavtext5k_published.csv [--out DIR]  # Table 1 of a manifest or published CSV
  wt5k-curate stats train=train.csv val=val.csv test=test.csv     # ... or of AudioCaps / Clotho caption CSVs
  wt5k-curate import-published manifests/wavtext5k_published.csv --out wavtext5k_import.csv
  wt5k-curate export-published data/curated/wavtext5k.csv --out published.csv
  wt5k-curate audiocaps --csv train=train.csv --csv val=val.csv --clips clips/ --out data/audiocaps
  wt5k-curate clotho --split train dev.csv development/ --out data/clotho
  wt5k-curate folder ~/sounds --captions captions.csv --out data/mine      # your own sounds (or
        --labels-from-subfolders: dog_bark/x.wav is "dog bark"; --sidecar-text: x.wav + x.txt)
  wt5k-curate overlap --train data/curated/wavtext5k.csv:train --test data/clotho/clotho.csv:test --out data/overlap
"""
from __future__ import annotations

import argparse
import codecs
import json
import sys
from pathlib import Path

from manifests import (PUBLISHED_CSV, ManifestError, manifest_to_published, read_manifest, read_published_csv,
                       write_manifest, write_published_csv)

from manifests.captions import BUILD_MODES
from manifests.cli_args import number

from .audio import CHANNEL_POLICIES, FORMATS, OVERSHOOT_POLICIES, RESAMPLERS, AudioOptions
from .dataset_files import DEFAULT_ENCODING
from .pipeline import FATAL_ERRNOS, CurateOptions, CurateReport, curate
from .sources import read_id_list
from .split import parse_fractions
from .text import NORMAL_FORMS


def _encoding(text: str) -> str:
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {text!r} (e.g. utf-8, cp949, latin-1)") from None
    return text


def _add_curate_options(p: argparse.ArgumentParser, manifest_name: str | None) -> None:
    p.add_argument("--out", required=True, help="output folder (manifest, rejects.csv, stats, figures, audio/)")
    p.add_argument("--manifest-name", default=manifest_name,
                   help="manifest file name inside --out" + ("" if manifest_name else " (default: <name>.csv)"))
    p.add_argument("--workers", type=number(int, 0, what="a number of workers (0 or more)"), default=0,
                   help="worker processes (0: all cores)")
    p.add_argument("--format", choices=tuple(FORMATS), default="flac", help="output audio format")
    p.add_argument("--bit-depth", type=int, choices=(16, 24), help="output bit depth (default: FLAC 16, WAV 24)")
    p.add_argument("--channels", choices=CHANNEL_POLICIES, default="mono", help="mono downmix or keep channels")
    p.add_argument("--resampler", choices=RESAMPLERS, default="soxr")
    p.add_argument("--sample-rate", type=number(int, 0, strict=True, what="a sample rate in Hz (a positive integer)"),
                   default=44100, help="output sample rate in Hz")
    p.add_argument("--on-overshoot", choices=OVERSHOOT_POLICIES, default="attenuate",
                   help="a file whose resampled peak would exceed full scale: attenuate it as a whole by one gain "
                        "(default: no sample clipped; the gain is in the manifest's gain_db) or clip it (levels "
                        "untouched; clipped samples counted in clipped_samples)")
    p.add_argument("--min-duration", type=number(float, 0, what="a duration in seconds (0 or more)"),
                   default=AudioOptions.min_duration_s, help="seconds")
    p.add_argument("--silence-dbfs", type=number(float, float("-inf"), strict=True, what="a finite level in dBFS"),
                   default=AudioOptions.silence_dbfs, help="peak at or below this level is rejected as silent")
    p.add_argument("--exclude", type=Path, help="ids to leave out: one per line, or a CSV with an id column")
    p.add_argument("--text-form", choices=NORMAL_FORMS, default="NFC", help="Unicode normal form of the text")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bars")


def _add_item_options(p: argparse.ArgumentParser) -> None:
    """The options of commands whose sounds have a title and description (run, folder)."""
    p.add_argument("--caption-mode", choices=BUILD_MODES, default="title_description")
    p.add_argument("--require-both", action="store_true",
                   help="keep only sounds with both a title and a description (default: the paper's filter, "
                        "a title or a description; a title-only sound is captioned by its title in both modes)")
    p.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions of the id-hash split")
    p.add_argument("--allow-outside", action="append", default=[], type=Path, metavar="ROOT",
                   help="also read audio files under ROOT (by default a file_path or fname that leads out of its "
                        "own folder is rejected as input/unsafe_path); repeatable")


def _options(a: argparse.Namespace, **extra) -> CurateOptions:
    audio = AudioOptions(target_sr=a.sample_rate, resampler=a.resampler, out_format=a.format, bit_depth=a.bit_depth,
                         channels=a.channels, on_overshoot=a.on_overshoot,
                         min_duration_s=a.min_duration, silence_dbfs=a.silence_dbfs)
    return CurateOptions(audio=audio, workers=a.workers, progress=not a.no_progress, figures=not a.no_figures,
                         exclude=read_id_list(a.exclude) if a.exclude else frozenset(), text_form=a.text_form,
                         manifest_name=a.manifest_name, **extra)


def _print_report(rep: CurateReport) -> int:
    """Prints what a curation run wrote; its exit status: 1 when no manifest row came out (nothing to train on
    is a failure, whatever the reason), else 0."""
    print(f"manifest: {rep.manifest} ({rep.n_rows} rows, {rep.n_audios} audios)")
    print(f"rejects:  {rep.rejects} ({rep.n_rejects})")
    for reason, n in rep.rejects_by_reason.items():
        print(f"  {reason}: {n}")
    print(f"audio: {rep.processed} processed, {rep.reused} reused from an earlier run")
    print(f"stats: {rep.out_dir / 'stats.md'}")
    if rep.n_rows:
        return 0
    why = (f"all {rep.n_inputs} inputs were rejected (reasons above, each in {rep.rejects})" if rep.n_inputs
           else "the inputs hold no items (a CSV with a header and no rows, or a folder without audio files?)")
    print(f"error: no rows came out: {why}", file=sys.stderr)
    return 1


class UsageError(Exception):
    """A command line that cannot be run: reported like argparse's own errors, exit status 2."""


def cmd_run(a: argparse.Namespace) -> int:
    if not a.raw and not a.published:
        raise UsageError("give --raw DIR and/or --published CSV AUDIO_DIR")
    opts = _options(a, caption_mode=a.caption_mode, require_both=a.require_both,
                    fractions=parse_fractions(a.fractions), allow_outside=tuple(a.allow_outside))
    return _print_report(curate(a.out, raw=a.raw or (), published=a.published or (), options=opts))


def cmd_stats(a: argparse.Namespace) -> int:
    from .records import read_records
    from .stats import headroom, headroom_markdown, write_records_report
    from .table1 import table1_of_records, to_markdown
    recs, paths, kinds, manifest_rows = [], [], [], []
    for spec in a.inputs:
        split, sep, path = spec.partition("=")
        if not sep:
            split, path = None, spec
        kind, got, rows = read_records(path, split, a.encoding)
        kinds.append(f"{path}: {kind}")
        manifest_rows += rows  # curated manifests record what the headroom policy did
        recs += got
        paths.append(path)
    h = headroom(manifest_rows) if manifest_rows else None
    if a.out:
        report = write_records_report(recs, a.out, paths, figures=not a.no_figures, headroom_section=h)
        print(f"wrote {Path(a.out) / 'stats.json'} and stats.md" + (" and figures/" if not a.no_figures else ""))
        for name, why in report.get("figures_not_drawn", {}).items():
            print(f"  {name} not drawn: {why}")
        table = report["table1"]
    else:
        table = table1_of_records(recs)
    if a.json:
        print(json.dumps(table, indent=2))
    else:
        print("read " + "; ".join(kinds) + "\n")
        print(to_markdown(table) + ("\n" + headroom_markdown(h) if h else ""), end="")
    return 0


def cmd_import_published(a: argparse.Namespace) -> int:
    from .published import import_published
    too_long: list[tuple[int, str]] = []
    published = read_published_csv(a.csv, too_long)
    for line, why in too_long:  # one rejected row each, not an aborted import
        print(f"{a.csv}: row {line} left out: {why}", file=sys.stderr)
    if not published and not too_long:
        print(f"wt5k-curate import-published: error: no rows came out: {a.csv} has a header and no rows; "
              f"nothing written", file=sys.stderr)
        return 1
    rows, failing = import_published(published, a.caption_mode, a.audio_dir, parse_fractions(a.fractions),
                                     a.require_both)
    write_manifest(a.out, rows, optional=("title_raw", "description_raw", "tags_raw"))
    rule = "a title and a description" if a.require_both else "a title or a description"
    print(f"{a.out}: {len(rows)} rows from {len(published)} published rows; "
          f"{len(rows) - sum(failing.values())} pass the filter ({rule}) and have a split")
    for reason, n in sorted(failing.items()):
        print(f"  {n} rows with {reason}: kept without a split")
    return 0


def cmd_export_published(a: argparse.Namespace) -> int:
    rows = read_manifest(a.manifest)
    out = manifest_to_published(rows)
    write_published_csv(a.out, out)
    print(f"{a.out}: {len(out)} published rows from {len(rows)} manifest rows")
    return 0


def cmd_audiocaps(a: argparse.Namespace) -> int:
    from .converters import convert_audiocaps
    csvs = {}
    for spec in a.csv:
        split, sep, path = spec.partition("=")
        if not sep or split not in ("train", "val", "test"):
            raise UsageError(f"--csv wants SPLIT=PATH with SPLIT train, val or test, got {spec!r}")
        csvs[split] = path
    return _print_report(convert_audiocaps(csvs, a.clips, a.out, _options(a), encoding=a.encoding))


def cmd_clotho(a: argparse.Namespace) -> int:
    from .converters import convert_clotho
    for split, _, _ in a.split:
        if split not in ("train", "val", "test"):
            raise UsageError(f"--split wants SPLIT CSV AUDIO_DIR with SPLIT train, val or test, got {split!r}")
    return _print_report(convert_clotho([tuple(s) for s in a.split], a.out, _options(a), encoding=a.encoding))


def cmd_folder(a: argparse.Namespace) -> int:
    from .converters import convert_folder
    from .folder import check_name, default_name
    name = check_name(a.name) if a.name else default_name(a.dir)
    a.manifest_name = a.manifest_name or f"{name}.csv"
    opts = _options(a, caption_mode=a.caption_mode, require_both=a.require_both,
                    fractions=parse_fractions(a.fractions), allow_outside=tuple(a.allow_outside))
    rep, scan = convert_folder(a.dir, a.out, name, captions=a.captions, labels_from_subfolders=a.labels_from_subfolders,
                               sidecar_text=a.sidecar_text, options=opts, encoding=a.encoding)
    other = ", ".join(f"{ext}: {n}" for ext, n in scan.other_files.most_common())
    print(f"{a.dir}: {scan.audio_files} audio files"
          + (f"; other files (not audio by extension): {other}" if other else ""))
    if scan.not_followed:
        print(f"  links to folders, not followed: {', '.join(scan.not_followed[:5])}"
              + (f" and {len(scan.not_followed) - 5} more" if len(scan.not_followed) > 5 else ""))
    return _print_report(rep)


def cmd_overlap(a: argparse.Namespace) -> int:
    from .overlap import KINDS, audit
    rep = audit(a.train, a.test, a.out, drop=a.drop, drop_kinds=[k for k in a.drop_kinds.split(",") if k],
                text_threshold=a.text_threshold, cache_dir=a.cache, workers=a.workers, progress=not a.no_progress)
    s = rep.summary
    print(f"{rep.out_dir / 'overlap.csv'}: {len(rep.pairs)} pairs (" +
          ", ".join(f"{k} {s['pairs_by_kind'][k]}" for k in KINDS) + "); summary.json, summary.md")
    for sets, kinds in s["pairs_by_sets"].items():
        print(f"  {sets}: " + ", ".join(f"{k} {v['pairs']} ({v['test_items']} test items)" for k, v in kinds.items()))
    if rep.problems:
        print(f"files not (fully) audited: {len(rep.problems)} (" +
              ", ".join(f"{r} {n}" for r, n in s["problems_by_reason"].items()) + "), listed in summary.md")
    for line in rep.dropped:
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wt5k-curate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="curate crawl outputs and/or published-format folders")
    r.add_argument("--raw", action="append", type=Path, help="crawl output folder (<spider>/items.jsonl); repeatable")
    r.add_argument("--published", nargs=2, action="append", metavar=("CSV", "AUDIO_DIR"),
                   help="a CSV in the published WavText5K format and the folder of its fname files; repeatable")
    _add_item_options(r)
    _add_curate_options(r, "wavtext5k.csv")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("stats", help="Table 1 statistics (and figures with --out) of manifests, published-format "
                                     "CSVs or AudioCaps/Clotho caption CSVs (no audio needed)")
    s.add_argument("inputs", nargs="+", metavar="[SPLIT=]CSV",
                   help="a manifest, a published WavText5K-format CSV, or AudioCaps / Clotho caption CSVs (kind "
                        "detected from the columns; several files give one row each, e.g. train=train.csv, and a "
                        "total; SPLIT defaults to the file name)")
    s.add_argument("--out", type=Path, help="write stats.json, stats.md and figures/ here")
    s.add_argument("--no-figures", action="store_true")
    s.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    s.add_argument("--encoding", type=_encoding, default=DEFAULT_ENCODING,
                   help="text encoding of AudioCaps/Clotho CSVs (copies of Clotho's circulate in cp949)")
    s.set_defaults(func=cmd_stats)

    i = sub.add_parser("import-published", help="published WavText5K CSV -> manifest (audio not fetched)")
    i.add_argument("csv", type=Path, nargs="?", default=PUBLISHED_CSV,
                   help="published-format CSV (default: the WavText5K one shipped in manifests/)")
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--audio-dir", default="audio", help="audio_path prefix for the fname files")
    i.add_argument("--caption-mode", choices=BUILD_MODES, default="title_description")
    i.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions of the id-hash split")
    i.add_argument("--require-both", action="store_true",
                   help="the filter wants both a title and a description (default: the paper's filter, a title "
                        "or a description); rows it rejects are kept without a split")
    i.set_defaults(func=cmd_import_published)

    e = sub.add_parser("export-published", help="manifest -> published WavText5K CSV format")
    e.add_argument("manifest", type=Path)
    e.add_argument("--out", type=Path, required=True)
    e.set_defaults(func=cmd_export_published)

    ac = sub.add_parser("audiocaps", help="AudioCaps CSVs + clips folder -> manifest")
    ac.add_argument("--csv", action="append", required=True, metavar="SPLIT=PATH", help="e.g. train=train.csv")
    ac.add_argument("--clips", type=Path, required=True, help="folder of downloaded clips (may be incomplete)")
    ac.add_argument("--encoding", type=_encoding, default=DEFAULT_ENCODING, help="text encoding of the CSVs")
    _add_curate_options(ac, "audiocaps.csv")
    ac.set_defaults(func=cmd_audiocaps)

    cl = sub.add_parser("clotho", help="Clotho caption CSVs + audio folders -> manifest")
    cl.add_argument("--split", nargs=3, action="append", required=True, metavar=("SPLIT", "CSV", "AUDIO_DIR"))
    cl.add_argument("--encoding", type=_encoding, default=DEFAULT_ENCODING,
                    help="text encoding of the CSVs (copies of Clotho's circulate in cp949)")
    _add_curate_options(cl, "clotho.csv")
    cl.set_defaults(func=cmd_clotho)

    fo = sub.add_parser("folder", help="a folder of your own sounds -> manifest, captions from a CSV, the subfolder "
                                       "names or a text file beside each sound")
    fo.add_argument("dir", type=Path, help="the folder of sounds (subfolders are read too)")
    source = fo.add_mutually_exclusive_group(required=True)
    source.add_argument("--captions", type=Path, metavar="CSV",
                        help="a CSV: file (relative to DIR), caption or title/description; optional tags, author, "
                             "license, split")
    source.add_argument("--labels-from-subfolders", action="store_true",
                        help="caption each sound by its folder's name as a class label (dog_bark/x.wav: dog bark)")
    source.add_argument("--sidecar-text", action="store_true",
                        help="caption each sound by the text file beside it (x.wav + x.txt or x.wav.txt)")
    fo.add_argument("--name", help="the dataset's name: its manifest <name>.csv, the rows' source and id prefix "
                                   "(default: the folder's name)")
    fo.add_argument("--encoding", type=_encoding, default=DEFAULT_ENCODING,
                    help="text encoding of the captions CSV and sidecar texts")
    _add_item_options(fo)
    _add_curate_options(fo, None)
    fo.set_defaults(func=cmd_folder)

    ov = sub.add_parser("overlap", help="leakage audit: training and test items sharing audio (however re-encoded, "
                                        "resampled, trimmed or excerpted) or captions")
    ov.add_argument("--train", action="append", required=True, metavar="PATH",
                    help="a manifest (FILE.csv or FILE.csv:SPLIT) or a folder of audio; repeatable")
    ov.add_argument("--test", action="append", required=True, metavar="PATH", help="as --train; repeatable")
    ov.add_argument("--out", type=Path, required=True, metavar="DIR",
                    help="writes overlap.csv, summary.json, summary.md here")
    ov.add_argument("--drop", type=Path, metavar="OUT",
                    help="write each training manifest into this folder without its overlapping rows")
    ov.add_argument("--drop-kinds", default="exact,audio,contained",
                    help="which kinds of overlap --drop removes (comma-separated; add text to drop caption matches)")
    ov.add_argument("--text-threshold", type=number(float, 0, strict=True, what="a similarity in (0, 1]"), default=0.8,
                    help="character 3-gram Jaccard similarity from which two captions are near-duplicates")
    ov.add_argument("--cache", type=Path, metavar="DIR", help="fingerprint cache folder (default: --out DIR/fingerprints)")
    ov.add_argument("--workers", type=number(int, 1, what="a number of worker processes (1 or more)"), default=1,
                    help="processes computing fingerprints")
    ov.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bars")
    ov.set_defaults(func=cmd_overlap)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    out = getattr(a, "out", None)  # a folder, except for import-/export-published (a CSV file)
    if out and a.command not in ("import-published", "export-published") and Path(out).exists() \
            and not Path(out).is_dir():
        print(f"wt5k-curate {a.command}: error: --out {out} exists and is not a folder", file=sys.stderr)
        return 2
    try:
        return a.func(a)
    except UsageError as e:
        print(f"wt5k-curate {a.command}: error: {e}", file=sys.stderr)
        return 2
    except (ManifestError, FileNotFoundError, ValueError) as e:
        print(f"wt5k-curate {a.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in FATAL_ERRNOS:
            raise
        print(f"wt5k-curate {a.command}: stopped: {e}\nWhat was done is kept: run the same command again once "
              "this is fixed, and it continues where it stopped.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
