"""``fairs annotate`` killed (SIGKILL) mid-run, then ``--resume``: same bytes as an uninterrupted run.

Real data and the bundled model: 20 DAVIS-345 images, one object each (extreme
points from the ground-truth mask), in a child process that is killed once its
journal holds a few finished images.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from fairs_sdk.annotate import SegmenterOptions, annotate_file
from fairs_sdk.segmenter import DEFAULT_MODEL

from model_files import DATA

DAVIS = DATA / "dev" / "davis345"
IMAGES = 20


def _davis_coco(path, count: int) -> None:
    """COCO file of the first ``count`` DAVIS images, each object's left/right/top/bottom-most mask pixels."""
    images, annotations = [], []
    for k, mask_path in enumerate(sorted((DAVIS / "masks").glob("*.png"))[:count]):
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
        ys, xs = np.nonzero(mask)
        points = [[int(xs[i]), int(ys[i])] for i in (xs.argmin(), xs.argmax(), ys.argmin(), ys.argmax())]
        images.append({"id": k, "file_name": mask_path.stem + ".jpg", "width": mask.shape[1], "height": mask.shape[0]})
        annotations.append({"id": 1000 + k, "image_id": k, "extreme_points": points})
    path.write_text(json.dumps({"images": images, "annotations": annotations}))


def _finished_images(journal) -> int:
    """Complete image lines in the journal (the header and a torn tail not counted)."""
    if not journal.exists():
        return 0
    data = journal.read_bytes()
    return max(0, data[: data.rfind(b"\n") + 1].count(b"\n") - 1)


@pytest.mark.slow
def test_kill_then_resume_gives_the_uninterrupted_output(tmp_path):
    if not (DAVIS / "images").is_dir() or not DEFAULT_MODEL.is_file():
        pytest.skip(f"needs the DAVIS-345 images at {DAVIS} and the bundled model")
    coco, out = tmp_path / "davis.json", tmp_path / "out.json"
    journal = tmp_path / "out.json.journal"
    _davis_coco(coco, IMAGES)
    command = [sys.executable, "-m", "fairs_sdk.cli", "annotate", str(coco), "--images", str(DAVIS / "images"),
               "-o", str(out), "--threads", "1", "--no-progress"]

    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _finished_images(journal) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if child.poll() is not None:
        pytest.fail(f"the run ended before it could be killed: {child.communicate()}")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done = _finished_images(journal)
    assert not out.exists(), "a killed run must not leave an output file"
    assert 3 <= done < IMAGES, f"{done} images journaled at the kill: the test did not kill mid-run"

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    match = re.search(r"(\d+) objects computed .* (\d+) from the journal", resumed.stdout)
    assert match, f"no summary line in {resumed.stdout!r}"
    assert (int(match[1]), int(match[2])) == (IMAGES - done, done), \
        f"resume computed {match[1]} objects and took {match[2]} from the journal; {done} were journaled"

    reference = tmp_path / "reference.json"
    annotate_file(coco, DAVIS / "images", reference, SegmenterOptions(threads=1), progress=False)
    assert out.read_bytes() == reference.read_bytes(), "killed + resumed output differs from an uninterrupted run"
