"""Tests of fairs_sdk.config.InputSpec."""

import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.sfg import BETA, KAPPA, SIGMA


def test_defaults_follow_the_spec():
    spec = InputSpec()
    assert (spec.input_size, spec.relax, spec.threshold) == (512, 50, 0.5)
    assert (spec.beta, spec.kappa, spec.sigma) == (BETA, KAPPA, SIGMA) == (5.0, 2.0, 10.0)


def test_json_round_trip_keeps_every_field():
    spec = InputSpec(input_size=384, relax=30, sigma=8.0, mean=(0.5, 0.5, 0.5))
    assert InputSpec.from_json(spec.to_json()) == spec


def test_unknown_field_is_an_error():
    with pytest.raises(ValueError, match="unknown InputSpec fields"):
        InputSpec.from_dict({"input_size": 512, "sizee": 3})


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(input_size=8), "input_size"), (dict(relax=-1), "relax"), (dict(threshold=1.0), "threshold"),
     (dict(std=(0.2, 0.0, 0.2)), "std")],
)
def test_bad_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputSpec(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beta=0.0), "beta must be a finite number > 0"),
        (dict(beta=-2.0), "beta must be a finite number > 0"),
        (dict(beta=float("inf")), "beta must be a finite number > 0"),
        (dict(beta=float("nan")), "beta must be a finite number > 0"),
        (dict(kappa=0.5), "kappa must be a finite number >= 1"),
        (dict(kappa=float("inf")), "kappa must be a finite number >= 1"),
        (dict(sigma=0.0), "sigma must be a finite number > 0"),
        (dict(sigma=-1.0), "sigma must be a finite number > 0"),
        (dict(relax=2.5), "relax must be an integer >= 0"),
        (dict(relax=-1), "relax must be an integer >= 0"),
        (dict(input_size=15), "input_size must be an integer >= 16"),
        (dict(input_size=512.0), "input_size must be an integer >= 16"),
    ],
    ids=["beta-0", "beta-neg", "beta-inf", "beta-nan", "kappa-half", "kappa-inf", "sigma-0", "sigma-neg",
         "relax-float", "relax-neg", "size-15", "size-float"],
)
def test_out_of_range_values_are_rejected_with_their_rule(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputSpec(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(input_size=True), dict(relax=False), dict(beta=True), dict(kappa=True), dict(sigma=True),
     dict(beta="5"), dict(sigma="10"), dict(input_size="512"), dict(relax="50"), dict(threshold="0.5"),
     dict(mean=(0.5, "0.5", 0.5)), dict(std=(0.2, True, 0.2)), dict(mean="abc")],
    ids=["size-bool", "relax-bool", "beta-bool", "kappa-bool", "sigma-bool", "beta-str", "sigma-str", "size-str",
         "relax-str", "threshold-str", "mean-str-item", "std-bool-item", "mean-str"],
)
def test_bools_and_strings_do_not_pass_for_numbers(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        InputSpec(**kwargs)


def test_whole_numbers_in_float_fields_are_accepted_as_floats():
    spec = InputSpec.from_dict({"beta": 5, "kappa": 2, "sigma": 10, "mean": [0, 0, 0], "std": [1, 1, 1]})
    assert all(type(v) is float for v in (spec.beta, spec.kappa, spec.sigma, *spec.mean, *spec.std)), spec
    assert spec == InputSpec(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)), "5 and 5.0 must give the same spec"


def test_kappa_of_one_is_the_smallest_norm_order_accepted():
    assert InputSpec(kappa=1.0).kappa == 1.0


def test_input_channels_are_kept_as_a_tuple_and_counted():
    spec = InputSpec(input_channels=["rgb", "sfg", "positive_clicks", "negative_clicks"])
    assert spec.input_channels == ("rgb", "sfg", "positive_clicks", "negative_clicks")
    assert spec.channel_count == 6, f"rgb (3) + 3 guidance planes is 6, got {spec.channel_count}"
    hash(spec)  # frozen and hashable, even when built from a list


