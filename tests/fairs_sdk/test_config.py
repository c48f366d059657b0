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
