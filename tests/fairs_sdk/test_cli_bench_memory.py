"""``fairs bench`` keeps no object's result after timing it: memory flat in ``--objects`` (issue 13, item 3)."""

from __future__ import annotations

import weakref

import pytest

from fairs_sdk import Segmenter
from fairs_sdk.cli import main


def test_bench_streams_segment_many_and_drops_each_result(red_model, monkeypatch, capsys) -> None:
    refs: list[weakref.ref] = []
    most_alive = 0
    stream = Segmenter.iter_segment_many

    def tracked(self, *args, **kwargs):
        nonlocal most_alive
        for result in stream(self, *args, **kwargs):
            refs.append(weakref.ref(result))
            most_alive = max(most_alive, sum(ref() is not None for ref in refs))
            yield result
            del result

    def whole_list(self, *args, **kwargs):
        pytest.fail("fairs bench must time segment_many as a stream, not build every result at once")

    monkeypatch.setattr(Segmenter, "iter_segment_many", tracked)
    monkeypatch.setattr(Segmenter, "segment_many", whole_list)
    status = main(["bench", "--model", str(red_model), "--size", "160x120", "--repeat", "2", "--objects", "30"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert len(refs) >= 30, f"bench streamed {len(refs)} results for 30 objects"
    assert most_alive <= 1, f"{most_alive} results were alive at once; bench must drop each after use"
    assert "segment_many, 30 objects (streamed)" in out, out
