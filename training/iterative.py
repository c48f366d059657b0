"""Iterative click training: corrective clicks placed on the network's own errors.

Random clicks drawn near the object boundary mostly fall where the prediction is
already right, so the network learns to ignore them. Here, as in RITM (Sofiiuk et
al., 2022), a batch is first predicted without gradients; each sample then gets the
corrective click of SPEC section 4 (the innermost pixel of its largest error blob, in
canvas pixels), its guidance channel is re-encoded, and this repeats up to
``max_iterative_clicks`` times before the training step sees the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.sfg import kernel_threads

from .data import pad_points, unpad_points
from .guidance import guidance_map
from .simulate import corrective_click

__all__ = ["add_corrective_clicks"]


def _inside_box(point: np.ndarray, extreme: np.ndarray) -> bool:
    """Whether ``point`` lies in the extreme points' bounding box (the crop would not change)."""
    low, high = extreme.min(axis=0), extreme.max(axis=0)
    return bool(np.all(point >= low) and np.all(point <= high))


@torch.no_grad()
def add_corrective_clicks(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    spec: InputSpec,
    rounds: int,
    guidance: str = "sfg",
) -> dict[str, torch.Tensor]:
    """``batch`` after ``rounds`` rounds of predict, click on the largest error, re-encode.

    ``batch`` is an :class:`~fairs_sdk.training.data.InstanceDataset` batch (input,
    target, valid, extreme, positive, negative; points in canvas pixels). A positive
    click outside the extreme points' box is not added (it would move the crop). The
    model runs in eval mode and is put back in its previous mode. Returns a new dict
    whose ``input``, ``positive`` and ``negative`` include the clicks.
    """
    if rounds <= 0:
        return batch
    was_training = model.training
    model.eval()
    inputs = batch["input"].clone()
    device = next(model.parameters()).device
    target = batch["target"][:, 0].numpy() > 0.5
    ignore = batch["valid"][:, 0].numpy() < 0.5
    size = inputs.shape[-2:]
    samples = range(inputs.shape[0])
    extreme = [unpad_points(batch["extreme"][i].numpy()) for i in samples]
    positive = [list(unpad_points(batch["positive"][i].numpy())) for i in samples]
    negative = [list(unpad_points(batch["negative"][i].numpy())) for i in samples]
    try:
        with kernel_threads(1):  # torch already keeps the cores busy; see kernel_threads
            for _ in range(rounds):
                logits = model(inputs.to(device))
                predicted = (logits[:, 0] > 0).cpu().numpy()
                for i in samples:
                    click = corrective_click(target[i], predicted[i], ignore[i])
                    if click is None:
                        continue
                    point, is_positive = click
                    if is_positive and not _inside_box(point, extreme[i]):
                        continue
                    (positive if is_positive else negative)[i].append(point)
                    heat = guidance_map(
                        guidance, tuple(size), extreme[i], np.array(positive[i]).reshape(-1, 2),
                        np.array(negative[i]).reshape(-1, 2), beta=spec.beta, kappa=spec.kappa, sigma=spec.sigma,
                    )
                    inputs[i, 3] = torch.from_numpy(heat)
    finally:
        model.train(was_training)
    slots_positive = max(len(p) for p in positive)
    slots_negative = max(len(n) for n in negative)
    return {
        **batch,
        "input": inputs,
        "positive": torch.from_numpy(np.stack([pad_points(np.array(p).reshape(-1, 2), slots_positive) for p in positive])),
        "negative": torch.from_numpy(np.stack([pad_points(np.array(n).reshape(-1, 2), slots_negative) for n in negative])),
    }
