"""``wt5k-train --check``: everything a run needs and every problem at once, in seconds, before any model loads.

Reads the run config's manifests (row counts per spec, missing audio files, empty captions), looks for the
pretrained files and the text model (a local folder, a ``pkg:`` package, or the Hugging Face cache, looked up
with ``huggingface_hub.try_to_load_from_cache``: the hub is never contacted), checks the output folder, and
compares the sha256 the manifests hold: a training row whose audio is byte-identical to a test (or validation)
row's is a warning (the test figures would be measured on trained audio; ``wt5k-curate overlap`` finds
re-encoded copies too). Nothing here imports torch models or reads audio.

Problems stop a run (``wt5k-train`` runs this check first); warnings do not. Test sets are read by
``wt5k-eval``, not by training: a problem with one is a warning here.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from manifests import ManifestError, caption_for, read_manifest, resolve_audio
from training.config import ManifestSpec, RunConfig
from training.data import describe_selection, select_rows

# Files that make a Hugging Face model folder usable: its config, one of its weight files, one tokenizer file.
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
HF_TOKENIZER = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
SHOWN = 3  # examples named per problem


@dataclass
class CheckReport:
    """What a run needs (``found``: lines by section), what stops it (``problems``) and what may mislead it."""
    found: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        out = []
        for section, lines in self.found.items():
            out.append(section)
            out += [f"  {line}" for line in lines]
        for title, items in (("problems", self.problems), ("warnings", self.warnings)):
            if items:
                out.append(f"{title} ({len(items)}):")
                out += [f"  - {item}" for item in items]
        out.append("check: OK" if self.ok else f"check: {len(self.problems)} problem(s): the run would fail")
        return "\n".join(out)


def _examples(items: list[str]) -> str:
    return ", ".join(items[:SHOWN]) + (f", ... ({len(items):,} in all)" if len(items) > SHOWN else "")


@dataclass
class _Selected:
    """The rows one spec keeps, with what the leakage check needs."""
    role: str
    spec: ManifestSpec
    rows: list
    pairs: int = 0


def _check_spec(role: str, spec: ManifestSpec, default_mode: str, report: CheckReport, cache: dict,
                must: bool) -> _Selected | None:
    """Row counts, empty captions and missing audio of one manifest spec; problems (or, for a set the run does
    not read, warnings) into ``report``."""
    issues = report.problems if must else report.warnings
    where = f"{role} {spec.label}: {spec.manifest}"
    path = Path(spec.manifest)
    first = spec.manifest not in cache
    if first:
        try:
            cache[spec.manifest] = (read_manifest(spec.manifest) if path.is_file() else
                                    FileNotFoundError(f"no such manifest (resolved to {path.absolute()}; "
                                                      f"configs/README.md says how each is made)"))
        except (ManifestError, ValueError) as e:
            cache[spec.manifest] = e
    rows = cache[spec.manifest]
    if isinstance(rows, Exception):
        report.found["data"].append(f"{role:<5} {spec.label}: {spec.manifest}: NOT READABLE")
        if first:  # a file several specs read is named once (training and validation specs come first)
            issues.append(f"{where}: {rows}")
        return None
    rows = select_rows(spec, rows)
    selection = describe_selection(spec)
    clips = {r.id: r for r in rows}
    mode = spec.caption_mode or default_mode
    empty = [r.id for r in rows if not caption_for(r, mode).strip()]
    missing = sorted({r.audio_path for r in clips.values() if not resolve_audio(spec.manifest, r).is_file()})
    report.found["data"].append(f"{role:<5} {spec.label}: {spec.manifest}{selection}: {len(rows):,} pairs of "
                                f"{len(clips):,} clips" + (f", {len(missing):,} audio files missing" if missing else ""))
    if not rows:
        issues.append(f"{where}: no rows{selection}")
    if empty:
        issues.append(f"{where}: {len(empty):,} row(s) with an empty caption under mode {mode!r}: {_examples(empty)}")
    if missing:
        issues.append(f"{where}: {len(missing):,} of {len(clips):,} audio files missing (audio_path relative to "
                      f"{path.parent.absolute()}): {_examples(missing)}")
    return _Selected(role, spec, rows, len(rows))


def _check_epoch(cfg: RunConfig, train: list[_Selected], report: CheckReport) -> None:
    if len(train) < len(cfg.data.train):
        report.found["data"].append("epoch: unknown until every training manifest is readable")
        return
    pairs = sum(s.pairs for s in train)
    samples = cfg.data.samples_per_epoch or pairs
    steps, dropped = divmod(samples, cfg.batch_size)
    how = "samples_per_epoch" if cfg.data.samples_per_epoch else "every training pair once"
    report.found["data"].append(f"epoch: {samples:,} pairs ({how}) = {steps:,} steps of {cfg.batch_size}"
                                + (f" (the last {dropped} dropped)" if dropped else "") + f"; {cfg.epochs} epochs")
    if steps == 0:
        report.problems.append(f"an epoch of {samples} pairs holds no full batch of {cfg.batch_size}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.batch_size % world:
        report.problems.append(f"batch_size {cfg.batch_size} (global) is not divisible by WORLD_SIZE {world}")


def _check_leakage(train: list[_Selected], held_out: list[_Selected], report: CheckReport) -> None:
    """Warn about training rows whose audio is byte-identical (same sha256, or the same file) to a held-out row's."""
    by_hash: dict[str, str] = {}
    by_path: dict[Path, str] = {}
    unhashed = 0
    for s in train:
        for r in s.rows:
            if r.sha256:
                by_hash.setdefault(r.sha256, f"{s.spec.label}:{r.id}")
            else:
                unhashed += 1
            by_path.setdefault(resolve_audio(s.spec.manifest, r), f"{s.spec.label}:{r.id}")
    for s in held_out:
        found: dict[str, str] = {}
        for r in s.rows:
            hit = (by_hash.get(r.sha256) if r.sha256 else None) or by_path.get(resolve_audio(s.spec.manifest, r))
            if hit:
                found.setdefault(r.id, hit)
        if found:
            pairs = [f"{test} = {trained}" for test, trained in found.items()]
            report.warnings.append(
                f"{len(found):,} {s.role} clip(s) of {s.spec.label} are byte-identical to training audio (sha256 or "
                f"the same file): {_examples(pairs)}; its figures would be measured on trained audio "
                f"(wt5k-curate overlap finds re-encoded copies too)")
    if unhashed and held_out:
        report.warnings.append(f"{unhashed:,} training row(s) have no sha256: not compared with the test sets by hash")


