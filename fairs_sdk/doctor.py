"""``fairs doctor``: what a GPU (or CPU) user needs to know about this environment, in one place.

    fairs doctor [--providers NAME ...] [--model PATH] [--json] [--timeout SECONDS]

Reports the installed ONNX Runtime distribution(s) and the module actually imported
(with a loud warning when more than one distribution writes the ``onnxruntime``
package), the execution providers that are available and those that are usable
(each available one of TensorRT, CUDA, CPU, and each ``--providers`` one, is tried by
opening an ONNX Runtime session of the model in a child process; a provider that
falls back says why, from ONNX Runtime's log), the SDK's own TensorRT backend
(``tensorrt`` and ``cuda-python``), CUDA versions, the GPUs, Numba's version and
the folder its SFG kernels are cached in, and the model's file, size, sha256 and
metadata (the bundled model by default).

Exit status 0 when the environment works, 1 when it is broken: no ONNX Runtime or one
that does not import, more than one ONNX Runtime distribution, a requested provider
that is not available or does not load, or a model that cannot be read. A provider
that is available but does not load, without being requested, is a warning:
``Segmenter`` then warns and runs on the next one (``--providers`` makes it a failure).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "collect", "format_report", "runtime_distributions", "probe_provider"]

#: Distributions known to install the ``onnxruntime`` package, besides any other whose
#: files say so (``importlib.metadata.packages_distributions``). NVIDIA's Jetson wheel
#: is called ``onnxruntime-gpu`` too.
KNOWN_RUNTIMES = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-qnn",
    "onnxruntime-cann",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
    "ort-nightly-directml",
)

# One ONNX Runtime session of the model with one provider, in a child process, so that
# a provider library that crashes or hangs cannot take the doctor with it; ONNX
# Runtime's log (stderr) says why a provider fell back.
_PROBE = (
    "import json, sys\n"
    "import onnxruntime as ort\n"
    "session = ort.InferenceSession(sys.argv[1], providers=[sys.argv[2]])\n"
    "print(json.dumps(session.get_providers()))\n"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------------ ONNX Runtime
def runtime_distributions() -> list[dict[str, str]]:
    """Installed distributions that write the ``onnxruntime`` package: [{"name", "version"}], sorted.

    More than one means a broken environment: they overwrite each other's files.
    """
    names = set(importlib.metadata.packages_distributions().get("onnxruntime", ()))
    for name in KNOWN_RUNTIMES:
        try:
            names.add(importlib.metadata.distribution(name).metadata["Name"])
        except importlib.metadata.PackageNotFoundError:
            pass
    found: dict[str, dict[str, str]] = {}
    for name in names:
        key = _normal(name)
        if key not in found:
            found[key] = {"name": key, "version": importlib.metadata.version(name)}
    return [found[k] for k in sorted(found)]


def _imported_runtime() -> dict[str, Any]:
    """The ``onnxruntime`` module this interpreter imports: version, folder, device, CUDA build, providers."""
    from fairs_sdk.extras import MissingExtraError, import_onnxruntime

    try:
        ort = import_onnxruntime()
    except MissingExtraError as error:
        return {"error": str(error)}
    info: dict[str, Any] = {
        "version": getattr(ort, "__version__", "?"),
        "path": str(Path(ort.__file__).parent) if getattr(ort, "__file__", None) else None,
        "device": ort.get_device(),
        "available_providers": list(ort.get_available_providers()),
    }
    try:
        from onnxruntime.capi import version_info  # present in ONNX Runtime's CUDA builds
    except ImportError:
        version_info = None
    info["built_for_cuda"] = getattr(version_info, "cuda_version", "") or getattr(ort, "cuda_version", "") or None
    info["built_for_cudnn"] = getattr(version_info, "cudnn_version", "") or None
    return info


def _log_lines(stderr: str, limit: int = 4) -> list[str]:
    """The lines of ONNX Runtime's log that say what went wrong (errors first), without colour codes."""
    lines = [_ANSI.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    wanted = [line for line in lines if re.search(r"\[E:|\[W:|error|fail|cannot|not found", line, re.I)]
    return [line[:500] for line in (wanted or lines)[-limit:]]


def probe_provider(provider: str, model: Path, timeout: float) -> dict[str, Any]:
    """Open an ONNX Runtime session of ``model`` with ``provider`` in a child process.

    Returns {"usable": bool, "used": [providers of the session] or None, "reason": str or None};
    ``reason`` is set when the session did not keep ``provider``: ONNX Runtime's error or
    log lines, or the timeout.
    """
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(model), provider],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"usable": False, "used": None, "reason": f"no session within {timeout:g} s (timed out)"}
    used = None
    if out.returncode == 0 and out.stdout.strip():
        try:
            used = json.loads(out.stdout.strip().splitlines()[-1])
        except ValueError:
            used = None
    if used is not None and provider in used:
        return {"usable": True, "used": used, "reason": None}
    log = _log_lines(out.stderr)
    if used is not None:
        why = "; ".join(log) if log else "ONNX Runtime logged no reason"
        return {"usable": False, "used": used, "reason": f"session fell back to {used}: {why}"}
    why = "; ".join(log) if log else f"exit status {out.returncode}"
    return {"usable": False, "used": None, "reason": f"session failed: {why}"}


