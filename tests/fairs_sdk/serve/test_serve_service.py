"""``Service``: clicks that keep the crop reuse the image encoder's output and give ``segment``'s result."""

from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import COFFEE_POINTS, TABLE

from fairs_sdk.serve import Limits
from fairs_sdk.serve.images import StoredImage
from fairs_sdk.serve.service import Service


def _same(a, b) -> bool:
    return a.box == b.box and np.array_equal(a.mask, b.mask) and np.array_equal(a.probabilities, b.probabilities)


@pytest.fixture
def stored(coffee) -> StoredImage:
    return StoredImage("coffee", coffee)


def test_negative_clicks_run_the_encoder_once_and_equal_segment(serve_segmenter, coffee, stored):
    assert serve_segmenter.two_part, "the bundled model is expected to be two-part"
    service = Service(serve_segmenter)
    clicks = [TABLE, (500, 60), (120, 360)]
    for k in range(len(clicks) + 1):
        got = service.segment(stored, COFFEE_POINTS, negative_clicks=clicks[:k])
        want = serve_segmenter.segment(coffee, COFFEE_POINTS, negative_clicks=clicks[:k])
        assert _same(got, want), f"after {k} negative clicks the result differs from Segmenter.segment"
    assert service.encoder_runs == 1, f"the image encoder ran {service.encoder_runs} times for one crop"


def test_positive_click_outside_the_box_encodes_the_new_crop(serve_segmenter, coffee, stored):
    service = Service(serve_segmenter)
    service.segment(stored, COFFEE_POINTS)
    outside = (30, 380)  # left of and below the extreme points: the crop box grows
    got = service.segment(stored, COFFEE_POINTS, positive_clicks=[outside])
    assert service.encoder_runs == 2, "a moved crop box must be encoded again"
    assert _same(got, serve_segmenter.segment(coffee, COFFEE_POINTS, positive_clicks=[outside]))


def test_embeddings_are_bounded_and_keyed_by_image(serve_segmenter, coffee):
    service = Service(serve_segmenter, Limits(cache_embeddings=1))
    a, b = StoredImage("a", coffee), StoredImage("b", coffee[:, ::-1].copy())
    for image in (a, b, a):
        service.segment(image, COFFEE_POINTS)
    assert service.encoder_runs == 3, "with room for one embedding, alternating images must re-encode"
    flipped = service.segment(b, COFFEE_POINTS)
    assert _same(flipped, serve_segmenter.segment(b.rgb, COFFEE_POINTS)), "an embedding of another image was used"


def test_bad_threshold_is_refused_before_the_encoder_runs(serve_segmenter, stored):
    from fairs_sdk import InputError

    service = Service(serve_segmenter)
    with pytest.raises(InputError, match="threshold"):
        service.segment(stored, COFFEE_POINTS, threshold=1.5)
    assert service.encoder_runs == 0


def test_model_without_parts_runs_segment(red_segmenter):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    service = Service(red_segmenter)
    got = service.segment(StoredImage("x", image), [(5, 5), (40, 30)], negative_clicks=[(20, 20)])
    assert _same(got, red_segmenter.segment(image, [(5, 5), (40, 30)], negative_clicks=[(20, 20)]))
    assert service.encoder_runs == 0
