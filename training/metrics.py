"""Retrieval metrics as the DCASE 2022 task 6b (language-based audio retrieval) defines them, both directions.

``sim[a, c]`` is the similarity of audio ``a`` and caption ``c`` (shape: n_audios x n_captions). Caption ``c``
belongs to the audio whose id is ``caption_audio_ids[c]``; an audio may have several captions.

* Text to audio (t2a): each caption is a query with exactly one relevant audio. R@k is the fraction of
  captions whose audio ranks in the top k; mAP@10 = mean of 1/rank when rank <= 10, else 0 (DCASE 2022 6b).
* Audio to text (a2t): each audio is a query; all its captions are relevant. R@k counts a hit when ANY of
  them is in the top k (the best-ranked one). mAP@10 = mean over audios of
  AP@10 = (1 / min(n_relevant, 10)) * sum over relevant captions ranked r <= 10 of precision@r,
  precision@r = (relevant captions in the top r) / r.
* Median and mean rank: of the (best) relevant item, 1-based.

Ties are resolved pessimistically: an irrelevant item with exactly the same similarity as a relevant one is
ranked above it. A constant similarity matrix therefore scores as badly as possible instead of scoring by
the order of the rows; the result never depends on the order of audios or captions.

Values are fractions in [0, 1] (the table printer shows percentages). Vectorised with torch: ranks are counted by
comparison (no full sort), in bounded-memory chunks.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

RECALL_KS = (1, 5, 10, 50)


def _ranks_and_ap(sim: torch.Tensor, rel_index: torch.Tensor, ap_k: int = 10,
                  max_elements: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query row: the 1-based rank of the best relevant item and AP@ap_k, with pessimistic ties.

    sim: (n_queries, n_items). rel_index: (n_queries, R) the relevant items' columns, padded with -1;
    every row has at least one. The rank of the j-th best relevant item is j plus the number of irrelevant
    items at least as similar: counting by comparison is cheaper than sorting whole rows.
    """
    valid = rel_index >= 0
    rel_vals = torch.gather(sim, 1, rel_index.clamp(min=0))
    rel_vals = torch.where(valid, rel_vals, torch.tensor(float("-inf"), dtype=sim.dtype, device=sim.device))
    rel_vals, order = torch.sort(rel_vals, dim=1, descending=True)
    valid = torch.gather(valid, 1, order)
    n_q, n_rel_max = rel_vals.shape
    count_ge = torch.empty(n_q, n_rel_max, dtype=torch.long, device=sim.device)
    chunk = max(1, max_elements // max(1, n_rel_max * sim.shape[1]))
    for s in range(0, n_q, chunk):  # bounded memory: (chunk, R, n_items) booleans at a time
        count_ge[s:s + chunk] = (sim[s:s + chunk, None, :] >= rel_vals[s:s + chunk, :, None]).sum(dim=2)
    rel_ge = ((rel_vals[:, None, :] >= rel_vals[:, :, None]) & valid[:, None, :]).sum(dim=2)
    j = torch.arange(1, n_rel_max + 1, device=sim.device).expand(n_q, n_rel_max)
    ranks = count_ge - rel_ge + j
    best_rank = ranks[:, 0]
    hits = valid & (ranks <= ap_k)
    precision = torch.where(hits, j.to(torch.float64) / ranks.to(torch.float64), 0.0)
    ap = precision.sum(dim=1) / valid.sum(dim=1).clamp(max=ap_k).to(torch.float64)
    return best_rank, ap


def _relevant_index(group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(n_groups, R) matrix of the positions of ``group == g`` for each g, padded with -1."""
    counts = torch.bincount(group, minlength=n_groups)
    order = torch.argsort(group, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(group), device=group.device) - starts[group[order]]
    out = torch.full((n_groups, int(counts.max())), -1, dtype=torch.long, device=group.device)
    out[group[order], slot] = order
    return out


def _summary(best_rank: torch.Tensor, ap: torch.Tensor) -> dict[str, float]:
    ranks = best_rank.to(torch.float64)
    out = {f"R@{k}": float((best_rank <= k).to(torch.float64).mean()) for k in RECALL_KS}
    out["mAP@10"] = float(ap.mean())
    # the lower median for an even count, as numpy's "lower" method: an actual rank, not a half
    out["median_rank"] = float(torch.quantile(ranks, 0.5, interpolation="lower"))
    out["mean_rank"] = float(ranks.mean())
    return out


def retrieval_metrics(sim: torch.Tensor | np.ndarray, audio_ids: Sequence[str],
                      caption_audio_ids: Sequence[str]) -> dict:
    """t2a and a2t R@1/5/10/50, mAP@10, median and mean rank (see the module docstring for definitions).

    ``sim``: (n_audios, n_captions). ``audio_ids`` must be unique; every caption's audio must be among them
    and every audio must have at least one caption.
    """
    sim = torch.as_tensor(sim)
    if sim.ndim != 2 or sim.shape != (len(audio_ids), len(caption_audio_ids)):
        raise ValueError(f"sim must have shape (n_audios, n_captions) = ({len(audio_ids)}, "
                         f"{len(caption_audio_ids)}), got {tuple(sim.shape)}")
    if not torch.isfinite(sim).all():
        raise ValueError("sim contains NaN or infinite values")
    index = {a: i for i, a in enumerate(audio_ids)}
    if len(index) != len(audio_ids):
        raise ValueError("audio_ids must be unique")
    missing = sorted({c for c in caption_audio_ids if c not in index})
    if missing:
        raise ValueError(f"{len(missing)} caption(s) belong to audios not in audio_ids, e.g. {missing[:3]}")
    cap_audio = torch.tensor([index[c] for c in caption_audio_ids], dtype=torch.long, device=sim.device)
    no_caption = (torch.bincount(cap_audio, minlength=len(audio_ids)) == 0).nonzero().flatten().tolist()
    if no_caption:
        raise ValueError(f"{len(no_caption)} audio(s) have no caption, e.g. {[audio_ids[i] for i in no_caption[:3]]}")
    t2a = _summary(*_ranks_and_ap(sim.T, cap_audio[:, None]))
    a2t = _summary(*_ranks_and_ap(sim, _relevant_index(cap_audio, len(audio_ids))))
    per_audio = torch.bincount(cap_audio, minlength=len(audio_ids)).tolist()
    return {"t2a": t2a, "a2t": a2t, "n_audios": len(audio_ids), "n_captions": len(caption_audio_ids),
            "chance": chance_levels(per_audio)}


def _chance_one_kind(n_items: int, n_relevant: np.ndarray, ap_k: int = 10) -> dict[str, float]:
    """Expected metrics of a uniformly random ranking of ``n_items`` for queries with ``n_relevant`` relevant
    items each: P(best rank > r) = C(M-c, r) / C(M, r); E[AP@k] sums, over ranks r <= k, P(r relevant) times
    the expected precision@r given that (1 + (r-1)(c-1)/(M-1)) / r; the median is that of the queries' mixed
    best-rank distribution (what the measured median tends to over many queries)."""
    m = n_items
    r = np.arange(m + 1, dtype=np.float64)
    kinds, weights = np.unique(n_relevant, return_counts=True)
    weights = weights / weights.sum()
    survival = np.zeros(m + 1)  # P(best rank > r), averaged over queries
    ap = mean_rank = 0.0
    for c, w in zip(kinds.tolist(), weights.tolist()):
        s = np.ones(m + 1)
        for i in range(c):
            s *= np.clip((m - r - i) / (m - i), 0.0, None)
        survival += w * s
        mean_rank += w * (m + 1) / (c + 1)
        ranks = np.arange(1, min(ap_k, m) + 1, dtype=np.float64)
        cond = 1 + (ranks - 1) * (c - 1) / (m - 1) if m > 1 else np.ones_like(ranks)
        ap += w * float((c / m * cond / ranks).sum()) / min(c, ap_k)
    out = {f"R@{k}": float(1 - survival[min(k, m)]) for k in RECALL_KS}
    out["mAP@10"] = ap
    out["median_rank"] = float(np.argmax(1 - survival >= 0.5))
    out["mean_rank"] = mean_rank
    return out


def chance_levels(captions_per_audio: Sequence[int]) -> dict:
    """Every retrieval_metrics value a random ranking scores on average, for a set where audio i has
    ``captions_per_audio[i]`` captions: the floor a model's figures are read against."""
    counts = np.asarray(captions_per_audio, dtype=np.int64)
    if counts.size == 0 or (counts < 1).any():
        raise ValueError("every audio needs at least one caption")
    n_captions = int(counts.sum())
    return {"t2a": _chance_one_kind(len(counts), np.ones(n_captions, dtype=np.int64)),
            "a2t": _chance_one_kind(n_captions, counts)}


def selection_score(per_manifest: dict[str, dict]) -> float:
    """The score `best.pt` is chosen by: mean over manifests of the mean of t2a and a2t mAP@10."""
    if not per_manifest:
        raise ValueError("no validation results to score")
    return float(np.mean([(m["t2a"]["mAP@10"] + m["a2t"]["mAP@10"]) / 2 for m in per_manifest.values()]))