def text_model_location(name: str, need_weights: bool) -> tuple[str | None, str]:
    """Where a text model (``text.name`` or ``text.tokenizer``) is read from without the network:
    (path or None, how it was found or what is missing). Hub ids are looked up in the Hugging Face cache only."""
    if name.startswith("pkg:"):
        from training.encoders.text import resolve_model_path

        try:
            return resolve_model_path(name), "package"
        except (ImportError, ValueError) as e:
            return None, f"package {name[4:]} is not usable: {e}"
    folder = Path(name).expanduser()
    if folder.is_dir():
        missing = [] if (folder / HF_CONFIG).is_file() else [HF_CONFIG]
        if need_weights and not any((folder / w).is_file() for w in HF_WEIGHTS):
            missing.append(" or ".join(HF_WEIGHTS[:2]))
        if not any((folder / t).is_file() for t in HF_TOKENIZER):
            missing.append("a tokenizer file")
        return (None, f"local folder {folder} lacks {', '.join(missing)}") if missing else (str(folder), "local folder")
    from huggingface_hub import constants, try_to_load_from_cache

    def cached(filename: str) -> str | None:
        try:
            hit = try_to_load_from_cache(name, filename)
        except Exception:  # not a valid repo id (e.g. a folder that does not exist): not in the cache
            return None
        return hit if isinstance(hit, str) else None

    config = cached(HF_CONFIG)
    lacking = [] if config else [HF_CONFIG]
    if need_weights and not any(cached(w) for w in HF_WEIGHTS):
        lacking.append("its weights")
    if not any(cached(t) for t in HF_TOKENIZER):
        lacking.append("its tokenizer")
    if lacking:
        return None, (f"{name!r} is neither a local folder nor complete in the Hugging Face cache "
                      f"({constants.HF_HUB_CACHE}: {', '.join(lacking)} missing); training downloads nothing: "
                      f"`wt5k-weights fetch {name}` and set the config's text name to the folder it prints, or "
                      f"download it into the cache on a machine with internet")
    return str(Path(config).parent), "Hugging Face cache"


