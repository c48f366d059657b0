"""fairs_sdk.training: the PyTorch FAIRS model, data, simulated user input and training.

Installed as ``fairs_sdk.training`` (package-dir mapping in pyproject.toml); needs
the ``train`` extra. Importing it imports torch; ``import fairs_sdk`` does not.

Modules: ``channels`` (where each declared input channel sits), ``backbones``
(dilated timm backbones whose stem takes the declared channels, local ImageNet
weights), ``heads`` (DANet dual attention, DEXTR's PSP), ``model`` (FAIRSNet,
ModelConfig, InputNormalizer), ``simulate`` (SPEC section 4 clicks, NumPy only),
``sources`` (instance data sets), ``augmentation``, ``samples`` (training samples
through the runtime's InputEncoder), ``guidance`` (the Gaussian ablation's encoder),
``iterative`` (clicks on the model's own errors), ``losses``, ``config`` (TrainConfig,
YAML/JSON, learning-rate schedule), ``train`` (Trainer, DDP, checkpoints),
``evaluate`` (metrics and reports), ``speed`` and ``cli`` (``fairs-train``).
"""
