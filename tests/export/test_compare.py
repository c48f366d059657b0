"""export.compare: scores against the first model; refuses models of different networks."""

from __future__ import annotations

import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.export.checkpoint import from_state
from fairs_sdk.export.compare import compare_models, format_table
from fairs_sdk.export.onnx_export import export_onnx


def test_refuses_models_with_other_input_spec(fp32_onnx, tiny_state, tmp_path, coco_dir) -> None:
    state = tiny_state()
    state["config"]["input"] = InputSpec(input_size=32).to_dict()
    other = export_onnx(from_state(state), tmp_path / "small.onnx")
    with pytest.raises(ValueError, match="not the same network"):
        compare_models([fp32_onnx, other], coco_dir, limit=1)


def test_reference_scores_itself_identically(fp32_onnx, coco_dir) -> None:
    seen: list[int] = []
    first, again = compare_models([fp32_onnx, fp32_onnx], coco_dir, limit=3, latency_repeats=1, progress=seen.append)
    assert first.ious == again.ious and len(first.ious) == 3, f"same model, different IoUs: {first.ious} vs {again.ious}"
    assert seen == [1, 2, 3], f"progress calls {seen}"
    assert "+0.00" in format_table([first, again]).splitlines()[-1], "a model against itself must change by 0 points"
