"""FAIRS on U2-Netp: a frozen salient-object encoder and a light decoder for the clicks.

The two-part default model (issue 12, design b). The image encoder is U2-Netp with
its pretrained DUTS-TR weights (:mod:`.u2netp`), run once per crop on RGB alone; it
gives U2-Netp's own fused saliency logits ``d0`` and two decoder feature maps at
stride 4. The trainable :class:`RefineDecoder` takes those with the guidance planes
the model declares (SFG, positive and negative click maps, SPEC 1b) and predicts a
correction to U2-Netp's min-max normalised saliency, so that before training it
predicts exactly what U2-Netp on the crop does.

Shapes: S is the canvas (320 for U2-Netp), F = 128 feature planes at S / 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fairs_sdk.config import InputSpec

from .heads import ChannelAttention, PositionAttention
from .u2netp import U2NETP_MEAN, U2NETP_STD, U2NetP

__all__ = ["ImageEncoder", "RefineDecoder", "FairsU2", "U2EndToEnd", "EncoderOutput", "FEATURE_CHANNELS", "click_local_weights",
           "refine_decoder"]

FEATURE_CHANNELS = 128
#: U2-Netp's own saliency is min-max normalised and clamped to [EPS, 1 - EPS] before the logit.
EPS = 1e-3


class U2Normalise(nn.Module):
    """Raw RGB 0..255 (N, 3, S, S) -> U2-Netp's input as rembg makes it: / its max, ImageNet mean and std."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(U2NETP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(U2NETP_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        peak = rgb.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return (rgb / peak - self.mean) / self.std


@dataclass
class EncoderOutput:
    """features: (N, 128, S/4, S/4) float32; saliency: (N, 1, S, S) U2-Netp's fused logits d0."""

    features: torch.Tensor
    saliency: torch.Tensor


