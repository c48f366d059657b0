"""Tests of fairs_sdk.Segmenter: loading, geometry, validation, batching, threads, results.

Geometry is checked with "echo" models (conftest): one whose probability is the
image's red channel / 255, so the mask must be exactly where the image is red,
and one that returns the SFG map. The real architecture (tiny_model) checks the
pipeline against a step-by-step computation, batching and threads.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from fairs_sdk import InputError, Result, Segmenter
from fairs_sdk import segmenter as segmenter_module
from fairs_sdk.backends import ModelLoadError, ProviderError, engine_metadata_path, read_engine_metadata
from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_box, crop_resize, paste_back, to_canvas
from fairs_sdk.encoder import Encoded
from fairs_sdk.model_format import ModelMetadata, NotAFairsModelError
from fairs_sdk.sfg import soft_focus_reference
from fairs_sdk.validation import MAX_IMAGE_PIXELS

from model_files import CLICK_SPEC, TINY_SPEC, make_echo_model

RECT = (100, 50, 200, 130)  # x0, y0, x1, y1 half-open
RECT_POINTS = [(100, 90), (199, 90), (150, 50), (150, 129)]  # left, right, top, bottom


def rect_image(color=(255, 0, 0), shape=(240, 320)) -> np.ndarray:
    image = np.zeros(shape + (3,), dtype=np.uint8)
    x0, y0, x1, y1 = RECT
    image[y0:y1, x0:x1] = color
    return image


def rect_mask(grow: int = 0, shape=(240, 320)) -> np.ndarray:
    """The rectangle grown (or shrunk, grow < 0) by ``grow`` pixels on every side."""
    x0, y0, x1, y1 = RECT
    mask = np.zeros(shape, dtype=bool)
    mask[max(y0 - grow, 0) : y1 + grow, max(x0 - grow, 0) : x1 + grow] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1)


# --------------------------------------------------------------------------- loading
def test_missing_default_model_says_none_is_bundled_yet():
    if segmenter_module.DEFAULT_MODEL.is_file():
        pytest.skip("a default model is bundled")
    with pytest.raises(FileNotFoundError, match="no default model is bundled"):
        Segmenter()


def test_bundled_default_model_loads_and_segments(photo):
    if not segmenter_module.DEFAULT_MODEL.is_file():
        pytest.skip(f"no default model bundled yet ({segmenter_module.DEFAULT_MODEL})")
    res = Segmenter().segment(photo, [(94, 270), (450, 378), (298, 214), (433, 433)])
    assert res.mask.shape == photo.shape[:2] and res.area > 0, "default model gave an empty mask on a real object"


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found.*nothere.onnx"):
        Segmenter(tmp_path / "nothere.onnx")


def test_truncated_model_is_a_load_error(red_model, tmp_path):
    data = Path(red_model).read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut.onnx"):
        Segmenter(cut)


def test_garbage_file_is_a_load_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model at all" * 10)
    with pytest.raises(ModelLoadError, match="junk.onnx"):
        Segmenter(junk)


def test_model_without_fairs_metadata_is_refused(tmp_path):
    plain = make_echo_model(tmp_path / "plain.onnx", channel=0, scale=1.0, metadata=False)
    with pytest.raises(NotAFairsModelError, match="not a FAIRS model"):
        Segmenter(plain)


def test_model_with_input_size_other_than_its_graph_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    path = make_echo_model(tmp_path / "mismatch.onnx", channel=0, scale=1.0)
    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == "fairs.input_spec":
            entry.value = InputSpec(input_size=128).to_json()
    onnx.save(proto, str(path))
    with pytest.raises(NotAFairsModelError, match="128"):
        Segmenter(path)


def test_constants_come_from_model_metadata(tmp_path):
    spec = InputSpec(input_size=32, relax=7, threshold=0.3)
    seg = Segmenter(make_echo_model(tmp_path / "m32.onnx", channel=0, scale=1 / 255, spec=spec))
    assert seg.spec == spec, f"segmenter spec {seg.spec} is not the model's {spec}"
    res = seg.segment(rect_image(), RECT_POINTS)
    assert res.box == (100 - 7, 50 - 7, 199 + 8, 129 + 8), f"box {res.box} does not use the model's relax of 7"


def test_three_points_crop_with_the_models_partial_relax(tmp_path):
    spec = InputSpec(input_size=32, relax=7, partial_relax=0.1)
    seg = Segmenter(make_echo_model(tmp_path / "partial.onnx", channel=0, scale=1 / 255, spec=spec))
    assert seg.segment(rect_image(), RECT_POINTS).box == (93, 43, 207, 137), "four points must take relax (7) alone"
    three = seg.segment(rect_image(), RECT_POINTS[:3])  # left, right, top: 99 x 40 px, the bottom side missing
    margin = 7 + 10  # relax + 0.1 of the longer side (99 px), rounded
    assert three.box == (100 - margin, 50 - margin, 199 + margin + 1, 90 + margin + 1), (
        f"box {three.box} does not add partial_relax 0.1 of the points' box to relax 7"
    )


def test_three_points_widen_only_the_corner_sides_when_the_model_says_so(tmp_path):
    spec = InputSpec(input_size=32, relax=7, partial_relax=0.1, partial_relax_sides="corner")
    seg = Segmenter(make_echo_model(tmp_path / "corner.onnx", channel=0, scale=1 / 255, spec=spec))
    assert seg.segment(rect_image(), RECT_POINTS).box == (93, 43, 207, 137), "four points must take relax (7) alone"
    # left, right, bottom: the bottom point touches one side; left (100, 90) is the top-left corner
    points = [(100, 90), (199, 100), (150, 129)]
    margin = 7 + 10  # relax + 0.1 of the longer side (99 px), rounded, on the left and top only
    box = seg.segment(rect_image(), points).box
    assert box == (100 - margin, 90 - margin, 199 + 7 + 1, 129 + 7 + 1), (
        f"box {box} should widen only the left and top sides (the corner point's) by partial_relax"
    )


def test_providers_are_the_ones_in_use(red_segmenter):
    ort = pytest.importorskip("onnxruntime")
    installed = ort.get_available_providers()
    assert red_segmenter.providers, "no providers reported"
    assert set(red_segmenter.providers) <= set(installed), f"{red_segmenter.providers} not all installed"
    assert red_segmenter.providers == tuple(red_segmenter.backend._session.get_providers())


def test_requesting_a_provider_that_is_not_installed_is_an_error(red_model):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider installed here")
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        Segmenter(red_model, providers=["cuda"])


@pytest.fixture
def cuda_claimed(monkeypatch):
    """ONNX Runtime claims a CUDA provider that then does not load (as with missing CUDA libraries)."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider really installed here")
    real_session = ort.InferenceSession

    def session(path, sess_options=None, providers=None):
        return real_session(path, sess_options=sess_options, providers=[p for p in providers if "CUDA" not in p])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)


