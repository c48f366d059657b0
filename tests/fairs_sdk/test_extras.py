"""Tests of fairs_sdk.extras: commands that need a missing extra end in one line, not a traceback."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from fairs_sdk.extras import EXTRA_MODULES, exit_on_missing_extra, missing_extra

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def run_without_torch(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    """``module.main(argv)`` in a fresh interpreter where ``import torch`` fails."""
    code = f"""
        import sys
        sys.modules["torch"] = None  # import torch -> ModuleNotFoundError, as without the train extra
        from {module} import main
        sys.exit(main({argv!r}))
    """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "module, argv, prog",
    [
        ("fairs_sdk.export.cli", ["--help"], "fairs-export"),
        ("fairs_sdk.export.cli", ["onnx", str(PYPROJECT), "-o", "model.onnx"], "fairs-export"),
        ("fairs_sdk.training.cli", ["train", "--config", "training/configs/default_lite0.yaml"], "fairs-train"),
        ("fairs_sdk.training.cli", ["speed", "--backbone", "resnet18"], "fairs-train"),
    ],
    ids=["export-help", "export-onnx", "train-train", "train-speed"],
)
def test_command_without_torch_prints_one_line_naming_the_extra(module, argv, prog):
    out = run_without_torch(module, argv)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, f"{prog} {argv}: exit {out.returncode}, stderr:\n{out.stderr}"
    assert len(lines) == 1 and "Traceback" not in out.stderr, f"{prog} {argv}: expected one line, got:\n{out.stderr}"
    assert lines[0].startswith(f"{prog}: error:") and "pip install 'fairs-sdk[train]'" in lines[0], lines[0]


def test_missing_extra_names_the_extra_of_a_module_or_its_submodule():
    assert missing_extra(ModuleNotFoundError("x", name="torch")) == "train"
    assert missing_extra(ModuleNotFoundError("x", name="torch._C")) == "train"
    assert missing_extra(ModuleNotFoundError("x", name="tensorrt")) == "gpu"
    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None
    assert missing_extra(ImportError("cannot import name 'x'")) is None


def test_other_import_errors_propagate():
    @exit_on_missing_extra("prog")
    def main() -> int:
        import a_module_that_no_extra_installs  # noqa: F401

        return 0

    with pytest.raises(ModuleNotFoundError, match="a_module_that_no_extra_installs"):
        main()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_extra_modules_cover_every_installed_package_of_the_extra(extra):
    # pyproject.toml is the source of truth for the extras; EXTRA_MODULES lists their
    # import names. Checked for the packages installed here.
    requirements = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"][extra]
    wanted = {_normalise(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
    modules_of: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(_normalise(dist), set()).add(module)
    for dist in sorted(wanted & set(modules_of)):
        importable = {m for m in modules_of[dist] if not m.startswith("_")}
        assert importable & EXTRA_MODULES[extra], (
            f"extra {extra!r}: package {dist} installs {sorted(importable)}, none in EXTRA_MODULES[{extra!r}]"
        )


# --------------------------------------------------------------- ONNX Runtime (cpu / gpu)
def test_import_fairs_sdk_works_without_onnx_runtime_and_segmenter_names_the_extras():
    code = """
        import sys
        sys.modules["onnxruntime"] = None  # import onnxruntime -> ModuleNotFoundError, as with no runtime extra
        import fairs_sdk
        from fairs_sdk.extras import MissingExtraError
        try:
            fairs_sdk.Segmenter()
        except MissingExtraError as error:
            print(error)
            sys.exit(3)
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, f"expected MissingExtraError from Segmenter(), exit {out.returncode}:\n{out.stderr}"
    for command in ("pip install 'fairs-sdk[cpu]'", "pip install 'fairs-sdk[gpu]'", "Jetson"):
        assert command in out.stdout, f"the message does not name {command!r}: {out.stdout}"


def test_segmenter_without_onnx_runtime_raises_missing_extra_error(monkeypatch):
    from fairs_sdk import Segmenter
    from fairs_sdk.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"not installed: pip install 'fairs-sdk\[cpu\]'"):
        Segmenter()


def test_an_onnxruntime_folder_without_a_runtime_is_reported_as_broken(monkeypatch):
    # What uninstalling one of onnxruntime / onnxruntime-gpu leaves when both were installed.
    import types

    from fairs_sdk.extras import MissingExtraError, import_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))
    with pytest.raises(MissingExtraError, match=r"pip uninstall -y onnxruntime onnxruntime-gpu"):
        import_onnxruntime()


def test_command_missing_onnx_runtime_names_both_runtime_extras(capsys):
    @exit_on_missing_extra("prog")
    def main() -> int:
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

    assert main() == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("prog: error: prog needs ONNX Runtime (onnxruntime is missing)"), line
    assert "'fairs-sdk[cpu]'" in line and "'fairs-sdk[gpu]'" in line, line


@pytest.mark.parametrize(
    "version, safe",
    [("1.17.3", False), ("1.23.2", False), ("1.24.2", False), ("1.24.3", True), ("1.32.0", True),
     ("1.25.0+cu126", True), ("1.24.1.dev20260101", False), ("2.0", True)],
)
def test_runtime_version_floor(version, safe):
    from fairs_sdk.extras import runtime_version_is_safe

    assert runtime_version_is_safe(version) is safe, f"ONNX Runtime {version} should count as {'safe' if safe else 'unsafe'}"


def test_old_runtime_is_warned_about_at_import(monkeypatch):
    import onnxruntime

    from fairs_sdk.extras import import_onnxruntime

    monkeypatch.setattr(onnxruntime, "__version__", "1.20.1")
    with pytest.warns(RuntimeWarning, match="older than 1.24.3"):
        import_onnxruntime()
