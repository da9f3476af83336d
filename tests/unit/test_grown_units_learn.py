"""Step (c)'s grown units learn: every grown embedding dimension, hidden unit and gate neuron,
in every layer and direction, has its incoming and outgoing weights moved by a few steps of training.

A unit whose weights are all zero, or a ReLU gate neuron with a negative bias, sits at a point
where every gradient of its weights is zero: it would cost latency and never learn.
"""

import pytest
import torch

from helpers import tiny_prepared_an4, tiny_prepared_ptb
from symbiotic.flow.grow_lhp import grow_to
from symbiotic.sparsity.units import appended_units, per_unit, touches
from symbiotic.tasks.an4 import AN4Task
from symbiotic.tasks.an4 import TrainConfig as AN4Config
from symbiotic.tasks.ptb import PTBTask
from symbiotic.tasks.ptb import TrainConfig as PTBConfig
from symbiotic.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _is_bias(name: str) -> bool:
    return name.endswith("_b") or name.endswith(".bias")


def _unmoved(before: dict, after: dict, model, key: str, index: torch.Tensor) -> list[str]:
    """'<key> unit <i> <incoming|outgoing>' for every grown unit with no moved weight on that side."""
    problems = []
    for outgoing in (False, True):
        moved = torch.zeros(len(index), dtype=torch.bool)
        for t in touches(model, key):
            if t.outgoing != outgoing or _is_bias(t.name):
                continue
            delta = per_unit(after[t.name] - before[t.name], t.axes)[index]
            moved |= (delta != 0).any(1)
        side = "outgoing" if outgoing else "incoming"
        problems += [f"{key} unit {int(i)} {side}" for i in index[~moved]]
    return problems


def _grow_and_train(task, model, target: dict[str, int]):
    old = model.widths()
    big = grow_to(task, model, target, lr=task.cfg.lr, seed=0)
    before = {n: p.detach().clone() for n, p in big.named_parameters()}
    Trainer(task, big, task.cfg).epoch()
    after = {n: p.detach().clone() for n, p in big.named_parameters()}
    grown = {k: appended_units(big, k, old[k], w) for k, w in target.items() if w > old[k]}
    assert grown, "the test must grow something"
    return [p for k, ix in grown.items() for p in _unmoved(before, after, big, k, ix)]


def test_every_grown_lm_unit_learns(tmp_path):
    cfg = PTBConfig(lr=1.0, batch=4, bptt=6, eval_batch=4, grad_batches=2, seed=0)
    task = PTBTask(tiny_prepared_ptb(tmp_path / "ptb", tokens=400), cfg)
    torch.manual_seed(0)
    model = task.new_model({"embed": 5, "hidden": (6, 5), "gate_hidden": (4, 4), "dropout_gate": 0.0})
    target = {"embed": 8, "hidden.0": 9, "gate.0": 7, "hidden.1": 8, "gate.1": 6}
    assert _grow_and_train(task, model, target) == []


def test_every_grown_ds2_unit_learns_in_both_directions(tmp_path):
    cfg = AN4Config(lr=0.01, lr_factor=1.0, batch=4, eval_batch=4, grad_batches=2, seed=0, clip=400.0)
    task = AN4Task(tiny_prepared_an4(tmp_path / "an4"), cfg)
    torch.manual_seed(0)
    model = task.new_model({"conv_channels": 2, "hidden": 6, "gate_hidden": 4, "layers": 2, "dropout_gate": 0.0})
    target = {k: w + 3 for k, w in model.widths().items()}
    assert _grow_and_train(task, model, target) == []
