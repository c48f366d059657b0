"""fp16 and int8 models: close to fp32 on real crops, attention kept in fp32, metadata updated."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.export.onnx_export import onnxruntime_session, read_metadata, run_onnx
from fairs_sdk.export.quantize import CropCalibrationReader, attention_nodes, cancelling_convs, quantize_int8


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a >= 0.5, b >= 0.5
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


@pytest.fixture(scope="module")
def fp32_out(fp32_onnx, real_inputs) -> np.ndarray:
    return run_onnx(onnxruntime_session(fp32_onnx), real_inputs)


def test_fp16_close_to_fp32(fp16_onnx, real_inputs, fp32_out) -> None:
    out = run_onnx(onnxruntime_session(fp16_onnx), real_inputs)
    diff = np.abs(out - fp32_out)
    assert diff.mean() < 1e-3 and diff.max() < 1e-2, f"fp16 vs fp32: mean {diff.mean():.3g}, max {diff.max():.3g}"
    assert _mask_iou(out, fp32_out) > 0.98, f"fp16 mask IoU vs fp32 {_mask_iou(out, fp32_out):.3f}"


def test_int8_close_to_fp32(int8_onnx, real_inputs, fp32_out) -> None:
    out = run_onnx(onnxruntime_session(int8_onnx), real_inputs)
    diff = np.abs(out - fp32_out)
    assert diff.mean() < 1e-2 and diff.max() < 0.1, f"int8 vs fp32: mean {diff.mean():.3g}, max {diff.max():.3g}"
    assert _mask_iou(out, fp32_out) > 0.9, f"int8 mask IoU vs fp32 {_mask_iou(out, fp32_out):.3f}"


def test_int8_quantizes_a_skip_decoder_model(decoder_onnx, tmp_path, calibration_inputs, real_inputs, monkeypatch) -> None:
    """ORT's symbolic shape inference gives up on Lite0 + decoder; quantisation must still work, leaving no debris."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    path = quantize_int8(decoder_onnx, tmp_path / "decoder_int8.onnx", calibration_inputs)
    assert not list(workdir.iterdir()), f"quantize_int8 left files in the working directory: {list(workdir.iterdir())}"
    reference = run_onnx(onnxruntime_session(decoder_onnx), real_inputs)
    out = run_onnx(onnxruntime_session(path), real_inputs)
    assert _mask_iou(out, reference) > 0.9, f"int8 decoder model mask IoU vs fp32 {_mask_iou(out, reference):.3f}"


def test_fp16_keeps_io_float32(fp16_onnx) -> None:
    session = onnxruntime_session(fp16_onnx)
    types = [session.get_inputs()[0].type, session.get_outputs()[0].type]
    assert types == ["tensor(float)", "tensor(float)"], f"fp16 model I/O types {types}: the runtime feeds float32"


