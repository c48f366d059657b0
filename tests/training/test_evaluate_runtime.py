"""Evaluating an exported model through the runtime, beside the GrabCut baseline, in one run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.training.model import ModelConfig, build_model

DAVIS = Path(__file__).resolve().parents[3] / "shared" / "data" / "dev" / "davis345"


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    from fairs_sdk.export.checkpoint import from_state
    from fairs_sdk.export.onnx_export import export_onnx

    torch.manual_seed(0)
    config = ModelConfig(backbone="resnet18", head="danet", head_channels=16)
    state = {"model": build_model(config).state_dict(),
             "config": {"model": config.to_dict(), "input": InputSpec(input_size=64).to_dict()}}
    return export_onnx(from_state(state), tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_runtime_predictor_returns_the_segmenter_probabilities(tiny_onnx):
    from fairs_sdk import Segmenter
    from fairs_sdk.training.evaluate import RuntimePredictor

    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    points = np.array([(20.0, 45.0), (100.0, 40.0), (60.0, 10.0), (62.0, 80.0)])
    predictor = RuntimePredictor(tiny_onnx)
    expected = Segmenter(tiny_onnx).segment(image, points).probabilities
    got = predictor.probabilities(image, points)
    assert predictor.spec.input_size == 64, "the spec must come from the model's metadata"
    assert np.array_equal(got, expected), "RuntimePredictor must return exactly what Segmenter.segment returns"


def test_evaluate_cli_runs_model_and_grabcut_side_by_side(tiny_onnx, tmp_path):
    if not (DAVIS / "images").is_dir():
        pytest.skip(f"DAVIS-345 not found at {DAVIS} (../shared/data beside the project)")
    from fairs_sdk.training.cli import main

    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(tiny_onnx), "--baseline", "grabcut", "--data", str(DAVIS),
                 "--out", str(out), "--max-instances", "2", "--max-clicks", "6"])
    assert code == 0
    table = (out / "comparison.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["tiny", "grabcut"], f"unexpected rows:\n{table}"
    assert (out / "grabcut" / "metrics.json").is_file() and (out / "tiny" / "iou_vs_clicks.png").is_file()


def test_evaluate_cli_runs_a_baseline_alone(tmp_path):
    if not (DAVIS / "images").is_dir():
        pytest.skip(f"DAVIS-345 not found at {DAVIS} (../shared/data beside the project)")
    import json

    from fairs_sdk.training.cli import main

    code = main(["evaluate", "--baseline", "grabcut", "--data", str(DAVIS), "--out", str(tmp_path),
                 "--every", "100", "--max-instances", "2", "--max-clicks", "4"])
    assert code == 0
    instances = [r["instance"] for r in json.loads((tmp_path / "metrics.json").read_text())["instances"]]
    assert len(instances) == 2, f"--every 100 --max-instances 2 must evaluate 2 instances, got {instances}"


def test_evaluate_whole_model_runs_a_bundle_without_its_parts(tmp_path, monkeypatch):
    if not (DAVIS / "images").is_dir():
        pytest.skip(f"DAVIS-345 not found at {DAVIS} (../shared/data beside the project)")
    from fairs_sdk.segmenter import DEFAULT_MODEL
    from fairs_sdk.training import evaluate as evaluate_module
    from fairs_sdk.training.cli import main

    built = []

    class Recording(evaluate_module.RuntimePredictor):
        def __init__(self, model, **options):
            super().__init__(model, **options)
            built.append(self.segmenter.two_part)

    monkeypatch.setattr(evaluate_module, "RuntimePredictor", Recording)
    argv = ["evaluate", "--model", str(DEFAULT_MODEL), "--data", str(DAVIS), "--max-instances", "1", "--max-clicks", "4"]
    assert main([*argv, "--out", str(tmp_path / "whole"), "--whole-model"]) == 0
    assert main([*argv, "--out", str(tmp_path / "parts")]) == 0
    assert built == [False, True], f"two_part of the evaluated Segmenters (--whole-model, then default): {built}"
