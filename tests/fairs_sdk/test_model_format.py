"""Tests of fairs_sdk.model_format.ModelMetadata."""

import json

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


def _props_with_spec(**values) -> dict:
    props = ModelMetadata(InputSpec(), "resnet18").to_props()
    spec = json.loads(props["fairs.input_spec"])
    spec.update(values)
    props["fairs.input_spec"] = json.dumps(spec)
    return props


@pytest.mark.parametrize(
    "values, field",
    [(dict(beta=0), "beta"), (dict(beta=-5.0), "beta"), (dict(kappa=0.5), "kappa"), (dict(sigma=0), "sigma"),
     (dict(relax=-3), "relax"), (dict(relax=1.5), "relax"), (dict(input_size=8), "input_size"),
     (dict(input_size=True), "input_size"), (dict(beta="5"), "beta"), (dict(sigma=False), "sigma"),
     (dict(input_channels=["rgb", "depth"]), "input_channels")],
    ids=["beta-0", "beta-neg", "kappa", "sigma-0", "relax-neg", "relax-float", "size-8", "size-bool", "beta-str",
         "sigma-bool", "unknown-channel"],
)
def test_invalid_input_spec_in_metadata_is_not_a_fairs_model(values, field):
    with pytest.raises(NotAFairsModelError, match=f"m.onnx has malformed FAIRS metadata in 'fairs.input_spec'.*{field}"):
        ModelMetadata.from_props(_props_with_spec(**values), source="m.onnx")


def test_metadata_without_input_channels_reads_as_rgb_sfg():
    props = ModelMetadata(InputSpec(), "resnet18").to_props()
    spec = json.loads(props["fairs.input_spec"])
    del spec["input_channels"]  # as written before models declared their channels
    props["fairs.input_spec"] = json.dumps(spec)
    read = ModelMetadata.from_props(props).input_spec
    assert read.input_channels == ("rgb", "sfg") and read.channel_count == 4, f"old metadata read as {read}"


def test_declared_channels_round_trip():
    meta = ModelMetadata(InputSpec(input_channels=("rgb", "sfg", "positive_clicks", "negative_clicks")), "resnet18")
    assert ModelMetadata.from_props(meta.to_props()).input_spec.input_channels == meta.input_spec.input_channels


def test_extra_must_be_a_json_object():
    props = ModelMetadata(InputSpec(), "resnet18").to_props()
    props["fairs.extra"] = "[1, 2]"
    with pytest.raises(NotAFairsModelError, match="fairs.extra"):
        ModelMetadata.from_props(props)


# ------------------------------------------------------------------ two-part models
PARTS = {"image_encoder": "m.encoder.onnx", "decoder": "m.decoder.onnx"}


def test_parts_resolve_beside_the_combined_file(tmp_path):
    meta = ModelMetadata.from_props(ModelMetadata(InputSpec(), "u2netp", extra={"part": "combined", "parts": PARTS}).to_props())
    assert meta.part == "combined"
    assert meta.part_paths(tmp_path / "m.onnx") == {k: tmp_path / v for k, v in PARTS.items()}


def test_model_without_parts_has_none():
    meta = ModelMetadata(InputSpec(), "resnet18")
    assert meta.part is None and meta.parts is None and meta.part_paths("m.onnx") is None and meta.part_sha256 == {}


@pytest.mark.parametrize(
    "extra",
    [{"parts": {"image_encoder": "a.onnx"}}, {"parts": ["a.onnx", "b.onnx"]},
     {"parts": {**PARTS, "decoder": "/abs/d.onnx"}}, {"parts": {**PARTS, "decoder": ""}},
     {"parts": PARTS, "part_sha256": {"decoder": "abc"}}],
    ids=["one-part", "list", "absolute", "empty-name", "bad-digest"],
)
def test_malformed_parts_are_not_a_fairs_model(extra):
    props = ModelMetadata(InputSpec(), "u2netp", extra=extra).to_props()
    with pytest.raises(NotAFairsModelError, match="m.onnx has malformed FAIRS metadata in 'fairs.extra'"):
        ModelMetadata.from_props(props, source="m.onnx")