def _probe_model(model: Path | None) -> Path | None:
    """The ONNX file to try providers on: ``model`` if it is one, else the bundled model."""
    from fairs_sdk.segmenter import DEFAULT_MODEL

    if model is not None and model.suffix.lower() == ".onnx":
        return model
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None


def _providers(runtime: dict[str, Any], requested: Sequence[str], model: Path | None, timeout: float) -> list[dict]:
    """One entry per provider of PROVIDER_PREFERENCE and per requested one: available, usable, why not."""
    from fairs_sdk.backends import PROVIDER_PREFERENCE, _normalise_providers

    wanted = _normalise_providers(list(requested))
    available = runtime.get("available_providers", [])
    rows = []
    for name in dict.fromkeys([*PROVIDER_PREFERENCE, *wanted]):
        row: dict[str, Any] = {"name": name, "requested": name in wanted, "available": name in available}
        if "error" in runtime:
            row.update(usable=False, reason="no ONNX Runtime imports")
        elif not row["available"]:
            build = f"ONNX Runtime {runtime['version']} ({runtime['device']} build)"
            hint = ""
            if runtime["device"] == "CPU" and name in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
                hint = " (GPU providers come with onnxruntime-gpu: pip install 'fairs-sdk[gpu]'; on a Jetson NVIDIA's wheel)"
            row.update(usable=False, reason=f"not in {build}'s available providers {available}{hint}")
        elif model is None:
            row.update(usable=None, reason="not tried: no ONNX model to open (the bundled model is missing)")
        else:
            result = probe_provider(name, model, timeout)
            row.update(usable=result["usable"], reason=result["reason"])
        rows.append(row)
    return rows


# ------------------------------------------------------------ TensorRT, CUDA and GPUs
def _tensorrt() -> dict[str, Any]:
    """The ``tensorrt`` module's version, and whether the SDK's TensorRT backend has what it imports."""
    from fairs_sdk.trt import import_cudart, import_tensorrt

    info: dict[str, Any] = {}
    try:
        import tensorrt

        info["version"] = tensorrt.__version__
    except Exception as error:  # not installed, or its libraries do not load
        info["version"] = None
        info["error"] = f"import tensorrt: {error}"
    try:
        import_tensorrt()
        import_cudart()
        info["backend_ready"] = True
    except Exception as error:
        info["backend_ready"] = False
        info["backend_error"] = str(error)
    return info


def _run(command: list[str], timeout: float = 10.0) -> str | None:
    """stdout of ``command``, or None if it is not installed, fails or times out."""
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _cuda() -> dict[str, Any]:
    """CUDA versions: of the driver and runtime (cuda-python), and the driver's as nvidia-smi prints it."""
    info: dict[str, Any] = {"driver": None, "runtime": None, "nvidia_smi": None}
    try:
        from fairs_sdk.trt import import_cudart

        cudart = import_cudart()
        for key, call in (("driver", cudart.cudaDriverGetVersion), ("runtime", cudart.cudaRuntimeGetVersion)):
            err, version = call()
            if int(err) == 0 and version > 0:  # the driver's is 0 where there is no driver
                info[key] = f"{version // 1000}.{version % 1000 // 10}"
    except Exception as error:  # cuda-python missing, or no CUDA driver
        info["cuda_python"] = str(error)
    header = _run(["nvidia-smi"])
    match = re.search(r"CUDA Version:\s*([\d.]+)", header or "")
    info["nvidia_smi"] = match.group(1) if match else None
    return info


