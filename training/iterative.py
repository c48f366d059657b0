"""Iterative click training: corrective clicks placed on the network's own errors.

Random clicks drawn near the object boundary mostly fall where the prediction is
already right, so the network learns to ignore them. Here, as in RITM (Sofiiuk et
al., 2022), a batch is first predicted without gradients; each sample then gets the
corrective click of SPEC section 4 (the innermost pixel of its largest error blob, in
canvas pixels), its guidance planes (the SFG and any click maps the model declares)
are re-encoded by the runtime's :class:`~fairs_sdk.encoder.InputEncoder`, and this
repeats up to ``max_iterative_clicks`` times before the training step sees the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fairs_sdk.config import InputSpec

from .channels import guidance_planes
from .guidance import make_encoder
from .samples import pad_points, unpad_points
from .simulate import corrective_click

__all__ = ["add_corrective_clicks"]


def inside_box(point: np.ndarray, extreme: np.ndarray) -> bool:
    """Whether ``point`` lies in the extreme points' bounding box (the crop would not change)."""
    low, high = extreme.min(axis=0), extreme.max(axis=0)
    return bool(np.all(point >= low) and np.all(point <= high))


def _points(points: list[np.ndarray]) -> np.ndarray:
    """A list of (x, y) points as an (n, 2) float64 array (n may be 0)."""
    return np.array(points, dtype=np.float64).reshape(-1, 2)


@torch.no_grad()
def add_corrective_clicks(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    spec: InputSpec,
    rounds: int,
    guidance: str = "sfg",
) -> dict[str, torch.Tensor]:
    """``batch`` after ``rounds`` rounds of predict, click on the largest error, re-encode.

    ``batch`` is an :class:`~fairs_sdk.training.samples.InstanceDataset` batch (input
    (B, C, S, S) in the layout of ``spec.input_channels``, target, valid, extreme,
    positive, negative; points in canvas pixels). ``guidance`` is the model's ("sfg" or
    "gaussian"). A positive click outside the extreme points' box is not added (it would
    move the crop). The model runs in eval mode and is put back in its previous mode.
    Returns a new dict whose ``input``, ``positive`` and ``negative`` include the clicks;
    the RGB planes are untouched.
    """
    if rounds <= 0:
        return batch
    inputs = batch["input"].clone()
    expected = (spec.channel_count, spec.input_size, spec.input_size)
    if tuple(inputs.shape[1:]) != expected:
        raise ValueError(f"batch input {tuple(inputs.shape)} does not fit the spec's (B, {', '.join(map(str, expected))})")
    # torch already keeps the cores busy: the SFG runs on one thread (see kernel_threads)
    encoder = make_encoder(spec, guidance, sfg_threads=1)
    planes = guidance_planes(spec.input_channels)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    target = batch["target"][:, 0].numpy() > 0.5
    ignore = batch["valid"][:, 0].numpy() < 0.5
    samples = range(inputs.shape[0])
    extreme = [unpad_points(batch["extreme"][i].numpy()) for i in samples]
    positive = [list(unpad_points(batch["positive"][i].numpy())) for i in samples]
    negative = [list(unpad_points(batch["negative"][i].numpy())) for i in samples]
    try:
        for _ in range(rounds):
            logits = model(inputs.to(device))
            predicted = (logits[:, 0] > 0).cpu().numpy()
            for i in samples:
                click = corrective_click(target[i], predicted[i], ignore[i])
                if click is None:
                    continue
                point, is_positive = click
                if is_positive and not inside_box(point, extreme[i]):
                    continue
                (positive if is_positive else negative)[i].append(point)
                inputs[i, planes] = torch.from_numpy(
                    encoder.guidance(extreme[i], _points(positive[i]), _points(negative[i]))
                )
    finally:
        model.train(was_training)
    slots_positive = max(len(p) for p in positive)
    slots_negative = max(len(n) for n in negative)
    return {
        **batch,
        "input": inputs,
        "positive": torch.from_numpy(np.stack([pad_points(_points(p), slots_positive) for p in positive])),
        "negative": torch.from_numpy(np.stack([pad_points(_points(n), slots_negative) for n in negative])),
    }
