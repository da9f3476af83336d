"""Tests for structured units (rows/columns) of an H-LSTM language model."""

import torch

from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.sparsity.units import (
    UnitKey,
    active_units,
    appended_units,
    dims,
    layout,
    remove_units,
    unit_key,
    unit_keys,
    unit_scores,
    wake_units,
)


def _model(vocab=3, embed=2, hidden=(3, 2), gate_hidden=(2, 1)):
    model = HLSTMLanguageModel(LMConfig(vocab=vocab, embed=embed, hidden=hidden, gate_hidden=gate_hidden))
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


def _snapshot(model):
    return {n: t.detach().clone() for n, t in list(model.named_parameters()) + list(model.named_buffers())}


def _assert_state(model, expected):
    actual = _snapshot(model)
    for name in expected:
        assert torch.equal(actual[name], expected[name]), name


def _zero(expected, name, index):
    """Zero weight ``name`` and its mask (if any) at ``index`` in the snapshot."""
    prefix, _, leaf = name.rpartition(".")
    for n in (name, f"{prefix}.mask_{leaf}" if prefix else f"mask_{leaf}"):
        if n in expected:
            expected[n][index] = 0


def test_unit_keys_in_order():
    assert unit_keys(_model()) == ["embed", "gate.0", "hidden.0", "gate.1", "hidden.1"]


def test_gate_keys_come_in_four_blocks_and_the_others_in_one():
    model = _model()
    assert unit_key(model, "gate.1") == UnitKey("gate.1", blocks=4)
    assert unit_key(model, "hidden.1").blocks == 1 and unit_key(model, "embed").blocks == 1


def test_appended_units_of_a_gate_key_are_the_last_of_every_gate():
    # widening G 2 -> 3: each gate k gains neuron g=2, flat index k*3 + 2
    assert appended_units(_model(), "gate.0", 2, 3).tolist() == [2, 5, 8, 11]


def test_appended_units_of_a_hidden_key_are_the_last_ones():
    # widening H 3 -> 5 appends units 3 and 4
    assert appended_units(_model(), "hidden.0", 3, 5).tolist() == [3, 4]


def test_dims_of_a_gate_key_counts_its_widest_block():
    model = _model(hidden=(3,), gate_hidden=(2,))
    remove_units(model, "gate.0", torch.tensor([0, 1, 2, 4]))  # gates keep [0, 1, 1, 2] neurons
    assert dims(model)["gate.0"] == 2  # the widest gate, not the 4 neurons left in all


def test_layout_covers_every_parameter_once():
    model = _model()
    assert sorted(link.name for link in layout(model)) == sorted(n for n, _ in model.named_parameters())


def _filled_model():
    """Every tensor filled with one value, and gate neuron 1 cut from embed dim 0."""
    model = _model(vocab=2, embed=2, hidden=(2,), gate_hidden=(1,))
    values = {"embedding.weight": 1, "layers.0.u_x": 2, "layers.0.u_h": -3, "layers.0.u_b": 4,
              "layers.0.w": 5, "layers.0.w_b": -6, "decoder_w": 7, "decoder_b": 8}  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(values[name])
        model.layers[0].mask_u_x[1, 0] = 0
    return model


def test_unit_scores_hand_computed():
    model = _filled_model()
    # rule "all": every tensor the unit touches
    # embed e: embedding column 2*|1| + u_x column 4*|2| = 10; dim 0 loses one u_x entry -> 8
    assert torch.equal(unit_scores(model, "embed", "all"), torch.tensor([8.0, 10.0]))
    # hidden j: w[:, j, :] 4*5 + w_b[:, j] 4*6 + u_h[:, j] 4*3 + decoder_w[:, j] 2*7 = 70
    assert torch.equal(unit_scores(model, "hidden.0", "all"), torch.tensor([70.0, 70.0]))
    # gate n: u_x row 2*2 + u_h row 2*3 + u_b 4 + w[k, :, g] 2*5 = 24; neuron 1 loses 2 -> 22
    assert torch.equal(unit_scores(model, "gate.0", "all"), torch.tensor([24.0, 22.0, 24.0, 24.0]))


def test_unit_scores_by_default_sum_only_the_control_gate_matrices():
    """The paper's Algorithm 1: embedding, decoder and biases do not rank units."""
    model = _filled_model()
    # embed e: u_x column 4*|2| = 8; dim 0 loses one entry -> 6
    assert torch.equal(unit_scores(model, "embed"), torch.tensor([6.0, 8.0]))
    # hidden j: w[:, j, :] 4*5 + u_h[:, j] 4*3 = 32
    assert torch.equal(unit_scores(model, "hidden.0"), torch.tensor([32.0, 32.0]))
    # gate n: u_x row 2*2 + u_h row 2*3 + w[k, :, g] 2*5 = 20; neuron 1 loses 2 -> 18
    assert torch.equal(unit_scores(model, "gate.0"), torch.tensor([20.0, 18.0, 20.0, 20.0]))


def test_unit_scores_of_given_values_sum_those_instead_of_the_weights():
    """Algorithm 2 ranks units by gradient sums: the same sums over other tensors."""
    model = _filled_model()
    grads = {n: torch.full_like(p, -0.5) for n, p in model.named_parameters()}
    # hidden j: w[:, j, :] 4 entries + u_h[:, j] 4 entries, each |-0.5| = 4
    assert torch.equal(unit_scores(model, "hidden.0", values=grads), torch.tensor([4.0, 4.0]))
    # the masks still apply: embed dim 0 loses one u_x entry -> 1.5
    assert torch.equal(unit_scores(model, "embed", values=grads), torch.tensor([1.5, 2.0]))


