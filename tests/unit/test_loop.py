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
from symbiotic.errors import UserError
from symbiotic.training.loop import Diverged, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


class GivenLosses:
    """A task whose training losses are given, so only what the Trainer does with them is tested."""

    name = "given"
    metric = Metric("score")
    monitor_split = "valid"

    def __init__(self, losses, score=1.0):
        self.losses, self.computed, self.value = losses, 0, score  # (value, weight) pairs

    def train_steps(self):
        return len(self.losses)

    def train_losses(self, model, epoch):
        for value, weight in self.losses:
            self.computed += 1
            yield (model.weight * 0).sum() + value, weight  # a loss that moves nothing

    def score(self, model, split):
        return self.value


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
    trainer = Trainer(GivenLosses([(1.0, 1)]), model, cfg)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.step(1000 * _loss(model))  # a gradient far above the clip
    moved = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(model.parameters(), before)])
    assert float(moved.norm()) == pytest.approx(1.0 * 1e-3, rel=1e-4)  # plain SGD: lr x clipped norm


def test_the_step_reapplies_the_masks_that_momentum_would_move():
    model = _lm()
    cfg = BaseTrainConfig(lr=0.1, momentum=0.9, weight_decay=1e-2)
    trainer = Trainer(GivenLosses([(1.0, 1)]), model, cfg)
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


def test_a_non_finite_loss_stops_the_epoch_before_its_step_with_where_and_what_to_try():
    task = GivenLosses([(2.0, 1), (math.inf, 1), (5.0, 1)])
    with pytest.raises(Diverged) as err:
        Trainer(task, nn.Linear(1, 1, bias=False), BaseTrainConfig(lr=0.1)).epoch()
    assert task.computed == 2 and (err.value.epoch, err.value.batch) == (0, 1)
    assert "epoch 0, batch 1 of 3" in str(err.value) and "train.given.lr" in str(err.value)


def test_a_window_of_losses_far_above_the_first_window_is_divergence_across_epochs():
    rising = [(1.0, 1)] * 4 + [(10.0, 1)] * 4
    cfg = BaseTrainConfig(lr=0.1, diverge_factor=3.0, diverge_window=4)
    trainer = Trainer(GivenLosses(rising[:4]), nn.Linear(1, 1, bias=False), cfg)
    trainer.epoch()  # the reference: the mean of the first 4 losses, kept for later epochs
    trainer.task.losses = rising[4:]
    with pytest.raises(Diverged, match=r"epoch 1, batch 3 of 4: the mean loss of the last 4 batches is 10, "
                                       r"10.0x the stage's starting loss \(1\)"):
        trainer.epoch()
    assert trainer.state_dict()["start_loss"] == 1.0  # resumes keep the reference


def test_a_blow_up_inside_the_first_window_is_measured_from_the_first_batch():
    blow_up = [(3.4, 1), (1000.0, 1), (5000.0, 1), (9000.0, 1)]
    with pytest.raises(Diverged, match=r"batch 3 of 4: .* 1103.2x the stage's starting loss \(3.4\)"):
        Trainer(GivenLosses(blow_up), nn.Linear(1, 1, bias=False),
                BaseTrainConfig(lr=0.1, diverge_window=4)).epoch()


def test_single_hard_batches_are_not_divergence_and_factor_0_turns_the_rule_off():
    spiky = [(1.0, 1)] * 4 + [(1.0, 1), (1.0, 1), (1.0, 1), (9.0, 1)]  # window mean 3.0: not above 3x
    Trainer(GivenLosses(spiky), nn.Linear(1, 1, bias=False),
            BaseTrainConfig(lr=0.1, diverge_factor=3.0, diverge_window=4)).epoch()
    rising = [(1.0, 1)] * 4 + [(10.0, 1)] * 4
    Trainer(GivenLosses(rising), nn.Linear(1, 1, bias=False),
            BaseTrainConfig(lr=0.1, diverge_factor=0.0, diverge_window=4)).epoch()


def test_a_non_finite_validation_score_is_divergence():
    with pytest.raises(Diverged, match="valid score is nan"):
        Trainer(GivenLosses([(1.0, 1)], score=math.nan), nn.Linear(1, 1, bias=False),
                BaseTrainConfig(lr=0.1)).epoch()


def test_an_epoch_without_a_batch_is_refused_before_training():
    with pytest.raises(UserError, match="no batch"):
        Trainer(GivenLosses([]), nn.Linear(1, 1, bias=False), BaseTrainConfig(lr=0.1))


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
