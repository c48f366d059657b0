"""fairs_sdk.training: the PyTorch FAIRS model, data, simulated user input and training.

Installed as ``fairs_sdk.training`` (package-dir mapping in pyproject.toml); needs
the ``train`` extra. Importing it imports torch; ``import fairs_sdk`` does not.
"""
