"""Tests for the exported DeepSpeech2: equivalence with the training model, layouts, serialisation."""

import io
import itertools

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.ds2 import DeepSpeech2, DS2Config
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig
from symbiotic.runtime import lm
from symbiotic.runtime.ds2 import InferenceBiHLSTM, export, from_state, to_state
from symbiotic.runtime.formats import MATRICES
from symbiotic.sparsity.masks import apply_masks, masked_weights
from symbiotic.sparsity.thinning import thin, thin_index
from symbiotic.sparsity.units import remove_units

F_ = 13  # MFCC coefficients
ALL_FORMATS = [dict(zip(MATRICES, combo)) for combo in itertools.product(("dense", "csr"), repeat=3)]
DENSE = {name: "dense" for name in MATRICES}
CSR = {name: "csr" for name in MATRICES}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _model(rnn="hlstm", remove=True, **kw) -> DeepSpeech2:
    """A tiny trained-looking model: random 50-70% masks, non-trivial batch norms, removed units."""
    base = dict(n_features=F_, conv_channels=4, rnn=rnn, hidden=8, gate_hidden=4, layers=2, dropout_gate=0.0)
    model = DeepSpeech2(DS2Config(**{**base, **kw}))
    g = torch.Generator().manual_seed(0)
    model.reset_parameters(g)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5, generator=g)
                module.bias.uniform_(-0.5, 0.5, generator=g)
                module.running_mean.uniform_(-0.5, 0.5, generator=g)
                module.running_var.uniform_(0.5, 2.0, generator=g)
        model.decoder.bias.uniform_(-0.5, 0.5, generator=g)
        for _, weight, mask in masked_weights(model):
            density = 0.3 + 0.2 * torch.rand((), generator=g)
            mask.copy_((torch.rand(mask.shape, generator=g) < density).to(mask.dtype))
    apply_masks(model)
    if remove and rnn == "hlstm":
        # One neuron of every gate (so the gate width shrinks) and hidden units of both layers.
        remove_units(model, "gate.0", [0, 5, 10, 15])
        remove_units(model, "hidden.0", [2, 6])
        remove_units(model, "hidden.1", [3])
    return model.eval()


def _batch(lengths=(20, 13, 7), seed=1):
    """Random utterances zero-padded time-major: x (T_max, B, F), lengths (B,)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(max(lengths), len(lengths), F_)
    for b, n in enumerate(lengths):
        x[:n, b] = torch.randn(n, F_, generator=g) * 3
    return x, torch.tensor(lengths)


def _assert_same(inf, model, x, lengths, atol=1e-5):
    with torch.no_grad():
        want, want_lengths = model(x, lengths)
    got, got_lengths = inf(x, lengths)
    assert torch.equal(got_lengths, want_lengths)
    torch.testing.assert_close(got, want, atol=atol, rtol=0)


@pytest.mark.parametrize("formats", ALL_FORMATS, ids=lambda f: "-".join(f.values()))
def test_export_matches_model(formats, runtime):
    model = _model()
    inf = export(model, formats)
    thinned = thin(model).config
    assert inf.dims == {"n_features": F_, "conv_channels": 4, "hidden": list(thinned.hidden),
                        "gate_hidden": list(thinned.gate_hidden), "labels": model.decoder.out_features,
                        "bidirectional": True}
    assert inf.dims["hidden"][0] < 8 and inf.dims["gate_hidden"][0] < 4  # thinning shrank it
    assert inf.formats == [formats, formats]
    _assert_same(inf, model, *_batch())


@pytest.mark.parametrize("formats", [DENSE, CSR, {"u_x": "dense", "u_h": "csr", "w": "dense"}],
                         ids=["dense", "csr", "mixed"])
def test_batch_16_padded_matches(formats, runtime):
    """Batch 16 of 16 lengths (the native AVX-512 path), padding reversed per utterance."""
    model = _model()
    lengths = tuple(range(24, 8, -1))
    _assert_same(export(model, formats), model, *_batch(lengths))


def test_unidirectional_model(runtime):
    model = _model(bidirectional=False)
    for formats in (DENSE, CSR, {"u_x": "dense", "u_h": "csr", "w": "dense"}):
        inf = export(model, formats)
        assert inf.dims["bidirectional"] is False and inf.layers[0].directions == 1
        _assert_same(inf, model, *_batch())


def test_recurrent_stack_and_frontend_match():
    model = _model()
    inf = export(model, {"u_x": "csr", "u_h": "dense", "w": "csr"})
    x, lengths = _batch()
    with torch.no_grad():
        want_h, want_lengths = model.frontend(x, lengths)
        want = model.recurrent_stack(want_h, want_lengths)
    h, out_lengths = inf.frontend(x, lengths)
    torch.testing.assert_close(h, want_h, atol=1e-5, rtol=0)  # BatchNorm2d folded into the convs
    assert torch.equal(out_lengths, want_lengths)
    got = inf.recurrent_stack(h, out_lengths)
    kept = thin_index(model)["hidden.1"]  # removed last-layer units are gone from the export
    assert len(kept) < model.config.hidden[1]
    torch.testing.assert_close(got, want[..., kept], atol=1e-5, rtol=0)
    assert got[out_lengths[2]:, 2].abs().max() == 0  # padding zeroed


def test_conv_folding_after_batch_norm_training():
    """Running statistics learnt by the model's own forward passes, not set by hand."""
    model = _model(remove=False).train()
    for seed in range(3):
        model(*_batch(seed=seed))
    model.eval()
    assert model.conv[0][1].running_mean.abs().max() > 0
    inf = export(model, DENSE)
    x, lengths = _batch(seed=7)
    with torch.no_grad():
        want = model.frontend(x, lengths)[0]
    torch.testing.assert_close(inf.frontend(x, lengths)[0], want, atol=1e-5, rtol=0)
    _assert_same(inf, model, x, lengths)


