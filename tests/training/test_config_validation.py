"""Every training config value is checked for type and range when the config is loaded (issue 13, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairs_sdk.training.config import ConfigError, load_config, load_refine_config, read_config_file

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
REFINE_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if "steps" in read_config_file(p))
TRAIN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if p not in REFINE_CONFIGS)


def refused(*overrides: str) -> str:
    """The message of the ConfigError that loading the defaults with ``overrides`` raises."""
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides)
    return str(caught.value)


# --------------------------------------------------------------------- the examples
def test_checkpoint_every_zero_is_refused_at_load() -> None:
    message = refused("checkpoint_every=0")
    assert "checkpoint_every" in message and "0" in message and ">= 1" in message, message


def test_fractional_batch_size_is_refused() -> None:
    message = refused("batch_size=2.5")
    assert "batch_size = 2.5" in message and "integer" in message, message


def test_string_for_a_boolean_is_refused() -> None:
    message = refused("progress='false'")
    assert "progress = 'false'" in message and "true or false" in message, message


def test_unknown_backbone_is_refused() -> None:
    message = refused("model.backbone=resnet9000")
    assert "model.backbone = 'resnet9000'" in message and "resnet101" in message, message


# ----------------------------------------------------------------- one test per class of value
def test_bool_for_an_integer_is_refused() -> None:
    message = refused("epochs=true")
    assert "epochs = True" in message and "integer" in message, message


def test_text_for_a_number_is_refused() -> None:
    message = refused("optim.lr=fast")
    assert "optim.lr = 'fast'" in message and "number" in message, message


def test_non_finite_number_is_refused() -> None:
    assert "optim.lr" in refused("optim.lr=.nan")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.lr=0", "optim.lr"),
        ("epochs=0", "epochs"),
        ("num_workers=-1", "num_workers"),
        ("model.head_channels=0", "model.head_channels"),
        ("data.simulation.click_probability=1.5", "data.simulation.click_probability"),
        ("optim.momentum=1.0", "optim.momentum"),
        ("max_steps_per_epoch=-1", "max_steps_per_epoch"),
    ],
)
def test_out_of_range_number_is_refused(override: str, key: str) -> None:
    message = refused(override)
    assert message.startswith(key + " = "), f"the error must name {key}: {message}"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.head=unet", "model.head"),
        ("model.decoder=fpn", "model.decoder"),
        ("model.guidance=heat", "model.guidance"),
        ("optim.name=lamb", "optim.name"),
        ("optim.schedule=cosine", "optim.schedule"),
        ("amp=fp8", "amp"),
        ("model.output_stride=4", "model.output_stride"),
    ],
)
def test_unknown_choice_is_refused(override: str, key: str) -> None:
    message = refused(override)
    assert message.startswith(key + " = "), f"the error must name {key}: {message}"


def test_wrong_length_pair_is_refused() -> None:
    message = refused("data.simulation.click_distance=[15]")
    assert "data.simulation.click_distance" in message and "2 numbers" in message, message


def test_reversed_range_pair_is_refused() -> None:
    assert "data.augmentation.scale" in refused("data.augmentation.scale=[1.5, 0.5]")


def test_path_must_be_a_string() -> None:
    message = refused("output_dir=5")
    assert "output_dir = 5" in message and "string" in message, message


def test_data_source_must_be_a_path_or_mapping() -> None:
    assert "data.train" in refused("data.train=[5]")


def test_section_must_be_a_mapping() -> None:
    message = refused("optim=0.01")
    assert "optim" in message and "mapping" in message, message


def test_unknown_nested_key_is_refused() -> None:
    message = refused("optim.learning_rate=0.1")
    assert "optim.learning_rate" in message and "lr" in message, message


def test_input_spec_values_are_checked() -> None:
    message = refused("input.input_size=2.5")
    assert "input_size" in message and "2.5" in message, message


def test_yaml_off_still_means_amp_off() -> None:
    assert load_config(None, ["amp=off"]).amp == "off", "a bare `off` (YAML false) is amp: off"


def test_valid_overrides_are_accepted() -> None:
    config = load_config(None, ["batch_size=3", "progress=false", "model.backbone=resnet18", "optim.lr=1", "checkpoint_every=2"])
    assert (config.batch_size, config.progress, config.model.backbone, config.optim.lr) == (3, False, "resnet18", 1)


# ------------------------------------------------------------------------------ config files
def test_missing_config_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_malformed_yaml_names_the_line(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line \d+"):
        load_config(path)


def test_config_that_is_not_a_mapping_is_refused(tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- epochs: 3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_bad_value_in_a_file_is_refused(tmp_path) -> None:
    path = tmp_path / "zero.yaml"
    path.write_text("checkpoint_every: 0\n")
    with pytest.raises(ConfigError, match="checkpoint_every = 0"):
        load_config(path)


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.stem)
def test_shipped_train_config_loads(path: Path) -> None:
    assert load_config(path).epochs >= 1


# ------------------------------------------------------------------------- refine configs
@pytest.mark.parametrize("path", REFINE_CONFIGS, ids=lambda p: p.stem)
def test_shipped_refine_config_loads(path: Path) -> None:
    assert load_refine_config(path).steps >= 1


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("checkpoint_every=0", "checkpoint_every"),
        ("batch_size=2.5", "batch_size"),
        ("attention='false'", "attention"),
        ("design=unet", "design"),
        ("feature_dropout=1.0", "feature_dropout"),
        ("val.every=0", "val.every"),
        ("train_only=[]", "train_only"),
        ("train_only=[click_branch, '']", "train_only"),
    ],
)
def test_refine_config_values_are_checked(override: str, key: str) -> None:
    assert REFINE_CONFIGS, "no refine config shipped in training/configs"
    with pytest.raises(ConfigError) as caught:
        load_refine_config(REFINE_CONFIGS[0], [override])
    assert str(caught.value).startswith(key + " = "), f"the error must name {key}: {caught.value}"


def test_refine_config_requires_its_paths(tmp_path) -> None:
    path = tmp_path / "refine.yaml"
    path.write_text("train: [{name: a, source: data/a}]\nval: {name: v, source: data/v}\n")
    with pytest.raises(ConfigError, match="output_dir"):
        load_refine_config(path)
