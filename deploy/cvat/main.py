"""nuclio handler: CVAT's interactor calls FAIRS here.

The request and the answer are CVAT's interactor contract, handled by
:func:`fairs_sdk.serve.cvat.handle`, the same function as ``fairs serve``'s
``POST /v1/cvat``. ``$FAIRS_MODEL`` names a model file in the image (default: the
model bundled with the package). A bad request gets a 4xx JSON ``{"error": ...}``.
"""

import json
import os

from fairs_sdk import InputError, Segmenter
from fairs_sdk.serve import Limits, ServeError
from fairs_sdk.serve.cvat import handle
from fairs_sdk.serve.errors import BadRequest
from fairs_sdk.serve.service import Service


def init_context(context):
    context.logger.info("FAIRS: loading the model")
    limits = Limits()
    segmenter = Segmenter(os.environ.get("FAIRS_MODEL") or None, max_image_pixels=limits.max_image_pixels)
    context.user_data.service = Service(segmenter, limits)
    context.logger.info(f"FAIRS: ready, {segmenter!r}")


def _reply(context, body, status_code):
    return context.Response(body=json.dumps(body), headers={}, content_type="application/json",
                            status_code=status_code)


def handler(context, event):
    try:
        body = event.body
        if isinstance(body, (bytes, bytearray, str)):  # nuclio parses JSON only when the content type says so
            try:
                body = json.loads(body)
            except (ValueError, RecursionError) as err:
                raise BadRequest(f"the body is not valid JSON: {str(err)[:200]}") from None
        answer = handle(body, context.user_data.service)
    except ServeError as err:
        context.logger.warn(f"FAIRS: refused: {err.message}")
        return _reply(context, {"error": err.message}, err.status)
    except InputError as err:
        context.logger.warn(f"FAIRS: refused: {err}")
        return _reply(context, {"error": str(err)}, 400)
    return _reply(context, answer, 200)
