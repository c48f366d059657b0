"""fairs_sdk.trt: cache keys and the metadata sidecar (pure Python, always run) and engines
of a 6-channel model (skipped without TensorRT and a GPU)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import ModelMetadata, NotAFairsModelError
from fairs_sdk.trt import (
    EngineCache,
    EngineKey,
    GpuInfo,
    engine_metadata_path,
    file_sha256,
    read_engine_metadata,
    read_engine_sidecar,
    write_engine_sidecar,
)

SIX_SPEC = InputSpec(input_size=64, input_channels=("rgb", "sfg", "positive_clicks", "negative_clicks"))
H100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
KEY = EngineKey("ab" * 32, "10.9.0", H100.name, H100.compute_capability, "fp16", 512, 1, 1, 8)


def _fake_onnx(path: Path, payload: bytes = b"graph", spec: InputSpec = SIX_SPEC) -> Path:
    """A file with FAIRS metadata that read_onnx_props can read (a real, tiny ONNX model)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    c = spec.channel_count
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["probabilities"])],
        payload.decode(),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, 64, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", c, 64, 64])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, ModelMetadata(spec, "resnet18").to_props())
    onnx.save(model, str(path))
    return path


def test_import_does_not_need_tensorrt() -> None:
    code = "import sys, fairs_sdk.trt; assert 'tensorrt' not in sys.modules and 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"importing fairs_sdk.trt pulled in tensorrt or torch: {result.stderr[-500:]}"


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "cd" * 32},
        {"tensorrt_version": "10.10.0"},
        {"gpu_name": "NVIDIA L4"},
        {"compute_capability": (8, 9)},
        {"precision": "int8"},
        {"input_size": 384},
        {"max_batch": 16},
        {"opt_batch": 4},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_key_field_changes_the_file(change: dict) -> None:
    other = dataclasses.replace(KEY, **change)
    assert other.filename() != KEY.filename(), f"changing {change} kept the engine file name: a stale engine would load"


def test_key_round_trips_through_json() -> None:
    again = EngineKey.from_dict(json.loads(json.dumps(KEY.to_dict())))
    assert again == KEY and again.digest() == KEY.digest(), f"key changed through JSON: {again}"


@pytest.mark.parametrize("bad", [{"precision": "fp8"}, {"min_batch": 2, "opt_batch": 1}, {"input_size": 0}])
def test_key_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(KEY, **bad)


def test_sidecar_round_trips_key_and_metadata(tmp_path) -> None:
    props = ModelMetadata(SIX_SPEC, "resnet18", precision="fp16").to_props()
    engine = tmp_path / "m.engine"
    written = write_engine_sidecar(engine, props, KEY)
    assert written == engine_metadata_path(engine) == tmp_path / "m.json", f"sidecar written to {written}"
    sidecar = read_engine_sidecar(engine)
    assert sidecar.props == props and EngineKey.from_dict(sidecar.key) == KEY, f"sidecar read back as {sidecar}"
    channels = read_engine_metadata(engine).input_spec.input_channels
    assert channels == SIX_SPEC.input_channels, f"engine metadata lost the input channels: {channels}"


def test_sidecar_may_be_a_bare_props_file(tmp_path) -> None:
    props = ModelMetadata(SIX_SPEC, "resnet18").to_props()
    (tmp_path / "m.engine.json").write_text(json.dumps(props))
    sidecar = read_engine_sidecar(tmp_path / "m.engine")
    assert sidecar.props == props and sidecar.key is None, f"bare props file read as {sidecar}"


def test_old_engine_metadata_reads_as_rgb_sfg(tmp_path) -> None:
    props = ModelMetadata(InputSpec(input_size=64), "resnet18").to_props()
    spec = json.loads(props["fairs.input_spec"])
    del spec["input_channels"]  # as written before models declared their channels
    write_engine_sidecar(tmp_path / "old.engine", {**props, "fairs.input_spec": json.dumps(spec)})
    meta = read_engine_metadata(tmp_path / "old.engine")
    assert meta.input_spec.input_channels == ("rgb", "sfg"), f"old engine metadata read as {meta.input_spec.input_channels}"


