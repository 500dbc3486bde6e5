"""What pretrained weights are known: per name where they are published, which checksums and sizes are pinned,
and the base URL of each host (overridable, for a mirror or the tests).

Pinned facts: the PANNs Cnn14 file's md5 and size are listed on its Zenodo record. The msclap and LAION-CLAP
files are Git LFS files on Hugging Face, whose API gives each one's sha256 and size; this project is built
offline and could not read them, so none is pinned here: at download the hub's own announcement (the
``X-Linked-Etag`` sha256 and ``X-Linked-Size`` it sends with the file's redirect) is required and checked, and
each file's size is capped (``max_size``). Pin a value in ``published``/``size`` when you know it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .hosts import REDIRECT_HOSTS, endpoints

GiB = 1 << 30


@dataclass(frozen=True)
class WeightSource:
    """One published file (``kind`` "file"), Hugging Face model folder ("hf-snapshot"), or a file that can only
    be downloaded by hand ("manual": ``fetch`` then registers a copy placed in the cache, or takes ``--url``)."""
    name: str
    kind: str
    description: str
    filename: str = ""               # file: the published file name (the name in the cache)
    host: str = ""                   # endpoint key (file, hf-snapshot)
    path: str = ""                   # file: URL path under the endpoint
    repo_id: str = ""                # hf file / hf-snapshot: the model repository
    allow_patterns: tuple[str, ...] = ()  # hf-snapshot: which files (tokenizer + one weights format)
    page: str = ""                   # where a person finds it (record page, model card, Drive folder)
    published: dict = field(default_factory=dict)  # {"md5"|"sha256": hex} the publisher lists, if any
    published_note: str = ""         # where that checksum is listed
    size: int | None = None          # the published size in bytes, if listed
    max_size: int = 8 * GiB          # a body over this is refused when no size is pinned
    config_key: str = ""             # the config entry that names this file


def _hf_file(name: str, repo: str, filename: str, description: str, max_size: int) -> WeightSource:
    return WeightSource(name, "file", description, filename=filename, host="hf", repo_id=repo,
                        path=f"/{repo}/resolve/main/{filename}", page=f"https://huggingface.co/{repo}",
                        max_size=max_size)


SOURCES: dict[str, WeightSource] = {s.name: s for s in (
    WeightSource(
        "cnn14", "file", "PANNs Cnn14 (AudioSet, mAP 0.431): audio encoder of configs exp_A/B/D, table4_*",
        filename="Cnn14_mAP=0.431.pth", host="zenodo", path="/records/3987831/files/Cnn14_mAP%3D0.431.pth",
        page="https://zenodo.org/records/3987831", published={"md5": "541141fa2ee191a88f24a3219fff024e"},
        size=327_428_481, published_note="md5 and size listed on Zenodo record 3987831",
        config_key="audio.cnn14_checkpoint"),
    WeightSource(
        "htsat-audioset", "manual", "HTS-AT AudioSet checkpoint: audio encoder of configs exp_C/D",
        filename="HTSAT_AudioSet_Saved_1.ckpt",
        page="https://drive.google.com/drive/folders/1f5VYMk0uos_YnuBshgmaTVioXbs7Kmz6",
        config_key="audio.htsat_checkpoint"),
    _hf_file("msclap-2022", "microsoft/msclap", "CLAP_weights_2022.pth",
             "Microsoft CLAP 2022 (Cnn14 + BERT), msclap's CLAPWrapper version '2022'", 2 * GiB),
    _hf_file("msclap-2023", "microsoft/msclap", "CLAP_weights_2023.pth",
             "Microsoft CLAP 2023 (HTS-AT + GPT-2), msclap's CLAPWrapper version '2023'", 4 * GiB),
    *(_hf_file(f"laion-clap-{stem.removesuffix('-best')}", "lukewys/laion_clap", f"{stem}.pt",
               f"LAION-CLAP {stem}.pt ({desc}); laion_clap's CLAP_Module.load_ckpt model_id {i}", 4 * GiB)
      for i, (stem, desc) in enumerate((
          ("630k-best", "HTS-AT-tiny + RoBERTa, LAION-630k"),
          ("630k-audioset-best", "HTS-AT-tiny + RoBERTa, LAION-630k + AudioSet; laion_clap's default"),
          ("630k-fusion-best", "fused HTS-AT-tiny + RoBERTa, LAION-630k"),
          ("630k-audioset-fusion-best", "fused HTS-AT-tiny + RoBERTa, LAION-630k + AudioSet")))),
    *(WeightSource(
        name, "hf-snapshot", f"{desc}: tokenizer, config and weights (a folder usable as text.name)",
        host="hf", repo_id=repo, page=f"https://huggingface.co/{repo}",
        allow_patterns=("*.json", "*.txt", "model.safetensors"))
      for name, repo, desc in (
          ("roberta-base", "FacebookAI/roberta-base", "RoBERTa base: text encoder of the paper configs and LAION"),
          ("bert-base-uncased", "google-bert/bert-base-uncased", "BERT base uncased: msclap 2022's text side"),
          ("gpt2", "openai-community/gpt2", "GPT-2: msclap 2023's text side"))),
)}


__all__ = ["SOURCES", "WeightSource", "WeightsError", "ChangedFileError", "REDIRECT_HOSTS", "endpoints", "source",
           "file_url"]


class WeightsError(RuntimeError):
    """A fetch that cannot finish correctly: unknown name, bad server answer, checksum or size mismatch."""


class ChangedFileError(WeightsError):
    """A cached file no longer matches what the registry recorded at download."""


def source(name: str) -> WeightSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(SOURCES)}") from None


def file_url(src: WeightSource, eps: dict[str, str]) -> str:
    return eps[src.host] + src.path
