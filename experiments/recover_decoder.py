"""Recover a trained decoder's state dict from its exported ONNX part, as a refine checkpoint.

The shipped v2.2 model's training checkpoints were lost with an earlier session's
``runs/`` folder; its ``default.decoder.onnx`` still holds every weight. This maps the
file's initializers back onto :class:`~fairs_sdk.training.refiner.RefineDecoder` built
from the refine config it was trained with: the named ones (``decoder.<param>``) as
they are, the GroupNorm scales and shifts by the Mul/Add node that reads them, the
click branch's window mixture (stored as its softmax) as its log, and the click maps'
own weights by their Mul node. It then checks the result: the rebuilt decoder, run
through the export graph, must reproduce the file on random input.

    python experiments/recover_decoder.py --decoder fairs_sdk/models/default.decoder.onnx \\
        --config training/configs/default_u2_clicks.yaml -o runs/v22_recovered.pt
    fairs-export bundle runs/v22_recovered.pt -o OUT --stem default --flip-average   # the same files again

``--set KEY=VALUE`` overrides a config entry as ``fairs-train refine`` does. An input
spec entry that does not shape the decoder, such as ``input.partial_relax=0.1`` (the crop
margin for fewer than four points), gives the same weights with that setting in the
checkpoint, and so in the exported files' metadata.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from fairs_sdk.export.onnx_export import PARITY_ATOL, read_metadata
from fairs_sdk.export.two_part import _DecoderGraph, _parity
from fairs_sdk.training.config import load_refine_config
from fairs_sdk.training.refiner import FEATURE_CHANNELS, refine_decoder


def recovered_state(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{state-dict key: tensor} read from a decoder ONNX file, checked against ``expected``'s keys and shapes."""
    model = onnx.load(str(path))
    reader = {}
    for node in model.graph.node:
        for name in node.input:
            reader.setdefault(name, node.name)
    state = {}
    for init in model.graph.initializer:
        value = torch.from_numpy(numpy_helper.to_array(init).copy())
        node = reader.get(init.name, "")
        if init.name.startswith("decoder."):
            state[init.name.removeprefix("decoder.")] = value
        elif node.endswith(("/norm/Mul", "/norm/Add")):  # GroupNorm's affine, folded: /decoder/<module path>/norm/Mul
            module = ".".join(node.strip("/").split("/")[1:-1]).replace("trunk.trunk.", "trunk.")
            state[f"{module}.{'weight' if node.endswith('Mul') else 'bias'}"] = value.reshape(-1)
        elif node == "/decoder/click_branch/Split":  # softmax(window_logits), folded
            state["click_branch.window_logits"] = torch.log(value)
        elif node == "/decoder/click_branch/Mul_5":  # each click map's own Gaussian weight
            state["click_branch.local"] = value.reshape(-1)
    missing, unknown = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unknown:
        raise ValueError(f"{path}: cannot map the file onto the config's decoder: missing {missing}, unknown {unknown}")
    for key, want in expected.items():
        if state[key].shape != want.shape:
            raise ValueError(f"{path}: {key} is {tuple(state[key].shape)} in the file, {tuple(want.shape)} in the decoder")
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", type=Path, required=True, help="the <stem>.decoder.onnx part")
    parser.add_argument("--config", type=Path, required=True, help="the refine config the decoder was trained with")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                        help="override a config entry, as fairs-train refine does (e.g. input.partial_relax=0.1)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    config = load_refine_config(args.config, args.set)
    decoder = refine_decoder(config.spec, **config.decoder_options).eval()
    decoder.load_state_dict(recovered_state(args.decoder, decoder.state_dict()))
    extra = read_metadata(args.decoder).extra
    flip = bool(extra.get("flip_average", False))
    s, g, views = config.spec.input_size, config.spec.channel_count - 3, 2 if flip else 1
    rng = np.random.default_rng(0)
    feeds = {"features": rng.random((1, views * FEATURE_CHANNELS, s // 4, s // 4), dtype=np.float32) * 4,
             "saliency": rng.normal(0, 4, (1, views, s, s)).astype(np.float32),
             "guidance": (rng.random((1, g, s, s)) > 0.99).astype(np.float32)}
    feeds["guidance"][:, 0] = rng.random((s, s))
    diff = _parity(args.decoder, _DecoderGraph(decoder, flip), feeds, PARITY_ATOL)  # ParityError above it
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": decoder.state_dict(), "step": int(extra.get("step", 0)),
                "config": json.loads(json.dumps(asdict(config), default=str)), "recovered_from": str(args.decoder)},
               args.output)
    print(f"wrote {args.output} (step {extra.get('step')}, max difference to the file {diff:.2e})")


if __name__ == "__main__":
    main()
