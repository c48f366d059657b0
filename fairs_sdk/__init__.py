"""fairs_sdk: FAIRS object segmentation from extreme points and corrective clicks.

The runtime never imports torch; training and export live in the subpackages
``fairs_sdk.training`` and ``fairs_sdk.export`` and are imported on demand.
ONNX Runtime is imported when the first :class:`Segmenter` is built.
"""

from fairs_sdk import sfg
from fairs_sdk.result import Result
from fairs_sdk.segmenter import Segmenter
from fairs_sdk.session import InteractiveSession
from fairs_sdk.sfg import soft_focus, soft_focus_reference
from fairs_sdk.validation import InputError

__version__ = "0.1.0"

__all__ = [
    "Segmenter",
    "Result",
    "InteractiveSession",
    "InputError",
    "sfg",
    "soft_focus",
    "soft_focus_reference",
    "__version__",
]
