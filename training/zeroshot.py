"""Zero-shot classification benchmarks: ESC-50, UrbanSound8K or a folder of class subfolders, scored by how often
a class's prompt is the audio's nearest text (top-1, top-5, per class, per fold), as the CLAP papers report it.

Class names are cleaned for the prompts (``dog_bark`` -> "dog bark"); several prompt templates are averaged in
embedding space (prompt ensembling, as in CLIP): each class's text embedding is the normalised mean of its
prompts' embeddings.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from manifests.audio_formats import AUDIO_EXTENSIONS

DEFAULT_TEMPLATE = "This is a sound of {}."
DEFAULT_TEMPLATES = (DEFAULT_TEMPLATE,)
KINDS = ("esc50", "us8k", "folder")


def clean_class_name(name: str) -> str:
    """A dataset's class name as words for a prompt: ``dog_bark`` / ``Dog-Bark`` -> "dog bark"."""
    words = re.sub(r"[_\-\s]+", " ", name).strip()
    if not words:
        raise ValueError(f"class name {name!r} holds no words")
    return words.lower()


def prompts_for(labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """The texts embedded for zero-shot labels: the template with '{}' replaced by each label."""
    if "{}" not in template:
        raise ValueError(f"the prompt template must contain '{{}}' where the label goes, got {template!r}")
    labels = [label.strip() for label in labels]
    if not labels or not all(labels):
        raise ValueError("zero-shot classification needs a list of non-empty labels")
    return [template.replace("{}", label) for label in labels]


def label_embeddings(embed_texts: Callable[[Sequence[str]], np.ndarray], labels: Sequence[str],
                     templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
    """[L, D] normalised text embeddings of the labels, each the mean over the templates (prompt ensembling)."""
    if not templates:
        raise ValueError("give at least one prompt template")
    total = None
    for t in templates:
        e = np.asarray(embed_texts(prompts_for(labels, t)), dtype=np.float32)
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        total = e if total is None else total + e
    return total / np.linalg.norm(total, axis=1, keepdims=True)