def test_all_same_length_and_one_frame():
    model = _model()
    inf = export(model, CSR)
    _assert_same(inf, model, *_batch((9, 9)))
    _assert_same(inf, model, *_batch((1, 2)))


def test_csr_layouts_and_shapes():
    inf = export(_model(), CSR)
    layer = inf.layers[0]
    H, G, I = layer.hidden_size, layer.gate_hidden, layer.input_size
    assert all(getattr(layer, n).layout == torch.sparse_csr for n in MATRICES)
    assert tuple(layer.u_x.shape) == (2 * 4 * G, I)
    assert tuple(layer.u_h.shape) == (2 * 4 * G, 2 * H)  # direction-block-diagonal
    assert tuple(layer.w.shape) == (2 * 4 * H, 2 * 4 * G)  # the 8 (H, G) blocks on the diagonal
    dense = export(_model(), DENSE).layers[0]
    assert dense.u_h.layout == torch.strided and tuple(dense.u_h.shape) == (2, 4 * G, H)
    assert tuple(dense.w.shape) == (2 * 4, H, G)


@pytest.mark.parametrize("formats", [DENSE, CSR, {"u_x": "csr", "u_h": "dense", "w": "csr"}],
                         ids=lambda f: "-".join(f.values()))
def test_state_round_trip(formats):
    model = _model()
    inf = export(model, formats)
    buffer = io.BytesIO()
    torch.save(to_state(inf), buffer)
    buffer.seek(0)
    loaded = from_state(torch.load(buffer, weights_only=True))
    assert loaded.dims == inf.dims and loaded.formats == inf.formats
    x, lengths = _batch()
    got, want = loaded(x, lengths), inf(x, lengths)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_csr_decoder_matches_and_round_trips():
    model = _model()
    inf = export(model, CSR, decoder="csr")
    assert inf.decoder_format == "csr"
    _assert_same(inf, model, *_batch())
    buffer = io.BytesIO()
    torch.save(to_state(inf), buffer)
    buffer.seek(0)
    loaded = from_state(torch.load(buffer, weights_only=True))
    assert loaded.decoder_format == "csr"
    _assert_same(loaded, model, *_batch())


def test_load_rejects_foreign_and_corrupt_states():
    lm_model = HLSTMLanguageModel(LMConfig(vocab=7, embed=4, hidden=(5,), gate_hidden=(3,)))
    with pytest.raises(UserError, match="kind"):
        from_state(lm.to_state(lm.export(lm_model, DENSE)))
    state = to_state(export(_model(), {"u_x": "dense", "u_h": "csr", "w": "csr"}))
    bad = {**state, "layers": [dict(state["layers"][0]), state["layers"][1]]}
    bad["layers"][0]["w_b"] = bad["layers"][0]["w_b"][:, 1:]
    with pytest.raises(UserError, match="layers.0.w_b"):
        from_state(bad)
    with pytest.raises(UserError, match="decoder_b"):
        from_state({k: v for k, v in state.items() if k != "decoder_b"})
    with pytest.raises(UserError, match="version"):
        from_state({**state, "version": 99})
    with pytest.raises(UserError, match="conv.0.weight"):
        from_state({**state, "dims": {**state["dims"], "n_features": F_ + 4}})
    # A CSR u_h entry linking the two directions is not this layout.
    u_h = state["layers"][0]["u_h"]
    H = state["dims"]["hidden"][0]
    dense = torch.sparse_csr_tensor(u_h["crow_indices"], u_h["col_indices"], u_h["values"], u_h["shape"],
                                     check_invariants=True).to_dense()
    dense[0, H] = 1.0
    crossed = dense.to_sparse_csr()
    bad = {**state, "layers": [dict(state["layers"][0]), state["layers"][1]]}
    bad["layers"][0]["u_h"] = {"crow_indices": crossed.crow_indices(), "col_indices": crossed.col_indices(),
                               "values": crossed.values(), "shape": list(crossed.shape)}
    with pytest.raises(UserError, match="layers.0.u_h"):
        from_state(bad)


def test_export_rejects_lstm_baseline_and_bad_formats():
    with pytest.raises(UserError, match="lstm"):
        export(_model("lstm", gate_hidden=0), DENSE)
    with pytest.raises(UserError, match="u_h"):
        export(_model(), {"u_x": "dense", "u_h": "coo", "w": "dense"})


def test_wrong_feature_count_and_empty_input():
    inf = export(_model(), DENSE)
    with pytest.raises(UserError, match="coefficients"):
        inf(torch.zeros(5, 1, F_ + 1), torch.tensor([5]))
    layer = inf.layers[0]
    assert isinstance(layer, InferenceBiHLSTM)
    out = layer(torch.zeros(0, 2, layer.input_size), torch.tensor([0, 0]))
    assert out.shape == (0, 2, layer.hidden_size)
