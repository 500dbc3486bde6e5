"""Symmetric contrastive (CLIP/CLAP) loss, one-hot or multi-positive, across all ranks.

Pair i of a batch is (audio i, caption i). Audio i and caption j are a positive pair when
``audio_keys[i] == audio_keys[j]`` or ``caption_keys[i] == caption_keys[j]``. The keys decide which loss this
is (training/data.py PairDataset, a run's ``loss_positives``): keys unique per pair ("pair", the paper's) make
the targets one-hot, the diagonal: the symmetric cross-entropy of CLIP and CLAP. Keys shared by pairs of the
same audio or the same caption text ("audio_or_caption") make a batch holding the same audio or caption twice
not push apart things that are equally correct. Each row's target is uniform over its positives and the loss
is the mean of the audio-to-text and text-to-audio (soft-target) cross-entropies.

Under torch.distributed every rank gathers the features of all ranks with gradients
(``gather_with_grad``) and computes the loss over the global batch, so each rank sees every negative and
the loss equals the one-process loss on the same global batch. The gradient that reaches each rank's own
features is the sum of all ranks' (identical) losses' gradients, i.e. world_size times the gradient of the
loss; DistributedDataParallel averages parameter gradients over ranks, which divides it back: the update
equals the one-process update.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradients every rank computed for this rank's slice.

    Written out because torch.distributed.nn.functional.all_gather is deprecated as of torch 2.13 (its
    suggested replacement is a private module); all_gather + all_reduce work on every backend.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.world = dist.get_rank(), dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(ctx.world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad.chunk(ctx.world, dim=0)[ctx.rank]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every rank in rank order (all ranks must pass the same shape); gradients flow
    back to each rank's own slice. Identity when torch.distributed is not initialised."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (e.g. integer keys) of every rank in rank order, without gradients."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def positive_mask(audio_keys: torch.Tensor, caption_keys: torch.Tensor) -> torch.Tensor:
    """(B, B) boolean: pair i's audio and pair j's caption match (same audio or same caption)."""
    return (audio_keys[:, None] == audio_keys[None, :]) | (caption_keys[:, None] == caption_keys[None, :])


def contrastive_loss(audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                     audio_keys: torch.Tensor, caption_keys: torch.Tensor) -> torch.Tensor:
    """Symmetric multi-positive cross-entropy over the global batch (see the module docstring).

    audio_emb, text_emb: (B, D) L2-normalised features of this rank; logit_scale: the (already
    exponentiated and clamped) scale; audio_keys, caption_keys: (B,) integer ids of the pairs' audio and
    caption text. Computed in float32 whatever the features' dtype (mixed precision).
    """
    if audio_emb.shape != text_emb.shape or audio_emb.ndim != 2:
        raise ValueError(f"audio and text features must both be (B, D), got {tuple(audio_emb.shape)} "
                         f"and {tuple(text_emb.shape)}")
    if not (len(audio_keys) == len(caption_keys) == len(audio_emb)):
        raise ValueError("one audio key and one caption key per pair are required")
    audio_all = gather_with_grad(audio_emb.float())
    text_all = gather_with_grad(text_emb.float())
    positives = positive_mask(gather_no_grad(audio_keys), gather_no_grad(caption_keys)).float()
    targets = positives / positives.sum(dim=1, keepdim=True)  # symmetric mask: the same targets both ways
    logits = logit_scale.float() * audio_all @ text_all.T
    loss_a2t = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t2a = -(targets * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (loss_a2t + loss_t2a) / 2