def test_explicit_provider_that_fails_to_load_is_an_error(red_model, cuda_claimed):
    with pytest.raises(ProviderError, match="failed to load"):
        Segmenter(red_model, providers=["cuda", "cpu"])


def test_auto_providers_warn_when_one_fails_to_load(red_model, cuda_claimed):
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider.*failed to load"):
        seg = Segmenter(red_model, warmup=False)
    assert seg.providers == ("CPUExecutionProvider",), f"reported {seg.providers}, not the providers in use"


def test_tensorrt_provider_gets_a_persistent_engine_cache(red_model, tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT provider really installed here")
    seen = []
    real_session = ort.InferenceSession

    def session(path, sess_options=None, providers=None):
        seen.extend(providers)
        return real_session(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)
    with pytest.warns(RuntimeWarning, match="failed to load"):
        Segmenter(red_model, engine_cache=tmp_path, warmup=False)
    name, options = seen[0]
    assert name == "TensorrtExecutionProvider" and options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path / "onnxruntime"), f"engine cache at {options}"
    assert seen[1:] == ["CPUExecutionProvider"], f"provider order {seen}"


def test_non_contiguous_image_views_are_accepted(red_segmenter):
    bgr = np.ascontiguousarray(rect_image()[..., ::-1])
    view, copy = bgr[..., ::-1], np.ascontiguousarray(bgr[..., ::-1])
    a, b = red_segmenter.segment(view, RECT_POINTS), red_segmenter.segment(copy, RECT_POINTS)
    assert np.array_equal(a.probabilities, b.probabilities), "a channel-reversed view gave another result"


def test_explicit_cpu_provider_is_used(red_model):
    seg = Segmenter(red_model, providers=["CPUExecutionProvider"], warmup=False)
    assert seg.providers == ("CPUExecutionProvider",), f"got {seg.providers}"


def test_unknown_backend_is_refused(red_model):
    with pytest.raises(ValueError, match="unknown backend 'pytorch'"):
        Segmenter(red_model, backend="pytorch")


