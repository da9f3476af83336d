"""The Trainer: the one optimizer step (clip, then masks) and the epoch's mean loss."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import tiny_prepared_ptb
from symbiotic.data.lm_batches import windows
from symbiotic.flow.common import seed_everything
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.sparsity.masks import masked_weights, random_masks
from symbiotic.tasks.base import Metric
from symbiotic.tasks.ptb import PTBTask, TrainConfig, _detach
from symbiotic.training.config import TrainConfig as BaseTrainConfig
from symbiotic.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


class GivenLosses:
    """A task whose training losses are given, so only what the Trainer does with them is tested."""

    metric = Metric("score")
    monitor_split = "valid"

    def __init__(self, losses):
        self.losses, self.computed = losses, 0  # (value, weight) pairs

    def train_steps(self):
        return len(self.losses)

    def train_losses(self, model, epoch):
        for value, weight in self.losses:
            self.computed += 1
            yield (model.weight * 0).sum() + value, weight  # a loss that moves nothing

    def score(self, model, split):
        return 1.0


def _lm():
    cfg = LMConfig(vocab=7, embed=3, hidden=(4,), gate_hidden=(2,), dropout_gate=0, dropout_embed=0,
                   dropout_words=0)
    model = HLSTMLanguageModel(cfg)
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


def _loss(model, seed=1):
    tokens = torch.randint(0, 7, (4, 2), generator=torch.Generator().manual_seed(seed))
    logits, _ = model(tokens[:-1])
    return F.cross_entropy(logits.reshape(-1, 7), tokens[1:].reshape(-1))


def test_the_step_clips_the_gradient_norm():
    model = _lm()
    cfg = BaseTrainConfig(lr=1.0, momentum=0.0, weight_decay=0.0, clip=1e-3)
    trainer = Trainer(GivenLosses([]), model, cfg)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.step(1000 * _loss(model))  # a gradient far above the clip
    moved = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(model.parameters(), before)])
    assert float(moved.norm()) == pytest.approx(1.0 * 1e-3, rel=1e-4)  # plain SGD: lr x clipped norm


def test_the_step_reapplies_the_masks_that_momentum_would_move():
    model = _lm()
    cfg = BaseTrainConfig(lr=0.1, momentum=0.9, weight_decay=1e-2)
    trainer = Trainer(GivenLosses([]), model, cfg)
    trainer.step(_loss(model, seed=1))  # momentum builds up on every weight
    random_masks(model, 0.5, torch.Generator().manual_seed(2))
    trainer.step(_loss(model, seed=3))  # (test_masks.py: without apply_masks these move)
    for name, w, m in masked_weights(model):
        assert torch.equal(w[m == 0], torch.zeros(int((m == 0).sum()))), name


def test_the_epoch_loss_is_the_mean_weighted_as_the_task_says():
    task = GivenLosses([(2.0, 3), (6.0, 1)])
    row = Trainer(task, nn.Linear(1, 1, bias=False), BaseTrainConfig(lr=0.1)).epoch()
    assert row["train_loss"] == pytest.approx((3 * 2.0 + 6.0) / 4)  # 3.0
    assert row["score"] == 1.0  # the history column is the task's metric name


def test_the_epoch_stops_at_the_first_non_finite_loss():
    task = GivenLosses([(2.0, 1), (math.inf, 1), (5.0, 1)])
    row = Trainer(task, nn.Linear(1, 1, bias=False), BaseTrainConfig(lr=0.1)).epoch()
    assert math.isnan(row["train_loss"]) and task.computed == 2


def _plain_epoch(task, model, optimizer):
    """The loop PTB's task ran before the Trainer took the step: the reference, bit for bit."""
    model.train()
    state, total, count = None, 0.0, 0
    for x, y in windows(task.train, task.cfg.bptt):
        state = _detach(state)
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), task.cfg.clip)
        optimizer.step()
        for _, w, m in masked_weights(model):
            w.data.mul_(m)
        total, count = total + loss.item() * y.numel(), count + y.numel()
    return total / count


def test_an_epoch_is_bit_identical_to_the_plain_loop(tmp_path):
    cfg = TrainConfig(lr=1.0, momentum=0.9, clip=0.1, batch=4, bptt=7, eval_batch=4, seed=3)
    task = PTBTask(tiny_prepared_ptb(tmp_path / "ptb", tokens=400), cfg)
    runs = []
    for _ in range(2):
        gen = seed_everything(3)  # the same weights, masks and dropout draws for both
        model = task.new_model({"embed": 6, "hidden": (8,), "gate_hidden": (5,)})
        random_masks(model.layers, 0.5, gen)
        runs.append((model, Trainer(task, model, cfg)))
    (model, trainer), (ref, ref_trainer) = runs
    seed_everything(3)
    loss = trainer.train_epoch()
    seed_everything(3)
    assert loss == _plain_epoch(task, ref, ref_trainer.optimizer)
    for name, value in model.state_dict().items():
        assert torch.equal(value, ref.state_dict()[name]), name
