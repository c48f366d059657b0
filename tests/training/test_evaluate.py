"""Evaluation metrics (SPEC section 4), the report files, and the fairs-train command line."""

from __future__ import annotations

import json

import numpy as np
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.training.cli import main
from fairs_sdk.training.evaluate import Predictor, evaluate, evaluate_instance, number_of_clicks, summarize, write_report
from fairs_sdk.training.sources import InstanceSource


class FixedPredictor(Predictor):
    """Returns a fixed probability map whatever the clicks; records the clicks it got."""

    def __init__(self, probabilities: np.ndarray) -> None:
        super().__init__(torch.nn.Identity(), InputSpec(input_size=32, relax=5))
        self.fixed = probabilities.astype(np.float32)
        self.calls: list[tuple[int, int]] = []

    def probabilities(self, image, extreme, positive=None, negative=None):
        self.calls.append((0 if positive is None else len(positive), 0 if negative is None else len(negative)))
        return self.fixed


class OneSource(InstanceSource):
    def __init__(self, obj: np.ndarray) -> None:
        self.obj = obj
        self.name = "one"

    def __len__(self) -> int:
        return 2

    def load(self, index: int):
        return np.zeros(self.obj.shape + (3,), np.uint8), self.obj, np.zeros_like(self.obj)


def square(size: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[10:30, 10:30] = True
    return mask


def test_number_of_clicks_counts_extreme_points() -> None:
    assert number_of_clicks([0.9, 0.95], 0.85) == 4, "reached with the 4 extreme points"
    assert number_of_clicks([0.5, 0.7, 0.86], 0.85) == 6
    assert number_of_clicks([0.5] * 17, 0.9) == 20, "never reached: the 20-click cap"


def test_perfect_prediction_needs_four_clicks() -> None:
    obj = square()
    result = evaluate_instance(FixedPredictor(obj), np.zeros((40, 40, 3), np.uint8), obj, np.zeros_like(obj))
    assert result["ious"] == [1.0] * 17 and result["iou_3pts"] == 1.0, result


def test_empty_prediction_draws_positive_clicks() -> None:
    obj = square()
    predictor = FixedPredictor(np.zeros((40, 40)))
    result = evaluate_instance(predictor, np.zeros((40, 40, 3), np.uint8), obj, np.zeros_like(obj), max_clicks=7)
    assert result["ious"] == [0.0] * 4, "IoU after 4..7 clicks"
    assert predictor.calls[-1] == (3, 0), f"3 corrective clicks, all positive, expected; got {predictor.calls[-1]}"
    summary = summarize([result], max_clicks=7)
    assert summary["noc85"] == 7 and summary["miou_at"]["7"] == 0.0, summary


def test_report_files(tmp_path) -> None:
    obj = square()
    result = evaluate(FixedPredictor(obj), OneSource(obj), max_clicks=6)
    paths = write_report(result, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["miou_4pts"] == 1.0 and len(data["instances"]) == 2
    assert "NoC@85" in paths["markdown"].read_text()
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG", "plot must be a PNG"


def test_cli_trains_then_evaluates(tmp_path, horses_root) -> None:
    run = tmp_path / "run"
    overrides = [
        "model.backbone=mobilenetv3_small_100", "model.head_channels=16", "input.input_size=48", "input.relax=10",
        "batch_size=2", "num_workers=0", "epochs=2", "max_steps_per_epoch=2", "amp=off", "progress=false",
        f"output_dir={run}", f"data.train=[{{kind: folder, root: '{horses_root}', max_instances: 4}}]",
    ]
    args = ["train", "--device", "cpu"] + [item for o in overrides for item in ("--set", o)]
    assert main(args) == 0
    assert (run / "epoch_002.pt").is_file() and (run / "last.pt").is_file() and (run / "config.yaml").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2, "one metrics line per epoch"
    checkpoint = torch.load(run / "last.pt", weights_only=True)
    assert checkpoint["config"]["model"]["backbone"] == "mobilenetv3_small_100", "full config must travel with the checkpoint"

    out = tmp_path / "eval"
    code = main(["evaluate", "--checkpoint", str(run / "last.pt"), "--data", str(horses_root), "--out", str(out),
                 "--max-instances", "2", "--max-clicks", "5", "--device", "cpu"])
    assert code == 0
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert summary["instances"] == 2 and set(summary["miou_at"]) == {"4", "5"}, summary
    assert 0.0 <= summary["miou_4pts"] <= 1.0 and 4 <= summary["noc90"] <= 5


class CountingSource(OneSource):
    """Five copies of one instance, each described by its index."""

    def __len__(self) -> int:
        return 5

    def describe(self, index: int) -> str:
        return f"copy-{index}"


def test_every_takes_a_strided_subset() -> None:
    obj = square()
    result = evaluate(FixedPredictor(obj), CountingSource(obj), max_clicks=4, every=2)
    described = [r["instance"] for r in result.per_instance]
    assert described == ["copy-0", "copy-2", "copy-4"], f"every=2 must take instances 0, 2, 4; got {described}"


def test_compare_refuses_runs_over_different_instances(tmp_path) -> None:
    from fairs_sdk.training.evaluate import read_summaries

    obj = square()
    write_report(evaluate(FixedPredictor(obj), CountingSource(obj), max_clicks=4), tmp_path / "a")
    write_report(evaluate(FixedPredictor(obj), CountingSource(obj), max_clicks=4, every=2), tmp_path / "b")
    try:
        read_summaries([tmp_path / "a", tmp_path / "b"])
    except ValueError as error:
        assert "other instances" in str(error)
    else:
        raise AssertionError("comparing runs over different instances must raise")


def test_compare_cli_writes_one_row_per_run(tmp_path) -> None:
    obj = square()
    for name, prediction in (("perfect", obj), ("empty", np.zeros_like(obj))):
        write_report(evaluate(FixedPredictor(prediction), CountingSource(obj), max_clicks=5), tmp_path / name)
    assert main(["compare", str(tmp_path / "perfect"), str(tmp_path / "empty"), "--out", str(tmp_path / "table.md")]) == 0
    rows = [line.split("|")[1:4] for line in (tmp_path / "table.md").read_text().splitlines()[2:]]
    assert [[c.strip() for c in r] for r in rows] == [["perfect", "5", "100.00"], ["empty", "5", "0.00"]], rows


def test_evaluate_cli_needs_a_model_or_a_baseline(tmp_path, capsys) -> None:
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "--baseline" in capsys.readouterr().err