def test_warmup_runs_the_model_once_at_construction(red_model, monkeypatch):
    calls = []
    real = segmenter_module.load_backend

    def counting(*args, **kwargs):
        backend = real(*args, **kwargs)
        run = backend.run
        backend.run = lambda batch: calls.append(batch.shape) or run(batch)
        return backend

    monkeypatch.setattr(segmenter_module, "load_backend", counting)
    Segmenter(red_model)
    assert len(calls) == 1, f"expected one warm-up run at construction, got {calls}"


def _no_tensorrt() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return
    pytest.skip("tensorrt is installed: this checks the error without it")


def test_engine_metadata_sidecar_is_the_engine_cache_json():
    assert engine_metadata_path("/m/fairs.engine") == Path("/m/fairs.json")


def test_engine_metadata_is_read_from_what_engine_cache_writes(tmp_path):
    from fairs_sdk.trt import EngineCache, EngineKey

    meta = ModelMetadata(TINY_SPEC, "tf_efficientnet_lite0", precision="fp16")
    key = EngineKey("0" * 64, "10.0.0", "Test GPU", (8, 9), "fp16", TINY_SPEC.input_size)
    engine = EngineCache(tmp_path).store(key, b"not really an engine", metadata=meta.to_props())
    assert read_engine_metadata(engine) == meta, "metadata stored by EngineCache not read back"


def test_engine_metadata_may_be_a_bare_props_file(tmp_path):
    meta = ModelMetadata(TINY_SPEC, "resnet18")
    engine = tmp_path / "m.engine"
    (tmp_path / "m.engine.json").write_text(json.dumps(meta.to_props()))
    assert read_engine_metadata(engine) == meta