def _gpus() -> dict[str, Any]:
    """GPUs from nvidia-smi (name, driver, memory), or the Jetson module's name and L4T release."""
    info: dict[str, Any] = {"gpus": [], "source": None}
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if out:
        info["source"] = "nvidia-smi"
        info["gpus"] = [", ".join(f.strip() for f in line.split(",")) for line in out.strip().splitlines()]
    tegra = Path("/etc/nv_tegra_release")
    model = Path("/proc/device-tree/model")
    if tegra.is_file():  # a Jetson: its GPU is the module's
        info["jetson_l4t"] = tegra.read_text(errors="replace").splitlines()[0].strip("# ").strip()
        if model.is_file():
            name = model.read_text(errors="replace").strip("\x00\n ")
            info["gpus"] = info["gpus"] or [name]
            info["source"] = info["source"] or str(model)
    if info["source"] is None:
        info["source"] = "nvidia-smi not found" if shutil.which("nvidia-smi") is None else "nvidia-smi found no GPU"
    return info


# ----------------------------------------------------------------------------- Numba
def _numba() -> dict[str, Any]:
    """Numba's version and the folder the SFG kernels are cached in (NUMBA_CACHE_DIR, else beside sfg.py)."""
    import numba

    from fairs_sdk import sfg

    try:
        folder = Path(sfg._kernel_serial._cache.cache_path)  # where Numba itself reads and writes them
    except AttributeError:
        folder = Path(os.environ.get("NUMBA_CACHE_DIR") or Path(sfg.__file__).parent / "__pycache__")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    return {
        "version": numba.__version__,
        "cache_dir": str(folder),
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR"),
        "writable": os.access(existing, os.W_OK),
        "sfg_index_files": len(list(folder.glob("sfg.*.nbi"))) if folder.is_dir() else 0,
        "threads": numba.config.NUMBA_NUM_THREADS,
    }


# ----------------------------------------------------------------------------- model
def _model(path: Path) -> dict[str, Any]:
    """The model file's size, sha256 and metadata; a two-part model's parts with their sizes and digests."""
    from fairs_sdk.backends import ENGINE_SUFFIXES
    from fairs_sdk.model_format import ModelMetadata
    from fairs_sdk.trt import file_sha256, read_engine_metadata, read_onnx_props

    info: dict[str, Any] = {"path": str(path), "size": path.stat().st_size, "sha256": file_sha256(path)}
    try:
        if path.suffix.lower() in ENGINE_SUFFIXES:
            meta = read_engine_metadata(path)
        else:
            meta = ModelMetadata.from_props(read_onnx_props(path), source=str(path))
    except Exception as error:  # not ONNX, no FAIRS metadata, or neither onnx nor onnxruntime to read it
        info["error"] = f"cannot read its metadata: {error}"
        return info
    spec = meta.input_spec
    info["metadata"] = {
        "format_version": meta.format_version,
        "backbone": meta.backbone,
        "head": meta.head,
        "precision": meta.precision,
        "input_size": spec.input_size,
        "input_channels": list(spec.input_channels),
        "threshold": spec.threshold,
        "config_digest": meta.config_digest,
        "part": meta.part,
    }
    parts = meta.part_paths(path)
    if parts:
        digests = meta.part_sha256
        info["parts"] = {}
        for name, part in parts.items():
            row: dict[str, Any] = {"path": str(part), "exists": part.is_file()}
            if part.is_file():
                row.update(size=part.stat().st_size, sha256=file_sha256(part))
                row["sha256_matches"] = digests[name] == row["sha256"] if name in digests else None
            info["parts"][name] = row
    return info


# ---------------------------------------------------------------------------- report
def collect(requested: Sequence[str] = (), model: Path | None = None, timeout: float = 120.0) -> dict[str, Any]:
    """Everything ``fairs doctor`` reports, as a JSON-able dict with its "problems" and "warnings"."""
    from fairs_sdk import __version__
    from fairs_sdk.segmenter import DEFAULT_MODEL

    model_path = model if model is not None else DEFAULT_MODEL
    if model is not None and not model.is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    runtime = _imported_runtime()
    report: dict[str, Any] = {
        "fairs_sdk": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": f"{platform.system()} {platform.machine()}",
        "onnxruntime": {"distributions": runtime_distributions(), **runtime},
        "providers": _providers(runtime, requested, _probe_model(model), timeout),
        "tensorrt": _tensorrt(),
        "cuda": _cuda(),
        "gpu": _gpus(),
        "numba": _numba(),
        "model": _model(model_path) if model_path.is_file() else {"path": str(model_path), "error": "file is missing"},
    }
    report["problems"], report["warnings"] = _diagnose(report)
    report["ok"] = not report["problems"]
    return report


