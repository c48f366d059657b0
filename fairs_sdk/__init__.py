"""fairs_sdk: FAIRS object segmentation from extreme points and corrective clicks.

The runtime never imports torch; training and export live in the subpackages
``fairs_sdk.training`` and ``fairs_sdk.export`` and are imported on demand.
"""

from fairs_sdk import sfg
from fairs_sdk.sfg import soft_focus, soft_focus_reference

__version__ = "0.1.0"

__all__ = ["sfg", "soft_focus", "soft_focus_reference", "__version__"]