def test_engine_without_metadata_sidecar_is_not_a_fairs_model(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    with pytest.raises(NotAFairsModelError, match="model.json"):
        Segmenter(engine)


def test_engine_needs_tensorrt(tmp_path):
    _no_tensorrt()
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    engine_metadata_path(engine).write_text(json.dumps({"key": {}, "metadata": ModelMetadata(TINY_SPEC, "x").to_props()}))
    with pytest.raises(ProviderError, match="tensorrt"):
        Segmenter(engine)


def test_tensorrt_backend_on_onnx_needs_tensorrt(red_model, tmp_path):
    _no_tensorrt()
    with pytest.raises(ProviderError, match="tensorrt"):
        Segmenter(red_model, backend="tensorrt", engine_cache=tmp_path)


def test_tensorrt_backend_matches_onnxruntime(tiny_model, tiny_segmenter, photo, tmp_path):
    """Runs only with TensorRT and a GPU (the gpu extra); CI has neither."""
    pytest.importorskip("tensorrt")
    seg = Segmenter(tiny_model, backend="tensorrt", engine_cache=tmp_path)
    assert seg.providers == ("TensorRT",)
    ours, ref = seg.segment(photo, **OBJECTS[0]), tiny_segmenter.segment(photo, **OBJECTS[0])
    np.testing.assert_allclose(ours.probabilities, ref.probabilities, atol=2e-2, err_msg="fp16 engine far from ORT")


# -------------------------------------------------------------------------- geometry
def test_mask_is_where_the_image_is_red(red_segmenter):
    res = red_segmenter.segment(rect_image(), RECT_POINTS)
    assert res.mask.shape == (240, 320) and res.mask.dtype == bool
    assert iou(res.mask, rect_mask()) > 0.95, f"IoU with the red rectangle {iou(res.mask, rect_mask()):.3f}"
    assert not np.any(res.mask & ~rect_mask(grow=3)), "mask reaches more than 3 px beyond the object"
    assert np.all(res.mask[rect_mask(grow=-3)]), "mask misses pixels more than 3 px inside the object"


def test_channel_order_is_rgb(red_segmenter):
    res = red_segmenter.segment(rect_image(color=(0, 0, 255)), RECT_POINTS)
    assert res.area == 0, "a blue object read as red: the runtime swapped RGB/BGR"


def test_gray_image_is_replicated_to_three_channels(red_segmenter):
    gray = rect_image()[:, :, 0].copy()
    res = red_segmenter.segment(gray, RECT_POINTS)
    assert iou(res.mask, rect_mask()) > 0.95, "grayscale image not used as R = G = B"


def test_rgba_image_drops_alpha(red_segmenter):
    rgb = rect_image()
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    a, b = red_segmenter.segment(rgba, RECT_POINTS), red_segmenter.segment(rgb, RECT_POINTS)
    assert np.array_equal(a.probabilities, b.probabilities), "RGBA result differs from its RGB part"


def test_probabilities_are_zero_outside_the_crop_box(red_segmenter):
    image = np.full((240, 320, 3), 255, dtype=np.uint8)
    res = red_segmenter.segment(image, [(10, 10), (60, 40)])
    x0, y0, x1, y1 = res.box
    assert res.box == (-40, -40, 111, 91), f"box {res.box}"
    inside = np.zeros(image.shape[:2], bool)
    inside[max(y0, 0) : y1, max(x0, 0) : x1] = True
    assert np.all(res.probabilities[~inside] == 0), "non-zero probability outside the crop box"
    assert np.all(res.probabilities[5:85, 5:105] > 0.99), "the crop's red pixels lost"


def test_positive_clicks_enlarge_the_crop_box(red_segmenter):
    res = red_segmenter.segment(rect_image(), RECT_POINTS, positive_clicks=[(250, 200)])
    assert res.box == (50, 0, 301, 251), f"box {res.box} does not cover the positive click + relax"


def test_negative_clicks_do_not_enlarge_the_crop_box(red_segmenter):
    res = red_segmenter.segment(rect_image(), RECT_POINTS, negative_clicks=[(300, 220)])
    assert res.box == (50, 0, 250, 180), f"box {res.box} moved for a negative click"


def test_threshold_is_applied_to_probabilities(red_segmenter):
    image = rect_image(color=(200, 0, 0))  # 200 / 255 = 0.78
    low = red_segmenter.segment(image, RECT_POINTS, threshold=0.5)
    high = red_segmenter.segment(image, RECT_POINTS, threshold=0.9)
    assert low.area > 0.9 * rect_mask().sum() and high.area == 0, f"areas {low.area}, {high.area}"


def test_sfg_peaks_at_the_extreme_points_in_image_coordinates(sfg_segmenter):
    points = [(60, 110), (260, 120), (170, 90), (150, 140)]
    res = sfg_segmenter.segment(np.zeros((240, 320, 3), np.uint8), points)
    for x, y in points:
        assert res.probabilities[y, x] > 0.9, f"SFG at extreme point ({x}, {y}) is {res.probabilities[y, x]:.3f}"
    assert res.probabilities[60, 110] < 0.1, "SFG high at a transposed point: x and y swapped"


def test_negative_click_suppresses_the_sfg_there(sfg_segmenter):
    points = [(60, 110), (260, 120), (170, 90), (150, 140)]
    image = np.zeros((240, 320, 3), np.uint8)
    before = sfg_segmenter.segment(image, points).probabilities[115, 160]
    after = sfg_segmenter.segment(image, points, negative_clicks=[(160, 115)]).probabilities[115, 160]
    assert before > 0.9 and after < 0.2, f"SFG at the negative click {before:.3f} -> {after:.3f}"


# ------------------------------------------------------- declared input channels
SCENE = np.zeros((240, 320, 3), np.uint8)
SCENE_POINTS = [(60, 110), (260, 120), (170, 90), (150, 140)]  # crop box (10, 40, 311, 191)
FAR_NEGATIVE = (20, 50)  # in the crop box, outside the extreme points' box: the SFG is 0 there


def test_negative_click_far_from_the_extreme_points_reaches_the_model_in_its_map(click_segmenters):
    x, y = FAR_NEGATIVE
    neg_plane, sfg_plane = click_segmenters["negative_clicks"], click_segmenters["sfg"]
    before = neg_plane.segment(SCENE, SCENE_POINTS).probabilities
    after = neg_plane.segment(SCENE, SCENE_POINTS, negative_clicks=[FAR_NEGATIVE]).probabilities
    assert before.max() == 0.0, "negative_clicks plane is not empty without negative clicks"
    assert after[y, x] > 0.9, f"negative_clicks plane at the click is {after[y, x]:.3f}, expected its peak"
    sfg_before = sfg_plane.segment(SCENE, SCENE_POINTS).probabilities
    sfg_after = sfg_plane.segment(SCENE, SCENE_POINTS, negative_clicks=[FAR_NEGATIVE]).probabilities
    change = np.abs(sfg_after - sfg_before).max()
    assert change < 1e-3, f"SPEC 1b: this click should leave the SFG as it was, it moved by {change:.4f}"


def test_positive_click_map_peaks_at_the_positive_click_only(click_segmenters):
    pos, neg = (200, 130), (100, 100)
    res = {name: click_segmenters[name].segment(SCENE, SCENE_POINTS, [pos], [neg]).probabilities
           for name in ("positive_clicks", "negative_clicks")}
    assert res["positive_clicks"][pos[1], pos[0]] > 0.9 and res["positive_clicks"][neg[1], neg[0]] < 0.01, \
        "positive_clicks plane is not G_pos of the positive click"
    assert res["negative_clicks"][neg[1], neg[0]] > 0.9 and res["negative_clicks"][pos[1], pos[0]] < 0.01, \
        "negative_clicks plane is not G_neg of the negative click"


def test_channel_order_follows_the_metadata(click_segmenters, tmp_path):
    order = ("negative_clicks", "rgb", "positive_clicks", "sfg")  # planes: neg, r, g, b, pos, sfg
    spec = InputSpec(input_size=64, input_channels=order)
    image = rect_image()
    clicks = dict(positive_clicks=[(180, 100)], negative_clicks=[(120, 60)])
    for index, name in [(0, "negative_clicks"), (1, "rgb"), (4, "positive_clicks"), (5, "sfg")]:
        scale = 1 / 255 if name == "rgb" else 1.0
        seg = Segmenter(make_echo_model(tmp_path / f"plane{index}.onnx", index, scale, spec=spec), warmup=False)
        ours = seg.segment(image, RECT_POINTS, **clicks).probabilities
        expected = click_segmenters[name].segment(image, RECT_POINTS, **clicks).probabilities
        assert np.array_equal(ours, expected), f"plane {index} of {list(order)} is not the {name} channel"


def test_old_four_channel_model_segments_as_rgb_sfg(sfg_segmenter, tmp_path):
    seg = Segmenter(make_echo_model(tmp_path / "old.onnx", channel=3, scale=1.0, legacy_metadata=True))
    assert seg.spec.input_channels == ("rgb", "sfg") and seg.spec.channel_count == 4, f"read as {seg.spec}"
    args = (SCENE, SCENE_POINTS, [(200, 130)], [FAR_NEGATIVE])
    assert np.array_equal(seg.segment(*args).probabilities, sfg_segmenter.segment(*args).probabilities), \
        "an old model without input_channels does not get the SFG as its fourth plane"


def test_channel_count_mismatch_between_metadata_and_graph_is_refused(tmp_path):
    path = make_echo_model(tmp_path / "mismatch.onnx", "sfg", 1.0, spec=CLICK_SPEC, graph_channels=4)
    with pytest.raises(NotAFairsModelError, match="takes 4 channels.*declares.*6"):
        Segmenter(path)


def test_segment_many_on_a_click_model_equals_one_call_per_object(click_segmenters):
    seg = click_segmenters["negative_clicks"]
    image = rect_image(shape=(480, 854))
    many = seg.segment_many(image, OBJECTS)
    for i, (obj, res) in enumerate(zip(OBJECTS, many)):
        assert_same_result(res, seg.segment(image, **obj), f"object {i}", atol=0)
    assert many[2].probabilities[350, 600] > 0.9, "object 2's negative click missing from its negative_clicks plane"


def test_prepare_returns_the_declared_channels(click_segmenters):
    seg = click_segmenters["sfg"]
    prepared = seg.prepare(SCENE, SCENE_POINTS, negative_clicks=[FAR_NEGATIVE])
    assert isinstance(prepared, Encoded) and segmenter_module.Prepared is Encoded
    assert prepared.input.shape == (6, 64, 64) and prepared.input.dtype == np.float32, prepared.input.shape
    assert prepared.box == (10, 40, 311, 191) and prepared.image_shape == (240, 320)


def test_run_refuses_inputs_of_another_channel_count(click_segmenters):
    with pytest.raises(InputError, match=r"\(N, 6, 64, 64\).*negative_clicks.*got \(1, 4, 64, 64\)"):
        click_segmenters["sfg"].run(np.zeros((1, 4, 64, 64), np.float32))


def test_predict_equals_segment(click_segmenters):
    seg = click_segmenters["negative_clicks"]
    prepared = [seg.prepare(SCENE, SCENE_POINTS, negative_clicks=[FAR_NEGATIVE]), seg.prepare(SCENE, [(5, 5), (50, 60)])]
    results = seg.predict(prepared, threshold=0.3)
    assert_same_result(results[0], seg.segment(SCENE, SCENE_POINTS, negative_clicks=[FAR_NEGATIVE], threshold=0.3),
                       "predict", atol=0)
    assert seg.predict([]) == []


@pytest.fixture
def check_counts(monkeypatch):
    """Counts the calls of each validation function the segmenter makes."""
    counts = {"check_image": 0, "check_points": 0, "check_threshold": 0}
    for name in counts:
        real = getattr(segmenter_module, name)

        def counting(*args, _real=real, _name=name, **kwargs):
            counts[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(segmenter_module, name, counting)
    return counts


def test_segment_checks_each_value_once(red_segmenter, check_counts):
    red_segmenter.segment(rect_image(), RECT_POINTS, [(150, 90)], [(20, 20)], threshold=0.4)
    assert check_counts == {"check_image": 1, "check_points": 3, "check_threshold": 1}, check_counts


def test_segment_many_checks_each_value_once(red_segmenter, check_counts):
    red_segmenter.segment_many(rect_image(shape=(480, 854)), OBJECTS, threshold=0.4)
    expected = {"check_image": 1, "check_points": 3 * len(OBJECTS), "check_threshold": 1}
    assert check_counts == expected, f"{check_counts} != {expected}"


def test_pipeline_matches_step_by_step_computation(tiny_segmenter, tiny_model, photo):
    ort = pytest.importorskip("onnxruntime")
    ep = np.array([(120.0, 200.0), (420.0, 230.0), (260.0, 90.0), (280.0, 400.0)])
    pos, neg = np.array([(300.0, 250.0)]), np.array([(200.0, 150.0)])
    res = tiny_segmenter.segment(photo, ep, positive_clicks=pos, negative_clicks=neg)

    spec, s = TINY_SPEC, TINY_SPEC.input_size
    box = crop_box(np.concatenate([ep, pos]), spec.relax)
    rgb = crop_resize(photo, box, s).astype(np.float32).transpose(2, 0, 1)
    sfg = soft_focus_reference((s, s), to_canvas(ep, box, s), to_canvas(pos, box, s), to_canvas(neg, box, s),
                               spec.beta, spec.kappa, spec.sigma)
    x = np.concatenate([rgb, sfg[None]])[None]
    out = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    expected = paste_back(out[0, 0], box, photo.shape)
    assert res.box == box, f"box {res.box} != {box}"
    np.testing.assert_allclose(res.probabilities, expected, atol=1e-4, err_msg="probabilities differ from the steps")


def test_result_types_and_ranges(tiny_segmenter, photo):
    res = tiny_segmenter.segment(photo, [(100, 100), (300, 250)])
    assert isinstance(res, Result)
    assert res.probabilities.shape == photo.shape[:2] and res.probabilities.dtype == np.float32
    assert res.mask.shape == photo.shape[:2] and res.mask.dtype == bool
    assert 0.0 <= res.probabilities.min() and res.probabilities.max() <= 1.0, "probabilities outside [0, 1]"
    assert all(isinstance(v, int) for v in res.box), f"box {res.box} is not ints"


# ------------------------------------------------------------------------ validation
HUGE = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (12_000, 9_000, 3))  # 108 MP, no memory


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((4, 10, 10, 3), np.uint8), "2-D .* or 3-D"),
        (np.zeros(100, np.uint8), "2-D .* or 3-D"),
        (np.zeros((100, 100, 3), np.float32), "uint8"),
        (np.zeros((0, 100, 3), np.uint8), "empty"),
        (np.zeros((100, 100, 5), np.uint8), "channels"),
        (HUGE, "too large"),
        ([[1, 2], [3, 4]], "NumPy array"),
    ],
    ids=["4d", "1d", "float", "empty", "5-channels", "huge", "list"],
)
def test_bad_image_is_named(red_segmenter, image, message):
    with pytest.raises(InputError, match=message):
        red_segmenter.segment(image, [(1, 1), (5, 5)])