def _diagnose(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, warnings): problems make the exit status 1."""
    from fairs_sdk.extras import RUNTIME_INSTALL, old_runtime_warning, runtime_version_is_safe

    problems, warnings = [], []
    ort = report["onnxruntime"]
    dists = ort["distributions"]
    if len(dists) > 1:
        names = " and ".join(f"{d['name']} {d['version']}" for d in dists)
        problems.append(
            f"{names} are {'both' if len(dists) == 2 else 'all'} installed. They write the same onnxruntime/ package, so the one installed last "
            f"won and removing one breaks the other (here ONNX Runtime {ort.get('version', '?')}, "
            f"{ort.get('device', '?')} build, is what imports). Fix: pip uninstall -y "
            f"{' '.join(d['name'] for d in dists)}, then install one: {RUNTIME_INSTALL}."
        )
    elif not dists and "error" not in ort:
        warnings.append("onnxruntime imports, but no installed distribution claims it (built from source?)")
    if "error" in ort:
        problems.append(ort["error"] if dists else f"no ONNX Runtime is installed: {RUNTIME_INSTALL}")
    elif not runtime_version_is_safe(str(ort.get("version", "0"))):
        warnings.append(old_runtime_warning(ort["version"]))
    for row in report["providers"]:
        if row["usable"] is False and row["requested"]:
            problems.append(f"requested provider {row['name']} cannot be used: {row['reason']}")
        elif row["usable"] is False and row["available"] and "error" not in ort:
            warnings.append(
                f"{row['name']} is available but does not load ({row['reason']}); Segmenter() warns and uses the next provider"
            )
    gpus = report["gpu"]["gpus"]
    if gpus and "error" not in ort and "CUDAExecutionProvider" not in ort["available_providers"]:
        warnings.append(
            f"a GPU is here ({gpus[0]}) but ONNX Runtime {ort['version']} is a {ort['device']} build without "
            "CUDAExecutionProvider: Segmenter() runs on the CPU (install 'fairs-sdk[gpu]', or NVIDIA's wheel on a Jetson)"
        )
    if "error" in report["model"]:
        problems.append(f"model {report['model']['path']}: {report['model']['error']}")
    for name, part in report["model"].get("parts", {}).items():
        if not part["exists"]:
            problems.append(f"model part {name} is missing: {part['path']}")
        elif part["sha256_matches"] is False:
            problems.append(f"model part {name} ({part['path']}) does not match the sha256 its combined model records")
    if not report["numba"]["writable"]:
        warnings.append(
            f"Numba's cache folder {report['numba']['cache_dir']} is not writable: every process compiles the SFG "
            "kernels again (seconds); set NUMBA_CACHE_DIR to a writable folder"
        )
    return problems, warnings


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n} bytes"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report: one section per component, problems last and loud."""
    out: list[str] = []
    add = out.append
    add(f"fairs_sdk {report['fairs_sdk']}, Python {report['python']}, {report['platform']}")
    ort = report["onnxruntime"]
    dists = ", ".join(f"{d['name']} {d['version']}" for d in ort["distributions"]) or "none"
    add("")
    add("ONNX Runtime")
    add(f"  distributions    {dists}")
    if len(ort["distributions"]) > 1:
        add("  " + "!" * 76)
        add(f"  !! MORE THAN ONE ONNX RUNTIME IS INSTALLED ({dists}).")
        add("  !! They overwrite each other's onnxruntime/ package: see PROBLEMS below.")
        add("  " + "!" * 76)
    if "error" in ort:
        add(f"  import           FAILS: {ort['error']}")
    else:
        add(f"  imported         {ort['version']} ({ort['device']} build) from {ort['path']}")
        cuda = ort["built_for_cuda"]
        add(f"  built for        CUDA {cuda}, cuDNN {ort['built_for_cudnn'] or '?'}" if cuda else "  built for        no CUDA")
        add(f"  available        {', '.join(ort['available_providers'])}")
    add("  providers (tried by opening the model with each; * = requested)")
    for row in report["providers"]:
        state = {True: "usable", False: "NOT usable" if row["available"] else "not available", None: "not tried"}
        line = f"    {'*' if row['requested'] else ' '} {row['name']:28s} {state[row['usable']]}"
        add(line + (f": {row['reason']}" if row["reason"] and row["available"] else ""))
    trt = report["tensorrt"]
    add("")
    add(f"TensorRT           {trt['version'] or 'not installed'}" + ("" if trt["version"] else f" ({trt['error']})"))
    backend = "ready" if trt["backend_ready"] else f"not ready: {trt['backend_error']}"
    add(f"  fairs backend    {backend}")
    cuda = report["cuda"]
    add(f"CUDA               driver {cuda['driver'] or 'none'}, runtime {cuda['runtime'] or '-'} (cuda-python); "
        f"nvidia-smi: {cuda['nvidia_smi'] or '-'}")
    gpu = report["gpu"]
    add(f"GPU                {'; '.join(gpu['gpus']) if gpu['gpus'] else 'none'} ({gpu['source']})")
    if "jetson_l4t" in gpu:
        add(f"  Jetson           {gpu['jetson_l4t']}")
    nb = report["numba"]
    where = "NUMBA_CACHE_DIR" if nb["NUMBA_CACHE_DIR"] else "default: beside fairs_sdk/sfg.py"
    add(f"Numba              {nb['version']}, {nb['threads']} threads")
    add(f"  cache folder     {nb['cache_dir']} ({where}; {'writable' if nb['writable'] else 'NOT writable'}; "
        f"{nb['sfg_index_files']} SFG index files)")
    model = report["model"]
    add("")
    add(f"Model              {model['path']}")
    if "size" in model:
        add(f"  file             {_size(model['size'])}, sha256 {model['sha256']}")
    if "metadata" in model:
        m = model["metadata"]
        add(f"  metadata         format {m['format_version']}, {m['backbone']} + {m['head']}, {m['precision']}, "
            f"input {m['input_size']} x {m['input_size']}, channels {', '.join(m['input_channels'])}, "
            f"threshold {m['threshold']}")
        if m["config_digest"]:
            add(f"  config digest    {m['config_digest']}")
    for name, part in model.get("parts", {}).items():
        if not part["exists"]:
            add(f"  part {name:14s} MISSING: {part['path']}")
            continue
        check = {True: "sha256 matches", False: "sha256 DOES NOT MATCH", None: "no sha256 recorded"}
        add(f"  part {name:14s} {Path(part['path']).name}, {_size(part['size'])}, {check[part['sha256_matches']]}")
    if "error" in model:
        add(f"  ERROR            {model['error']}")
    add("")
    for warning in report["warnings"]:
        add(f"WARNING: {warning}")
    if report["problems"]:
        add("!" * 78)
        add(f"PROBLEMS ({len(report['problems'])}): this environment is broken")
        for problem in report["problems"]:
            add(f"  - {problem}")
        add("!" * 78)
    else:
        usable = [r["name"] for r in report["providers"] if r["usable"]]
        add(f"OK: Segmenter() runs on {usable[0] if usable else '?'} (usable: {', '.join(usable) or 'none'})")
    return "\n".join(out)


# ------------------------------------------------------------------------------- CLI
def cmd_doctor(args: argparse.Namespace) -> int:
    report = collect(args.providers or (), args.model, args.timeout)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0 if report["ok"] else 1


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``fairs doctor`` to the ``fairs`` command's subparsers."""
    p = subparsers.add_parser(
        "doctor",
        help="check the installation: ONNX Runtime, providers, TensorRT, CUDA, GPU, Numba, model",
        description="Report the ONNX Runtime distribution(s) and providers, TensorRT, CUDA, GPUs, Numba and the "
        "model; exit status 1 when the environment is broken (two ONNX Runtimes, no runtime, a requested "
        "provider that does not load, an unreadable model).",
    )
    p.add_argument("--providers", nargs="+", default=None, metavar="NAME",
                   help="providers that must load (tensorrt, cuda, cpu or full names); any that does not is a failure")
    p.add_argument("--model", type=Path, default=None, help="model to report on and open (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds each provider's trial session may take (default 120)")
    p.set_defaults(func=cmd_doctor)
    return p
