"""Tests for the exported language model: equivalence with the training model, serialisation."""

import itertools

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.runtime import native
from symbiotic.runtime.formats import MATRICES
from symbiotic.runtime.lm import InferenceHLSTMLayer, export, from_state, latency_inputs, to_state
from symbiotic.sparsity.masks import random_masks
from symbiotic.sparsity.thinning import thin
from symbiotic.sparsity.units import remove_units, unit_keys

V = 13
ALL_FORMATS = [dict(zip(MATRICES, combo)) for combo in itertools.product(("dense", "csr"), repeat=3)]


def _model(dtype=torch.float32, hidden=(7, 5), gate_hidden=(4, 3), density=0.6):
    model = HLSTMLanguageModel(LMConfig(vocab=V, embed=6, hidden=hidden, gate_hidden=gate_hidden)).to(dtype)
    model.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.decoder_b.uniform_(-1, 1, generator=torch.Generator().manual_seed(1))
        for layer in model.layers:  # non-zero biases so their placement is tested
            layer.u_b.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(2))
    random_masks(model, density, torch.Generator().manual_seed(3))
    # Removed units make thinning shrink every dimension.
    removals = {"embed": [1], "gate.0": [0, 5, 6], "hidden.0": [2], "gate.1": [4], "hidden.1": [0]}
    for key in unit_keys(model):
        remove_units(model, key, removals[key])
    return model.eval()


def _tokens(T=5, B=3):
    return latency_inputs(V, batch=B, seq_len=T, generator=torch.Generator().manual_seed(4))


def _reference(model, tokens):
    with torch.no_grad():
        return model(tokens)[0]


@pytest.mark.parametrize("formats", ALL_FORMATS, ids=lambda f: "-".join(f.values()))
def test_export_matches_training_model(formats, runtime):
    model = _model()
    tokens = _tokens()
    inf = export(model, formats)
    assert inf.dims["hidden"] == list(thin(model).config.hidden)
    assert inf.dims["embed"] < model.config.embed  # thinning happened
    assert inf.formats == [formats, formats]
    torch.testing.assert_close(inf(tokens), _reference(model, tokens), atol=1e-5, rtol=0)


@pytest.mark.parametrize("formats", [ALL_FORMATS[0], ALL_FORMATS[-1], ALL_FORMATS[3]], ids=["dense", "csr", "mixed"])
def test_export_matches_at_batch_16(formats, runtime):
    """Batch 16: the native loop's AVX-512 path (one vector per CSR row), both runtimes."""
    model = _model(hidden=(40, 24), gate_hidden=(33, 20), density=0.3)
    tokens = _tokens(T=9, B=16)
    torch.testing.assert_close(export(model, formats)(tokens), _reference(model, tokens), atol=1e-5, rtol=0)


@pytest.mark.parametrize("decoder", ["dense", "csr"])
def test_decoder_formats_match_and_round_trip(decoder, tmp_path, runtime, monkeypatch):
    """A pruned decoder in CSR: the same logits (a transposed view), saved and loaded as such,
    its product the native one (csr_mm) exactly when the native runtime is chosen."""
    products = []
    real = native.csr_mm
    monkeypatch.setattr(native, "csr_mm", lambda *a: products.append(1) or real(*a))
    model = _model()
    with torch.no_grad():
        model.mask_decoder_w.copy_((torch.rand(model.mask_decoder_w.shape, generator=torch.Generator().manual_seed(5))
                                    < 0.2).float())
        model.decoder_w.mul_(model.mask_decoder_w)
    inf = export(model, ALL_FORMATS[-1], decoder=decoder)
    assert inf.decoder_format == decoder
    tokens = _tokens()
    torch.testing.assert_close(inf(tokens), _reference(model, tokens), atol=1e-5, rtol=0)
    torch.save(to_state(inf), tmp_path / "m.pt")
    loaded = from_state(torch.load(tmp_path / "m.pt", weights_only=True))
    assert loaded.decoder_format == decoder and torch.equal(loaded(tokens), inf(tokens))
    state = to_state(inf)
    state["decoder_format"] = "coo"
    with pytest.raises(UserError, match="decoder_format"):
        from_state(state)
    assert bool(products) == (decoder == "csr" and runtime == "native")