@pytest.mark.parametrize(
    "channels, message",
    [("rgb", "string"), (("rgb", "rgb"), "input_channels"), (("sfg",), "input_channels"),
     (("rgb", "depth"), "input_channels"), (("rgb", 3), "input_channels")],
    ids=["string", "rgb-twice", "no-rgb", "unknown", "not-a-name"],
)
def test_bad_input_channels_are_rejected(channels, message):
    with pytest.raises(ValueError, match=message):
        InputSpec(input_channels=channels)


def test_input_spec_json_must_be_an_object():
    with pytest.raises(ValueError, match="JSON object"):
        InputSpec.from_json("[512, 50]")


def test_partial_relax_widens_the_margin_only_below_four_extreme_points():
    spec = InputSpec(relax=30, partial_relax=0.2)
    got = [spec.margins_for(n, box_side=200.0) for n in (2, 3, 4, 5)]
    assert got == [(70,) * 4, (70,) * 4, (30,) * 4, (30,) * 4], (
        f"margins for 2, 3, 4, 5 points should be 70, 70, 30, 30 on every side, got {got}"
    )


def test_partial_relax_grows_with_the_box():
    spec = InputSpec(relax=30, partial_relax=0.2)
    assert spec.margins_for(3, box_side=50.0) == (40,) * 4 and spec.margins_for(3, box_side=500.0) == (130,) * 4


def test_without_partial_relax_every_point_count_takes_relax():
    spec = InputSpec(relax=30)
    assert {spec.margins_for(n, box_side=300.0) for n in (2, 3, 4)} == {(30,) * 4}


def test_corner_partial_relax_widens_only_the_corner_sides():
    spec = InputSpec(relax=30, partial_relax=0.2, partial_relax_sides="corner")
    got = spec.margins_for(3, box_side=200.0, corner=frozenset({"left", "bottom"}))
    assert got == (70, 30, 30, 70), f"(left, top, right, bottom) should be (70, 30, 30, 70), got {got}"


def test_corner_partial_relax_leaves_four_points_alone():
    spec = InputSpec(relax=30, partial_relax=0.2, partial_relax_sides="corner")
    assert spec.margins_for(4, box_side=200.0, corner=frozenset({"left", "top"})) == (30,) * 4


def test_all_sides_partial_relax_ignores_the_corner():
    spec = InputSpec(relax=30, partial_relax=0.2)
    assert spec.margins_for(3, box_side=200.0, corner=frozenset({"left"})) == (70,) * 4


@pytest.mark.parametrize("value", ["open", "", None, ["corner"], 1])
def test_bad_partial_relax_sides_is_rejected(value):
    with pytest.raises(ValueError, match="partial_relax_sides must be one of"):
        InputSpec(partial_relax_sides=value)


def test_partial_relax_sides_survives_json_and_is_left_out_when_all():
    spec = InputSpec(relax=30, partial_relax=0.2, partial_relax_sides="corner")
    assert InputSpec.from_json(spec.to_json()) == spec
    assert "partial_relax_sides" not in InputSpec(relax=30, partial_relax=0.2).to_dict(), (
        "partial_relax_sides 'all' must not be written: runtimes that predate it refuse unknown fields"
    )


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.2", None])
def test_bad_partial_relax_is_rejected(value):
    with pytest.raises(ValueError, match="partial_relax must be a finite number >= 0"):
        InputSpec(partial_relax=value)


def test_partial_relax_survives_json_and_is_left_out_when_zero():
    spec = InputSpec(relax=30, partial_relax=0.2)
    assert InputSpec.from_json(spec.to_json()) == spec
    assert "partial_relax" not in InputSpec(relax=30).to_dict(), (
        "a zero partial_relax must not be written: runtimes that predate it refuse unknown fields"
    )
