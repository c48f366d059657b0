"""Cached decoder training (issue 12 design b) and the end-to-end design (a), on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fairs_sdk.training.feature_cache import FeatureCache
from fairs_sdk.training.guidance import make_encoder
from fairs_sdk.training.refine_train import RefineConfig, build_trainee, selection_score, train_refiner, validate, validate_three


def tiny_config(tmp_path, weights, horses_root, **changes) -> RefineConfig:
    source = {"kind": "folder", "root": str(horses_root), "max_instances": 3}
    values = {
        "u2netp_weights": str(weights),
        "cache_dir": str(tmp_path / "cache"),
        "output_dir": str(tmp_path / "run"),
        "input": {"input_size": 64, "relax": 10, "input_channels": ["rgb", "sfg", "positive_clicks", "negative_clicks"]},
        "train": [{"name": "horses", "source": source}],
        "val": {"name": "val", "source": source, "every": 2},
        "width": 16,
        "steps": 3,
        "batch_size": 2,
        "validate_every": 3,
        "checkpoint_every": 1,
        "threads": 1,
        "iterative_probability": 1.0,
    }
    values.update(changes)
    return RefineConfig.from_dict(values)


def test_unknown_config_key_is_refused(tmp_path, fake_u2netp, horses_root):
    with pytest.raises(ValueError, match="unknown refine config keys"):
        tiny_config(tmp_path, fake_u2netp[0], horses_root, stepz=3)


def test_decoder_training_writes_cache_checkpoint_and_validation(tmp_path, fake_u2netp, horses_root):
    config = tiny_config(tmp_path, fake_u2netp[0], horses_root)
    out = train_refiner(config, progress=False)
    cache = FeatureCache.load([tmp_path / "cache" / "horses"])
    assert cache.features.shape == (3, 128, 16, 16) and cache.saliency.shape == (3, 1, 64, 64)
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 3
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    val = lines[-1]["val"]
    assert {"3pts", "4pts", "+1", "+3", "u2netp_box"} <= set(val), f"validation keys: {sorted(val)}"
    assert all(0.0 <= v <= 100.0 for v in val.values())


def test_validation_leaves_the_net_in_training_mode_and_repeats(tmp_path, fake_u2netp, horses_root):
    config = tiny_config(tmp_path, fake_u2netp[0], horses_root, steps=1)
    train_refiner(config, progress=False)  # builds the cache
    cache = FeatureCache.load([tmp_path / "cache" / "horses"])
    net = build_trainee(config)
    net.train()
    encoder = make_encoder(config.spec, config.guidance, sfg_threads=1)
    first = validate(net, cache, encoder, clicks=1, batch=2)
    three = validate_three(net, cache, encoder, batch=2)
    assert net.training, "validation left the network in eval mode"
    again = validate(net, cache, encoder, clicks=1, batch=3)
    assert again == pytest.approx(first, abs=0.5), f"validation depends on its batch size: {again} against {first}"
    assert 0.0 <= three <= 100.0, f"three-point validation out of range: {three}"


def test_resume_goes_on_from_the_checkpoint(tmp_path, fake_u2netp, horses_root):
    config = tiny_config(tmp_path, fake_u2netp[0], horses_root, steps=2)
    train_refiner(config, progress=False)
    longer = tiny_config(tmp_path, fake_u2netp[0], horses_root, steps=4)
    out = train_refiner(longer, resume=True, progress=False)
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 4
    assert steps == sorted(steps), f"a resumed run must not repeat steps: {steps}"


def test_stop_step_ends_the_run_early_on_the_full_schedule(tmp_path, fake_u2netp, horses_root):
    config = tiny_config(tmp_path, fake_u2netp[0], horses_root, steps=10, stop_step=2, validate_every=5,
                         warmup_steps=1, lr=1e-3)
    out = train_refiner(config, progress=False)
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 2, "the run did not stop at stop_step"
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 2 and "val" in lines[-1], f"the stop step was not validated: {lines[-1]}"
    want = 1e-3 * (1 - 1 / 10) ** 0.9  # step 2's rate on the 10-step schedule (a 2-step one would give 5.4e-4)
    assert lines[-1]["lr"] == pytest.approx(want), f"stop_step changed the schedule: lr {lines[-1]['lr']} against {want}"


@pytest.mark.parametrize("stop_step", [0, 11])
def test_stop_step_outside_the_run_is_refused(tmp_path, fake_u2netp, horses_root, stop_step):
    with pytest.raises(ValueError, match="stop_step"):
        tiny_config(tmp_path, fake_u2netp[0], horses_root, steps=10, stop_step=stop_step)


def test_end_to_end_design_trains_the_whole_network(tmp_path, fake_u2netp, horses_root):
    config = tiny_config(tmp_path, fake_u2netp[0], horses_root, design="end_to_end", steps=2, validate_every=2)
    out = train_refiner(config, progress=False)
    cache = FeatureCache.load([tmp_path / "cache" / "pixels" / "horses"])
    assert cache.pixels.shape == (3, 64, 64, 3) and cache.features is None
    state = torch.load(out / "last.pt", weights_only=True)["model"]
    assert state["u2.stage1.conv_in.0.weight"].shape[1] == 6, "the stem must take rgb + 3 guidance planes"
    assert np.isfinite([v.float().sum().item() for v in state.values()]).all()


def test_three_point_crops_train_on_their_own_points_and_validate(tmp_path, fake_u2netp, horses_root):
    source = {"kind": "folder", "root": str(horses_root), "max_instances": 3}
    config = tiny_config(
        tmp_path, fake_u2netp[0], horses_root,
        train=[{"name": "horses", "source": source}, {"name": "horses_three", "source": source, "crop_points": 3}],
        val_three={"name": "val_three", "source": source, "crop_points": 3},
    )
    out = train_refiner(config, progress=False)
    three = FeatureCache.load([tmp_path / "cache" / "horses_three"])
    assert all(three.crop_points(row).shape == (3, 2) for row in range(len(three))), "a three-point crop keeps 3 points"
    val = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][-1]["val"]
    assert 0.0 <= val.get("3pts_crop", -1.0) <= 100.0, f"validation must score the three-point crops: {sorted(val)}"


def test_selection_counts_three_point_crops_when_validated():
    val = {"4pts": 80.0, "+1": 82.0, "3pts": 70.0}
    assert selection_score(val) == pytest.approx(81.0), "3pts (in-crop drop) is not part of the selection"
    assert selection_score({**val, "3pts_crop": 60.0}) == pytest.approx(74.0)


@pytest.mark.parametrize("train_only, moved_parts", [("click_branch", set()), (["click_branch", "fine"], {"fine"})],
                         ids=["click_branch", "click_branch_and_fine"])
def test_train_only_keeps_the_rest(tmp_path, fake_u2netp, horses_root, train_only, moved_parts):
    first = tiny_config(tmp_path, fake_u2netp[0], horses_root, click_similarity=True, steps=2)
    train_refiner(first, progress=False)
    start = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    second = tiny_config(
        tmp_path, fake_u2netp[0], horses_root, click_similarity=True, click_branch=True, steps=2,
        init_from=str(tmp_path / "run" / "last.pt"), train_only=train_only, output_dir=str(tmp_path / "second"),
        click_probability=1.0,
    )
    after = torch.load(train_refiner(second, progress=False) / "last.pt", weights_only=True)["model"]
    moved = {name.split(".")[0] for name, value in start.items() if not torch.equal(after[name], value)}
    assert moved == moved_parts, f"parts moved besides the click branch: {sorted(moved)}, want {sorted(moved_parts)}"
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in after.items() if k.startswith("click_branch.out")), \
        "the click branch did not train"


def test_train_only_refuses_a_part_without_parameters(tmp_path, fake_u2netp, horses_root):
    with pytest.raises(ValueError, match="names no parameters"):
        train_refiner(tiny_config(tmp_path, fake_u2netp[0], horses_root, train_only=["fine", "nothing"]), progress=False)


def test_rebuilt_model_has_the_trained_decoder_architecture(tmp_path, fake_u2netp, horses_root):
    from fairs_sdk.training.refiner import FairsU2

    config = tiny_config(tmp_path, fake_u2netp[0], horses_root, click_similarity=True, click_branch=True,
                         click_locality=True, click_local_strength=4.0, fine_context=True, attention=False)
    trained = build_trainee(config).decoder.state_dict()
    rebuilt = FairsU2(config.spec, **config.decoder_options).decoder.state_dict()
    assert set(trained) == set(rebuilt), f"decoder keys differ: {sorted(set(trained) ^ set(rebuilt))}"
    assert all(trained[k].shape == rebuilt[k].shape for k in trained), "a rebuilt decoder tensor has another shape"