def test_int8_is_quantized(int8_onnx) -> None:
    ops = {n.op_type for n in onnx.load(str(int8_onnx)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, f"no QDQ nodes in the int8 model: {sorted(ops)}"


def test_int8_leaves_attention_unquantized(int8_onnx) -> None:
    model = onnx.load(str(int8_onnx))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    attention = [n for n in model.graph.node if n.name.startswith("/model/head/channel/") and n.op_type == "MatMul"]
    assert attention, "channel-attention MatMul nodes not found by name"
    fed = [n.name for n in attention if any(i in dequantized for i in n.input)]
    assert not fed, f"attention MatMuls reading int8-dequantized tensors: {fed}"


@pytest.mark.parametrize("fixture, precision", [("fp16_onnx", "fp16"), ("int8_onnx", "int8")])
def test_metadata_precision(request, fixture: str, precision: str, checkpoint) -> None:
    meta = read_metadata(request.getfixturevalue(fixture))
    assert meta.precision == precision, f"metadata precision {meta.precision!r}, want {precision!r}"
    assert meta.input_spec == checkpoint.input_spec and meta.config_digest == checkpoint.digest, "metadata lost in conversion"


def test_attention_nodes_come_from_metadata_scopes(fp32_onnx) -> None:
    names = attention_nodes(onnx.load(str(fp32_onnx)))
    assert "/model/head/channel/MatMul" in names and "/model/head/position/Softmax" in names, f"attention nodes: {names[:5]}..."
    assert not any(n.startswith("/model/backbone/") for n in names), "backbone nodes listed as attention"


def _input_types(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Node name -> element types of its inputs, after ONNX shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    return {n.name: [types.get(i, 0) for i in n.input if i] for n in inferred.graph.node}


def test_fp16_attention_products_stay_fp32(fp16_onnx) -> None:
    """The attention MatMuls and Softmaxes read float32, the backbone convolutions float16.

    (ONNX Runtime's CPU provider computes most fp16 ops in fp32 anyway, so the Gram
    overflow this prevents only shows on GPUs: the graph itself is what is checked.)
    """
    types = _input_types(onnx.load(str(fp16_onnx)))
    attention = {k: v for k, v in types.items() if k.startswith("/model/head/") and k.rsplit("/", 1)[-1].startswith(("MatMul", "Softmax"))}
    assert len(attention) == 6, f"expected 4 MatMuls and 2 Softmaxes in the attention, found {sorted(attention)}"
    not_fp32 = {k: v for k, v in attention.items() if any(t != onnx.TensorProto.FLOAT for t in v)}
    assert not not_fp32, f"attention nodes with non-float32 inputs: {not_fp32}"
    stem = types["/model/backbone/body/conv1/Conv"]
    assert stem and all(t == onnx.TensorProto.FLOAT16 for t in stem), f"backbone stem inputs {stem}: the model was not converted"


def test_fp16_attention_never_rounds_through_fp16(fp16_onnx) -> None:
    """No attention tensor goes fp32 -> fp16 -> fp32 between two attention nodes (the Gram
    matrix would overflow in the fp16 step)."""
    model = onnx.load(str(fp16_onnx))
    producer = {o: n for n in model.graph.node for o in n.output}
    scopes = ("/model/head/position/", "/model/head/channel/")
    round_trips = []
    for node in model.graph.node:
        if not node.name.startswith(scopes) or node.op_type == "Cast":
            continue
        for name in node.input:
            chain, current = [], producer.get(name)
            while current is not None and current.op_type == "Cast":
                chain.append(next(a.i for a in current.attribute if a.name == "to"))
                current = producer.get(current.input[0])
            if onnx.TensorProto.FLOAT16 in chain and current is not None and current.name.startswith(scopes):
                round_trips.append(f"{current.name} -> {node.name}")
    assert not round_trips, f"attention tensors rounded through fp16: {round_trips}"


def _conv_inputs_and_outputs(model: onnx.ModelProto) -> set[str]:
    return {t for n in model.graph.node if n.op_type == "Conv" for t in (*n.input, *n.output)}


def test_int8_quantizes_only_convolutions(fp32_onnx, int8_onnx) -> None:
    """Element-wise arithmetic (sigmoid, log, min-max normalisation) stays fp32: only what convolutions read or write is rounded."""
    source = _conv_inputs_and_outputs(onnx.load(str(fp32_onnx)))
    quantized = [n.input[0] for n in onnx.load(str(int8_onnx)).graph.node if n.op_type == "QuantizeLinear"]
    assert quantized, "no QuantizeLinear nodes in the int8 model"
    stray = sorted(t for t in quantized if t not in source)
    assert not stray, f"int8 quantises tensors no convolution reads or writes: {stray[:5]}"


def _cancelling_graph() -> onnx.ModelProto:
    """input (1, 1, 8, 8) -> conv "cancels" (1x1, weight 1, bias -1000) -> conv "plain" (1x1, weight 2, bias 0.1)."""
    from onnx import TensorProto, helper, numpy_helper

    weights = [
        numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w1"),
        numpy_helper.from_array(np.array([-1000.0], np.float32), "b1"),
        numpy_helper.from_array(np.full((1, 1, 1, 1), 2.0, np.float32), "w2"),
        numpy_helper.from_array(np.array([0.1], np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h"], name="cancels"),
        helper.make_node("Conv", ["h", "w2", "b2"], ["out"], name="plain"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 8, 8])], weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cancelling_convs_lists_a_conv_that_cancels_its_bias() -> None:
    """Inputs near 1000 minus a bias of 1000 leave an output spanning 1: that conv is listed, the next one is not."""
    inputs = (1000.0 + np.random.default_rng(0).random((3, 1, 8, 8))).astype(np.float32)
    listed = cancelling_convs(_cancelling_graph(), inputs)
    assert listed == ["cancels"], f"cancelling_convs listed {listed}, want ['cancels']"


def test_cancelling_convs_rejects_a_non_positive_ratio() -> None:
    with pytest.raises(ValueError, match="ratio must be positive"):
        cancelling_convs(_cancelling_graph(), np.zeros((1, 1, 8, 8), np.float32), ratio=0.0)


def test_int8_keeps_listed_convs_fp32(fp32_onnx, tmp_path, calibration_inputs) -> None:
    """With a tiny ratio every biased conv is listed: metadata names them and none reads int8 weights."""
    path = quantize_int8(fp32_onnx, tmp_path / "all_fp32.onnx", calibration_inputs, bias_ratio=1e-12)
    listed = read_metadata(path).extra.get("fp32_convs")
    assert listed, f"metadata fp32_convs is {listed!r}: no conv listed at ratio 1e-12"
    model = onnx.load(str(path))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized_anyway = [n.name for n in model.graph.node if n.name in listed and any(i in dequantized for i in n.input)]
    assert not quantized_anyway, f"convs listed as fp32 still read dequantized tensors: {quantized_anyway}"


def test_calibration_reader_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\(N, 4, 16, 16\)"):
        CropCalibrationReader(np.zeros((2, 3, 16, 16), np.float32), InputSpec(input_size=16))


def test_calibration_reader_batches_and_rewinds() -> None:
    reader = CropCalibrationReader(np.zeros((5, 4, 16, 16), np.float32), InputSpec(input_size=16), batch=2)
    shapes = []
    while (item := reader.get_next()) is not None:
        shapes.append(item["input"].shape[0])
    reader.rewind()
    assert shapes == [2, 2, 1] and reader.get_next() is not None, f"batches {shapes}, rewind failed"


@pytest.mark.parametrize("op_types", ["Conv", [], [""]])
def test_op_types_must_be_a_list_of_names(fp32_onnx, tmp_path, calibration_inputs, op_types) -> None:
    with pytest.raises(ValueError, match="op_types"):
        quantize_int8(fp32_onnx, tmp_path / "x.onnx", calibration_inputs, op_types=op_types)


def test_unknown_calibration_method(fp32_onnx, tmp_path, calibration_inputs) -> None:
    with pytest.raises(ValueError, match="unknown calibration method"):
        quantize_int8(fp32_onnx, tmp_path / "x.onnx", calibration_inputs, method="magic")


# -- a 6-channel model (rgb, sfg, positive_clicks, negative_clicks) ----------------------


@pytest.fixture(scope="module")
def six_fp32_out(six_onnx, six_real_inputs) -> np.ndarray:
    return run_onnx(onnxruntime_session(six_onnx), six_real_inputs)


@pytest.mark.parametrize("fixture, precision", [("six_fp16_onnx", "fp16"), ("six_int8_onnx", "int8")])
def test_six_channel_quantized_files_keep_their_channels(request, fixture: str, precision: str) -> None:
    path = request.getfixturevalue(fixture)
    shape = onnxruntime_session(path).get_inputs()[0].shape
    assert shape[1:] == [6, 64, 64], f"{precision} file takes {shape}, want [N, 6, 64, 64]"
    meta = read_metadata(path)
    assert meta.precision == precision, f"metadata precision {meta.precision!r}"
    assert meta.input_spec.input_channels == ("rgb", "sfg", "positive_clicks", "negative_clicks"), (
        f"{precision} metadata lost the input channels: {meta.input_spec.input_channels}"
    )


def test_six_channel_fp16_close_to_fp32(six_fp16_onnx, six_real_inputs, six_fp32_out) -> None:
    diff = np.abs(run_onnx(onnxruntime_session(six_fp16_onnx), six_real_inputs) - six_fp32_out)
    assert diff.max() < 1e-2, f"6-channel fp16 vs fp32: max {diff.max():.3g}"


def test_six_channel_int8_close_to_fp32(six_int8_onnx, six_real_inputs, six_fp32_out) -> None:
    diff = np.abs(run_onnx(onnxruntime_session(six_int8_onnx), six_real_inputs) - six_fp32_out)
    assert diff.mean() < 1e-2 and diff.max() < 0.1, f"6-channel int8 vs fp32: mean {diff.mean():.3g}, max {diff.max():.3g}"


def test_six_channel_int8_sees_the_clicks(six_onnx, six_int8_onnx, six_real_inputs) -> None:
    """Removing the click planes changes the int8 model's output as it changes the fp32 one's."""
    without = six_real_inputs.copy()
    without[:, 4:6] = 0.0
    fp32, int8 = onnxruntime_session(six_onnx), onnxruntime_session(six_int8_onnx)
    effect_fp32 = run_onnx(fp32, six_real_inputs) - run_onnx(fp32, without)
    effect_int8 = run_onnx(int8, six_real_inputs) - run_onnx(int8, without)
    assert np.abs(effect_fp32).max() > 1e-2, "the click planes do not reach the fp32 output: the test checks nothing"
    assert np.abs(effect_int8 - effect_fp32).max() < 0.1, (
        f"int8 answers clicks differently: max {np.abs(effect_int8 - effect_fp32).max():.3g}"
    )


def test_int8_refuses_calibration_of_another_channel_count(six_onnx, tmp_path, calibration_inputs) -> None:
    with pytest.raises(ValueError, match=r"\(N, 6, 64, 64\)"):
        quantize_int8(six_onnx, tmp_path / "x.onnx", calibration_inputs)
