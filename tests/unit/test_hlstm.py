"""Tests for the H-LSTM layer and the two language models."""

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.hlstm import HLSTMLayer
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig, StackedLMConfig, StackedLSTMLanguageModel


def _layer(I=3, H=4, G=2, dropout=0.0, dtype=torch.float32, seed=0):
    layer = HLSTMLayer(I, H, G, dropout).to(dtype)
    layer.reset_parameters(torch.Generator().manual_seed(seed))
    return layer


def _x(T=5, B=2, I=3, dtype=torch.float32, seed=1):
    return torch.randn(T, B, I, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _reference(layer, x):
    """Slow H-LSTM: each gate k as its own two-layer MLP, one step at a time."""
    G, H = layer.gate_hidden, layer.hidden_size
    u_x, u_h, w = (getattr(layer, n) * getattr(layer, f"mask_{n}") for n in ("u_x", "u_h", "w"))
    h = x.new_zeros(x.shape[1], H)
    c = x.new_zeros(x.shape[1], H)
    outs = []
    for x_t in x:
        acts = []
        for k in range(4):
            rows = slice(k * G, (k + 1) * G)
            z = torch.relu(x_t @ u_x[rows].T + h @ u_h[rows].T + layer.u_b[rows])  # (B, G)
            a = z @ w[k].T + layer.w_b[k]  # (B, H)
            acts.append(torch.tanh(a) if k == 3 else torch.sigmoid(a))
        f, i, o, g = acts
        c = f * c + i * g
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), (h, c)


def test_output_shapes():
    out, (h, c) = _layer(I=3, H=4, G=2)(_x(T=5, B=2, I=3))
    assert out.shape == (5, 2, 4)  # (T, B, H)
    assert h.shape == c.shape == (2, 4)  # (B, H)


def test_size_properties_follow_tensors():
    layer = _layer(I=3, H=4, G=2)
    assert (layer.input_size, layer.hidden_size, layer.gate_hidden) == (3, 4, 2)
    assert layer.u_x.shape == (8, 3) and layer.u_h.shape == (8, 4) and layer.w.shape == (4, 4, 2)


def test_matches_per_gate_reference_float64():
    layer = _layer(dtype=torch.float64)
    x = _x(dtype=torch.float64)
    out, (h, c) = layer(x)
    ref_out, (ref_h, ref_c) = _reference(layer, x)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    torch.testing.assert_close(c, ref_c, atol=1e-12, rtol=0)


def test_masks_enter_forward():
    layer = _layer(dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    for name in ("u_x", "u_h", "w"):
        getattr(layer, f"mask_{name}").copy_(torch.rand(getattr(layer, name).shape, generator=g) < 0.5)
    # The weights still hold their unmasked values: only the masks can zero them.
    out, _ = layer(_x(dtype=torch.float64))
    ref_out, _ = _reference(layer, _x(dtype=torch.float64))
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)


def test_state_carries_over():
    layer, x = _layer(), _x(T=6)
    whole, (h, c) = layer(x)
    first, state = layer(x[:3])
    second, (h2, c2) = layer(x[3:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close((h2, c2), (h, c))


def test_dropout_only_in_training():
    layer, x = _layer(dropout=0.5), _x()
    layer.eval()
    a, _ = layer(x)
    b, _ = layer(x)
    assert torch.equal(a, b)  # eval: deterministic
    layer.train()
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG; keep it untouched
        torch.manual_seed(0)
        c, _ = layer(x)
    assert not torch.allclose(a, c)


def test_empty_sequence_returns_initial_state():
    layer = _layer()
    out, (h, c) = layer(_x(T=0))
    assert out.shape == (0, 2, 4)
    assert torch.equal(h, torch.zeros(2, 4))


def _lm():
    model = HLSTMLanguageModel(LMConfig(vocab=7, embed=3, hidden=(4, 5), gate_hidden=(2, 3)))
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model.eval()


def _tokens(T=4, B=2, V=7):
    return torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(3))


def test_lm_shapes_and_state():
    logits, state = _lm()(_tokens())
    assert logits.shape == (4, 2, 7)  # (T, B, V)
    assert [s[0].shape for s in state] == [(2, 4), (2, 5)]  # h per layer (B, H_l)


def test_lm_state_carries_over():
    model, tokens = _lm(), _tokens(T=6)
    whole, _ = model(tokens)
    first, state = model(tokens[:2])
    second, _ = model(tokens[2:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)


def test_lm_init_state_equals_none():
    model, tokens = _lm(), _tokens()
    torch.testing.assert_close(model(tokens, model.init_state(2))[0], model(tokens)[0])


def test_lm_config_round_trip_and_shapes():
    cfg = _lm().config
    assert cfg == LMConfig(vocab=7, embed=3, hidden=(4, 5), gate_hidden=(2, 3))
    assert LMConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(cfg.to_dict()["hidden"], list)  # plain python for checkpoints


def test_stacked_lm_shapes_and_config():
    cfg = StackedLMConfig(vocab=7, embed=3, hidden=4, layers=2)
    model = StackedLSTMLanguageModel(cfg).eval()
    logits, (h, c) = model(_tokens())
    assert logits.shape == (4, 2, 7)
    assert h.shape == c.shape == (2, 2, 4)  # (layers, B, H)
    assert StackedLMConfig.from_dict(cfg.to_dict()) == cfg


def test_lm_config_mismatched_layers_is_user_error():
    with pytest.raises(UserError):
        LMConfig(vocab=7, embed=3, hidden=(4, 5), gate_hidden=(2,))
