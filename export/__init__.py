"""fairs_sdk.export: ONNX export with parity checks, quantisation and TensorRT engines.

Installed as ``fairs_sdk.export`` (package-dir mapping in pyproject.toml). Modules:
``checkpoint`` (training checkpoint -> model + input spec), ``wrapper`` (the exported
graph), ``onnx_export`` (ONNX file, metadata, parity), ``samples`` (encoded inputs for
parity and calibration), ``quantize`` (fp16 / int8 ONNX), ``compare`` (precision
report), ``trt_build`` (TensorRT engines and int8 calibrator) and ``cli``
(``fairs-export``). All but ``trt_build`` and ``samples`` need the ``train`` extra
(torch, onnx); ``trt_build`` needs the ``gpu`` extra and never imports torch, so the
runtime can build engines with it (:mod:`fairs_sdk.trt` runs them).
"""