@pytest.mark.parametrize("content", ["", "[1, 2]", '{"metadata": {"fairs.format_version": 1}}'], ids=["empty", "list", "number"])
def test_malformed_sidecar_is_not_a_fairs_model(tmp_path, content: str) -> None:
    engine = tmp_path / "m.engine"
    engine_metadata_path(engine).write_text(content)
    with pytest.raises(NotAFairsModelError):
        read_engine_sidecar(engine)


def test_missing_sidecar_names_the_file(tmp_path) -> None:
    with pytest.raises(NotAFairsModelError, match="m.json"):
        read_engine_sidecar(tmp_path / "m.engine")


def test_lookup_misses_until_stored(tmp_path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.lookup(KEY) is None, "empty cache returned an engine"
    path = cache.store(KEY, b"engine-bytes", {"fairs.precision": "fp16"})
    assert cache.lookup(KEY) == path and path.read_bytes() == b"engine-bytes", "stored engine not found"
    assert cache.metadata(KEY) == {"fairs.precision": "fp16"}, "sidecar metadata lost"


def test_lookup_rejects_a_sidecar_of_another_key(tmp_path) -> None:
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"engine")
    other = dataclasses.replace(KEY, gpu_name="NVIDIA A100")
    cache.sidecar_path(KEY).write_text(json.dumps({"key": other.to_dict()}))
    assert cache.lookup(KEY) is None, "an engine whose sidecar names another GPU was accepted"


def test_lookup_ignores_engine_without_sidecar(tmp_path) -> None:
    cache = EngineCache(tmp_path)
    cache.store(KEY, b"engine")
    cache.sidecar_path(KEY).unlink()
    assert cache.lookup(KEY) is None, "an engine without its sidecar (interrupted write) was accepted"


def test_get_or_build_builds_once_and_rebuilds_for_new_tensorrt(tmp_path) -> None:
    onnx_path = _fake_onnx(tmp_path / "m.onnx")
    calls: list[dict] = []

    def builder(path, **kwargs) -> bytes:
        calls.append(kwargs)
        return b"engine-%d" % len(calls)

    cache = EngineCache(tmp_path / "engines")
    first = cache.get_or_build(onnx_path, "fp16", max_batch=4, builder=builder, gpu=H100, trt_version="10.9.0")
    again = cache.get_or_build(onnx_path, "fp16", max_batch=4, builder=builder, gpu=H100, trt_version="10.9.0")
    assert first == again and len(calls) == 1, f"second call should hit the cache; builder ran {len(calls)} times"
    newer = cache.get_or_build(onnx_path, "fp16", max_batch=4, builder=builder, gpu=H100, trt_version="10.10.0")
    assert newer != first and len(calls) == 2, "a new TensorRT version must build a new engine"
    assert calls[0]["timing_cache_path"] == tmp_path / "engines" / "timing.cache", f"timing cache: {calls[0]}"
    sidecar = read_engine_sidecar(newer)
    assert sidecar.key["onnx_sha256"] == file_sha256(onnx_path), "key must hold the ONNX digest"
    assert sidecar.props["fairs.precision"] == "fp16", "engine precision not in its metadata"
    channels = read_engine_metadata(newer).input_spec.input_channels
    assert channels == SIX_SPEC.input_channels, f"the engine's metadata lost the model's input channels: {channels}"


def test_get_or_build_rebuilds_when_the_onnx_changes(tmp_path) -> None:
    cache = EngineCache(tmp_path / "engines")
    builds = []
    builder = lambda path, **kw: builds.append(path) or b"e"  # noqa: E731
    a = cache.get_or_build(_fake_onnx(tmp_path / "a.onnx", b"one"), builder=builder, gpu=H100, trt_version="10.9.0")
    b = cache.get_or_build(_fake_onnx(tmp_path / "b.onnx", b"two"), builder=builder, gpu=H100, trt_version="10.9.0")
    assert a != b and len(builds) == 2, "a different ONNX file reused another file's engine"


