"""CPU latency of the exported model: ONNX Runtime fp32, fp16 and int8 against PyTorch eager.

The network is the shipped default model's architecture (``training/configs/default_lite0_adamw.yaml``:
EfficientNet-Lite0 at output stride 16, DANet head 128 wide, stride-4 skip decoder, its
input size and input channels) with random weights (speed does not depend on them);
int8 is calibrated on 16 real COCO crops encoded for those channels. All four run the
same real crop (batch 1) in the same process, with the same thread count.

Run: ``pytest benchmarks/test_export_speed.py``; ratios against the PyTorch reference are
printed at the end.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fairs_sdk.config import InputSpec  # noqa: E402
from fairs_sdk.export.checkpoint import from_state  # noqa: E402
from fairs_sdk.export.onnx_export import export_onnx, onnxruntime_session, run_onnx  # noqa: E402
from fairs_sdk.export.quantize import convert_fp16, quantize_int8  # noqa: E402
from fairs_sdk.export.samples import stack_inputs  # noqa: E402
from fairs_sdk.export.wrapper import ExportWrapper  # noqa: E402
from fairs_sdk.training.model import ModelConfig, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train" / "coco_mval"
CONFIG = ROOT / "training" / "configs" / "default_lite0_adamw.yaml"
GROUP = f"FAIRS default architecture ({CONFIG.relative_to(ROOT)}), batch 1, CPU"


def _default_architecture() -> tuple[ModelConfig, InputSpec]:
    """The shipped model's ModelConfig (no pretrained weights) and InputSpec, from its training config."""
    from fairs_sdk.training.config import load_config

    config = load_config(CONFIG)
    return replace(config.model, pretrained=None), config.input


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not (DATA / "images").is_dir():
        pytest.skip(f"real crops need {DATA}")
    torch.manual_seed(0)
    model_config, spec = _default_architecture()
    model = build_model(model_config)
    state = {"model": model.state_dict(), "config": {"model": model_config.to_dict(), "input": spec.to_dict()}}
    checkpoint = from_state(state)
    folder = tmp_path_factory.mktemp("bench")
    fp32 = export_onnx(checkpoint, folder / "fp32.onnx")
    calibration = stack_inputs(DATA, spec, count=16, stride=50, start=3)
    paths = {
        "fp32": fp32,
        "fp16": convert_fp16(fp32, folder / "fp16.onnx"),
        "int8": quantize_int8(fp32, folder / "int8.onnx", calibration),
    }
    crop = stack_inputs(DATA, spec, count=1, start=1)
    threads = torch.get_num_threads()
    sessions = {name: onnxruntime_session(path, threads=threads) for name, path in paths.items()}
    wrapper = ExportWrapper(checkpoint.model, spec).eval()
    return {"crop": crop, "sessions": sessions, "wrapper": wrapper, "size": spec.input_size}


@pytest.mark.benchmark(group=GROUP)
def test_pytorch_eager_reference(benchmark, setup) -> None:
    tensor = torch.from_numpy(setup["crop"])

    def run() -> np.ndarray:
        with torch.inference_mode():
            return setup["wrapper"](tensor).numpy()

    out = benchmark.pedantic(run, rounds=8, iterations=1, warmup_rounds=1)
    benchmark.extra_info["input_size"] = setup["size"]
    assert out.shape == (1, 1, setup["size"], setup["size"]), f"output {out.shape}"


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.benchmark(group=GROUP)
def test_onnxruntime(benchmark, setup, precision: str) -> None:
    session = setup["sessions"][precision]
    out = benchmark.pedantic(run_onnx, args=(session, setup["crop"]), rounds=8, iterations=1, warmup_rounds=1)
    benchmark.extra_info["input_size"] = setup["size"]
    assert out.shape == (1, 1, setup["size"], setup["size"]), f"output {out.shape}"