def test_image_size_limit_is_documented_value():
    assert MAX_IMAGE_PIXELS == 100_000_000, "the README documents a 100-megapixel limit"


@pytest.mark.parametrize(
    "points, message",
    [
        ([(10, 10), (np.nan, 20)], "extreme_points has NaN"),
        ([(10, 10), (400, 20)], r"extreme_points\[1\] = \(400, 20\) is outside the 320 x 240 image"),
        ([(10, 10), (20, -3)], "outside"),
        ([(10, 10)], "at least 2"),
        ([], "at least 2"),
        ([(30, 40), (30, 40), (30, 40)], "all the same point"),
        ([(1, 2, 3), (4, 5, 6)], r"shape \(n, 2\)"),
        ("left", "extreme_points"),
    ],
    ids=["nan", "outside-x", "outside-y", "one", "none", "same", "3d-points", "string"],
)
def test_bad_extreme_points_are_named(red_segmenter, points, message):
    with pytest.raises(InputError, match=message):
        red_segmenter.segment(rect_image(), points)


def test_bad_clicks_are_named(red_segmenter):
    with pytest.raises(InputError, match="negative_clicks.*outside"):
        red_segmenter.segment(rect_image(), RECT_POINTS, negative_clicks=[(10, 1000)])
    with pytest.raises(InputError, match="positive_clicks has NaN"):
        red_segmenter.segment(rect_image(), RECT_POINTS, positive_clicks=[(np.inf, 1)])