def test_cache_miss_builds_without_torch(tmp_path) -> None:
    """The runtime's path (EngineCache on an .onnx file) imports the builder lazily, never torch."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed: this checks the path up to the missing package")
    onnx_path = _fake_onnx(tmp_path / "m.onnx")
    code = (
        "import sys\n"
        "from fairs_sdk.trt import EngineCache, GpuInfo\n"
        "try:\n"
        f"    EngineCache({str(tmp_path / 'engines')!r}).get_or_build({str(onnx_path)!r}, gpu=GpuInfo('GPU', (9, 0)), trt_version='10.9.0')\n"
        "except ImportError as error:\n"
        "    assert 'tensorrt' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('built an engine without tensorrt')\n"
        "assert 'fairs_sdk.export.trt_build' in sys.modules, 'the builder was not used'\n"
        "assert 'torch' not in sys.modules, 'building an engine imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"cache miss without tensorrt: {result.stderr[-800:]}"


# -- real engines of a 6-channel model: need TensorRT and a GPU ---------------------------


@pytest.fixture(scope="module")
def six_onnx(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A tiny 6-channel network (rgb, sfg, positive_clicks, negative_clicks) exported to ONNX, and 3 inputs."""
    pytest.importorskip("tensorrt", reason="TensorRT not installed")
    torch = pytest.importorskip("torch", reason="exporting the test model needs torch")
    from torch import nn

    from fairs_sdk.export.checkpoint import Checkpoint
    from fairs_sdk.export.onnx_export import export_onnx
    from fairs_sdk.export.samples import random_inputs
    from fairs_sdk.training.model import ModelConfig

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(SIX_SPEC.channel_count, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)).eval()
    checkpoint = Checkpoint(net, ModelConfig(backbone="tiny_conv"), SIX_SPEC, {}, "")
    path = export_onnx(checkpoint, tmp_path_factory.mktemp("trt") / "six.onnx")
    return path, random_inputs(SIX_SPEC, count=3)


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_six_channel_engine_matches_onnxruntime(six_onnx, tmp_path, precision: str, atol: float) -> None:
    from fairs_sdk.export.onnx_export import onnxruntime_session, run_onnx
    from fairs_sdk.trt import TensorRTEngine

    path, inputs = six_onnx
    engine_path = EngineCache(tmp_path).get_or_build(path, precision, max_batch=4)
    engine = TensorRTEngine(engine_path, spec=read_engine_metadata(engine_path).input_spec)
    assert (engine.channels, engine.size, engine.max_batch) == (6, 64, 4), f"engine profile {engine.channels}, {engine.size}, {engine.max_batch}"
    out = engine(inputs)
    expected = run_onnx(onnxruntime_session(path), inputs)
    assert out.shape == expected.shape, f"engine output {out.shape}"
    assert np.abs(out - expected).max() < atol, f"{precision} engine differs from ORT by {np.abs(out - expected).max():.3g}"
    assert (tmp_path / "timing.cache").is_file(), "timing cache file not written"
    with pytest.raises(ValueError, match=r"\(N, 6, 64, 64\)"):
        engine(inputs[:, :4])


def test_six_channel_engine_refuses_a_spec_of_another_channel_count(six_onnx, tmp_path) -> None:
    from fairs_sdk.trt import TensorRTEngine

    path, _ = six_onnx
    engine_path = EngineCache(tmp_path).get_or_build(path, "fp32", max_batch=2)
    with pytest.raises(ValueError, match="metadata declares"):
        TensorRTEngine(engine_path, spec=InputSpec(input_size=64))


def test_six_channel_int8_engine_with_calibrator_stays_close(six_onnx, tmp_path) -> None:
    from fairs_sdk.export.onnx_export import onnxruntime_session, run_onnx
    from fairs_sdk.export.trt_build import make_calibrator
    from fairs_sdk.trt import TensorRTEngine

    path, inputs = six_onnx
    calibrator = make_calibrator(np.repeat(inputs, 2, axis=0), SIX_SPEC, batch_size=2, cache_path=tmp_path / "calib.table")
    engine_path = EngineCache(tmp_path).get_or_build(path, "int8", max_batch=4, calibrator=calibrator)
    diff = np.abs(TensorRTEngine(engine_path)(inputs) - run_onnx(onnxruntime_session(path), inputs))
    assert diff.mean() < 0.05, f"int8 engine mean abs difference {diff.mean():.3g} against ORT fp32"
    assert (tmp_path / "calib.table").is_file(), "calibration table not written"
