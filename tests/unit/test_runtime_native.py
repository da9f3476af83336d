"""The compiled layer equals the training layer's eval output, in every format of u_x, u_h and w."""

import itertools

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.hlstm import HLSTMLayer
from symbiotic.runtime import native
from symbiotic.runtime.ds2 import InferenceBiHLSTM, _bi_recurrence
from symbiotic.runtime.lm import InferenceHLSTMLayer
from symbiotic.runtime.packing import to_csr
from symbiotic.sparsity.masks import apply_masks, random_masks

FORMATS = [dict(zip(("u_x", "u_h", "w"), f)) for f in itertools.product(("dense", "csr"), repeat=3)]
CSR = {"u_x": "csr", "u_h": "csr", "w": "csr"}


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


@pytest.mark.parametrize("formats", FORMATS, ids=lambda f: "-".join(f.values()))
@pytest.mark.parametrize("T,B", [(7, 3), (1, 16), (4, 17)])
def test_native_layer_equals_the_training_layer(formats, T, B):
    layer = _layer()
    x = torch.randn(T, B, layer.input_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, _ = layer(x)  # (T, B, H)
    out = InferenceHLSTMLayer.from_trained(layer, formats).native(x)
    assert out.shape == expected.shape and (out - expected).abs().max() <= 1e-5


def test_native_layer_of_no_steps_is_empty():
    exported = InferenceHLSTMLayer.from_trained(_layer(), CSR)
    assert exported.native(torch.zeros(0, 3, exported.input_size)).shape == (0, 3, exported.hidden_size)


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


def _two_directions(formats):
    directions = [_layer(), _layer()]
    with torch.no_grad():
        directions[1].w_b.mul_(-1)  # the two directions differ
    return InferenceBiHLSTM.from_trained(directions, formats)


@pytest.mark.parametrize("formats", FORMATS, ids=lambda f: "-".join(f.values()))
@pytest.mark.parametrize("B", [5, 16])
def test_native_layer_of_two_directions_equals_the_torch_loop(formats, B):
    """The backward direction reads each column's frames in ``order`` (here a random permutation
    per column) and its outputs come back in frame order, summed with the forward ones."""
    bi, T = _two_directions(formats), 6
    x = torch.randn(T, B, bi.input_size, generator=torch.Generator().manual_seed(3))
    pre = bi.input_half(x).contiguous()  # (T, 2*4G, B)
    order = torch.stack([torch.randperm(T, generator=torch.Generator().manual_seed(b)) for b in range(B)], 1)
    R = pre.shape[1] // 2
    permuted = pre.clone()
    permuted[:, R:] = pre[:, R:].gather(0, order[:, None, :].expand(T, R, B))
    h = x.new_zeros(2, bi.hidden_size, B)
    steps = _bi_recurrence(permuted, h, h.clone(), bi.u_h, bi.w, bi.loop_bias(), bi.is_csr("u_h"), bi.is_csr("w"))
    backward = torch.empty_like(steps[:, 1])  # (T, H, B), back to frame order
    backward.scatter_(0, order[:, None, :].expand_as(backward), steps[:, 1])
    expected = (steps[:, 0] + backward).transpose(1, 2)  # (T, B, H)
    out = bi.native(x, order)
    assert out.shape == expected.shape and (out - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("order,match", [(torch.zeros(6, 5, dtype=torch.long), "permutation"),
                                         (torch.full((6, 5), 6), "outside"),
                                         (torch.zeros(3, 5, dtype=torch.long), r"\(T, B\)")])
def test_the_kernel_refuses_an_order_that_is_not_a_permutation_of_the_frames(order, match):
    bi = _two_directions(CSR)
    with pytest.raises(RuntimeError, match=match):
        bi.native(torch.randn(6, 5, bi.input_size), order)


@pytest.mark.parametrize("formats", FORMATS, ids=lambda f: "-".join(f.values()))
def test_native_layer_gives_the_same_numbers_on_one_and_two_threads(formats):
    """Every format combination runs in the one parallel loop; a row's sums do not depend on
    which thread computes it."""
    bi = _two_directions(formats)
    x = torch.randn(5, 16, bi.input_size, generator=torch.Generator().manual_seed(4))
    order = torch.arange(4, -1, -1)[:, None].expand(5, 16)
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(bi.native(x, order))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("u_x", ["dense", "csr"])
@pytest.mark.parametrize("B", [16, 5])
def test_the_kernel_reads_strided_inputs_as_contiguous_ones(u_x, B):
    """x (T, B, I) may come with any strides, e.g. a batch-major tensor transposed."""
    exported = InferenceHLSTMLayer.from_trained(_layer(), {**CSR, "u_x": u_x})
    x = torch.randn(B, 3, exported.input_size, generator=torch.Generator().manual_seed(5)).transpose(0, 1)
    assert torch.equal(exported.native(x), exported.native(x.contiguous()))


def _csr(V, K, density, seed, empty_rows=()):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(V, K, generator=gen) * (torch.rand(V, K, generator=gen) < density)
    w[list(empty_rows)] = 0.0
    return w, to_csr(w)


@pytest.mark.parametrize("N", [1, 15, 16, 17, 128, 129, 300])
@pytest.mark.parametrize("bias", [True, False])
def test_csr_product_equals_the_dense_product(N, bias):
    """Every chunk width (N = 300 is two 128-column chunks and a 44-column masked one), rows with
    no nonzeros (their output is the bias alone), with and without a bias."""
    w, a = _csr(37, 21, 0.3, seed=N, empty_rows=(0, 5, 36))
    x = torch.randn(21, N, generator=torch.Generator().manual_seed(7))
    b = torch.randn(37, generator=torch.Generator().manual_seed(8)) if bias else None
    expected = w @ x + (b[:, None] if bias else 0.0)
    out = native.csr_mm(a, x, b)
    assert out.shape == (37, N) and (out - expected).abs().max() <= 1e-5


def test_csr_product_reads_a_transposed_x_and_gives_the_same_numbers_on_one_and_two_threads():
    _, a = _csr(200, 33, 0.2, seed=3)
    x = torch.randn(140, 33, generator=torch.Generator().manual_seed(9)).t()  # (33, 140), strided
    b = torch.randn(200, generator=torch.Generator().manual_seed(10))
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(native.csr_mm(a, x, b))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], native.csr_mm(a, x.contiguous(), b))


