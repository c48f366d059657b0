"""A click-map model (rgb, sfg, positive_clicks, negative_clicks) end to end: train, checkpoint, export, runtime."""

from __future__ import annotations

import math

import numpy as np
import torch

from fairs_sdk.training.config import load_config
from fairs_sdk.training.evaluate import Predictor
from fairs_sdk.training.simulate import extreme_points
from fairs_sdk.training.train import Trainer

CHANNELS = ("rgb", "sfg", "positive_clicks", "negative_clicks")


def test_click_map_model_trains_exports_and_segments_with_clicks(tmp_path, horses) -> None:
    from fairs_sdk import Segmenter
    from fairs_sdk.export.checkpoint import load_checkpoint
    from fairs_sdk.export.onnx_export import export_onnx, read_metadata

    config = load_config(None, [
        "model.backbone=mobilenetv3_small_100", "model.head_channels=16", "model.decoder=skip",
        f"model.input_channels=[{', '.join(CHANNELS)}]", "input.input_size=48", "input.relax=10",
        "batch_size=2", "num_workers=0", "epochs=2", "amp=off", "progress=false", "optim.lr=0.01",
        "data.simulation.click_probability=1.0", "data.simulation.iterative_probability=1.0",
        "data.simulation.max_iterative_clicks=2", f"output_dir={tmp_path}",
    ])
    trainer = Trainer(config, train_source=horses, log=lambda message: None)
    rounds = []
    original = trainer._with_corrective_clicks
    trainer._with_corrective_clicks = lambda batch: rounds.append(original(batch)) or rounds[-1]
    stem = trainer.model.backbone.stem_conv().weight
    before = stem.detach().clone()
    loss = trainer.train_epoch(max_steps=2)
    assert math.isfinite(loss) and loss > 0, f"loss {loss}"
    assert len(rounds) == 2 and all(batch["input"].shape[1] == 6 for batch in rounds), "two steps on 6-plane batches"
    changed = (stem.detach() - before).abs().amax(dim=(0, 2, 3))
    assert bool((changed[3:] > 0).all()), f"the guidance planes' stem kernels must train, change per plane {changed.tolist()}"

    trainer.save_checkpoint(tmp_path / "clicks.pt")
    checkpoint = load_checkpoint(tmp_path / "clicks.pt")
    assert checkpoint.input_spec.input_channels == CHANNELS, f"checkpoint spec {checkpoint.input_spec.input_channels}"
    path = export_onnx(checkpoint, tmp_path / "clicks.onnx")
    assert read_metadata(path).input_spec.input_channels == CHANNELS, "the export must declare the click maps"

    segmenter = Segmenter(path, backend="onnxruntime", warmup=False)
    image, obj, _ = horses.load(0)
    extreme = extreme_points(obj)
    ys, xs = np.nonzero(obj)
    inside = np.array([[xs[len(xs) // 2], ys[len(ys) // 2]]], dtype=np.float64)
    x0, y0 = extreme.min(axis=0)
    outside = np.array([[x0 + 2, y0 + 2]], dtype=np.float64)  # in the crop, near the box's corner
    plain = segmenter.segment(image, extreme)
    clicked = segmenter.segment(image, extreme, positive_clicks=inside, negative_clicks=outside)
    assert clicked.probabilities.shape == obj.shape and clicked.mask.shape == obj.shape
    prepared = segmenter.prepare(image, extreme, inside, outside).input
    assert prepared.shape == (6, 48, 48) and float(prepared[4].max()) > 0.9 and float(prepared[5].max()) > 0.9, \
        "the runtime input must show both clicks on their maps"
    assert not np.array_equal(clicked.probabilities, plain.probabilities), "clicks must change the output"

    predictor = Predictor(checkpoint.model, checkpoint.input_spec)
    with torch.no_grad():
        expected = predictor.probabilities(image, extreme, inside, outside)
    difference = float(np.abs(clicked.probabilities - expected).max())
    assert difference <= 1e-4, f"runtime and PyTorch differ by {difference:.3g} on the trained click-map model"
