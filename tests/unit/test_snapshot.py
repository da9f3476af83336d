"""Rollback snapshots restore model, masks and optimizer bit for bit."""

import pytest
import torch
from torch import nn

from symbiotic.errors import UserError
from symbiotic.training.snapshot import restore, snapshot


class Masked(nn.Module):
    def __init__(self, n=2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, n))
        self.register_buffer("mask", torch.ones(n, n))

    def forward(self, x):
        return x @ (self.weight * self.mask).t()


def _train_step(model, opt):
    opt.zero_grad()
    model(torch.ones(1, model.weight.shape[0])).pow(2).sum().backward()
    opt.step()


def _make():
    torch.manual_seed(0)
    model = Masked()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train_step(model, opt)  # so the optimizer has a momentum buffer
    return model, opt


def _momentum(opt):
    return opt.state[opt.param_groups[0]["params"][0]]["momentum_buffer"]


def test_restore_is_bit_for_bit_after_weights_and_masks_changed():
    model, opt = _make()
    snap = snapshot(model, opt)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    momentum = _momentum(opt).clone()
    _train_step(model, opt)
    model.mask[0, 0] = 0
    assert not torch.equal(model.weight, before["weight"])
    restore(model, snap, opt)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(_momentum(opt), momentum)


def test_snapshot_survives_repeated_restores():
    model, opt = _make()
    snap = snapshot(model, opt)
    restore(model, snap, opt)
    _train_step(model, opt)  # must not write into the snapshot's tensors
    restore(model, snap, opt)
    assert torch.equal(model.weight, snap["model"]["weight"])
    assert torch.equal(_momentum(opt), snap["optimizer"]["state"][0]["momentum_buffer"])


def test_restore_keeps_parameter_identity():
    model, opt = _make()
    param = model.weight
    restore(model, snapshot(model))
    assert model.weight is param


def test_shape_mismatch_names_the_key():
    snap = snapshot(Masked(2))
    with pytest.raises(UserError, match="'weight'"):
        restore(Masked(3), snap)


def test_trainer_rollback_restores_the_rate_and_plateau_count(tmp_path):
    """A rejected retraining must not lower the rate or use up patience for the next try."""
    from helpers import tiny_prepared_ptb
    from symbiotic.tasks.ptb import PTBTask, TrainConfig
    from symbiotic.training.loop import Trainer

    cfg = TrainConfig(lr=1.0, lr_patience=0, batch=4, bptt=6, eval_batch=4, seed=0)
    task = PTBTask(tiny_prepared_ptb(tmp_path / "ptb", tokens=300), cfg)
    trainer = Trainer(task, task.new_model({"embed": 4, "hidden": (5,), "gate_hidden": (3,)}), cfg)
    trainer.plateau.step(1.0)  # a best score nothing will beat: the next epoch divides the rate
    snap = trainer.snapshot()
    before = trainer.plateau.state_dict()
    trainer.epoch()
    assert trainer.lr < 1.0
    trainer.restore(snap)
    assert trainer.plateau.state_dict() == before
    assert trainer.lr == 1.0 and trainer.optimizer.param_groups[0]["lr"] == 1.0
