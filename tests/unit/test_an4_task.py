"""The AN4 task on random utterances: training, scores, checkpoints, and the steps on DeepSpeech2."""

import pytest
import torch

from helpers import tiny_prepared_an4
from symbiotic.errors import UserError
from symbiotic.flow.grow_lhp import grow_to
from symbiotic.flow.prune_rows import _remove_smallest
from symbiotic.sparsity.thinning import thin, widen
from symbiotic.sparsity.units import dims, remove_units, unit_keys
from symbiotic.tasks.an4 import AN4Task, TrainConfig
from symbiotic.training.loop import Trainer

SPEC = {"conv_channels": 2, "hidden": 8, "gate_hidden": 6, "layers": 2, "dropout_gate": 0.0}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture
def task(tmp_path):
    cfg = TrainConfig(lr=0.01, lr_factor=1.0, lr_decay=0.99, momentum=0.9, nesterov=True, clip=400.0,
                      batch=4, eval_batch=4, grad_batches=2, seed=0)
    return AN4Task(tiny_prepared_an4(tmp_path / "an4"), cfg)


@pytest.fixture
def model(task):
    torch.manual_seed(0)
    return task.new_model(SPEC)


def _batch(task):
    from symbiotic.data.an4_batches import collate

    return collate(task.test, list(range(len(task.test))))[:2]


def test_training_lowers_the_loss_and_decays_the_rate(task, model):
    trainer = Trainer(task, model, task.cfg)
    first = trainer.epoch()
    for _ in range(4):
        last = trainer.epoch()
    assert last["train_loss"] < first["train_loss"]
    assert trainer.lr == pytest.approx(0.01 * 0.99 ** 5)
    assert set(first) >= {"wer", "train_loss"}


def test_scores_are_percentages_of_valid_and_test(task, model):
    scores = task.scores(model)
    assert set(scores) == {"valid_wer", "valid_cer", "test_wer", "test_cer"}
    assert all(v >= 0 for v in scores.values())
    assert task.score(model, "test") == scores["test_wer"]
    assert task.score(model, "valid") == scores["valid_wer"]
    with pytest.raises(UserError, match="no 'train' split"):
        task.score(model, "train")


def test_train_utterances_takes_a_prefix(tmp_path):
    task = AN4Task(tiny_prepared_an4(tmp_path / "an4"), TrainConfig(train_utterances=5))
    assert len(task.train) == 5 and task.train.utterances == [f"train{i}" for i in range(5)]


def test_checkpoint_kinds(task, model):
    from symbiotic.training import checkpoint

    ckpt = {"kind": task.kind(model), "config": model.config.to_dict(), "state_dict": model.state_dict()}
    back = task.model_from_checkpoint(ckpt)
    assert back.config == model.config
    with pytest.raises(UserError, match="not a DeepSpeech2"):
        task.model_from_checkpoint({**ckpt, "kind": "hlstm_lm"})
    other = {**ckpt, "config": {**ckpt["config"], "n_features": 20}}
    with pytest.raises(UserError, match="20 features"):
        task.model_from_checkpoint(other)
    assert checkpoint is not None


def test_units_of_the_speech_model(model):
    assert unit_keys(model) == ["gate.0", "hidden.0", "gate.1", "hidden.1"]
    remove_units(model, "hidden.0", [2])
    for d in ("fwd", "bwd"):
        assert model.layers[0].__getattr__(d).w[:, 2].abs().sum() == 0
        assert model.layers[0].__getattr__(d).u_h[:, 2].abs().sum() == 0
        assert model.layers[1].__getattr__(d).u_x[:, 2].abs().sum() == 0
    assert model.norms[0].weight[2] == 0
    assert dims(model)["hidden.0"] == 7
    remove_units(model, "hidden.1", [0, 5])  # the last layer: its decoder columns are masked too
    assert model.decoder.mask_weight[:, [0, 5]].sum() == 0 and dims(model)["hidden.1"] == 6


def test_thin_of_pruned_speech_model_keeps_outputs(task, model):
    x, lengths = _batch(task)
    model.train()
    model(x, lengths)  # batch-norm statistics that are not the identity
    model.eval()
    for key in unit_keys(model):
        _remove_smallest(model, key, "ratio", 0.3)
    small = thin(model).eval()
    assert small.config.hidden[0] < 8 and small.config.hidden[1] < 8 and small.config.gate_hidden[1] < 6
    assert torch.allclose(small(x, lengths)[0], model(x, lengths)[0], atol=1e-5)
    wide = widen(small, model.widths()).eval()
    assert wide.config == model.config
    assert torch.allclose(wide(x, lengths)[0], model(x, lengths)[0], atol=1e-5)


def test_lhp_growth_of_speech_model(task, model):
    for key in unit_keys(model):
        _remove_smallest(model, key, "ratio", 0.3)
    small = thin(model)
    target = {"hidden.0": 9, "gate.0": 7, "hidden.1": 8, "gate.1": 6}
    grown = grow_to(task, small, target, lr=0.01, seed=0)
    assert grown.widths() == target
    new = slice(small.config.hidden[0], 9)
    assert torch.all(grown.norms[0].weight[new] == 1.0)  # identity norm: gradients reach the new units
    assert grown.layers[1].fwd.u_x[:, new].abs().sum() > 0  # woken with -gradient x lr
    grown.eval()
    x, lengths = _batch(task)
    assert torch.allclose(thin(grown).eval()(x, lengths)[0], grown(x, lengths)[0], atol=1e-5)


def test_baseline_has_no_units(task):
    baseline = task.new_baseline({"conv_channels": 2, "hidden": 8, "layers": 2})
    with pytest.raises(UserError, match="only the H-LSTM"):
        unit_keys(baseline)
