"""Tests for thin (drop inactive units) and widen (add dormant units)."""

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.sparsity.masks import random_masks
from symbiotic.sparsity.thinning import thin, thin_index, widen
from symbiotic.sparsity.units import dims, remove_units, unit_keys

V = 11


WIDE = {"embed": 7, "hidden.0": 8, "hidden.1": 5, "gate.0": 4, "gate.1": 3}

def _model(dtype=torch.float32, hidden=(6, 4), gate_hidden=(3, 2)):
    model = HLSTMLanguageModel(LMConfig(vocab=V, embed=5, hidden=hidden, gate_hidden=gate_hidden)).to(dtype)
    model.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.decoder_b.uniform_(-1, 1, generator=torch.Generator().manual_seed(1))  # not just zeros
    return model.eval()


def _tokens():
    return torch.randint(0, V, (4, 2), generator=torch.Generator().manual_seed(2))  # (T, B)


def _remove_random_units(model, seed=3):
    """Remove two random units of every key (gate keys: of the flat 4G neurons)."""
    g = torch.Generator().manual_seed(seed)
    for key in unit_keys(model):
        n = {"embed": 5, "gate.0": 12, "hidden.0": 6, "gate.1": 8, "hidden.1": 4}[key]
        remove_units(model, key, torch.randperm(n, generator=g)[:2])


def _assert_same_outputs(a, b, atol):
    la, sa = a(_tokens())
    lb, sb = b(_tokens())
    torch.testing.assert_close(la, lb, atol=atol, rtol=0)
    return sa, sb


def test_thin_after_random_removal_keeps_logits_float32():
    model = _model()
    _remove_random_units(model)
    _assert_same_outputs(model, thin(model), atol=1e-5)


def test_thin_after_random_removal_keeps_logits_float64():
    model = _model(torch.float64)
    _remove_random_units(model)
    _assert_same_outputs(model, thin(model), atol=1e-10)


def test_thin_keeps_final_state_on_kept_units():
    model = _model(torch.float64)
    _remove_random_units(model)
    index = thin_index(model)
    state, thin_state = _assert_same_outputs(model, thin(model), atol=1e-10)
    for l, ((h, c), (th, tc)) in enumerate(zip(state, thin_state)):
        keep = index[f"hidden.{l}"]
        torch.testing.assert_close((h[:, keep], c[:, keep]), (th, tc), atol=1e-10, rtol=0)


def test_thin_shrinks_to_active_counts():
    model = _model()
    _remove_random_units(model)
    # embed 5-2, hidden 6-2 and 4-2; gates: as wide as the widest gate's active count
    cfg, active = thin(model).config, dims(model)
    assert (cfg.embed, cfg.hidden) == (3, (4, 2))
    assert cfg.gate_hidden == (active["gate.0"], active["gate.1"])


def test_thin_pads_unequal_gates_to_the_widest():
    model = _model(hidden=(6,), gate_hidden=(3,))
    remove_units(model, "gate.0", torch.tensor([0, 1]))  # gate f keeps 1 neuron, others keep 3
    # f keeps neuron 2 plus padding 0 and 1 (zero W columns): all gates stay 3 wide
    assert thin_index(model)["gate.0"].tolist() == list(range(12))
    thinned = thin(model)
    assert thinned.config.gate_hidden == (3,)
    _assert_same_outputs(model, thinned, atol=1e-5)


def test_thin_drops_a_neuron_removed_from_every_gate():
    model = _model(hidden=(6,), gate_hidden=(3,))
    remove_units(model, "gate.0", torch.tensor([1, 4, 7, 10]))  # g=1 in every gate
    assert thin_index(model)["gate.0"].tolist() == [0, 2, 3, 5, 6, 8, 9, 11]  # k*3 + {0, 2}
    thinned = thin(model)
    assert thinned.config.gate_hidden == (2,)
    _assert_same_outputs(model, thinned, atol=1e-5)


def test_thin_keeps_masks_of_kept_entries():
    model = _model()
    random_masks(model, 0.9, torch.Generator().manual_seed(4))
    thinned = thin(model)
    index = thin_index(model)
    keep_h, keep_g = index["hidden.0"], index["gate.0"]
    torch.testing.assert_close(thinned.layers[0].mask_u_h, model.layers[0].mask_u_h[keep_g][:, keep_h])
    _assert_same_outputs(model, thinned, atol=1e-5)


def test_widen_keeps_outputs_identical():
    model = _model()
    wide = widen(model, WIDE)
    assert wide.config.hidden == (8, 5) and wide.config.gate_hidden == (4, 3)
    _assert_same_outputs(model, wide, atol=1e-6)


def test_widen_new_units_are_dormant():
    wide = widen(_model(), WIDE)
    layer = wide.layers[0]
    assert torch.equal(layer.mask_u_h[:, 6:], torch.zeros(16, 2))  # new hidden columns
    assert torch.equal(layer.mask_w[:, :, 3], torch.zeros(4, 8))  # new neuron g=3 of every gate
    assert torch.equal(layer.u_x[:, 5:], torch.zeros(16, 2))  # new embed columns


def test_thin_of_widen_is_identity():
    model = _model()
    back = thin(widen(model, WIDE))
    assert back.config == model.config
    original = model.state_dict()
    assert all(torch.equal(t, original[name]) for name, t in back.state_dict().items())


def test_widen_smaller_dim_is_user_error():
    with pytest.raises(UserError):
        widen(_model(), {**WIDE, "hidden.1": 3})  # hidden.1 shrinks 4 -> 3
