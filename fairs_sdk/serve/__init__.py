"""``fairs serve``: the Segmenter behind HTTP, a CVAT interactor, and a page to click on.

Modules, one job each:

- :mod:`~fairs_sdk.serve.limits`: the server's limits (upload bytes, image pixels,
  cache size, concurrency), one place.
- :mod:`~fairs_sdk.serve.errors`: errors that become 4xx / 503 JSON responses.
- :mod:`~fairs_sdk.serve.images`: uploaded bytes -> (H, W, 3) uint8 RGB, and the
  bounded LRU store of uploaded images.
- :mod:`~fairs_sdk.serve.service`: the Segmenter with the uploads and the image
  encoder's outputs kept for later clicks (a click that keeps the crop runs only the
  decoder of a two-part model).
- :mod:`~fairs_sdk.serve.payload`: a :class:`~fairs_sdk.Result` as JSON (box, COCO
  RLE, polygons, optional mask PNG).
- :mod:`~fairs_sdk.serve.cvat`: CVAT's interactor contract, shared by ``POST /v1/cvat``
  and the nuclio function in ``deploy/cvat/``.
- :mod:`~fairs_sdk.serve.app`: the ASGI app (FastAPI); :mod:`~fairs_sdk.serve.cli`: the
  ``fairs serve`` command.

Only :mod:`~fairs_sdk.serve.app` and :mod:`~fairs_sdk.serve.cli`'s command import
FastAPI and uvicorn (the ``serve`` extra); the rest needs the runtime and Pillow only,
so that the nuclio function runs without a web framework.
"""

from fairs_sdk.serve.errors import ServeError
from fairs_sdk.serve.limits import Limits

__all__ = ["Limits", "ServeError"]
