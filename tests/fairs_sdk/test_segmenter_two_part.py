"""Two-part models in the runtime: Segmenter.embed / predict(embedding=) and the parts' loading checks.

The model is a 64 x 64 U2-Netp bundle on fake weights (conftest ``tiny_bundle``): the
combined file ``tiny_u2.onnx`` and, beside it, ``tiny_u2.encoder.onnx`` and
``tiny_u2.decoder.onnx``. The decoder path must give what the combined file gives.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from fairs_sdk import InputError, Segmenter
from fairs_sdk.backends import OnnxRuntimePart, load_part
from fairs_sdk.model_format import DECODER, IMAGE_ENCODER, NotAFairsModelError
from fairs_sdk.segmenter import ImageEmbedding

pytest.importorskip("onnxruntime")

IMAGE = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
POINTS = [(30, 60), (130, 62), (80, 25), (82, 100)]
#: Equal within float32 rounding: the decoder path against the combined graph.
ATOL = 1e-5


def close(a, b) -> float:
    """Largest |difference| of two results' probabilities (inf when their boxes differ)."""
    return float(np.abs(a.probabilities - b.probabilities).max()) if a.box == b.box else float("inf")


def copy_bundle(bundle, folder):
    """The three files of ``bundle`` copied into ``folder``; returns the combined file's new path."""
    for path in (bundle.combined, bundle.image_encoder, bundle.decoder):
        shutil.copy(path, folder / path.name)
    return folder / bundle.combined.name


