"""The package's dependencies never put two ONNX Runtimes in one environment (issue 16).

``onnxruntime`` and ``onnxruntime-gpu`` write the same ``onnxruntime/`` package; whichever
pip installs last wins. The base dependencies therefore hold no runtime, the ``cpu``
extra brings ``onnxruntime`` and the ``gpu`` extra ``onnxruntime-gpu`` (as rembg's
``cpu``/``gpu`` extras do).

Offline: the project's requirements come from pyproject.toml, and each requirement's
own requirements, transitively, from the metadata of the distribution installed in
this environment (``importlib.metadata.requires``), with environment markers evaluated
for this machine. A distribution that is not installed here (``onnxruntime-gpu``,
``tensorrt`` and ``cuda-python`` on a CPU machine) is reached by name but not walked
further; the CI install (:data:`CI_EXTRAS`) must be walked completely.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fairs_sdk.extras import RUNTIME_DISTRIBUTIONS

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
#: Distributions that write the ``onnxruntime`` package; at most one may be installed.
RUNTIMES = frozenset(RUNTIME_DISTRIBUTIONS.values())

#: Every install command the documentation gives, as the extras it installs, and the one
#: ONNX Runtime distribution it must bring (None: the user brings NVIDIA's Jetson wheel).
#: An install command found in the files of DOCUMENTED_IN must be listed here.
DOCUMENTED_INSTALLS: dict[frozenset[str], str | None] = {
    frozenset({"cpu"}): "onnxruntime",  # README quick start
    frozenset({"gpu"}): "onnxruntime-gpu",  # README "GPU and edge": desktop GPUs
    frozenset(): None,  # README "GPU and edge": Jetson, after NVIDIA's onnxruntime-gpu wheel
    frozenset({"cpu", "train"}): "onnxruntime",  # README smoke run, model reproduction
    frozenset({"train"}): None,  # fairs-train's message and the v1 model card: added to an installed runtime
    frozenset({"cpu", "dev", "train", "serve", "ray"}): "onnxruntime",  # README development = .ci/run
    frozenset({"cpu", "serve"}): "onnxruntime",  # README "fairs serve"
    frozenset({"serve"}): None,  # fairs serve's missing-extra message: added to an installed runtime
    frozenset({"ray"}): None,  # README "fairs annotate": --engine ray, added to an installed runtime
}
CI_EXTRAS = frozenset({"cpu", "dev", "train", "serve", "ray"})
DOCUMENTED_IN = ("README.md", "*/README.md", "docs/**/*.md", ".ci/run")

_INSTALL = re.compile(r"pip3?\s+install\s+([^\n`]*)")
_TARGET = re.compile(r"^(?:\.|fairs[-_]sdk)(?:\[([^\]]*)\])?$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def documented_installs() -> dict[frozenset[str], list[str]]:
    """The extras of every ``pip install`` of this project in the documentation -> where ("file:line")."""
    found: dict[frozenset[str], list[str]] = {}
    files = sorted({p for pattern in DOCUMENTED_IN for p in ROOT.glob(pattern) if p.is_file()})
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for command in _INSTALL.findall(line):
                for token in command.split():
                    match = _TARGET.match(token.strip("'\"`(),;"))
                    if match:
                        extras = frozenset(e.strip() for e in (match.group(1) or "").split(",") if e.strip())
                        found.setdefault(extras, []).append(f"{path.relative_to(ROOT)}:{number}")
    return found


def project_requirements(extras: frozenset[str]) -> list[Requirement]:
    """The base dependencies and those of ``extras``, from pyproject.toml."""
    unknown = extras - set(EXTRAS)
    assert not unknown, f"extras {sorted(unknown)} are not in pyproject.toml (it has {sorted(EXTRAS)})"
    return [Requirement(r) for r in PROJECT["dependencies"] + [r for e in sorted(extras) for r in EXTRAS[e]]]


def closure(requirements: list[Requirement]) -> tuple[dict[str, list[str]], set[str]]:
    """(every distribution reached -> the chain of requirements that reached it, those not installed here)."""
    reached: dict[str, list[str]] = {}
    missing: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(r, []) for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    while queue:
        req, chain = queue.pop()
        name = _normal(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        path = [*chain, str(req)]
        reached.setdefault(name, path)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            missing.add(name)
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                queue.append((sub, path))
    return reached, missing


def runtimes_of(extras: frozenset[str]) -> dict[str, list[str]]:
    reached, _ = closure(project_requirements(extras))
    return {name: chain for name, chain in reached.items() if name in RUNTIMES}


def _shown(runtimes: dict[str, list[str]]) -> str:
    return "; ".join(f"{name} via {' -> '.join(chain)}" for name, chain in sorted(runtimes.items())) or "none"


def test_base_dependencies_bring_no_onnx_runtime():
    found = runtimes_of(frozenset())
    assert not found, f"the base dependencies bring {_shown(found)}; they must bring none (Jetson brings its own)"


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_brings_at_most_its_own_runtime(extra):
    # Closures of a union are the union of the closures: with this, any combination of
    # extras that holds at most one of cpu and gpu brings at most one runtime.
    own = {RUNTIME_DISTRIBUTIONS[extra]} if extra in RUNTIME_DISTRIBUTIONS else set()
    found = runtimes_of(frozenset({extra}))
    assert set(found) == own, f"extra {extra!r} must bring {sorted(own) or 'no ONNX Runtime'}, brings {_shown(found)}"


@pytest.mark.parametrize("extras", sorted(DOCUMENTED_INSTALLS, key=sorted), ids=lambda e: ",".join(sorted(e)) or "none")
def test_documented_install_brings_exactly_its_runtime(extras):
    expected = DOCUMENTED_INSTALLS[extras]
    found = runtimes_of(extras)
    assert set(found) == ({expected} if expected else set()), (
        f"pip install 'fairs-sdk[{','.join(sorted(extras))}]' must bring {expected or 'no ONNX Runtime'}, "
        f"brings {_shown(found)}"
    )


def test_every_documented_install_command_is_listed_and_none_mixes_the_runtime_extras():
    found = documented_installs()
    assert found, f"no `pip install` of this project found in {DOCUMENTED_IN}; did the pattern break?"
    unlisted = {",".join(sorted(e)) or "(no extra)": where for e, where in found.items() if e not in DOCUMENTED_INSTALLS}
    assert not unlisted, f"install commands not in DOCUMENTED_INSTALLS (add them, with their runtime): {unlisted}"
    both = {",".join(sorted(e)): where for e, where in found.items() if len(e & set(RUNTIME_DISTRIBUTIONS)) > 1}
    assert not both, f"install commands with both runtime extras: {both}"


def test_the_ci_install_is_documented_and_walked_completely():
    assert CI_EXTRAS in documented_installs(), f"the CI command's extras {sorted(CI_EXTRAS)} are not in the docs"
    _, missing = closure(project_requirements(CI_EXTRAS))
    assert not missing, (
        f"not installed here, so their requirements were not checked: {sorted(missing)} "
        f"(install with pip install -e '.[{','.join(sorted(CI_EXTRAS))}]')"
    )


def _fake_distribution(site: Path, name: str, requires: list[str]) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    lines = [f"Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_the_walk_finds_a_runtime_pulled_in_transitively_and_honours_extras(monkeypatch, tmp_path):
    # A made-up package whose dependency depends on onnxruntime, and whose 'gpu' extra brings onnxruntime-gpu.
    _fake_distribution(tmp_path, "fake-top", ["fake-helper>=1", 'onnxruntime-gpu; extra == "gpu"'])
    _fake_distribution(tmp_path, "fake-helper", ["onnxruntime>=1.20", 'fake-unused; sys_platform == "no-such-os"'])
    monkeypatch.syspath_prepend(str(tmp_path))
    reached, _ = closure([Requirement("fake-top")])
    assert reached.get("onnxruntime", [])[:2] == ["fake-top", "fake-helper>=1"], reached.get("onnxruntime")
    assert "onnxruntime-gpu" not in reached and "fake-unused" not in reached, sorted(reached)
    reached, _ = closure([Requirement("fake-top[gpu]")])
    assert RUNTIMES <= set(reached), f"both runtimes should be reached through fake-top[gpu]: {sorted(reached)}"
