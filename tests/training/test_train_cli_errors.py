"""``fairs-train`` ends every expected failure with one line on stderr and exit status 2 (issue 13, items 5 and 7)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from fairs_sdk.training import cli

from cli_helpers import exit_status

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


#: ``fairs-train`` in-process: its exit status, whether returned or raised by argparse.
main = partial(exit_status, cli.main)


@pytest.fixture
def malformed_yaml(tmp_path) -> Path:
    path = tmp_path / "malformed.yaml"
    path.write_text("epochs: 3\nmodel: {backbone: resnet18\n")
    return path


@pytest.fixture
def list_yaml(tmp_path) -> Path:
    path = tmp_path / "list.yaml"
    path.write_text("- epochs: 3\n")
    return path


# ------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("command", ["train", "refine"])
def test_missing_config(command, tmp_path, one_line_error) -> None:
    missing = tmp_path / "absent.yaml"
    one_line_error(main([command, "--config", str(missing)]), "fairs-train", str(missing), "not found")


@pytest.mark.parametrize("command", ["train", "refine"])
def test_malformed_yaml_config(command, malformed_yaml, one_line_error) -> None:
    one_line_error(main([command, "--config", str(malformed_yaml)]), "fairs-train", str(malformed_yaml), "YAML")


@pytest.mark.parametrize("command", ["train", "refine"])
def test_config_that_is_not_a_mapping(command, list_yaml, one_line_error) -> None:
    one_line_error(main([command, "--config", str(list_yaml)]), "fairs-train", "mapping")


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("checkpoint_every=0", "checkpoint_every = 0"),
        ("batch_size=2.5", "batch_size = 2.5"),
        ("progress='false'", "progress = 'false'"),
        ("model.backbone=resnet9000", "model.backbone = 'resnet9000'"),
    ],
    ids=["checkpoint_every-0", "batch_size-2.5", "progress-string", "unknown-backbone"],
)
def test_bad_config_value_is_refused_before_training(override, needle, tmp_path, one_line_error) -> None:
    status = main(["train", "--device", "cpu", "--set", f"output_dir={tmp_path / 'run'}", "--set", override])
    one_line_error(status, "fairs-train", needle)
    assert not (tmp_path / "run").exists(), "nothing may be written for a refused config"


def test_bad_refine_config_value(one_line_error) -> None:
    config = CONFIGS / "default_u2_refine.yaml"
    one_line_error(main(["refine", "--config", str(config), "--set", "checkpoint_every=0"]), "fairs-train",
                   "checkpoint_every = 0")


# ---------------------------------------------------------------------- checkpoints, models
def test_refused_checkpoint(refused_checkpoint, tmp_path, one_line_error) -> None:
    status = main(["evaluate", "--checkpoint", str(refused_checkpoint), "--data", str(tmp_path),
                   "--out", str(tmp_path / "eval"), "--device", "cpu"])
    one_line_error(status, "fairs-train", str(refused_checkpoint))


@pytest.mark.parametrize("kind", ["int64", "float16"])
def test_model_whose_input_is_not_float32(kind, typed_input_models, tmp_path, one_line_error) -> None:
    model = typed_input_models[kind]
    status = main(["evaluate", "--model", str(model), "--data", str(tmp_path), "--out", str(tmp_path / "eval")])
    one_line_error(status, "fairs-train", str(model), kind)


# -------------------------------------------------------------------------- output paths
def test_evaluate_out_naming_a_file(typed_input_models, tmp_path, one_line_error) -> None:
    out = tmp_path / "report.txt"
    out.write_text("keep me")
    status = main(["evaluate", "--baseline", "grabcut", "--data", str(tmp_path), "--out", str(out)])
    one_line_error(status, "fairs-train", "--out", str(out))
    assert out.read_text() == "keep me", "the file named by --out must be left alone"


def test_compare_out_naming_a_folder(tmp_path, one_line_error) -> None:
    status = main(["compare", str(tmp_path), "--out", str(tmp_path)])
    one_line_error(status, "fairs-train", "--out", str(tmp_path))


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--nproc", "0"], "--nproc"),
        (["evaluate", "--baseline", "grabcut", "--data", "d", "--out", "o", "--every", "0"], "--every"),
        (["evaluate", "--baseline", "grabcut", "--data", "d", "--out", "o", "--max-clicks", "0"], "--max-clicks"),
        (["speed", "--size", "0"], "--size"),
    ],
    ids=["nproc-0", "every-0", "max-clicks-0", "speed-size-0"],
)
def test_out_of_range_arguments(argv, needle, one_line_error) -> None:
    one_line_error(main(argv), "fairs-train", needle)
