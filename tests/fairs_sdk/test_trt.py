"""fairs_sdk.trt: cache-key logic (pure Python, always runs) and engines (skipped without TensorRT)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import ModelMetadata
from fairs_sdk.trt import EngineCache, EngineKey, GpuInfo, file_sha256

H100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
KEY = EngineKey("ab" * 32, "10.9.0", H100.name, H100.compute_capability, "fp16", 512, 1, 1, 8)


def _fake_onnx(path: Path, payload: bytes = b"graph") -> Path:
    """A file with FAIRS metadata that read_onnx_props can read (a real, tiny ONNX model)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["probabilities"])],
        payload.decode(),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4, 64, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 4, 64, 64])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, ModelMetadata(InputSpec(input_size=64), "resnet18").to_props())
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
    meta = json.loads(newer.with_suffix(".json").read_text())
    assert meta["key"]["onnx_sha256"] == file_sha256(onnx_path), "key must hold the ONNX digest"
    assert meta["metadata"]["fairs.precision"] == "fp16" and "fairs.input_spec" in meta["metadata"], "model metadata not beside the engine"


def test_get_or_build_rebuilds_when_the_onnx_changes(tmp_path) -> None:
    cache = EngineCache(tmp_path / "engines")
    builds = []
    builder = lambda path, **kw: builds.append(path) or b"e"  # noqa: E731
    a = cache.get_or_build(_fake_onnx(tmp_path / "a.onnx", b"one"), builder=builder, gpu=H100, trt_version="10.9.0")
    b = cache.get_or_build(_fake_onnx(tmp_path / "b.onnx", b"two"), builder=builder, gpu=H100, trt_version="10.9.0")
    assert a != b and len(builds) == 2, "a different ONNX file reused another file's engine"


# -- real engines: need TensorRT and a GPU ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> tuple[Path, np.ndarray]:
    pytest.importorskip("tensorrt", reason="TensorRT not installed")
    pytest.importorskip("torch", reason="building the test model needs torch")
    from fairs_sdk.export.checkpoint import from_state
    from fairs_sdk.export.onnx_export import export_onnx
    from fairs_sdk.training.model import ModelConfig, build_model

    config = ModelConfig(backbone="resnet18", head_channels=16)
    state = {"model": build_model(config).state_dict(), "config": {"model": config.to_dict(), "input": InputSpec(input_size=64).to_dict()}}
    path = export_onnx(from_state(state), tmp_path_factory.mktemp("trt") / "tiny.onnx")
    rng = np.random.default_rng(0)
    inputs = np.concatenate([rng.uniform(0, 255, (3, 3, 64, 64)), rng.uniform(0, 1, (3, 1, 64, 64))], axis=1).astype(np.float32)
    return path, inputs


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_engine_matches_onnxruntime(tiny_onnx, tmp_path, precision: str, atol: float) -> None:
    from fairs_sdk.export.onnx_export import onnxruntime_session, run_onnx
    from fairs_sdk.trt import TensorRTEngine

    path, inputs = tiny_onnx
    engine_path = EngineCache(tmp_path).get_or_build(path, precision, max_batch=4)
    out = TensorRTEngine(engine_path)(inputs)
    expected = run_onnx(onnxruntime_session(path), inputs)
    assert out.shape == expected.shape, f"engine output {out.shape}"
    assert np.abs(out - expected).max() < atol, f"{precision} engine differs from ORT by {np.abs(out - expected).max():.3g}"
    assert (tmp_path / "timing.cache").is_file(), "timing cache file not written"


def test_int8_engine_with_calibrator_stays_close(tiny_onnx, tmp_path) -> None:
    from fairs_sdk.export.onnx_export import onnxruntime_session, run_onnx
    from fairs_sdk.trt import TensorRTEngine, make_calibrator

    path, inputs = tiny_onnx
    calibrator = make_calibrator(np.repeat(inputs, 2, axis=0), batch_size=2, cache_path=tmp_path / "calib.table")
    engine_path = EngineCache(tmp_path).get_or_build(path, "int8", max_batch=4, calibrator=calibrator)
    diff = np.abs(TensorRTEngine(engine_path)(inputs) - run_onnx(onnxruntime_session(path), inputs))
    assert diff.mean() < 0.05, f"int8 engine mean abs difference {diff.mean():.3g} against ORT fp32"
    assert (tmp_path / "calib.table").is_file(), "calibration table not written"
