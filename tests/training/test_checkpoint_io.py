"""A checkpoint never runs code (issue 13.1): every way in refuses a pickle that calls a function, in one line.

The malicious file is a ``torch.save``d dict holding an object whose ``__reduce__`` makes
unpickling call ``exec``, which writes a marker file. Read with ``weights_only=False``
anywhere, the marker appears; read weights-only, the load is refused with one line that
names the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fairs_sdk.training.checkpoint_io import CheckpointError, read_checkpoint


class _WritesMarker:
    """Unpickles as ``exec(code)``: the code writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    """(malicious checkpoint, the marker its unpickling would write). The dict has every key a reader asks for."""
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    payload = {"model": {"w": torch.zeros(1)}, "config": {}, "optimizer": {}, "scaler": {}, "step": 0, "score": 0.0,
               "epoch": 0, "step_in_epoch": 0, "global_step": 0, "version": 1, "payload": _WritesMarker(marker)}
    torch.save(payload, path)
    assert not marker.exists(), "saving must not run the payload"
    return path, marker


def _assert_refused(message: str, path: Path, marker: Path) -> None:
    assert not marker.exists(), f"loading {path.name} ran the code in it (a torch.load with weights_only=False)"
    lines = message.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got {len(lines)} lines:\n{message}"
    assert str(path) in lines[0] and "refused" in lines[0] and "exec" in lines[0], \
        f"the error must name the file, say it was refused and name the object it held: {lines[0]}"


def _assert_cli_refused(code: int, capsys, path: Path, marker: Path) -> None:
    err = capsys.readouterr().err
    assert code == 2, f"exit status {code}, expected 2; stderr:\n{err}"
    _assert_refused(err, path, marker)


def _train_overrides(tmp_path: Path, horses_root: Path) -> list[str]:
    return [
        "model.backbone=mobilenetv3_small_100", "model.head_channels=16", "input.input_size=48", "input.relax=10",
        "batch_size=2", "num_workers=0", "epochs=1", "max_steps_per_epoch=1", "amp=off", "progress=false",
        f"output_dir={tmp_path / 'run'}", f"data.train=[{{kind: folder, root: '{horses_root}', max_instances: 4}}]",
    ]


def _refine_values(tmp_path: Path, horses_root: Path, **changes) -> dict:
    source = {"kind": "folder", "root": str(horses_root), "max_instances": 2}
    values = {"u2netp_weights": str(tmp_path / "u2netp.onnx"), "cache_dir": str(tmp_path / "cache"),
              "output_dir": str(tmp_path / "refine"), "input": {"input_size": 64, "relax": 10},
              "train": [{"name": "horses", "source": source}], "val": {"name": "val", "source": source},
              "width": 16, "steps": 1, "threads": 1}
    values.update(changes)
    return values


# -- function level -------------------------------------------------------------------------


def test_read_checkpoint_refuses_code(evil) -> None:
    path, marker = evil
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    _assert_refused(str(caught.value), path, marker)


def test_plain_checkpoint_round_trips(tmp_path) -> None:
    state = {"model": {"w": torch.arange(3.0)}, "config": {"lr": 0.1, "sizes": [1, 2]}, "history": [{"loss": 0.5}]}
    torch.save(state, tmp_path / "plain.pt")
    loaded = read_checkpoint(tmp_path / "plain.pt", keys=("model", "config"))
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["config"] == state["config"], loaded


@pytest.mark.parametrize("content, message", [(None, "checkpoint not found"), (b"not a zip", "not a readable torch checkpoint")])
def test_missing_or_corrupt_file_is_one_line(tmp_path, content, message) -> None:
    path = tmp_path / "broken.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as caught:
        read_checkpoint(path)
    assert len(str(caught.value).splitlines()) == 1, f"expected one line, got:\n{caught.value}"


