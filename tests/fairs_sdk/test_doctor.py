"""Tests of ``fairs doctor`` (fairs_sdk.doctor): this machine, two runtimes, providers that cannot be used."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fairs_sdk import doctor
from fairs_sdk.cli import main
from fairs_sdk.segmenter import DEFAULT_MODEL

ort = pytest.importorskip("onnxruntime")

needs_model = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no bundled model")


def fake_distribution(site: Path, name: str, version: str, top_level: str = "onnxruntime") -> None:
    """A .dist-info folder in ``site`` as pip writes it: METADATA and top_level.txt (no package files)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(top_level + "\n")


def run_doctor(capsys, *argv: str) -> tuple[int, str]:
    status = main(["doctor", *argv])
    return status, capsys.readouterr().out


@needs_model
def test_this_machine_reports_its_runtime_and_cpu_usable_with_exit_0(capsys):
    status, out = run_doctor(capsys)
    assert status == 0, f"fairs doctor exited {status} on this machine:\n{out}"
    cpu = next(line for line in out.splitlines() if "CPUExecutionProvider" in line and "usable" in line)
    assert "NOT usable" not in cpu, f"the CPU provider should be usable here:\n{out}"
    assert f"imported         {ort.__version__}" in out, f"the imported ONNX Runtime version is missing:\n{out}"
    assert DEFAULT_MODEL.name in out and "sha256" in out, f"the bundled model's file and digest are missing:\n{out}"


@needs_model
def test_json_report_has_each_section_and_the_cpu_provider_usable(capsys):
    status, out = run_doctor(capsys, "--json")
    report = json.loads(out)
    assert status == 0 and report["ok"], f"problems: {report['problems']}"
    missing = {"onnxruntime", "providers", "tensorrt", "cuda", "gpu", "numba", "model"} - set(report)
    assert not missing, f"sections missing from the JSON report: {missing}"
    cpu = next(r for r in report["providers"] if r["name"] == "CPUExecutionProvider")
    assert cpu["usable"] is True, cpu
    assert report["model"]["metadata"]["input_size"] > 0, report["model"]
    assert Path(report["numba"]["cache_dir"]).is_absolute(), report["numba"]


@needs_model
def test_two_runtime_distributions_are_loud_and_exit_1(capsys, monkeypatch, tmp_path):
    # The venv's onnxruntime plus a (faked) onnxruntime-gpu: what `pip install 'fairs-sdk[gpu]'` used to give.
    fake_distribution(tmp_path, "onnxruntime-gpu", "1.31.1")
    monkeypatch.syspath_prepend(str(tmp_path))
    status, out = run_doctor(capsys)
    assert status == 1, f"two ONNX Runtime distributions must exit 1, got {status}:\n{out}"
    assert "MORE THAN ONE ONNX RUNTIME IS INSTALLED" in out, f"no loud warning:\n{out}"
    assert "onnxruntime-gpu 1.31.1" in out and f"onnxruntime {ort.__version__}" in out, out
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in out, f"the fix is not printed:\n{out}"


def test_a_runtime_is_found_by_the_package_it_installs_whatever_its_name(monkeypatch, tmp_path):
    fake_distribution(tmp_path, "onnxruntime-custom-build", "1.99.0")
    fake_distribution(tmp_path, "onnxruntime-genai", "0.9.0", top_level="onnxruntime_genai")  # not a runtime
    monkeypatch.syspath_prepend(str(tmp_path))
    names = {d["name"]: d["version"] for d in doctor.runtime_distributions()}
    assert names.get("onnxruntime-custom-build") == "1.99.0", names
    assert "onnxruntime-genai" not in names, f"onnxruntime-genai writes onnxruntime_genai, not onnxruntime: {names}"


@needs_model
def test_requested_provider_that_is_not_available_exits_1_with_its_reason(capsys):
    status, out = run_doctor(capsys, "--providers", "NoSuchExecutionProvider", "cpu")
    assert status == 1, f"a requested provider that is not available must exit 1, got {status}:\n{out}"
    problem = next((line for line in out.splitlines() if "NoSuchExecutionProvider cannot be used" in line), None)
    assert problem is not None and "available providers" in problem, f"no reason given:\n{out}"
    assert "CPUExecutionProvider cannot be used" not in out, f"cpu was requested too and works:\n{out}"


@needs_model
@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_listed_provider_that_does_not_load_says_why(capsys, monkeypatch):
    # ONNX Runtime lists CUDA (faked here) but a session cannot use it: the trial session falls back.
    real = doctor._imported_runtime

    def listing_cuda():
        info = real()
        return {**info, "available_providers": ["CUDAExecutionProvider", *info["available_providers"]]}

    monkeypatch.setattr(doctor, "_imported_runtime", listing_cuda)
    status, out = run_doctor(capsys)
    assert status == 0, f"an available provider that fails without being requested is a warning:\n{out}"
    warning = next((line for line in out.splitlines() if line.startswith("WARNING: CUDAExecutionProvider")), "")
    assert "does not load" in warning and "fell back to ['CPUExecutionProvider']" in warning, out

    status, out = run_doctor(capsys, "--providers", "cuda")
    assert status == 1, f"a requested provider that does not load must exit 1:\n{out}"
    assert "requested provider CUDAExecutionProvider cannot be used: session fell back" in out, out


def test_probe_of_an_unreadable_model_reports_onnx_runtime_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    result = doctor.probe_provider("CPUExecutionProvider", bad, timeout=120)
    assert result["usable"] is False and "INVALID_PROTOBUF" in result["reason"], result


@needs_model
def test_no_runtime_exits_1_naming_the_extras(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails, as without one
    status, out = run_doctor(capsys)
    assert status == 1, f"no importable ONNX Runtime must exit 1:\n{out}"
    assert "pip install 'fairs-sdk[cpu]'" in out and "pip install 'fairs-sdk[gpu]'" in out, out


def test_missing_model_file_is_an_argument_error(capsys, tmp_path):
    status = main(["doctor", "--model", str(tmp_path / "nothing.onnx")])
    err = capsys.readouterr().err
    assert status == 2 and "model file not found" in err, (status, err)
