"""Tests of fairs_sdk.model_format.ModelMetadata."""

import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import ModelMetadata, NotAFairsModelError


def test_props_round_trip():
    meta = ModelMetadata(InputSpec(input_size=384), "tf_efficientnet_lite0", precision="fp16",
                         config_digest="abc", extra={"data": "coco_mval"})
    props = meta.to_props()
    assert all(isinstance(v, str) for v in props.values()), "ONNX metadata values must be strings"
    assert ModelMetadata.from_props(props) == meta


def test_missing_metadata_is_not_a_fairs_model():
    with pytest.raises(NotAFairsModelError, match="not a FAIRS model"):
        ModelMetadata.from_props({"producer": "someone"}, source="x.onnx")


def test_other_format_version_is_refused():
    props = ModelMetadata(InputSpec(), "resnet18").to_props()
    props["fairs.format_version"] = "99"
    with pytest.raises(NotAFairsModelError, match="format '99'"):
        ModelMetadata.from_props(props)


def test_malformed_input_spec_is_refused():
    props = ModelMetadata(InputSpec(), "resnet18").to_props()
    props["fairs.input_spec"] = "{not json"
    with pytest.raises(NotAFairsModelError, match="malformed"):
        ModelMetadata.from_props(props)
