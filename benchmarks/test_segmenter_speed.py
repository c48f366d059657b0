"""Runtime speed: what ``Segmenter`` adds to the bare engine call, stage by stage.

Run: ``pytest benchmarks/test_segmenter_speed.py``. Every group's ratios against
its "reference" are printed at the end (benchmarks/conftest.py):

- ``segment vs engine, WxH``: ``Segmenter.segment`` end to end against
  ``backend.run`` on the same prepared input (the reference). The goal is that the
  runtime adds under 5 % on CPU.
- ``stages, WxH``: each pre- and post-processing stage against the engine call,
  for a 640 x 480 and a 1920 x 1080 image; the input stages are the model's own
  :class:`~fairs_sdk.encoder.InputEncoder` (crop, then the guidance channels it declares).
- ``8 objects``: ``segment_many`` with 8 objects against 8 ``segment`` calls.
- ``per click, WxH``: an :class:`~fairs_sdk.InteractiveSession` on a two-part model:
  its first result (crop, image encoder, decoder; the reference) against each
  corrective click after it (the decoder alone) and against ``segment`` with that
  click (the whole model, as every click costs without parts); and the same figures
  from alternating runs (``test_per_click_latency_interleaved``). Timings are
  reported, never asserted.

The model is ``$FAIRS_BENCH_MODEL`` if set, else the bundled default model, else
the real architecture (tf_efficientnet_lite0 + DANet head at the default
512 x 512 input, random weights) exported by ``fairs_sdk.export`` (needs torch).
The per-click group uses that model when it is two-part; otherwise it builds one:
U2-Netp and the decoder of ``training/configs/default_u2_refine.yaml`` (input size,
channels, width, attention) with random weights, written by
``fairs_sdk.export.two_part.export_bundle`` (needs torch). Weights do not change the
speed. ``$FAIRS_BENCH_ROUNDS`` (default 5) sets the rounds of the engine-sized
measurements.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fairs_sdk import Segmenter, crop
from fairs_sdk.cli import bench_objects
from fairs_sdk.segmenter import DEFAULT_MODEL
from fairs_sdk.validation import check_image

SIZES = [(640, 480), (1920, 1080)]
#: The two-part default model's recipe: its input spec and decoder options.
U2_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "default_u2_refine.yaml"
#: Rounds of each engine-sized measurement; raise it on a noisy machine.
ROUNDS = int(os.environ.get("FAIRS_BENCH_ROUNDS", "5"))


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory) -> Segmenter:
    model = os.environ.get("FAIRS_BENCH_MODEL")
    if model is None and DEFAULT_MODEL.is_file():
        model = str(DEFAULT_MODEL)
    if model is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fairs_sdk"))
        from model_files import export_tiny_model

        from fairs_sdk.config import InputSpec

        model = export_tiny_model(tmp_path_factory.mktemp("bench") / "lite0_danet_512.onnx", spec=InputSpec(),
                                  head_channels=None)
    seg = Segmenter(model)
    print(f"\n{seg!r}, model {seg.metadata.backbone}/{seg.metadata.head} {seg.metadata.precision}")
    return seg


def _case(width: int, height: int):
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return image, bench_objects(width, height, 8)


@pytest.mark.parametrize("size", SIZES, ids=["640x480", "1920x1080"])
def test_engine_reference(benchmark, segmenter, size):
    image, objects = _case(*size)
    batch = segmenter.prepare(image, **objects[0]).input[None]
    benchmark.group = f"segment vs engine, {size[0]}x{size[1]}"
    benchmark.pedantic(segmenter.backend.run, args=(batch,), rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("size", SIZES, ids=["640x480", "1920x1080"])
def test_segment_end_to_end(benchmark, segmenter, size):
    image, objects = _case(*size)
    benchmark.group = f"segment vs engine, {size[0]}x{size[1]}"
    benchmark.pedantic(segmenter.segment, args=(image,), kwargs=objects[0], rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)


STAGES = ["engine_reference", "check_image", "crop_resize", "guidance", "prepare_all", "paste_back_threshold"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("size", SIZES, ids=["640x480", "1920x1080"])
def test_stage(benchmark, segmenter, size, stage):
    image, objects = _case(*size)
    obj = objects[0]
    s, encoder = segmenter.spec.input_size, segmenter.encoder
    prepared = segmenter.prepare(image, **obj)  # the input segment() builds, through the model's encoder
    box = prepared.box
    ep, pos, neg = (crop.to_canvas(np.asarray(obj[k], np.float64), box, s)
                    for k in ("extreme_points", "positive_clicks", "negative_clicks"))
    probabilities = segmenter.backend.run(prepared.input[None])[0]

    functions = {
        "engine_reference": lambda: segmenter.backend.run(prepared.input[None]),
        "check_image": lambda: check_image(image),
        "crop_resize": lambda: encoder.crop_pixels(image, box),
        "guidance": lambda: encoder.guidance(ep, pos, neg),  # SFG and click maps, as the model declares
        "prepare_all": lambda: segmenter.prepare(image, **obj),
        "paste_back_threshold": lambda: segmenter.postprocess(probabilities, prepared),
    }
    benchmark.group = f"stages, {size[0]}x{size[1]}"
    rounds = ROUNDS if stage == "engine_reference" else 200
    benchmark.pedantic(functions[stage], rounds=rounds, iterations=1, warmup_rounds=1)


def test_eight_segment_calls_reference(benchmark, segmenter):
    image, objects = _case(1920, 1080)
    benchmark.group = "8 objects, 1920x1080"
    benchmark.pedantic(lambda: [segmenter.segment(image, **o) for o in objects], rounds=3, iterations=1)


def test_segment_many_eight_objects(benchmark, segmenter):
    image, objects = _case(1920, 1080)
    benchmark.group = "8 objects, 1920x1080"
    benchmark.pedantic(segmenter.segment_many, args=(image, objects), rounds=3, iterations=1)


@pytest.mark.parametrize("size", SIZES, ids=["640x480", "1920x1080"])
def test_runtime_overhead_interleaved(segmenter, size, record_property, capsys):
    """segment and the bare engine call alternated, so that load on a shared machine hits both alike.

    Reports the median of the paired differences (segment - engine) against the
    median engine time, in wall-clock time and in CPU time of this process (all
    threads; steadier where other processes share the cores).
    """
    import statistics
    import time

    image, objects = _case(*size)
    batch = segmenter.prepare(image, **objects[0]).input[None]
    calls = {"engine": lambda: segmenter.backend.run(batch), "segment": lambda: segmenter.segment(image, **objects[0])}
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in calls}
    for round_ in range(ROUNDS + 1):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            if round_:  # round 0: warm-up
                times[name]["wall"].append(time.perf_counter() - wall)
                times[name]["cpu"].append(time.process_time() - cpu)
    lines = []
    for clock in ("wall", "cpu"):
        engine, total = times["engine"][clock], times["segment"][clock]
        added = statistics.median(s - e for s, e in zip(total, engine))
        base = statistics.median(engine)
        record_property(f"runtime_added_{clock}_ms", added * 1e3)
        lines.append(f"{clock}: engine median {base * 1e3:.1f} ms, segment adds {added * 1e3:+.1f} ms "
                     f"({100 * added / base:+.1f} %)")
    with capsys.disabled():
        print(f"\n{size[0]}x{size[1]}, {ROUNDS} interleaved pairs: " + "; ".join(lines))


# ------------------------------------------------------------------ per-click latency
@pytest.fixture(scope="module")
def two_part(segmenter, tmp_path_factory) -> Segmenter:
    """The benchmark's model if it is two-part, else a random-weight bundle of the default U2-Netp recipe."""
    if segmenter.two_part:
        return segmenter
    torch = pytest.importorskip("torch")
    yaml = pytest.importorskip("yaml")
    from fairs_sdk.export.two_part import export_bundle
    from fairs_sdk.training.refine_train import RefineConfig
    from fairs_sdk.training.refiner import FairsU2

    config = RefineConfig.from_dict(yaml.safe_load(U2_CONFIG.read_text()))
    torch.manual_seed(0)
    model = FairsU2(config.spec, width=config.width, attention=config.attention)
    bundle = export_bundle(model, tmp_path_factory.mktemp("bench_u2"), "u2_random_weights")
    seg = Segmenter(bundle.combined)
    print(f"\n{seg!r}: {segmenter.model_path.name} is not two-part; built from {U2_CONFIG.name} (random weights)")
    return seg