def test_remove_gate_unit_zeroes_its_rows_and_w_column():
    model = _model()
    expected = _snapshot(model)
    # neuron 5 of gate.0 (G=2) is gate k=2, hidden neuron g=1
    rows = (("layers.0.u_x", 5), ("layers.0.u_h", 5), ("layers.0.u_b", 5), ("layers.0.w", (2, slice(None), 1)))
    for name, index in rows:
        _zero(expected, name, index)
    remove_units(model, "gate.0", torch.tensor([5]))
    _assert_state(model, expected)


def test_remove_hidden_unit_zeroes_incoming_rows_and_outgoing_columns():
    model = _model()
    expected = _snapshot(model)
    col = (slice(None), 1)
    for name, index in (("layers.0.w", col), ("layers.0.w_b", col), ("layers.0.u_h", col), ("layers.1.u_x", col)):
        _zero(expected, name, index)
    remove_units(model, "hidden.0", torch.tensor([1]))
    _assert_state(model, expected)


def test_remove_last_hidden_unit_zeroes_decoder_column():
    model = _model()
    expected = _snapshot(model)
    col = (slice(None), 0)
    for name, index in (("layers.1.w", col), ("layers.1.w_b", col), ("layers.1.u_h", col), ("decoder_w", col)):
        _zero(expected, name, index)
    remove_units(model, "hidden.1", torch.tensor([0]))
    _assert_state(model, expected)


def test_remove_embed_unit_zeroes_embedding_and_input_column():
    model = _model()
    expected = _snapshot(model)
    for name in ("embedding.weight", "layers.0.u_x"):
        _zero(expected, name, (slice(None), 0))
    remove_units(model, "embed", torch.tensor([0]))
    _assert_state(model, expected)


def test_all_units_active_initially():
    model = _model()
    assert all(bool(active_units(model, key).all()) for key in unit_keys(model))


def test_unit_with_only_incoming_pruned_stays_active():
    model = _model(hidden=(3,), gate_hidden=(2,))
    model.layers[0].mask_w[:, 1, :] = 0  # every incoming connection of hidden 1
    assert active_units(model, "hidden.0").tolist() == [True, True, True]


def test_unit_with_all_outgoing_pruned_is_inactive():
    model = _model(hidden=(3,), gate_hidden=(2,))
    model.layers[0].mask_u_h[:, 1] = 0
    assert active_units(model, "hidden.0").tolist() == [True, True, True]  # decoder still reads it
    model.mask_decoder_w[:, 1] = 0
    assert active_units(model, "hidden.0").tolist() == [True, False, True]


def test_gate_unit_inactive_when_its_w_column_is_pruned():
    model = _model(hidden=(3,), gate_hidden=(2,))
    model.layers[0].mask_w[3, :, 0] = 0  # outgoing of gate k=3, g=0 -> unit 6
    assert active_units(model, "gate.0").tolist() == [True] * 6 + [False, True]


def test_wake_does_not_revive_connections_to_removed_units():
    model = _model(hidden=(3,), gate_hidden=(2,))
    remove_units(model, "gate.0", torch.tensor([1]))  # gate k=0, g=1
    remove_units(model, "hidden.0", torch.tensor([0]))
    wake_units(model, "hidden.0", torch.tensor([0]))
    layer = model.layers[0]
    expected_u_h = torch.ones(8)
    expected_u_h[1] = 0  # row of the removed gate neuron stays off
    assert torch.equal(layer.mask_u_h[:, 0], expected_u_h)
    assert layer.mask_w[0, 0, 1] == 0 and int(layer.mask_w[:, 0, :].sum()) == 7  # 8 gate neurons - 1 removed
    assert bool((model.mask_decoder_w[:, 0] == 1).all())  # vocab rows are always live
    assert active_units(model, "hidden.0").tolist() == [True, True, True]


def test_wake_without_init_leaves_woken_weights_zero():
    model = _model(hidden=(3,), gate_hidden=(2,))
    remove_units(model, "hidden.0", torch.tensor([2]))
    wake_units(model, "hidden.0", torch.tensor([2]))
    layer = model.layers[0]
    assert bool((layer.mask_u_h[:, 2] == 1).all())
    assert torch.equal(layer.u_h[:, 2], torch.zeros(8))
    assert torch.equal(layer.w_b[:, 2], torch.zeros(4))


def test_wake_takes_woken_values_from_init_and_keeps_active_weights():
    model = _model(hidden=(3,), gate_hidden=(2,))
    remove_units(model, "hidden.0", torch.tensor([2]))
    before = model.layers[0].u_h.detach().clone()
    init = {"layers.0.u_h": torch.full((8, 3), 0.5), "layers.0.w_b": torch.full((4, 3), -0.25)}
    wake_units(model, "hidden.0", torch.tensor([1, 2]), init)  # unit 1 was already active
    layer = model.layers[0]
    assert torch.equal(layer.u_h[:, 2], torch.full((8,), 0.5))  # woken column from init
    assert torch.equal(layer.w_b[:, 2], torch.full((4,), -0.25))  # bias of a revived unit
    assert torch.equal(layer.u_h[:, :2], before[:, :2])  # active connections untouched


def test_dims_counts_active_units_and_widest_gate():
    model = _model(hidden=(3,), gate_hidden=(2,))
    remove_units(model, "gate.0", torch.tensor([0, 1, 2]))  # gate 0 loses both, gate 1 loses one
    remove_units(model, "hidden.0", torch.tensor([1]))
    # per-gate active counts [0, 1, 2, 2] -> 2; hidden 3 - 1 = 2; embed untouched = 2
    assert dims(model) == {"embed": 2, "gate.0": 2, "hidden.0": 2}
