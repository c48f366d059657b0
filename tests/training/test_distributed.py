"""Two-process gloo DistributedDataParallel: gradients equal those of one process on the same batch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from fairs_sdk.training.config import TrainConfig, load_config
from fairs_sdk.training.sources import InMemorySource, build_source
from fairs_sdk.training.train import Trainer, launch_local, setup_distributed

HORSES = Path(__file__).parents[2].parent / "shared" / "data" / "train" / "weizmann_horse"


def ddp_config(batch_size: int) -> TrainConfig:
    """Per-sample-independent model: BatchNorm frozen, no dropout, so shards add up exactly."""
    return load_config(
        None,
        [
            "model.backbone=mobilenetv3_small_100",
            "model.head_channels=16",
            "model.dropout=0.0",
            "freeze_bn=true",
            "input.input_size=48",
            "input.relax=10",
            f"batch_size={batch_size}",
            "num_workers=0",
            "epochs=1",
            "amp=off",
            "progress=false",
        ],
    )


def horses() -> InMemorySource:
    return InMemorySource(build_source({"kind": "folder", "root": str(HORSES), "max_instances": 4}), max_side=160)


def gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def ddp_worker(output: str) -> None:
    """One rank: one training step on its half of the global batch; rank 0 saves its gradients."""
    torch.set_num_threads(1)
    info = setup_distributed("cpu")
    try:
        trainer = Trainer(ddp_config(batch_size=2), info, train_source=horses(), log=lambda message: None)
        loss = trainer.train_epoch(max_steps=1)
        if info.is_main:
            torch.save({"gradients": gradients(trainer), "loss": loss, "world": info.world_size}, output)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not (HORSES / "images").is_dir(), reason=f"shared training data not found at {HORSES}")
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="no gloo backend")
def test_two_process_gradients_match_single_process(tmp_path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))  # spawned ranks import this module by name
    output = tmp_path / "ddp.pt"
    launch_local(2, ddp_worker, str(output))
    distributed = torch.load(output, weights_only=True)
    assert distributed["world"] == 2, "the ranks did not form a 2-process group"

    single = Trainer(ddp_config(batch_size=4), train_source=horses(), log=lambda message: None)
    loss = single.train_epoch(max_steps=1)
    reference = gradients(single)
    assert set(distributed["gradients"]) == set(reference), "different parameters received gradients"
    assert distributed["loss"] == pytest.approx(loss, rel=1e-5), "mean loss over ranks differs from one process"
    for name, gradient in reference.items():
        assert torch.allclose(distributed["gradients"][name], gradient, rtol=1e-4, atol=1e-6), f"gradient of {name} differs"
