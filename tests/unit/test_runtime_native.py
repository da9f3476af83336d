"""The compiled time loop equals the training layer's eval output, in every format of u_h and w."""

import itertools

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.hlstm import HLSTMLayer
from symbiotic.runtime import native
from symbiotic.runtime.ds2 import InferenceBiHLSTM, _bi_recurrence
from symbiotic.runtime.lm import InferenceHLSTMLayer
from symbiotic.sparsity.masks import apply_masks, random_masks

LOOP_FORMATS = list(itertools.product(("dense", "csr"), repeat=2))  # (u_h, w); u_x runs before the loop


def _layer(I=6, H=9, G=5, density=0.3):
    layer = HLSTMLayer(I, H, G)
    gen = torch.Generator().manual_seed(0)
    layer.reset_parameters(gen)
    with torch.no_grad():  # biases large enough that every gate nonlinearity leaves its linear part
        layer.u_b.uniform_(-1, 1, generator=gen)
        layer.w_b.uniform_(-2, 2, generator=gen)
    random_masks(layer, density, torch.Generator().manual_seed(1))
    apply_masks(layer)
    return layer.eval()


@pytest.mark.parametrize("u_h,w", LOOP_FORMATS)
@pytest.mark.parametrize("T,B", [(7, 3), (1, 16), (4, 17)])
def test_native_loop_equals_the_training_layer(u_h, w, T, B):
    layer = _layer()
    x = torch.randn(T, B, layer.input_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, _ = layer(x)  # (T, B, H)
    exported = InferenceHLSTMLayer.from_trained(layer, {"u_x": "dense", "u_h": u_h, "w": w})
    out = native.hlstm_loop(exported.input_half(x), exported.u_h, exported.w, exported.w_b)  # (T, 1, H, B)
    assert (out[:, 0].transpose(1, 2) - expected).abs().max() <= 1e-5


def test_native_loop_of_no_steps_is_empty():
    layer = _layer()
    exported = InferenceHLSTMLayer.from_trained(layer, {"u_x": "dense", "u_h": "csr", "w": "csr"})
    pre = torch.zeros(0, 4 * layer.gate_hidden, 3)
    assert native.hlstm_loop(pre, exported.u_h, exported.w, exported.w_b).shape == (0, 1, layer.hidden_size, 3)


def test_an_unknown_runtime_setting_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("SYMBIOTIC_RUNTIME", "fast")
    with pytest.raises(UserError, match="SYMBIOTIC_RUNTIME"):
        native.wanted()


def test_a_missing_compiler_is_a_one_line_error_that_names_the_fix(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    native.load.cache_clear()
    try:
        with pytest.raises(UserError, match="apt-get install g\\+\\+"):
            native.load()
    finally:
        native.load.cache_clear()


@pytest.mark.parametrize("u_h,w", LOOP_FORMATS)
def test_native_loop_of_two_directions_equals_the_torch_loop(u_h, w):
    directions = [_layer(), _layer()]
    with torch.no_grad():
        directions[1].w_b.mul_(-1)  # the two directions differ
    bi = InferenceBiHLSTM.from_trained(directions, {"u_x": "dense", "u_h": u_h, "w": w})
    x = torch.randn(6, 5, bi.input_size, generator=torch.Generator().manual_seed(3))
    pre = bi.input_half(x).contiguous()  # (T, 2*4G, B); the layer reverses the backward rows first
    h = x.new_zeros(2, bi.hidden_size, 5)
    expected = _bi_recurrence(pre, h, h.clone(), bi.u_h, bi.w, bi.loop_bias(), bi.is_csr("u_h"), bi.is_csr("w"))
    out = native.hlstm_loop(pre, bi.u_h, bi.w, bi.w_b)
    assert out.shape == expected.shape and (out - expected).abs().max() <= 1e-5


def test_native_loop_gives_the_same_numbers_on_one_and_two_threads():
    layer = _layer(H=33, G=17)
    exported = InferenceHLSTMLayer.from_trained(layer, {"u_x": "dense", "u_h": "csr", "w": "csr"})
    pre = exported.input_half(torch.randn(5, 16, layer.input_size, generator=torch.Generator().manual_seed(4)))
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(native.hlstm_loop(pre, exported.u_h, exported.w, exported.w_b))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("B", [16, 5])
def test_the_kernel_reads_a_transposed_input_half_as_a_contiguous_one(B):
    """pre (R, T*B) may come with any strides, e.g. the transpose of an (T*B, R) product."""
    layer = _layer()
    exported = InferenceHLSTMLayer.from_trained(layer, {"u_x": "dense", "u_h": "csr", "w": "csr"})
    pre = exported.input_half(torch.randn(3, B, layer.input_size, generator=torch.Generator().manual_seed(5)))
    flat = pre.permute(1, 0, 2).reshape(pre.shape[1], -1).contiguous()
    strided = flat.t().contiguous().t()  # same values, strides (1, R)
    kernel = native.load().hlstm_loop
    w_b = exported.w_b.reshape(4, -1)
    assert torch.equal(kernel(strided, 3, exported.u_h, exported.w, w_b), kernel(flat, 3, exported.u_h, exported.w, w_b))