def _check_text(section: str, key: str, name: str, need_weights: bool, report: CheckReport) -> None:
    path, how = text_model_location(name, need_weights)
    if path is None:
        report.problems.append(f"{key} {name}: {how}")
        report.found[section].append(f"{key} {name}: NOT FOUND")
    else:
        report.found[section].append(f"{key} {name}: {how} {path}")


def _check_file(section: str, key: str, path: str, report: CheckReport) -> None:
    p = Path(path)
    if p.is_file():
        report.found[section].append(f"{key} {path}: {p.stat().st_size:,} bytes")
    else:
        report.found[section].append(f"{key} {path}: NOT FOUND")
        report.problems.append(f"{key} {path}: no such file (resolved to {p.absolute()})")


def _check_model(cfg: RunConfig, resume: bool | str, report: CheckReport) -> None:
    from training.model import ENCODERS, CLAPConfig, pretrained_checkpoints

    if cfg.init_from and not resume:
        _check_file("model", "init_from.checkpoint", cfg.init_from["checkpoint"], report)
        if cfg.init_from.get("text_model"):
            _check_text("model", "init_from.text_model", cfg.init_from["text_model"], False, report)
        return
    try:
        model = CLAPConfig.from_dict(cfg.model)
    except (ValueError, TypeError) as e:
        report.problems.append(f"model: {e}")
        return
    audio = model.audio
    report.found["model"].append(f"audio encoder {audio.encoder}: input {audio.clip_seconds:g} s")
    for name, entry in ENCODERS.items():
        if entry.checkpoint_field and getattr(audio, entry.checkpoint_field) and name not in audio.parts:
            report.problems.append(f"audio.{entry.checkpoint_field} is set but audio.encoder is {audio.encoder!r}: "
                                   f"set it to null")
    if resume:  # the weights come from latest.pt; the tokenizer is still read from text.name
        report.found["model"].append("resuming: weights from latest.pt, no pretrained file is read")
    else:
        for key, path in pretrained_checkpoints(audio).items():
            _check_file("model", f"audio.{key}", path, report)
    text = model.text
    need_weights = text.pretrained and not resume
    _check_text("model", "text.name", text.name, need_weights, report)
    if text.tokenizer and text.tokenizer != text.name:
        _check_text("model", "text.tokenizer", text.tokenizer, False, report)
    report.found["model"].append(f"text encoder {'frozen' if text.freeze else 'trained'}")


def _check_output(cfg: RunConfig, resume: bool | str, report: CheckReport) -> None:
    run_dir = cfg.run_dir
    latest = Path(resume) if isinstance(resume, str) else run_dir / "latest.pt"  # --resume FILE names its own
    if resume:
        state = f"resume from {latest.name}" if latest.is_file() else f"NO {latest.name} to resume"
        if not latest.is_file():
            report.problems.append(f"--resume: {latest} does not exist")
    else:
        state = "new run"
        if latest.exists():
            report.problems.append(f"{run_dir} already holds a run: pass --resume, or choose another name/out_dir")
    existing = next(p for p in [run_dir, *run_dir.absolute().parents] if p.exists())
    if not os.access(existing, os.W_OK):
        report.problems.append(f"{run_dir}: cannot write in {existing}")
    report.found["output"].append(f"{run_dir} ({run_dir.absolute()}): {state}")


def check_run(cfg: RunConfig, resume: bool | str = False) -> CheckReport:
    """Everything ``cfg`` needs, checked without loading a model or reading audio (see the module docstring)."""
    report = CheckReport()
    report.found["paths"].append(f"relative paths resolve against the current directory {Path.cwd()}")
    cache: dict = {}
    mode = cfg.data.caption_mode
    train = [s for s in (_check_spec("train", spec, mode, report, cache, True) for spec in cfg.data.train) if s]
    _check_epoch(cfg, train, report)
    val = [s for s in (_check_spec("val", spec, mode, report, cache, True) for spec in cfg.data.val) if s]
    test = [s for s in (_check_spec("test", spec, mode, report, cache, False) for spec in cfg.data.test) if s]
    _check_leakage(train, test + val, report)
    _check_model(cfg, resume, report)
    _check_output(cfg, resume, report)
    return report