def test_points_on_the_image_border_are_accepted(red_segmenter):
    res = red_segmenter.segment(rect_image(), [(-0.5, -0.5), (319.5, 239.5)])
    assert res.mask.shape == (240, 320)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "high"])
def test_bad_threshold_is_named(red_segmenter, threshold):
    with pytest.raises(InputError, match="threshold"):
        red_segmenter.segment(rect_image(), RECT_POINTS, threshold=threshold)


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_instance_stays_usable_after_errors(red_segmenter):
    before = red_segmenter.segment(rect_image(), RECT_POINTS)
    for bad in ([(1, 1)], [(np.nan, 1), (2, 2)], [(1000, 1), (2, 2)]):
        with pytest.raises(InputError):
            red_segmenter.segment(rect_image(), bad)
    with pytest.raises(InputError):
        red_segmenter.segment(np.zeros((5, 5), np.float64), RECT_POINTS)
    after = red_segmenter.segment(rect_image(), RECT_POINTS)
    assert np.array_equal(before.probabilities, after.probabilities), "results changed after errors"


# ------------------------------------------------------------------------- batching
OBJECTS = [
    {"extreme_points": [(120, 200), (420, 230), (260, 90), (280, 400)]},
    {"extreme_points": [(20, 30), (200, 60)], "positive_clicks": [(100, 50)]},
    {"extreme_points": [(500, 300), (700, 420), (600, 250)], "negative_clicks": [(600, 350)]},
    {"extreme_points": [(0, 0), (853, 479)]},
    {"extreme_points": [(300, 300), (340, 330)], "positive_clicks": [(320, 310)], "negative_clicks": [(305, 305)]},
    {"extreme_points": [(800, 10), (850, 60)]},
    {"extreme_points": [(50, 400), (250, 470), (150, 380), (140, 479)]},
    {"extreme_points": [(400, 200), (450, 220)], "positive_clicks": [(600, 100)]},
]