def test_missing_keys_are_named(tmp_path) -> None:
    torch.save({"model": {}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"missing \['config'\]"):
        read_checkpoint(tmp_path / "partial.pt", keys=("model", "config"))


def test_training_loaders_refuse_code(evil) -> None:
    from fairs_sdk.training.model import ModelConfig, build_model
    from fairs_sdk.training.train import initialise_from, load_model

    path, marker = evil
    config = ModelConfig(backbone="mobilenetv3_small_100", head_channels=16)
    loaders = {
        "load_model": lambda: load_model(path),
        "initialise_from": lambda: initialise_from(build_model(config), path),
        "ImageNet weights (model.pretrained)": lambda: build_model(ModelConfig(**{**config.to_dict(), "pretrained": str(path)})),
    }
    for name, load in loaders.items():
        with pytest.raises(CheckpointError) as caught:
            load()
        _assert_refused(str(caught.value), path, marker)


def test_trainer_resume_and_init_from_refuse_code(evil, tmp_path, horses) -> None:
    from fairs_sdk.training.config import load_config
    from fairs_sdk.training.train import Trainer

    path, marker = evil
    config = load_config(None, _train_overrides(tmp_path, Path("unused")))
    trainer = Trainer(config, train_source=horses, log=lambda message: None)
    with pytest.raises(CheckpointError) as caught:
        trainer.load_checkpoint(path)
    _assert_refused(str(caught.value), path, marker)
    with pytest.raises(CheckpointError) as caught:
        Trainer(load_config(None, [*_train_overrides(tmp_path, Path("unused")), f"init_from={path}"]), train_source=horses)
    _assert_refused(str(caught.value), path, marker)


def test_refine_init_from_resume_and_best_refuse_code(evil, tmp_path, horses_root) -> None:
    from fairs_sdk.training.refine_train import RefineConfig, train_refiner

    path, marker = evil
    with pytest.raises(CheckpointError) as caught:
        train_refiner(RefineConfig.from_dict(_refine_values(tmp_path, horses_root, init_from=str(path))), progress=False)
    _assert_refused(str(caught.value), path, marker)
    for name, resume in (("last.pt", True), ("best.pt", False)):
        out = tmp_path / f"refine_{name}"
        out.mkdir()
        planted = out / name
        planted.write_bytes(path.read_bytes())
        with pytest.raises(CheckpointError) as caught:
            train_refiner(RefineConfig.from_dict(_refine_values(tmp_path, horses_root, output_dir=str(out))),
                          resume=resume, progress=False)
        _assert_refused(str(caught.value), planted, marker)


def test_export_loaders_refuse_code(evil) -> None:
    from fairs_sdk.export.checkpoint import CheckpointError as ExportCheckpointError, load_checkpoint
    from fairs_sdk.export.two_part import load_refine_checkpoint

    path, marker = evil
    assert ExportCheckpointError is CheckpointError, "one checkpoint error type for training and export"
    for load in (load_checkpoint, load_refine_checkpoint):
        with pytest.raises(CheckpointError) as caught:
            load(path)
        _assert_refused(str(caught.value), path, marker)


# -- command lines --------------------------------------------------------------------------


def test_fairs_train_refuses_code_through_every_option(evil, tmp_path, horses_root, capsys) -> None:
    from fairs_sdk.training.cli import main

    path, marker = evil
    sets = [item for override in _train_overrides(tmp_path, horses_root) for item in ("--set", override)]
    config_file = tmp_path / "init_from.yaml"
    config_file.write_text(yaml.safe_dump({"init_from": str(path)}))
    runs = {
        "train --resume": ["train", "--device", "cpu", *sets, "--resume", str(path)],
        "train --nproc 2 --resume": ["train", "--device", "cpu", "--nproc", "2", *sets, "--resume", str(path)],
        "train --set init_from": ["train", "--device", "cpu", *sets, "--set", f"init_from={path}"],
        "train --config (init_from)": ["train", "--device", "cpu", "--config", str(config_file), *sets],
        "evaluate --checkpoint": ["evaluate", "--checkpoint", str(path), "--data", str(horses_root),
                                  "--out", str(tmp_path / "eval"), "--device", "cpu"],
    }
    for name, argv in runs.items():
        _assert_cli_refused(main(argv), capsys, path, marker)


def test_fairs_train_refine_refuses_code(evil, tmp_path, horses_root, capsys) -> None:
    from fairs_sdk.training.cli import main

    path, marker = evil
    config_file = tmp_path / "refine.yaml"
    config_file.write_text(yaml.safe_dump(_refine_values(tmp_path, horses_root)))
    _assert_cli_refused(main(["refine", "--config", str(config_file), "--set", f"init_from={path}"]), capsys, path, marker)
    planted = tmp_path / "refine" / "last.pt"
    planted.parent.mkdir()
    planted.write_bytes(path.read_bytes())
    _assert_cli_refused(main(["refine", "--config", str(config_file), "--resume"]), capsys, planted, marker)


@pytest.mark.parametrize("command", ["onnx", "bundle"])
def test_fairs_export_refuses_code(evil, tmp_path, capsys, command) -> None:
    from fairs_sdk.export.cli import main

    path, marker = evil
    _assert_cli_refused(main([command, str(path), "-o", str(tmp_path / "out")]), capsys, path, marker)
