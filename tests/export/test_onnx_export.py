"""ONNX export: contract I/O, metadata, checker, and ORT-vs-PyTorch parity on real crops."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from fairs_sdk.export.onnx_export import (
    PARITY_ATOL,
    ParityError,
    check_parity,
    export_onnx,
    onnxruntime_session,
    read_metadata,
    run_onnx,
    run_torch,
)
from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME


def test_checker_passes_and_opset(fp32_onnx) -> None:
    model = onnx.load(str(fp32_onnx))
    onnx.checker.check_model(model, full_check=True)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 17, f"opset {opset} < 17"


def test_io_follow_the_contract(fp32_onnx) -> None:
    session = onnxruntime_session(fp32_onnx)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == (INPUT_NAME, OUTPUT_NAME), f"I/O names {inp.name}, {out.name}"
    assert inp.type == "tensor(float)" and out.type == "tensor(float)", f"I/O types {inp.type}, {out.type}"
    assert inp.shape[1:] == [4, 64, 64] and isinstance(inp.shape[0], str), f"input shape {inp.shape}: want [N, 4, 64, 64]"
    assert out.shape[1:] == [1, 64, 64], f"output shape {out.shape}"


def test_metadata_carries_the_input_spec(fp32_onnx, checkpoint) -> None:
    meta = read_metadata(fp32_onnx)
    assert meta.input_spec == checkpoint.input_spec, f"metadata spec {meta.input_spec} != checkpoint {checkpoint.input_spec}"
    assert (meta.backbone, meta.head, meta.precision) == ("resnet18", "danet", "fp32"), f"metadata {meta}"
    assert meta.config_digest == checkpoint.digest, "config digest missing or wrong"


def test_parity_on_real_crops(fp32_onnx, checkpoint, real_inputs) -> None:
    diff = check_parity(checkpoint, fp32_onnx, real_inputs)
    assert diff <= PARITY_ATOL, f"max abs probability difference {diff:.3g}"


def test_dynamic_batch_matches_single(fp32_onnx, real_inputs) -> None:
    session = onnxruntime_session(fp32_onnx)
    batched = run_onnx(session, real_inputs)
    single = run_onnx(session, real_inputs, batch=1)
    assert batched.shape == (len(real_inputs), 1, 64, 64), f"batched output {batched.shape}"
    assert np.abs(batched - single).max() <= 1e-5, "a batch of crops must give the crops' own outputs"


def test_output_is_probability(fp32_onnx, real_inputs) -> None:
    out = run_onnx(onnxruntime_session(fp32_onnx), real_inputs)
    assert out.min() >= 0.0 and out.max() <= 1.0, f"probabilities out of [0, 1]: {out.min()}, {out.max()}"


def test_parity_check_catches_a_wrong_model(checkpoint, tmp_path, real_inputs) -> None:
    """A graph exported from other weights must fail the parity check."""
    import copy

    import torch

    other = copy.deepcopy(checkpoint)
    with torch.no_grad():
        other.model.head.classifier[1].bias.add_(0.5)
    path = export_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(ParityError, match="differs from PyTorch"):
        check_parity(checkpoint, path, real_inputs)


def test_fixed_batch_export(checkpoint, tmp_path, real_inputs) -> None:
    path = export_onnx(checkpoint, tmp_path / "fixed.onnx", dynamic_batch=False)
    shape = onnxruntime_session(path).get_inputs()[0].shape
    assert shape == [1, 4, 64, 64], f"fixed-batch input shape {shape}"
    assert np.abs(run_onnx(onnxruntime_session(path), real_inputs[:1]) - run_torch(checkpoint, real_inputs[:1])).max() <= PARITY_ATOL


def test_rejects_old_opset(checkpoint, tmp_path) -> None:
    with pytest.raises(ValueError, match="opset must be 17"):
        export_onnx(checkpoint, tmp_path / "old.onnx", opset=13)


def test_rejects_a_gaussian_guided_model(checkpoint, tmp_path) -> None:
    from dataclasses import replace

    gaussian = replace(checkpoint, model_config=replace(checkpoint.model_config, guidance="gaussian"))
    with pytest.raises(ValueError, match="only guidance='sfg'"):
        export_onnx(gaussian, tmp_path / "gaussian.onnx")
    assert not (tmp_path / "gaussian.onnx").exists(), "a refused export must not leave a file"



def test_skip_decoder_model_exports_with_parity(decoder_checkpoint, decoder_onnx, real_inputs) -> None:
    diff = check_parity(decoder_checkpoint, decoder_onnx, real_inputs)
    assert diff <= PARITY_ATOL, f"decoder model: max abs probability difference {diff:.3g}"


# -- models that declare their input channels (SPEC 1b) ----------------------------------


def test_six_channel_model_takes_six_planes(six_onnx) -> None:
    shape = onnxruntime_session(six_onnx).get_inputs()[0].shape
    assert shape[1:] == [6, 64, 64] and isinstance(shape[0], str), f"input shape {shape}: want [N, 6, 64, 64]"


def test_six_channel_model_exports_with_parity(six_checkpoint, six_onnx, six_real_inputs) -> None:
    click_planes = six_real_inputs[:, 4:6]
    assert click_planes.max() > 0.5, "the parity crops of a click model carry no click: the click planes go unchecked"
    diff = check_parity(six_checkpoint, six_onnx, six_real_inputs)
    assert diff <= PARITY_ATOL, f"6-channel model: max abs probability difference {diff:.3g}"


def test_metadata_round_trips_input_channels(six_onnx) -> None:
    spec = read_metadata(six_onnx).input_spec
    assert spec.input_channels == ("rgb", "sfg", "positive_clicks", "negative_clicks"), f"channels {spec.input_channels}"
    assert spec.channel_count == 6, f"channel count {spec.channel_count}"


def test_metadata_without_channels_reads_as_rgb_sfg(fp32_onnx, tmp_path) -> None:
    """A file exported before models declared channels has no input_channels: it takes rgb, sfg."""
    import json

    model = onnx.load(str(fp32_onnx))
    for prop in model.metadata_props:
        if prop.key == "fairs.input_spec":
            spec = json.loads(prop.value)
            del spec["input_channels"]
            prop.value = json.dumps(spec)
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    spec = read_metadata(old).input_spec
    assert spec.input_channels == ("rgb", "sfg") and spec.channel_count == 4, f"old metadata read as {spec.input_channels}"


def test_export_refuses_a_network_of_another_channel_count(tmp_path) -> None:
    from tiny_models import SIX_SPEC, tiny_checkpoint

    four_channel_net = tiny_checkpoint(SIX_SPEC, channels=4)
    with pytest.raises(ValueError, match=r"does not run on the \(1, 6, 64, 64\) input"):
        export_onnx(four_channel_net, tmp_path / "wrong.onnx")
    assert not (tmp_path / "wrong.onnx").exists(), "a refused export must not leave a file"


def test_rgb_need_not_come_first(tmp_path, real_inputs) -> None:
    """A model declaring (sfg, rgb) gets its RGB planes normalised where they are."""
    from tiny_models import SIZE, tiny_checkpoint

    from fairs_sdk.config import InputSpec

    checkpoint = tiny_checkpoint(InputSpec(input_size=SIZE, input_channels=("sfg", "rgb")))
    path = export_onnx(checkpoint, tmp_path / "sfg_first.onnx")
    reordered = np.ascontiguousarray(real_inputs[:, [3, 0, 1, 2]])
    diff = check_parity(checkpoint, path, reordered)
    assert diff <= PARITY_ATOL, f"(sfg, rgb) model: max abs probability difference {diff:.3g}"
