"""fairs_sdk.export: ONNX export with parity checks, quantisation and TensorRT engines.

Installed as ``fairs_sdk.export`` (package-dir mapping in pyproject.toml); needs
the ``train`` extra (torch, onnx) and, for engines, the ``gpu`` extra.
"""
