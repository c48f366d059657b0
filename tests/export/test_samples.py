"""export.samples: inputs built by the runtime's encoder, with the channels the model declares."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import SIX_SPEC, SIZE

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import to_canvas
from fairs_sdk.encoder import InputEncoder
from fairs_sdk.export.samples import (
    check_inputs,
    first_guess,
    iter_samples,
    make_input,
    random_inputs,
    simulated_clicks,
)
from fairs_sdk.training.simulate import extreme_points

FOUR_SPEC = InputSpec(input_size=SIZE)


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return (cols - centre[0]) ** 2 + (rows - centre[1]) ** 2 <= radius**2


def test_make_input_is_the_encoders_input() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (80, 100, 3), dtype=np.uint8)
    extreme = np.array([[20.0, 40.0], [70.0, 35.0], [45.0, 10.0], [50.0, 70.0]])
    positive, negative = np.array([[45.0, 40.0]]), np.array([[30.0, 20.0]])
    encoded = make_input(image, extreme, SIX_SPEC, positive, negative)
    expected = InputEncoder(SIX_SPEC).encode(image, extreme, positive, negative)
    assert encoded.box == expected.box, f"crop box {encoded.box}, encoder {expected.box}"
    np.testing.assert_array_equal(encoded.input, expected.input, err_msg="make_input differs from InputEncoder")


def test_samples_of_a_four_channel_model_have_no_clicks(coco_dir) -> None:
    samples = list(iter_samples(coco_dir, FOUR_SPEC, limit=3, stride=97))
    assert all(s.input.shape == (4, SIZE, SIZE) for s in samples), f"shapes {[s.input.shape for s in samples]}"
    assert all(len(s.positive) == len(s.negative) == 0 for s in samples), "a model without click maps got clicks"


def test_samples_of_a_click_model_carry_both_kinds_of_click(coco_dir) -> None:
    samples = list(iter_samples(coco_dir, SIX_SPEC, limit=6, stride=97))
    assert all(s.input.shape == (6, SIZE, SIZE) for s in samples), f"shapes {[s.input.shape for s in samples]}"
    assert sum(len(s.positive) for s in samples) >= 4 and sum(len(s.negative) for s in samples) >= 4, (
        f"clicks per sample (positive, negative): {[(len(s.positive), len(s.negative)) for s in samples]}"
    )
    for s in samples:
        for points, plane, kind in ((s.positive, 4, "positive"), (s.negative, 5, "negative")):
            if len(points) == 0:
                assert s.input[plane].max() == 0.0, f"{s.name}: {kind} plane set without a {kind} click"
                continue
            x, y = np.round(to_canvas(points, s.box, SIZE)[0]).astype(int)
            assert s.input[plane, y, x] > 0.9, f"{s.name}: {kind} plane is {s.input[plane, y, x]:.2f} at its click"


def test_simulated_clicks_sit_on_the_guess_errors() -> None:
    """Positive clicks land on false negatives of the first guess, negative ones on its false positives."""
    for gt in (_disc((120, 120), (60, 60), 40), np.pad(np.ones((80, 6), bool), ((20, 20), (57, 57)))):
        extreme = extreme_points(gt)
        guess = first_guess(gt.shape, extreme, FOUR_SPEC)
        positive, negative = simulated_clicks(gt, extreme, FOUR_SPEC)
        for x, y in positive.astype(int):
            assert gt[y, x] and not guess[y, x], f"positive click ({x}, {y}) is not on a false negative"
        for x, y in negative.astype(int):
            assert guess[y, x] and not gt[y, x], f"negative click ({x}, {y}) is not on a false positive"
        assert len(positive) + len(negative) >= 1, "an inexact guess gave no click"


def test_no_clicks_where_the_guess_is_exact() -> None:
    gt = np.zeros((40, 40), bool)
    gt[20, 20] = True
    extreme = np.array([[20.0, 20.0]] * 4)
    assert first_guess(gt.shape, extreme, FOUR_SPEC)[20, 20], "the guess of a one-pixel object misses it"
    positive, negative = simulated_clicks(gt, extreme, FOUR_SPEC, ignore=~gt)
    assert len(positive) == len(negative) == 0, f"clicks on an exact guess: {positive}, {negative}"


@pytest.mark.parametrize("spec", [FOUR_SPEC, SIX_SPEC], ids=["rgb_sfg", "six"])
def test_random_inputs_hold_the_declared_channels(spec: InputSpec) -> None:
    inputs = random_inputs(spec, count=3)
    assert inputs.shape == (3, spec.channel_count, SIZE, SIZE) and inputs.dtype == np.float32, f"{inputs.shape} {inputs.dtype}"
    assert inputs[:, :3].max() > 1.0 and inputs[:, 3:].min() >= 0.0 and inputs[:, 3:].max() <= 1.0, "planes out of range"
    if spec is SIX_SPEC:
        assert inputs[:, 4].max() > 0.5 and inputs[:, 5].max() > 0.5, "no click in the click planes of random inputs"


def test_check_inputs_names_the_declared_shape() -> None:
    with pytest.raises(ValueError, match=r"\(N, 6, 64, 64\).*negative_clicks"):
        check_inputs(np.zeros((2, 4, SIZE, SIZE), np.float32), SIX_SPEC)
    with pytest.raises(ValueError, match="N > 0"):
        check_inputs(np.zeros((0, 6, SIZE, SIZE), np.float32), SIX_SPEC)
