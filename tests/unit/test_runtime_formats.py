"""Tests for the format choice: the one crossover rule, and its use on a trained model's sparsity."""

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.runtime.formats import MATRICES, check_formats, choose_formats, formats_at, matrix_sparsity
from symbiotic.sparsity.units import remove_units

V = 13


# ---- formats_at: the crossover rule ----------------------------------------------------------

def test_crossover_rule_by_hand():
    crossover = {"u_x": None, "u_h": 0.8, "w": 0.9}
    # u_x: None -> dense at any sparsity; u_h: 0.8 >= 0.8 -> csr (at counts); w: 0.8 < 0.9 -> dense
    assert formats_at(crossover, 0.8) == {"u_x": "dense", "u_h": "csr", "w": "dense"}
    # 0.95 is above both crossovers -> csr, but None still means dense always wins
    assert formats_at(crossover, 0.95) == {"u_x": "dense", "u_h": "csr", "w": "csr"}
    # just below: 0.79 < 0.8 -> dense
    assert formats_at(crossover, 0.79) == dict.fromkeys(MATRICES, "dense")


def test_crossover_rule_per_matrix_sparsity_and_missing_entries():
    # per product: u_x 0.5 >= 0.5 -> csr; u_h 0.7 < 0.8 -> dense; w absent from the profile -> dense
    assert formats_at({"u_x": 0.5, "u_h": 0.8}, {"u_x": 0.5, "u_h": 0.7, "w": 0.99}) == \
        {"u_x": "csr", "u_h": "dense", "w": "dense"}
    assert formats_at({}, 0.99) == dict.fromkeys(MATRICES, "dense")


def test_check_formats_orders_and_rejects():
    assert list(check_formats({"w": "csr", "u_h": "dense", "u_x": "csr"})) == list(MATRICES)
    with pytest.raises(UserError, match="u_h"):
        check_formats({"u_x": "dense", "u_h": "coo", "w": "dense"})
    with pytest.raises(UserError, match="formats"):
        check_formats({"u_x": "dense"})


# ---- choose_formats: the rule on a model's own sparsity, once thinned ------------------

def _masked_model(period: dict[str, int]):
    """One layer; mask ``name`` has every ``period[name]``-th row zero (sparsity 1/period).

    Rows are the last axis' slices, i.e. INCOMING connections of gate/hidden
    units, so no unit becomes inactive and thinning removes nothing.
    """
    model = HLSTMLanguageModel(LMConfig(vocab=V, embed=4, hidden=(4,), gate_hidden=(5,)))
    layer = model.layers[0]
    with torch.no_grad():
        for name, p in period.items():
            mask = getattr(layer, f"mask_{name}")
            rows = mask.view(-1, mask.shape[-1])  # u_x/u_h (4G, ...); w (4*H, G): row k*H + h
            rows[::p] = 0
    return model


def test_matrix_sparsity_counts_w_blocks_only():
    model = _masked_model({"u_x": 4, "u_h": 2, "w": 4})
    assert matrix_sparsity(model) == pytest.approx({"u_x": 0.25, "u_h": 0.5, "w": 0.25})


@pytest.mark.parametrize(
    "crossover, expected",
    [
        ({"u_x": 0.2, "u_h": 0.5, "w": 0.3}, {"u_x": "csr", "u_h": "csr", "w": "dense"}),  # at == csr
        ({"u_x": None, "u_h": None, "w": None}, {"u_x": "dense", "u_h": "dense", "w": "dense"}),
        ({"u_x": 0.0, "u_h": 0.9, "w": 0.25}, {"u_x": "csr", "u_h": "dense", "w": "csr"}),
    ],
)
def test_choose_formats(crossover, expected):
    model = _masked_model({"u_x": 4, "u_h": 2, "w": 4})
    assert choose_formats(model, crossover) == expected


def test_choose_formats_uses_thinned_sparsity():
    model = _masked_model({})
    remove_units(model, "gate.0", [0, 5, 10, 15])  # one whole neuron per gate: rows of u, columns of w
    assert matrix_sparsity(model)["u_x"] == pytest.approx(0.2)
    assert choose_formats(model, {"u_x": 0.1, "u_h": 0.1, "w": 0.1}) == dict.fromkeys(MATRICES, "dense")


def test_choose_formats_missing_product_raises():
    with pytest.raises(UserError, match="w"):
        choose_formats(_masked_model({}), {"u_x": 0.5, "u_h": 0.5})