def assert_same_result(a: Result, b: Result, what: str, atol: float = 1e-5) -> None:
    assert a.box == b.box, f"{what}: boxes {a.box} != {b.box}"
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=atol, err_msg=f"{what}: probabilities differ")
    clear = np.abs(a.probabilities - 0.5) > 1e-4  # not on the threshold within float noise
    assert np.array_equal(a.mask[clear], b.mask[clear]), f"{what}: masks differ"


def test_segment_many_equals_one_call_per_object(tiny_segmenter, photo):
    many = tiny_segmenter.segment_many(photo, OBJECTS)
    assert len(many) == len(OBJECTS)
    for i, (obj, res) in enumerate(zip(OBJECTS, many)):
        assert_same_result(res, tiny_segmenter.segment(photo, **obj), f"object {i}")


def test_segment_many_of_batch_size_objects_is_one_backend_call(red_model, monkeypatch):
    seg = Segmenter(red_model)
    sizes = []
    run = seg.backend.run
    monkeypatch.setattr(seg.backend, "run", lambda batch: sizes.append(len(batch)) or run(batch))
    seg.segment_many(rect_image(shape=(480, 854)), OBJECTS, batch_size=8)
    assert sizes == [8], f"backend batches {sizes}, expected one batch of 8"


def test_segment_many_splits_into_max_batch(red_model, monkeypatch):
    seg = Segmenter(red_model, max_batch=3)
    sizes = []
    run = seg.backend.run
    monkeypatch.setattr(seg.backend, "run", lambda batch: sizes.append(len(batch)) or run(batch))
    results = seg.segment_many(rect_image(shape=(480, 854)), OBJECTS, batch_size=8)
    assert sizes == [3, 3, 2] and len(results) == 8, f"batches {sizes}, {len(results)} results"