def set_props(path, **changes):
    """Rewrite entries of an ONNX file's metadata_props (a value of None deletes the entry)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(changes)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {k: v for k, v in props.items() if v is not None})
    onnx.save(model, str(path))


# ---------------------------------------------------------------------------- loading
def test_combined_file_loads_its_parts(two_part_segmenter):
    seg = two_part_segmenter
    assert seg.two_part, "the parts beside the combined file were not loaded"
    assert (seg.image_encoder.part, seg.decoder.part) == (IMAGE_ENCODER, DECODER)
    assert seg.image_encoder.metadata.input_spec == seg.spec == seg.decoder.metadata.input_spec
    assert "two_part=True" in repr(seg)


def test_model_without_parts_is_not_two_part(red_segmenter):
    assert not red_segmenter.two_part and red_segmenter.image_encoder is None and red_segmenter.decoder is None
    prepared = red_segmenter.prepare(np.zeros((50, 50, 3), np.uint8), [(10, 10), (40, 40)])
    with pytest.raises(InputError, match="two-part"):
        red_segmenter.embed(prepared)


def test_parts_true_on_a_model_without_parts_is_an_error(red_model):
    with pytest.raises(NotAFairsModelError, match="names no image encoder and decoder"):
        Segmenter(red_model, parts=True, warmup=False)


def test_parts_false_loads_the_combined_file_alone(tiny_bundle):
    seg = Segmenter(tiny_bundle.combined, parts=False, warmup=False)
    assert not seg.two_part


def test_missing_part_warns_and_loads_the_combined_file_alone(tiny_bundle, tmp_path):
    combined = copy_bundle(tiny_bundle, tmp_path)
    (tmp_path / tiny_bundle.decoder.name).unlink()
    with pytest.warns(RuntimeWarning, match="decoder.onnx.*every corrective click runs the whole model"):
        seg = Segmenter(combined, warmup=False)
    assert not seg.two_part
    with pytest.raises(FileNotFoundError, match="decoder.onnx"):
        Segmenter(combined, parts=True, warmup=False)


def test_stale_part_is_refused(tiny_bundle, tmp_path):
    combined = copy_bundle(tiny_bundle, tmp_path)
    set_props(tmp_path / tiny_bundle.decoder.name, note="exported again")  # same I/O and spec, other bytes
    with pytest.raises(NotAFairsModelError, match=r"decoder.onnx is not the decoder that .* \(its sha256 differs\)"):
        Segmenter(combined, warmup=False)


def test_part_with_another_input_spec_is_refused(tiny_bundle, tmp_path):
    import json

    combined = copy_bundle(tiny_bundle, tmp_path)
    decoder = tmp_path / tiny_bundle.decoder.name
    spec = json.loads(Segmenter(tiny_bundle.combined, parts=False, warmup=False).spec.to_json())
    set_props(decoder, **{"fairs.input_spec": json.dumps({**spec, "relax": 7})})
    with pytest.raises(NotAFairsModelError, match="decoder.onnx has another input spec"):
        Segmenter(combined, warmup=False)


def test_load_part_refuses_the_wrong_part(tiny_bundle):
    with pytest.raises(NotAFairsModelError, match="not the decoder of a two-part FAIRS model.*'image_encoder'"):
        load_part(tiny_bundle.image_encoder, DECODER)
    with pytest.raises(NotAFairsModelError, match="not the image_encoder .* part 'combined'"):
        OnnxRuntimePart(tiny_bundle.combined, IMAGE_ENCODER)
    with pytest.raises(ValueError, match="part must be one of"):
        load_part(tiny_bundle.decoder, "head")


def test_part_shapes_are_read_from_the_graph(two_part_segmenter):
    encoder, decoder = two_part_segmenter.image_encoder, two_part_segmenter.decoder
    assert encoder.input_shapes == {"rgb": (None, 3, 64, 64)}, encoder.input_shapes
    assert encoder.output_shapes["features"][1:] == decoder.input_shapes["features"][1:] == (128, 16, 16)
    assert decoder.input_shapes["guidance"] == (None, 3, 64, 64), "guidance must hold the 3 non-RGB planes"


# ----------------------------------------------------------------- embed and predict
def test_embedding_holds_the_encoder_output_of_the_crop(two_part_segmenter):
    seg = two_part_segmenter
    prepared = seg.prepare(IMAGE, POINTS)
    embedding = seg.embed(prepared)
    assert isinstance(embedding, ImageEmbedding)
    assert embedding.box == prepared.box and embedding.image_shape == (120, 160)
    assert embedding.features.shape == (128, 16, 16) and embedding.saliency.shape == (1, 64, 64)
    assert np.array_equal(embedding.rgb, prepared.input[:3]), "the embedding does not hold its crop's RGB planes"


@pytest.mark.parametrize(
    "clicks",
    [{}, {"negative_clicks": [(80, 60)]}, {"positive_clicks": [(60, 70)], "negative_clicks": [(100, 40), (50, 90)]}],
    ids=["points", "negative", "both"],
)
def test_decoder_path_equals_the_combined_file(two_part_segmenter, clicks):
    seg = two_part_segmenter
    prepared = seg.prepare(IMAGE, POINTS, **clicks)
    (decoded,) = seg.predict([prepared], embedding=seg.embed(prepared))
    combined = seg.segment(IMAGE, POINTS, **clicks)
    diff = close(decoded, combined)
    assert diff <= ATOL, f"encoder + decoder differ from the combined file by {diff:.2e}"


def test_segment_and_segment_many_run_the_combined_file(two_part_segmenter, tiny_bundle):
    alone = Segmenter(tiny_bundle.combined, parts=False, warmup=False)
    objects = [{"extreme_points": POINTS}, {"extreme_points": [(5, 5), (60, 50)], "negative_clicks": [(30, 30)]}]
    for ours, ref in zip(two_part_segmenter.segment_many(IMAGE, objects), alone.segment_many(IMAGE, objects)):
        assert close(ours, ref) <= ATOL, "segment_many with parts differs from the combined file"
    assert close(two_part_segmenter.segment(IMAGE, POINTS), alone.segment(IMAGE, POINTS)) <= ATOL


def test_one_embedding_serves_every_click_in_its_box(two_part_segmenter):
    seg = two_part_segmenter
    embedding = seg.embed(seg.prepare(IMAGE, POINTS))
    objects = [seg.prepare(IMAGE, POINTS, negative_clicks=[(80, 60)]),
               seg.prepare(IMAGE, POINTS, positive_clicks=[(70, 70)])]
    assert all(p.box == embedding.box for p in objects), "test setup: these clicks must keep the crop box"
    results = seg.predict(objects, embedding=embedding)  # one embedding for all: one batched decoder call
    for result, clicks in zip(results, [{"negative_clicks": [(80, 60)]}, {"positive_clicks": [(70, 70)]}]):
        assert close(result, seg.segment(IMAGE, POINTS, **clicks)) <= ATOL, f"decoder result with {clicks}"


def test_predict_with_an_embedding_runs_only_the_decoder(tiny_bundle, monkeypatch):
    seg = Segmenter(tiny_bundle.combined, warmup=False)
    prepared = seg.prepare(IMAGE, POINTS)
    embedding = seg.embed(prepared)
    calls = []
    for name in ("backend", "image_encoder", "decoder"):
        part = getattr(seg, name)
        monkeypatch.setattr(part, "run", lambda *a, _run=part.run, _name=name: calls.append(_name) or _run(*a))
    seg.predict([prepared], embedding=embedding)
    assert calls == ["decoder"], f"predict(embedding=...) ran {calls}"


def test_embedding_of_another_box_is_refused(two_part_segmenter):
    seg = two_part_segmenter
    embedding = seg.embed(seg.prepare(IMAGE, POINTS))
    moved = seg.prepare(IMAGE, POINTS, positive_clicks=[(150, 110)])  # outside the points' box: a new crop box
    assert moved.box != embedding.box, "test setup: the positive click should move the crop box"
    with pytest.raises(InputError, match=r"crop box .* embed\(\) its input again"):
        seg.predict([moved], embedding=embedding)


def test_embedding_of_another_image_is_refused(two_part_segmenter):
    seg = two_part_segmenter
    embedding = seg.embed(seg.prepare(IMAGE, POINTS))
    other = seg.prepare(255 - IMAGE, POINTS)
    with pytest.raises(InputError, match="another image"):
        seg.predict([other], embedding=embedding)


def test_wrong_number_of_embeddings_is_refused(two_part_segmenter):
    seg = two_part_segmenter
    prepared = seg.prepare(IMAGE, POINTS)
    embedding = seg.embed(prepared)
    with pytest.raises(InputError, match="2 embeddings for 1 objects"):
        seg.predict([prepared], embedding=[embedding, embedding])
    with pytest.raises(InputError, match="must be an ImageEmbedding"):
        seg.predict([prepared], embedding=["features"])


def test_embed_refuses_an_input_of_another_model(two_part_segmenter, red_segmenter):
    prepared = red_segmenter.prepare(IMAGE, POINTS)  # (4, 64, 64): rgb, sfg
    with pytest.raises(InputError, match=r"Encoded input of this model \(\(C, S, S\) = \(6, 64, 64\)\)"):
        two_part_segmenter.embed(prepared)


def test_embedding_on_a_model_without_parts_is_refused(two_part_segmenter, tiny_bundle):
    embedding = two_part_segmenter.embed(two_part_segmenter.prepare(IMAGE, POINTS))
    alone = Segmenter(tiny_bundle.combined, parts=False, warmup=False)
    with pytest.raises(InputError, match="has no decoder"):
        alone.predict([alone.prepare(IMAGE, POINTS)], embedding=embedding)


def test_warmup_runs_the_parts_too(tiny_bundle):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about on a complete bundle
        seg = Segmenter(tiny_bundle.combined, warmup=True)
    assert seg.two_part


# ------------------------------------------------------------------------- TensorRT
def test_tensorrt_builds_both_parts_through_the_engine_cache(tiny_bundle, two_part_segmenter, tmp_path):
    """Runs only with TensorRT and a GPU (the gpu extra); CI has neither."""
    pytest.importorskip("tensorrt")
    seg = Segmenter(tiny_bundle.combined, backend="tensorrt", engine_cache=tmp_path)
    assert seg.two_part and seg.image_encoder.name == seg.decoder.name == "tensorrt"
    assert len(list(tmp_path.glob("*.engine"))) == 3, "expected one cached engine per file (combined and two parts)"
    prepared = seg.prepare(IMAGE, POINTS, negative_clicks=[(80, 60)])
    (ours,) = seg.predict([prepared], embedding=seg.embed(prepared))
    ref = two_part_segmenter.segment(IMAGE, POINTS, negative_clicks=[(80, 60)])
    assert close(ours, ref) <= 2e-2, "fp16 two-part engines far from ONNX Runtime"