class ImageEncoder(nn.Module):
    """U2-Netp on the crop's RGB: raw 0..255 (N, 3, S, S) float32 in, :class:`EncoderOutput` out.

    Normalises as rembg does (the crop divided by its own max, then ImageNet mean and
    std), so that the frozen weights see what they were trained on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.u2 = U2NetP()
        self.normalise = U2Normalise()

    def forward(self, rgb: torch.Tensor) -> EncoderOutput:
        out = self.u2(self.normalise(rgb))
        hx1d, hx2d, hx3d = out.features[:3]
        features = torch.cat([hx3d, F.avg_pool2d(hx2d, 2)], 1)
        return EncoderOutput(features=features, saliency=out.d0)


def saliency_logit(d0: torch.Tensor) -> torch.Tensor:
    """U2-Netp logits (N, 1, S, S) -> logit of the min-max normalised saliency, clamped at EPS."""
    p = torch.sigmoid(d0)
    low = p.amin(dim=(2, 3), keepdim=True)
    high = p.amax(dim=(2, 3), keepdim=True)
    p = ((p - low) / (high - low).clamp_min(1e-6)).clamp(EPS, 1 - EPS)
    return torch.log(p) - torch.log1p(-p)


class _Residual(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(8, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.norm(self.conv(x)))


class ClickBranch(nn.Module):
    """A correction that only clicks can make: exactly zero for a sample without clicks.

    From the trunk's features, the click maps and their similarity maps (stride 8), a
    few dilated convolutions give a coarse correction; each click map also adds its
    Gaussian with a learned weight at full resolution, so the clicked pixel itself can
    flip. Both start at zero. The whole correction is multiplied by whether the sample
    has any click, so training it cannot change the no-click predictions.
    """

    #: Window radii (stride-8 cells) of ``locality``: 8, 24 and 48 canvas px around the clicks.
    WINDOW_RADII = (1, 3, 6)

    def __init__(
        self, width: int, clicks: int, branch_width: int = 32, locality: bool = False,
        local_init: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.clicks = clicks
        # locality: the coarse correction is weighted by a learned mixture of windows around
        # the clicks (and of 1 everywhere), so training decides how far a click reaches.
        self.window_logits = nn.Parameter(torch.zeros(len(self.WINDOW_RADII) + 1)) if locality else None
        self.reduce = nn.Sequential(nn.Conv2d(width + 3 * clicks + 1, branch_width, 1), nn.ReLU(inplace=True))
        self.trunk = nn.Sequential(*[_Residual(branch_width, d) for d in (1, 2, 4)])
        self.out = nn.Conv2d(branch_width, 1, 3, padding=1)
        # local_init: each click map's starting weight (logits at a click's centre). A step of
        # Adam moves a scalar by about the learning rate, so from zero the weights stay too small
        # to flip even the clicked pixel within a few hundred steps; the caller starts them
        # with the sign of each map's meaning.
        if local_init is not None and len(local_init) != clicks:
            raise ValueError(f"local_init needs one weight per click map ({clicks}), got {local_init}")
        self.local = nn.Parameter(torch.tensor(local_init, dtype=torch.float32) if local_init else torch.zeros(clicks))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, logits: torch.Tensor, click_maps: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
        """h (N, W, S/8, S/8); logits, click_maps (N, k, S, S); similarity (N, k, S/8, S/8) -> (N, 1, S, S)."""
        # h is at stride 8 (the canvas side is a multiple of 8): fixed kernels, which ONNX exports
        x = torch.cat([h, similarity, F.max_pool2d(click_maps, 8), F.avg_pool2d(click_maps, 8),
                       F.avg_pool2d(logits, 8) / 7.0], 1)
        coarse = self.out(self.trunk(self.reduce(x)))
        if self.window_logits is not None:
            coarse = coarse * self.window(click_maps)
        correction = F.interpolate(coarse, size=logits.shape[2:], mode="bilinear", align_corners=False)
        correction = correction + (click_maps * self.local.view(1, -1, 1, 1)).sum(1, keepdim=True)
        any_click = (click_maps.amax(dim=(1, 2, 3), keepdim=True) > 0.5).to(logits.dtype)
        return correction * any_click

    def window(self, click_maps: torch.Tensor) -> torch.Tensor:
        """(N, k, S, S) click maps -> (N, 1, S/8, S/8): the learned mixture of windows around the clicks."""
        near = F.max_pool2d(click_maps, 8).amax(1, keepdim=True)  # each click's Gaussian peak, per cell
        planes = [F.max_pool2d(near, 2 * r + 1, stride=1, padding=r) for r in self.WINDOW_RADII]
        planes.append(torch.ones_like(near))
        mix = torch.softmax(self.window_logits, 0)
        return sum(w * p for w, p in zip(mix, planes))


class RefineDecoder(nn.Module):
    """Encoder output + guidance planes -> (N, 1, S, S) logits.

    Args:
        guidance_channels: number of non-RGB planes the model declares (SFG, click maps).
        width: channels of the stride-8 trunk.
        fine_width: channels of the stride-2 branch.
        attention: DANet position + channel attention at stride 16.
        click_planes: indices, among the guidance planes, of the click maps. For each, the
            decoder also sees how alike every place is to the clicked places: the cosine
            similarity of a learned embedding of the features to their click-weighted
            mean (0 when the map is empty), so a click speaks for its whole region.
        feature_dropout: channel dropout on the encoder features while training.
        fine_context: the stride-2 branch also sees the trunk's features (upsampled), so it
            can carve thin structure out of the smooth coarse correction.
        click_branch: add a :class:`ClickBranch` (needs ``click_planes``).
        click_locality: the click branch's coarse correction reaches as far as a learned
            mixture of windows around the clicks (:meth:`ClickBranch.window`).
        click_local_init: the click branch's starting weight of each click map's own Gaussian
            (:func:`click_local_weights` makes them from the model's channel names).

    ``guidance`` is (N, G, S, S) float32 in [0, 1]: the declared planes in order, the
    SFG (if declared) first. The output is U2-Netp's normalised saliency logit plus a
    coarse (stride 8) and a fine (stride 2) correction, both zero at initialisation and
    upsampled onto the full-resolution base, which keeps U2-Netp's own boundaries.
    """

    def __init__(
        self,
        guidance_channels: int,
        width: int = 48,
        attention: bool = True,
        fine_width: int = 8,
        click_planes: tuple[int, ...] = (),
        feature_dropout: float = 0.0,
        embedding: int = 32,
        fine_context: bool = False,
        click_branch: bool = False,
        click_locality: bool = False,
        click_local_init: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.guidance_channels = guidance_channels
        self.click_planes = tuple(click_planes)
        if any(not 0 <= i < guidance_channels for i in self.click_planes):
            raise ValueError(f"click_planes {self.click_planes} must index the {guidance_channels} guidance planes")
        planes = 2 + guidance_channels  # base logit, log SFG, guidance
        self.dropout = nn.Dropout2d(feature_dropout)
        if self.click_planes:
            self.embed = nn.Conv2d(FEATURE_CHANNELS, embedding, 1)
        extra = len(self.click_planes)
        self.reduce = nn.Sequential(nn.Conv2d(FEATURE_CHANNELS + planes + extra, width, 1), nn.ReLU(inplace=True))
        self.trunk = nn.Sequential(*[_Residual(width, d) for d in (1, 2, 4, 8)])
        self.attention = attention
        if attention:
            self.position = PositionAttention(width)
            self.channel = ChannelAttention()
        self.coarse = nn.Conv2d(width, 1, 3, padding=1)
        self.fine_context = fine_context
        if fine_context:
            self.context = nn.Conv2d(width, fine_width, 1)
        self.fine = nn.Sequential(
            nn.Conv2d(planes + 1 + (fine_width if fine_context else 0), fine_width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(fine_width, fine_width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(fine_width, 1, 3, padding=1),
        )
        self.click_branch = None
        if click_branch:
            if not self.click_planes:
                raise ValueError("click_branch needs click_planes (click similarity)")
            self.click_branch = ClickBranch(width, len(self.click_planes), locality=click_locality,
                                            local_init=click_local_init)
        for last in (self.coarse, self.fine[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, features: torch.Tensor, saliency: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        base = saliency_logit(saliency)
        # The SFG is tiny but positive inside the points' box and 0 outside it (away
        # from the points): its log tells the box apart, which the raw map does not.
        log_sfg = torch.log(guidance[:, :1] + 1e-6) / 14.0
        planes = torch.cat([base / 7.0, log_sfg, guidance], 1)
        coarse_features = F.avg_pool2d(features, 2)
        inputs = [self.dropout(coarse_features), F.avg_pool2d(planes, 8)]
        similarity = []
        if self.click_planes:
            emb = F.normalize(self.embed(coarse_features), dim=1)
            for i in self.click_planes:
                weight = F.avg_pool2d(guidance[:, i : i + 1], 8)
                mass = weight.sum(dim=(2, 3), keepdim=True)
                prototype = (emb * weight).sum(dim=(2, 3), keepdim=True) / mass.clamp_min(1e-6)
                present = (mass > 1e-3).to(emb.dtype)
                similarity.append((emb * prototype).sum(dim=1, keepdim=True) * present)
            inputs.extend(similarity)
        h = self.reduce(torch.cat(inputs, 1))
        h = self.trunk(h)
        if self.attention:
            low = F.avg_pool2d(h, 2)
            low = self.position(low) + self.channel(low) - low
            h = h + F.interpolate(low, size=h.shape[2:], mode="bilinear", align_corners=False)
        half = (base.shape[2] // 2, base.shape[3] // 2)
        coarse = F.interpolate(self.coarse(h), size=half, mode="bilinear", align_corners=False)
        logits = F.avg_pool2d(base, 2) + coarse
        fine_inputs = [logits / 7.0, F.avg_pool2d(planes, 2)]
        if self.fine_context:
            fine_inputs.append(F.interpolate(self.context(h), size=half, mode="bilinear", align_corners=False))
        fine = self.fine(torch.cat(fine_inputs, 1))
        out = base + F.interpolate(coarse + fine, size=base.shape[2:], mode="bilinear", align_corners=False)
        if self.click_branch is not None:
            click_maps = torch.cat([guidance[:, i : i + 1] for i in self.click_planes], 1)
            out = out + self.click_branch(h, out, click_maps, torch.cat(similarity, 1))
        return out


def click_local_weights(spec: InputSpec, strength: float) -> tuple[float, ...] | None:
    """``strength`` for each positive click map and ``-strength`` for each negative one, in the
    order of :func:`click_plane_indices`; None for strength 0 (the weights start at zero)."""
    if strength == 0:
        return None
    guidance = [n for n in spec.input_channels if n != "rgb"]
    return tuple(strength if guidance[i] == "positive_clicks" else -strength for i in click_plane_indices(spec))


def click_plane_indices(spec: InputSpec) -> tuple[int, ...]:
    """Indices of the click maps among the guidance planes (the channels after rgb)."""
    guidance = [n for n in spec.input_channels if n != "rgb"]
    return tuple(i for i, n in enumerate(guidance) if n in ("positive_clicks", "negative_clicks"))


def refine_decoder(
    spec: InputSpec, width: int = 48, attention: bool = True, click_similarity: bool = False,
    fine_context: bool = False, click_branch: bool = False, click_locality: bool = False,
    click_local_strength: float = 0.0, feature_dropout: float = 0.0,
) -> RefineDecoder:
    """The :class:`RefineDecoder` for a model's input spec, from the options a refine config names.

    The one place that turns those options into decoder arguments, for training
    (``build_trainee``) and for rebuilding a trained model (:class:`FairsU2`, export).
    ``click_similarity`` reads the click maps of ``spec``; ``click_local_strength`` sets the
    click branch's starting own-Gaussian weights (:func:`click_local_weights`), which a
    loaded state dict then replaces; ``feature_dropout`` acts only in training mode.
    """
    return RefineDecoder(
        spec.channel_count - 3, width=width, attention=attention,
        click_planes=click_plane_indices(spec) if click_similarity else (),
        feature_dropout=feature_dropout, fine_context=fine_context,
        click_branch=click_branch, click_locality=click_locality,
        click_local_init=click_local_weights(spec, click_local_strength) if click_branch else None,
    )


class FairsU2(nn.Module):
    """The whole model: (N, C, S, S) input as the runtime feeds it (raw RGB 0..255, then the
    declared guidance planes) -> (N, 1, S, S) logits. ``spec.input_channels`` must start with rgb
    and have the SFG next; ``decoder_options`` are :func:`refine_decoder`'s."""

    def __init__(self, spec: InputSpec, **decoder_options: Any) -> None:
        super().__init__()
        if tuple(spec.input_channels[:2]) != ("rgb", "sfg"):
            raise ValueError(f"FairsU2 takes rgb, sfg, then click maps; got {list(spec.input_channels)}")
        self.spec = spec
        self.encoder = ImageEncoder()
        self.decoder = refine_decoder(spec, **decoder_options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder(x[:, :3])
        return self.decoder(enc.features, enc.saliency, x[:, 3:])


class U2EndToEnd(nn.Module):
    """Design (a) of issue 12: U2-Netp fine-tuned end to end with the guidance planes at its input.

    (N, C, S, S) runtime input (raw RGB 0..255, then the declared guidance planes) ->
    (N, 1, S, S) fused logits; in training mode also the six side logits (U2-Net's
    deep supervision). The stem's RGB weights are U2-Netp's; as paper 4.1 does for the
    SFG, its plane starts as a copy of the third (blue) input plane's weights; click
    planes start at zero. Load the pretrained weights with :func:`.u2netp.load_u2netp_onnx`
    on ``self.u2`` and then call :meth:`init_guidance_stem`.
    """

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        if tuple(spec.input_channels[:2]) != ("rgb", "sfg"):
            raise ValueError(f"U2EndToEnd takes rgb, sfg, then click maps; got {list(spec.input_channels)}")
        self.spec = spec
        self.u2 = U2NetP(in_ch=spec.channel_count)
        self.normalise = U2Normalise()

    @torch.no_grad()
    def init_guidance_stem(self) -> None:
        stem = self.u2.stage1.conv_in[0].weight
        stem[:, 3] = stem[:, 2]
        stem[:, 4:] = 0.0

    def forward(self, x: torch.Tensor):
        out = self.u2(torch.cat([self.normalise(x[:, :3]), x[:, 3:]], 1))
        if self.training:
            return out.d0, out.sides
        return out.d0