def test_segment_many_error_names_the_object(red_segmenter):
    objects = [OBJECTS[0], {"extreme_points": [(5, 5)]}]
    with pytest.raises(InputError, match=r"objects\[1\].*at least 2"):
        red_segmenter.segment_many(rect_image(shape=(480, 854)), objects)


def test_segment_many_refuses_unknown_keys(red_segmenter):
    with pytest.raises(InputError, match=r"objects\[0\] has unknown keys \['clicks'\]"):
        red_segmenter.segment_many(rect_image(), [{"extreme_points": RECT_POINTS, "clicks": [(1, 1)]}])


def test_segment_many_of_nothing_is_empty(red_segmenter):
    assert red_segmenter.segment_many(rect_image(), []) == []


# -------------------------------------------------------------------------- threads
def test_eight_threads_give_the_same_masks_as_one(tiny_segmenter, photo):
    sequential = [tiny_segmenter.segment(photo, **obj) for obj in OBJECTS]
    results: dict[tuple[int, int], Result] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for k in range(3):
                i = (t + k) % len(OBJECTS)
                results[(t, i)] = tiny_segmenter.segment(photo, **OBJECTS[i])
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, f"threads raised {errors!r}"
    assert len(results) == 24, f"{len(results)} of 24 results"
    for (t, i), res in results.items():
        assert_same_result(res, sequential[i], f"thread {t}, object {i}", atol=0)


# -------------------------------------------------------------------------- results
def test_rle_matches_pycocotools(tiny_segmenter, photo):
    mask_api = pytest.importorskip("pycocotools.mask")
    res = tiny_segmenter.segment(photo, **OBJECTS[0])
    ours = res.to_rle()
    theirs = mask_api.encode(np.asfortranarray(res.mask.astype(np.uint8)))
    assert ours["size"] == list(theirs["size"]) and ours["counts"] == theirs["counts"].decode(), "RLE differs"
    decoded = mask_api.decode({"size": ours["size"], "counts": ours["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), res.mask), "RLE does not decode to the mask"


@pytest.mark.parametrize("seed", range(5))
def test_rle_matches_pycocotools_on_random_masks(seed):
    mask_api = pytest.importorskip("pycocotools.mask")
    from fairs_sdk.result import mask_to_rle

    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 60, size=2)
    mask = rng.random((h, w)) < [0.0, 1.0, 0.1, 0.5, 0.9][seed]
    theirs = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
    assert mask_to_rle(mask)["counts"] == theirs, f"seed {seed}: RLE differs from pycocotools"


def test_rle_is_json_serialisable(red_segmenter):
    rle = red_segmenter.segment(rect_image(), RECT_POINTS).to_rle()
    assert json.loads(json.dumps(rle)) == rle


def test_polygons_outline_the_mask(red_segmenter):
    res = red_segmenter.segment(rect_image(), RECT_POINTS)
    polygons = res.to_polygons()
    assert len(polygons) == 1 and polygons[0].shape[1] == 2, f"{len(polygons)} polygons"
    filled = np.zeros(res.mask.shape, np.uint8)
    cv2.fillPoly(filled, polygons, 1)
    assert iou(filled.astype(bool), res.mask) > 0.99, "filled polygon does not reproduce the mask"


def test_polygons_are_x_y():
    mask = np.zeros((50, 100), bool)
    mask[10:20, 60:90] = True
    (poly,) = Result(mask, mask.astype(np.float32), (0, 0, 100, 50)).to_polygons()
    assert poly[:, 0].min() == 60 and poly[:, 0].max() == 89, f"x range {poly[:, 0].min()}..{poly[:, 0].max()}"
    assert poly[:, 1].min() == 10 and poly[:, 1].max() == 19, f"y range {poly[:, 1].min()}..{poly[:, 1].max()}"


def test_empty_mask_has_no_polygons_and_valid_rle():
    mask = np.zeros((8, 9), bool)
    res = Result(mask, mask.astype(np.float32), (0, 0, 9, 8))
    assert res.to_polygons() == [] and res.to_rle() == {"size": [8, 9], "counts": "X2"}


def test_sfg_runs_single_threaded_when_the_model_is_on_cpu(red_model):
    seg = Segmenter(red_model, providers=["cpu"], warmup=False)
    assert seg.sfg_threads == 1, f"CPU-only model: SFG should leave the cores to the engine, got {seg.sfg_threads}"


def test_sfg_threads_setting_is_restored_after_a_call(red_segmenter):
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    red_segmenter.segment(rect_image(), RECT_POINTS)
    assert numba.get_num_threads() == before, "segment() left Numba's thread count changed"
