"""fairs-export command line: each subcommand's happy path and its errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from fairs_sdk.export.cli import main
from fairs_sdk.export.onnx_export import read_metadata

DAVIS = Path(__file__).resolve().parents[3] / "shared" / "data" / "dev" / "davis345"


def test_onnx_exports_and_checks_parity(checkpoint_path, coco_dir, tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    code = main(["onnx", str(checkpoint_path), "-o", str(out), "--data", str(coco_dir), "--parity-count", "3"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file(), f"exit {code}, output: {printed}"
    assert "parity: max |ORT - PyTorch|" in printed and "real crops" in printed, f"no parity report: {printed}"


def test_onnx_missing_checkpoint(tmp_path, capsys) -> None:
    code = main(["onnx", str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.onnx")])
    assert code == 2 and "checkpoint not found" in capsys.readouterr().err, "missing checkpoint not reported"


def test_onnx_incompatible_checkpoint(tiny_state, tmp_path, capsys) -> None:
    state = tiny_state()
    state["config"]["model"]["backbone"] = "resnet34"
    torch.save(state, tmp_path / "other.pt")
    code = main(["onnx", str(tmp_path / "other.pt"), "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "weights do not fit" in err, f"exit {code}, stderr: {err}"
    assert not (tmp_path / "m.onnx").exists(), "an ONNX file was written for a broken checkpoint"


def test_quantize_fp16(fp32_onnx, tmp_path) -> None:
    out = tmp_path / "h.onnx"
    assert main(["quantize", str(fp32_onnx), "--precision", "fp16", "-o", str(out)]) == 0, "fp16 quantize failed"
    assert read_metadata(out).precision == "fp16", "fp16 file metadata not fp16"


def test_quantize_int8_reports_the_convs_kept_fp32(fp32_onnx, coco_dir, tmp_path, capsys) -> None:
    out = tmp_path / "q.onnx"
    code = main(["quantize", str(fp32_onnx), "--precision", "int8", "--data", str(coco_dir), "--calibration-count", "4",
                 "--bias-ratio", "0", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and read_metadata(out).precision == "int8", f"exit {code}, output: {printed}"
    assert "every convolution quantised" in printed, f"--bias-ratio 0 not reported: {printed}"
    assert read_metadata(out).extra["fp32_convs"] == [], "--bias-ratio 0 still kept convolutions fp32"


def test_quantize_refuses_a_negative_bias_ratio(fp32_onnx, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", str(fp32_onnx), "--precision", "int8", "--bias-ratio", "-1", "-o", str(tmp_path / "q.onnx")])
    assert exit_info.value.code == 2 and "--bias-ratio" in capsys.readouterr().err, "a negative --bias-ratio not refused"


def test_quantize_refuses_non_fairs_onnx(tmp_path, capsys) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    code = main(["quantize", str(tmp_path / "plain.onnx"), "--precision", "fp16"])
    assert code == 2 and "not a FAIRS model" in capsys.readouterr().err, "foreign ONNX file not refused"


def test_quantize_refuses_already_quantized(fp16_onnx, capsys) -> None:
    code = main(["quantize", str(fp16_onnx), "--precision", "int8"])
    assert code == 2 and "starts from the fp32 export" in capsys.readouterr().err, "re-quantising an fp16 file not refused"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT installed: the error path does not apply")
def test_trt_without_tensorrt_says_what_is_missing(fp32_onnx, tmp_path, capsys) -> None:
    code = main(["trt", str(fp32_onnx), "--precision", "fp16", "--cache-dir", str(tmp_path)])
    assert code == 2 and "tensorrt" in capsys.readouterr().err.lower(), "missing TensorRT not explained"


def test_compare_prints_a_table(fp32_onnx, fp16_onnx, tmp_path, capsys) -> None:
    if not (DAVIS / "images").is_dir():
        pytest.skip(f"DAVIS-345 not found at {DAVIS}")
    code = main(["compare", str(fp32_onnx), str(fp16_onnx), "--data", str(DAVIS), "--limit", "3", "-o", str(tmp_path / "t.md")])
    printed = capsys.readouterr().out
    assert code == 0 and "objects: 3" in printed, f"exit {code}: {printed}"
    rows = [line for line in printed.splitlines() if line.startswith("| tiny_")]
    assert len(rows) == 2 and "| fp16 |" in rows[1] and "+0.00" in rows[0], f"table rows: {rows}"


def test_onnx_exports_a_six_channel_checkpoint(tiny_state, tmp_path, capsys, monkeypatch) -> None:
    """No data folder: the parity check runs on random images encoded for the 6 declared channels."""
    from tiny_models import six_channel_state

    import fairs_sdk.export.cli as cli

    monkeypatch.setattr(cli, "_default_data", lambda: None)
    torch.save(six_channel_state(tiny_state()), tmp_path / "six.pt")
    out = tmp_path / "six.onnx"
    code = main(["onnx", str(tmp_path / "six.pt"), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, f"exit {code}: {printed}"
    assert "rgb, sfg, positive_clicks, negative_clicks" in printed and "random images" in printed, printed
    assert read_metadata(out).input_spec.channel_count == 6, "exported metadata does not declare 6 planes"