@pytest.mark.parametrize("make, match", [
    (lambda a, x, b: (a.to_dense(), x, b), "CSR"),
    (lambda a, x, b: (a, x[:-1], b), "K"),
    (lambda a, x, b: (a, x, b[:-1]), "bias"),
    (lambda a, x, b: (a, x.double(), b), "float32"),
])
def test_the_csr_product_refuses_mismatched_operands(make, match):
    _, a = _csr(9, 6, 0.5, seed=4)
    with pytest.raises(RuntimeError, match=match):
        native.csr_mm(*make(a, torch.randn(6, 20), torch.randn(9)))


def test_the_csr_product_of_no_columns_or_no_rows_is_empty():
    _, a = _csr(9, 6, 0.5, seed=5)
    assert native.csr_mm(a, torch.randn(6, 0)).shape == (9, 0)
    _, none = _csr(0, 6, 0.5, seed=5)
    assert native.csr_mm(none, torch.randn(6, 4)).shape == (0, 4)


def test_the_csr_product_reuses_its_output_only_once_the_caller_has_dropped_every_view_of_it():
    w, a = _csr(50, 8, 0.4, seed=6)
    x = torch.randn(8, 40, generator=torch.Generator().manual_seed(11))
    first = native.csr_mm(a, x)
    kept = first.t()[3:7]  # a view the caller keeps: its values must survive the next call
    expected = kept.clone()
    del first
    second = native.csr_mm(a, 2 * x)
    assert second.data_ptr() != kept.data_ptr() and torch.equal(kept, expected)
    assert (second - 2 * (w @ x)).abs().max() <= 1e-5
    ptr = second.data_ptr()
    del second, kept
    assert native.csr_mm(a, x).data_ptr() == ptr  # nothing holds it now: reused, no fresh pages
