"""Tests for masks kept as buffers beside the weights."""

import pytest
import torch
import torch.nn.functional as F

from symbiotic.errors import UserError
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.sparsity.masks import (
    apply_masks,
    effective,
    get_masks,
    masked_weights,
    open_masks,
    random_masks,
    recurrent_density,
    recurrent_masks,
    set_masks,
    sparsity_stats,
)


def _model(seed=0):
    cfg = LMConfig(vocab=7, embed=3, hidden=(4,), gate_hidden=(2,), dropout_gate=0, dropout_embed=0, dropout_words=0)
    model = HLSTMLanguageModel(cfg)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


def _loss(model, seed=1):
    tokens = torch.randint(0, 7, (4, 2), generator=torch.Generator().manual_seed(seed))
    logits, _ = model(tokens[:-1])
    return F.cross_entropy(logits.reshape(-1, 7), tokens[1:].reshape(-1))


def _sgd_step(model, opt, seed):
    opt.zero_grad()
    _loss(model, seed).backward()
    opt.step()


def test_masked_weights_names_every_masked_matrix():
    names = {name for name, _, _ in masked_weights(_model())}
    assert names == {"layers.0.u_x", "layers.0.u_h", "layers.0.w", "decoder_w"}  # biases never masked


def test_effective_is_weight_times_mask():
    model = _model()
    model.mask_decoder_w[0].zero_()
    eff = effective(model, "decoder_w")
    assert torch.equal(eff[0], torch.zeros(4))
    assert torch.equal(eff[1:], model.decoder_w[1:])


def test_masked_weights_get_zero_gradient():
    model = _model()
    random_masks(model, 0.5, torch.Generator().manual_seed(2))
    _loss(model).backward()
    for name, weight, mask in masked_weights(model):
        assert torch.equal(weight.grad[mask == 0], torch.zeros(int((mask == 0).sum()))), name


def test_momentum_moves_pruned_weights_without_apply_masks():
    # Why apply_masks exists: momentum built before pruning keeps moving the weight.
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    _sgd_step(model, opt, seed=1)
    random_masks(model, 0.5, torch.Generator().manual_seed(2))
    _sgd_step(model, opt, seed=3)
    moved = [bool((w[m == 0] != 0).any()) for _, w, m in masked_weights(model)]
    assert any(moved)


def test_apply_masks_after_each_step_keeps_pruned_weights_exactly_zero():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    _sgd_step(model, opt, seed=1)  # momentum builds up on every weight
    random_masks(model, 0.5, torch.Generator().manual_seed(2))
    for step in range(3):
        _sgd_step(model, opt, seed=3 + step)
        apply_masks(model)
        for name, w, m in masked_weights(model):
            assert torch.equal(w[m == 0], torch.zeros(int((m == 0).sum()))), (step, name)


def test_open_masks_exposes_gradient_at_dormant_positions():
    model = _model()
    random_masks(model, 0.5, torch.Generator().manual_seed(2))
    with open_masks(model):
        _loss(model).backward()
    grad = model.layers[0].u_h.grad
    dormant = model.layers[0].mask_u_h == 0
    assert (grad[dormant] != 0).any()


def test_open_masks_leaves_outputs_unchanged():
    model = _model()
    random_masks(model, 0.5, torch.Generator().manual_seed(2))
    closed = _loss(model)
    with open_masks(model):
        opened = _loss(model)
    assert torch.equal(closed, opened)  # dormant weights are exactly zero


def test_open_masks_restores_masks_bit_for_bit():
    model = _model()
    random_masks(model, 0.5, torch.Generator().manual_seed(2))
    before = get_masks(model)
    with open_masks(model):
        assert all(bool((m == 1).all()) for _, _, m in masked_weights(model))
    after = get_masks(model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_random_masks_density_is_exact():
    model = _model()
    random_masks(model, 0.3, torch.Generator().manual_seed(2))
    for _, w, m in masked_weights(model):
        assert int(m.sum()) == round(0.3 * m.numel())  # e.g. u_x (8, 3): round(7.2) = 7
        assert torch.equal(w[m == 0], torch.zeros(int((m == 0).sum())))  # and applied


def test_sparsity_stats_hand_counted():
    model = _model()
    model.layers[0].mask_w.zero_()  # w (4, 4, 2): 32 entries off
    # masked entries: u_x 8*3=24, u_h 8*4=32, w 32, decoder_w 7*4=28 -> 116; active 116-32 = 84
    assert sparsity_stats(model) == {"total": 116, "active": 84, "sparsity": 1 - 84 / 116}


def test_recurrent_masks_and_density_leave_out_the_decoder():
    model = _model()
    model.layers[0].mask_w.zero_()  # w (4, 4, 2): 32 entries off
    model.mask_decoder_w.zero_()  # not recurrent: must not count
    assert list(recurrent_masks(model)) == ["layers.0.u_x", "layers.0.u_h", "layers.0.w"]
    # u_x 24 + u_h 32 + w 32 = 88 entries, 56 on
    assert recurrent_density(model) == 56 / 88


def test_get_set_masks_round_trip():
    a, b = _model(), _model()
    random_masks(a, 0.5, torch.Generator().manual_seed(2))
    set_masks(b, get_masks(a))
    assert all(torch.equal(ma, mb) for (_, _, ma), (_, _, mb) in zip(masked_weights(a), masked_weights(b)))


def test_set_masks_wrong_shape_is_user_error():
    masks = get_masks(_model())
    masks["decoder_w"] = torch.ones(7, 5)
    with pytest.raises(UserError):
        set_masks(_model(), masks)


def test_set_masks_missing_key_is_user_error():
    masks = get_masks(_model())
    del masks["decoder_w"]
    with pytest.raises(UserError):
        set_masks(_model(), masks)
