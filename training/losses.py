"""Class-balanced binary cross-entropy (DEXTR's) and the multi-term loss of section 4.1."""

from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F


def balanced_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Class-balanced binary cross-entropy, averaged over the batch; scalar float32.

    For each image, with P object and N background valid pixels (T = P + N), the
    per-pixel BCE is weighted N/T on object and P/T on background pixels, summed and
    divided by T, so the rarer class counts as much as the other. ``logits``,
    ``target`` (0/1) and ``valid`` (1 = counted) are (B, 1, H, W).
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    logits, target = logits.float(), target.float()
    valid = torch.ones_like(target) if valid is None else valid.float()
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * valid
    dims = tuple(range(1, logits.ndim))
    positive = (target * valid).sum(dims)
    negative = ((1 - target) * valid).sum(dims)
    total = (positive + negative).clamp_min(1.0)
    loss_positive = (per_pixel * target).sum(dims)
    loss_negative = (per_pixel * (1 - target)).sum(dims)
    per_image = (negative / total * loss_positive + positive / total * loss_negative) / total
    return per_image.mean()


def multi_term_loss(outputs: Sequence[torch.Tensor], target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Equal-weight sum of :func:`balanced_bce` over the main and auxiliary outputs."""
    if len(outputs) == 0:
        raise ValueError("multi_term_loss needs at least one output")
    return torch.stack([balanced_bce(out, target, valid) for out in outputs]).sum()