def _click_case(width: int, height: int):
    image, objects = _case(width, height)
    obj = objects[0]
    return image, obj["extreme_points"], obj["negative_clicks"][0]  # a negative click keeps the crop box


def test_first_segment_reference(benchmark, two_part):
    image, points, _ = _click_case(640, 480)
    benchmark.group = "per click, 640x480"
    benchmark.pedantic(two_part.session, args=(image, points), rounds=ROUNDS, iterations=1, warmup_rounds=1)


def test_corrective_click(benchmark, two_part):
    image, points, click = _click_case(640, 480)
    session = two_part.session(image, points)
    assert session.embedding is not None, "the session does not use the model's parts"

    def undo_last_click() -> None:
        if session.clicks:
            session.undo()

    benchmark.group = "per click, 640x480"
    benchmark.pedantic(session.add_negative, args=click, setup=undo_last_click, rounds=max(ROUNDS, 20),
                       iterations=1, warmup_rounds=1)


def test_click_through_the_whole_model(benchmark, two_part):
    image, points, click = _click_case(640, 480)
    benchmark.group = "per click, 640x480"
    benchmark.pedantic(two_part.segment, args=(image, points), kwargs={"negative_clicks": [click]}, rounds=ROUNDS,
                       iterations=1, warmup_rounds=1)


def test_per_click_latency_interleaved(two_part, record_property, capsys):
    """The first result of a session and a click after it, alternated (``fairs bench`` reports the same)."""
    from fairs_sdk.cli import click_latency

    image, objects = _case(640, 480)
    first, click = click_latency(two_part, image, objects[0], repeat=ROUNDS)
    record_property("first_segment_ms", first)
    record_property("corrective_click_ms", click)
    with capsys.disabled():
        print(f"\nper click, 640x480, {ROUNDS} alternating pairs: first segment {first:.1f} ms, "
              f"each corrective click {click:.1f} ms ({first / click:.1f}x faster)")
