"""Tests of fairs_sdk.backends: what the ONNX Runtime backend checks when it loads a model.

The graph's input must take the channel count its metadata declares (SPEC 1b) and
its input size; an old model whose metadata lists no channels is ``rgb, sfg``.
"""

from __future__ import annotations

import pytest

from fairs_sdk.backends import OnnxRuntimeBackend
from fairs_sdk.model_format import NotAFairsModelError

from model_files import CLICK_SPEC, TINY_SPEC, make_echo_model

pytest.importorskip("onnxruntime")


def test_graph_with_fewer_channels_than_declared_is_refused(tmp_path):
    path = make_echo_model(tmp_path / "six_declared_four_taken.onnx", "sfg", 1.0, spec=CLICK_SPEC, graph_channels=4)
    with pytest.raises(NotAFairsModelError, match=r"takes 4 channels .* declares \(N, 6, 64, 64\).*negative_clicks"):
        OnnxRuntimeBackend(path)


def test_old_metadata_on_a_six_channel_graph_is_refused(tmp_path):
    path = make_echo_model(tmp_path / "old_meta_six.onnx", "sfg", 1.0, spec=TINY_SPEC, legacy_metadata=True,
                           graph_channels=6)
    with pytest.raises(NotAFairsModelError, match=r"takes 6 channels .* declares \(N, 4, 64, 64\).*'rgb', 'sfg'"):
        OnnxRuntimeBackend(path)


def test_matching_channel_count_loads(tmp_path):
    backend = OnnxRuntimeBackend(make_echo_model(tmp_path / "six.onnx", "sfg", 1.0, spec=CLICK_SPEC))
    assert backend.metadata.input_spec.channel_count == 6


def test_dynamic_channel_dimension_is_not_checked(tmp_path):
    path = make_echo_model(tmp_path / "dynamic.onnx", "sfg", 1.0, spec=CLICK_SPEC, graph_channels="C")
    assert OnnxRuntimeBackend(path).metadata.input_spec == CLICK_SPEC


def test_old_four_channel_file_loads_as_rgb_sfg(tmp_path):
    backend = OnnxRuntimeBackend(make_echo_model(tmp_path / "old.onnx", "sfg", 1.0, legacy_metadata=True))
    assert backend.metadata.input_spec.input_channels == ("rgb", "sfg"), backend.metadata.input_spec


def test_invalid_sfg_parameters_in_metadata_are_refused_at_load(tmp_path):
    onnx = pytest.importorskip("onnx")
    path = make_echo_model(tmp_path / "bad_sigma.onnx", "sfg", 1.0)
    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == "fairs.input_spec":
            entry.value = entry.value.replace('"sigma": 10.0', '"sigma": -10.0')
            assert "-10.0" in entry.value, "test setup: sigma not found in the metadata"
    onnx.save(proto, str(path))
    with pytest.raises(NotAFairsModelError, match="bad_sigma.onnx has malformed FAIRS metadata.*sigma"):
        OnnxRuntimeBackend(path)

