"""fairs_sdk.training: the PyTorch FAIRS model, data, simulated user input and training.

Installed as ``fairs_sdk.training`` (package-dir mapping in pyproject.toml); needs
the ``train`` extra. Importing it imports torch; ``import fairs_sdk`` does not.

Modules: ``backbones`` (dilated timm backbones, 4-channel stem, local ImageNet
weights), ``heads`` (DANet dual attention, DEXTR's PSP), ``model`` (FAIRSNet,
ModelConfig, InputNormalizer), ``simulate`` (SPEC section 4 clicks, NumPy only),
``data`` (instance sources and samples), ``losses``, ``config`` (TrainConfig,
YAML/JSON, learning-rate schedule), ``train`` (Trainer, DDP, checkpoints),
``evaluate`` (metrics and reports), ``speed`` and ``cli`` (``fairs-train``).
"""