def test_csr_layouts_and_shapes():
    inf = export(_model(), {"u_x": "csr", "u_h": "csr", "w": "csr"})
    layer = inf.layers[0]
    H, G, I = layer.hidden_size, layer.gate_hidden, layer.input_size
    assert all(getattr(layer, n).layout == torch.sparse_csr for n in MATRICES)
    assert tuple(layer.u_x.shape) == (4 * G, I) and tuple(layer.u_h.shape) == (4 * G, H)
    assert tuple(layer.w.shape) == (4 * H, 4 * G)  # one block-diagonal matrix


def test_float64_and_recurrent_part():
    model = _model(torch.float64)
    tokens = _tokens()
    inf = export(model, {"u_x": "dense", "u_h": "csr", "w": "csr"})
    torch.testing.assert_close(inf(tokens), _reference(model, tokens), atol=1e-10, rtol=0)
    out = inf.recurrent(tokens)
    assert out.shape == (5, 3, inf.dims["hidden"][-1])
    torch.testing.assert_close(torch.nn.functional.linear(out, inf.decoder_w, inf.decoder_b), inf(tokens))


def test_single_layer_and_empty_sequence():
    model = _model(hidden=(6,), gate_hidden=(4,))
    layer = model.layers[0]
    inf_layer = InferenceHLSTMLayer.from_trained(layer, {"u_x": "csr", "u_h": "dense", "w": "csr"})
    x = torch.randn(4, 2, layer.input_size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(inf_layer(x), layer(x)[0], atol=1e-5, rtol=0)
    assert inf_layer(x[:0]).shape == (0, 2, layer.hidden_size)


def test_latency_inputs_shape_and_range():
    tokens = latency_inputs(7, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (70, 16) and tokens.dtype == torch.long
    assert 0 <= int(tokens.min()) and int(tokens.max()) < 7


def test_bad_formats_raise_user_error():
    with pytest.raises(UserError, match="u_h"):
        export(_model(), {"u_x": "dense", "u_h": "coo", "w": "dense"})
    with pytest.raises(UserError, match="formats"):
        export(_model(), {"u_x": "dense"})


# ---- serialisation --------------------------------------------------------------------------

@pytest.mark.parametrize("formats", [ALL_FORMATS[0], ALL_FORMATS[-1], ALL_FORMATS[2]], ids=["dense", "csr", "mixed"])
def test_state_round_trip_weights_only(formats, tmp_path):
    inf = export(_model(), formats)
    path = tmp_path / "model.pt"
    torch.save(to_state(inf), path)
    loaded = from_state(torch.load(path, weights_only=True))
    assert loaded.formats == inf.formats and loaded.dims == inf.dims
    tokens = _tokens()
    assert torch.equal(loaded(tokens), inf(tokens))


def _state():
    return to_state(export(_model(), {"u_x": "dense", "u_h": "csr", "w": "csr"}))


@pytest.mark.parametrize(
    "corrupt, key",
    [
        (lambda s: s["layers"][0].__setitem__("u_x", torch.zeros(3, 3)), "layers.0.u_x"),
        (lambda s: s["layers"][1].__setitem__("w_b", torch.zeros(4, 1)), "layers.1.w_b"),
        (lambda s: s["layers"][0]["u_h"].__setitem__("shape", [1, 2]), "layers.0.u_h.shape"),
        (lambda s: s["layers"][0]["w"]["col_indices"].add_(1000), "layers.0.w"),
        (lambda s: s["layers"][0]["formats"].__setitem__("w", "bsr"), "layers.0.formats"),
        (lambda s: s.__setitem__("decoder_w", torch.zeros(V, 99)), "decoder_w"),
        (lambda s: s["layers"][1].pop("u_b"), "layers.1.u_b"),
        (lambda s: s.__setitem__("kind", "something"), "kind"),
    ],
)
def test_bad_state_raises_user_error_naming_key(corrupt, key):
    state = _state()
    corrupt(state)
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        from_state(state)


def test_off_diagonal_csr_w_is_rejected():
    state = _state()
    w = state["layers"][0]["w"]
    H = state["dims"]["hidden"][0]
    G = state["dims"]["gate_hidden"][0]
    dense = torch.sparse_csr_tensor(w["crow_indices"], w["col_indices"], w["values"], w["shape"], check_invariants=True).to_dense()
    dense[0, 4 * G - 1] = 1.0  # gate f row reading gate g's neurons
    bad = dense.to_sparse_csr()
    w.update(crow_indices=bad.crow_indices(), col_indices=bad.col_indices(), values=bad.values())
    assert H > 0
    with pytest.raises(UserError, match=r"layers\.0\.w"):
        from_state(state)
