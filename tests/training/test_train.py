"""Training pipeline: loss, config, schedule, iterative rounds in the trainer, a short real run, exact resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.training.channels import guidance_planes
from fairs_sdk.training.config import OptimConfig, TrainConfig, learning_rate_factor, load_config
from fairs_sdk.training.evaluate import Predictor, mean_iou_4pts
from fairs_sdk.training.losses import balanced_bce, multi_term_loss
from fairs_sdk.training.train import ShardedSampler, Trainer


def tiny_config(tmp_path, *overrides: str) -> TrainConfig:
    """A small, fast CPU configuration (48 px canvas, MobileNetV3-small, width-16 DANet)."""
    return load_config(
        None,
        [
            "model.backbone=mobilenetv3_small_100",
            "model.head_channels=16",
            "input.input_size=48",
            "input.relax=10",
            "batch_size=2",
            "num_workers=0",
            "epochs=100",
            "amp=off",
            "progress=false",
            "optim.lr=0.01",
            "optim.schedule=constant",
            f"output_dir={tmp_path}",
            *overrides,
        ],
    )


def test_iterative_rounds_add_clicks_to_training_batches(tmp_path, horses) -> None:
    config = tiny_config(tmp_path, "data.simulation.iterative_probability=1.0", "data.simulation.max_iterative_clicks=2")
    trainer = Trainer(config, train_source=horses)
    batch = next(iter(trainer.loader))
    clicked = trainer._with_corrective_clicks(batch)
    def clicks(sample_batch: dict) -> int:
        return int(sum((~torch.isnan(sample_batch[key][..., 0])).sum() for key in ("positive", "negative")))

    planes = guidance_planes(config.input.input_channels)
    assert clicks(clicked) > clicks(batch), "iterative_probability=1 must add clicks to the batch"
    assert not torch.equal(clicked["input"][:, planes], batch["input"][:, planes]), "the guidance must change with the clicks"


def test_balanced_bce_matches_formula() -> None:
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    p = torch.sigmoid(logits).flatten()
    positive_term = -math.log(p[0])
    negative_term = -(math.log(1 - p[1]) + math.log(1 - p[2]) + math.log(1 - p[3]))
    expected = (3 / 4 * positive_term + 1 / 4 * negative_term) / 4
    assert balanced_bce(logits, target).item() == pytest.approx(expected, rel=1e-5)


def test_balanced_bce_skips_ignored_pixels() -> None:
    logits = torch.tensor([[[[2.0, -1.0], [50.0, -3.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    valid = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    reference = balanced_bce(logits[..., [0, 0, 1], [0, 1, 1]].view(1, 1, 1, 3), target[..., [0, 0, 1], [0, 1, 1]].view(1, 1, 1, 3))
    assert balanced_bce(logits, target, valid).item() == pytest.approx(reference.item(), rel=1e-5)


def test_multi_term_loss_is_equal_weight_sum() -> None:
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    outputs = [torch.randn(2, 1, 8, 8) for _ in range(3)]
    total = sum(balanced_bce(o, target) for o in outputs)
    assert multi_term_loss(outputs, target).item() == pytest.approx(total.item(), rel=1e-6)


def test_config_round_trip_and_unknown_keys(tmp_path) -> None:
    config = tiny_config(tmp_path, "optim.schedule=steps", "optim.milestones=[100]", "data.simulation.click_distance=[15, 60]")
    path = tmp_path / "config.yaml"
    config.save(path)
    assert load_config(path).to_dict() == config.to_dict(), "YAML round trip changed the config"
    assert load_config(path).input == config.input, "InputSpec lost in the round trip"
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, ["optim.learning_rate=0.1"])


def test_model_input_channels_reach_the_input_spec(tmp_path) -> None:
    channels = ["rgb", "sfg", "positive_clicks", "negative_clicks"]
    config = tiny_config(tmp_path, f"model.input_channels={channels}")
    assert config.input.input_channels == tuple(channels), "checkpoints and exports read the channels from config.input"
    assert config.input.channel_count == 6
    path = tmp_path / "config.yaml"
    config.save(path)
    assert load_config(path).to_dict() == config.to_dict(), "YAML round trip changed the channels"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("input.input_channels=[rgb, positive_clicks]",), "set model.input_channels only"),
        (("model.input_channels=[rgb, sfg]", "input.input_channels=[rgb, sfg, negative_clicks]"), "differs from"),
        (("model.input_channels=[rgb, sfg, clicks]",), "model.input_channels"),
    ],
    ids=["input-only", "disagree", "unknown-name"],
)
def test_input_channels_are_refused_when_ambiguous_or_unknown(tmp_path, overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, *overrides)


def test_checkpoint_that_predates_input_channels_loads(tmp_path) -> None:
    from fairs_sdk.training.model import ModelConfig, build_model
    from fairs_sdk.training.train import load_model

    torch.manual_seed(0)
    config = ModelConfig(backbone="resnet18", head_channels=16, decoder="skip")
    model = build_model(config).eval()
    legacy_model = {k: v for k, v in config.to_dict().items() if k != "input_channels"} | {"in_chans": 4}
    legacy_input = {k: v for k, v in InputSpec(input_size=64).to_dict().items() if k != "input_channels"}
    torch.save({"version": 1, "config": {"model": legacy_model, "input": legacy_input}, "model": model.state_dict()}, tmp_path / "old.pt")
    loaded, loaded_config = load_model(tmp_path / "old.pt")
    assert loaded_config.input.input_channels == ("rgb", "sfg"), f"an old 4-plane checkpoint is rgb + sfg, got {loaded_config.input}"
    x = torch.rand(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)), "the old checkpoint's network must compute what it computed"


def test_warm_start_from_the_paper_model_to_click_maps(tmp_path) -> None:
    from fairs_sdk.training.model import ModelConfig, build_model
    from fairs_sdk.training.train import initialise_from

    torch.manual_seed(0)
    source = ModelConfig(backbone="resnet18", head_channels=16, decoder="skip")
    plain = build_model(source).eval()
    torch.save({"model": plain.state_dict(), "config": {"model": source.to_dict()}}, tmp_path / "plain.pt")
    channels = ("rgb", "sfg", "positive_clicks", "negative_clicks")
    clicks = build_model(ModelConfig(backbone="resnet18", head_channels=16, decoder="skip", input_channels=channels)).eval()
    assert initialise_from(clicks, tmp_path / "plain.pt") == [], "every tensor must come from the checkpoint"
    x = torch.rand(1, 4, 64, 64)
    with torch.no_grad():
        got = clicks(torch.cat([x, torch.rand(1, 2, 64, 64)], dim=1))
        assert torch.allclose(got, plain(x), atol=1e-5), "new click-map planes start at zero: same output as the source"


@pytest.mark.parametrize(
    "name", ["fairs_resnet101", "ablation_base_psp", "default_lite0", "default_lite0_refine", "default_lite0_adamw"]
)
def test_shipped_training_configs_load(name: str) -> None:
    from pathlib import Path

    config = load_config(Path(__file__).parents[2] / "training" / "configs" / f"{name}.yaml")
    assert config.input.input_channels == config.model.input_channels == ("rgb", "sfg"), f"{name}: {config.input}"


def test_adamw_optimiser_keeps_head_multiplier(tmp_path, horses) -> None:
    trainer = Trainer(tiny_config(tmp_path, "optim.name=adamw", "optim.lr=0.0001", "model.decoder=skip"), train_source=horses)
    optimizer = trainer.optimizer
    assert isinstance(optimizer, torch.optim.AdamW), f"optim.name=adamw built {type(optimizer).__name__}"
    backbone, head = optimizer.param_groups
    assert head["base_lr"] == pytest.approx(10 * backbone["base_lr"]), "head and decoder run at head_lr_multiplier x lr"
    decoder = {id(p) for p in trainer.model.decoder.parameters()}
    assert decoder <= {id(p) for p in head["params"]}, "decoder parameters must be in the head group"
    with pytest.raises(ValueError, match="optim.name"):
        OptimConfig(name="lamb")


def test_learning_rate_schedules() -> None:
    steps = OptimConfig(schedule="steps", milestones=[2, 3], gamma=0.5)
    assert [learning_rate_factor(steps, s, 40, 10) for s in (0, 19, 20, 30)] == [1.0, 1.0, 0.5, 0.25]
    poly = OptimConfig(schedule="poly", power=1.0, warmup_steps=4)
    assert learning_rate_factor(poly, 0, 100, 10) == pytest.approx(0.25), "warm-up starts at 1/warmup"
    assert learning_rate_factor(poly, 50, 100, 10) == pytest.approx(0.5)


def test_sampler_deals_global_batches_to_ranks() -> None:
    samplers = [ShardedSampler(10, batch_size=2, world_size=2, rank=r, seed=3) for r in range(2)]
    single = ShardedSampler(10, batch_size=4, world_size=1, rank=0, seed=3)
    shards = [list(s) for s in samplers]
    assert len(shards[0]) == len(shards[1]) == 4, "two steps of 2 per rank"
    assert set(shards[0][:2] + shards[1][:2]) == set(list(single)[:4]), "step 1 of both ranks = step 1 of one process"
    samplers[0].set_epoch(0, skip_batches=1)
    assert list(samplers[0]) == shards[0][2:], "skip_batches must resume inside the epoch"


@pytest.mark.slow
def test_few_hundred_steps_reduce_loss_and_raise_iou(tmp_path, horses) -> None:
    config = tiny_config(tmp_path, "optim.lr=0.02")
    trainer = Trainer(config, train_source=horses, log=lambda message: None)
    predictor = Predictor(trainer.model, config.input)
    iou_before = mean_iou_4pts(predictor, horses)
    for _ in range(100):  # 2 steps per epoch: 200 steps
        trainer.train_epoch()
    losses = trainer.step_losses
    assert len(losses) == 200
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    iou_after = mean_iou_4pts(predictor, horses)
    assert last < 0.8 * first, f"loss went from {first:.3f} to {last:.3f}: not down by 20 %"
    assert iou_after > iou_before + 0.15, f"training IoU went from {iou_before:.3f} to {iou_after:.3f}"


@pytest.mark.parametrize("steps_before_checkpoint", [2, 3], ids=["epoch-boundary", "mid-epoch"])
def test_resume_gives_same_next_loss(tmp_path, horses, steps_before_checkpoint: int) -> None:
    config = tiny_config(tmp_path, "optim.momentum=0.9")
    uninterrupted = Trainer(config, train_source=horses, log=lambda message: None)
    while uninterrupted.global_step < steps_before_checkpoint:
        uninterrupted.train_epoch(max_steps=steps_before_checkpoint - uninterrupted.global_step)
    uninterrupted.save_checkpoint(tmp_path / "ckpt.pt")
    expected = [uninterrupted.train_epoch(max_steps=1) for _ in range(2)]

    torch.manual_seed(1234)  # a resumed run must not depend on the global RNG state
    resumed = Trainer(config, train_source=horses, log=lambda message: None)
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    got = [resumed.train_epoch(max_steps=1) for _ in range(2)]
    assert got == expected, f"resumed losses {got} differ from the uninterrupted run's {expected}"


@pytest.mark.parametrize(
    "overrides",
    [("amp=bf16",), ("model.head=psp", "model.head_channels=32"), ("model.guidance=gaussian",)],
    ids=["bf16-autocast", "psp-head", "gaussian-guidance"],
)
def test_one_training_step_variants(tmp_path, horses, overrides: tuple[str, ...]) -> None:
    trainer = Trainer(tiny_config(tmp_path, *overrides), train_source=horses, log=lambda message: None)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss = trainer.train_epoch(max_steps=1)
    assert math.isfinite(loss) and loss > 0, f"{overrides}: loss {loss}"
    changed = sum(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert changed > 0, f"{overrides}: no parameter was updated"


def test_stop_after_epoch_keeps_the_full_schedule(tmp_path, horses) -> None:
    config = tiny_config(tmp_path, "epochs=4", "max_steps_per_epoch=1", "optim.schedule=poly")
    trainer = Trainer(config, train_source=horses, log=lambda message: None)
    history = trainer.fit(stop_after_epoch=2)
    assert [r["epoch"] for r in history] == [1, 2], f"ran epochs {[r['epoch'] for r in history]}, expected 1 and 2"
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "epoch_002.pt").is_file(), "the stopping epoch must be saved"
    expected = config.optim.lr * learning_rate_factor(config.optim, 1, 4, 1)
    assert history[-1]["lr"] == pytest.approx(expected), "the schedule must still span all 4 epochs"
