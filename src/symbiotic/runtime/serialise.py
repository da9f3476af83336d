"""Exported models as plain tensors and containers, and back, with errors that name the bad key.

A state loads with ``torch.load(..., weights_only=True)``: tensors, dicts, lists, ints and
strings only. A CSR matrix is stored as its parts, ``{"crow_indices", "col_indices",
"values", "shape"}``. Each model module writes its own top level and reads it back with the
checked readers here, which raise a UserError naming the dotted key that is wrong.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import torch
from torch import Tensor

from symbiotic.errors import UserError
from symbiotic.models.hlstm import GATES
from symbiotic.runtime.formats import FORMATS, MATRICES, check_formats
from symbiotic.runtime.layers import InferenceLayer
from symbiotic.runtime.packing import int32_csr

__all__ = ["plain", "layer_state", "state_error", "check_header", "read_field", "read_count", "read_dense",
           "read_layer"]

CSR_PARTS = ("crow_indices", "col_indices", "values", "shape")


def plain(t: Tensor):
    """A dense tensor as is (a CPU copy); a CSR one as its parts (tensors and a list of ints)."""
    t = t.detach().cpu()
    if t.layout == torch.sparse_csr:
        return {
            "crow_indices": t.crow_indices().clone(),
            "col_indices": t.col_indices().clone(),
            "values": t.values().clone(),
            "shape": list(t.shape),
        }
    return t.clone()


def layer_state(layer: InferenceLayer) -> dict:
    """One layer's entry: its formats and its five weights, plain."""
    entry = {"formats": dict(layer.formats)}
    for name in (*MATRICES, "u_b", "w_b"):
        entry[name] = plain(getattr(layer, name))
    return entry


def state_error(key: str, problem: str) -> UserError:
    return UserError(
        f"inference state {key} {problem}",
        "load a file written by this model's export (re-run the export stage)",
    )


def check_header(state, kind: str, version: int) -> None:
    """UserError unless ``state`` is a mapping of this ``kind`` at this ``version``."""
    if not isinstance(state, Mapping) or state.get("kind") != kind:
        raise state_error("kind", f"is {state.get('kind') if isinstance(state, Mapping) else state!r}, "
                                  f"expected {kind!r}")
    if state.get("version") != version:
        raise state_error("version", f"is {state.get('version')!r}, this code reads {version}")


def read_field(d, key: str, name: str, kind):
    """``d[name]``, which must be a ``kind``; ``key`` is its dotted path for the error."""
    if not isinstance(d, Mapping) or name not in d:
        raise state_error(key, "is missing")
    value = d[name]
    if not isinstance(value, kind):
        raise state_error(key, f"is a {type(value).__name__}, expected {getattr(kind, '__name__', kind)}")
    return value


def read_count(d, key: str, name: str, lo: int = 0) -> int:
    """An integer field >= ``lo`` (a bool is not one)."""
    n = read_field(d, key, name, int)
    if isinstance(n, bool) or n < lo:
        raise state_error(key, f"is {n!r}, expected an integer >= {lo}")
    return n


def read_dense(d, key: str, name: str, shape: tuple[int, ...], dtype=None) -> Tensor:
    """A dense floating tensor of ``shape`` (and ``dtype``, where given)."""
    t = read_field(d, key, name, Tensor)
    if t.layout != torch.strided or tuple(t.shape) != shape:
        raise state_error(key, f"has shape {tuple(t.shape)} ({t.layout}), expected dense {shape}")
    if not t.is_floating_point() or (dtype is not None and t.dtype != dtype):
        raise state_error(key, f"has dtype {t.dtype}, expected {dtype or 'a floating type'}")
    _check_finite(t, key)
    return t


def _check_finite(t: Tensor, key: str) -> None:
    if not bool(torch.isfinite(t).all()):  # NaN weights would only show up as NaN scores
        raise state_error(key, "holds NaN or infinite values")


def _read_csr(d, key: str, name: str, shape: tuple[int, ...], dtype) -> Tensor:
    parts = read_field(d, key, name, Mapping)
    for part in CSR_PARTS:
        read_field(parts, f"{key}.{part}", part, list if part == "shape" else Tensor)
    if [int(n) for n in parts["shape"]] != list(shape):
        raise state_error(f"{key}.shape", f"is {list(parts['shape'])}, expected {list(shape)}")
    values = parts["values"]
    if values.dtype != dtype or values.dim() != 1:
        raise state_error(f"{key}.values", f"is {values.dtype} of shape {tuple(values.shape)}, expected 1-d {dtype}")
    _check_finite(values, f"{key}.values")
    for part in ("crow_indices", "col_indices"):
        t = parts[part]
        if t.dtype not in (torch.int32, torch.int64) or t.dim() != 1:
            raise state_error(f"{key}.{part}", f"is {t.dtype} of shape {tuple(t.shape)}, expected a 1-d integer tensor")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return int32_csr(torch.sparse_csr_tensor(
                parts["crow_indices"], parts["col_indices"], values, shape, check_invariants=True
            ))
    except (RuntimeError, ValueError) as e:
        raise state_error(key, f"is not a valid CSR matrix of shape {shape} ({e})") from None


def read_decoder(state, shape: tuple[int, int], dtype) -> Tensor:
    """The output matrix ``decoder_w`` in its recorded ``decoder_format`` (dense when absent:
    exports written before the format was recorded are dense)."""
    fmt = state.get("decoder_format", "dense")
    if fmt not in FORMATS:
        raise state_error("decoder_format", f"is {fmt!r}, expected one of {list(FORMATS)}")
    if fmt == "csr":
        return _read_csr(state, "decoder_w", "decoder_w", shape, dtype)
    return read_dense(state, "decoder_w", "decoder_w", shape, dtype)


def _check_block_diagonal(m: Tensor, rows: int, cols: int, key: str) -> None:
    """Every stored entry of a CSR ``m`` must lie in one of its diagonal (rows, cols) blocks."""
    row = torch.repeat_interleave(torch.arange(m.shape[0]), m.crow_indices().diff().long())
    if rows and cols and not torch.equal(row // rows, m.col_indices().long() // cols):
        raise state_error(key, f"has entries off its diagonal ({rows}, {cols}) blocks")


def read_layer(raw, key: str, layer_cls: type[InferenceLayer], dims: tuple[int, int, int, int], dtype):
    """The ``layer_cls`` of a :func:`layer_state` entry; ``dims`` are (D, I, H, G), and
    ``layer_cls.layout(D, I, H, G)`` gives each matrix's (dense shape, CSR shape)."""
    D, I, H, G = dims
    try:
        formats = check_formats(read_field(raw, f"{key}.formats", "formats", Mapping))
    except UserError as e:
        raise state_error(f"{key}.formats", e.problem) from None
    weights = {name: (_read_csr(raw, f"{key}.{name}", name, csr_shape, dtype) if formats[name] == "csr" else
                      read_dense(raw, f"{key}.{name}", name, dense_shape, dtype))
               for name, (dense_shape, csr_shape) in layer_cls.layout(D, I, H, G).items()}
    if formats["u_h"] == "csr":  # directions never read each other's state
        _check_block_diagonal(weights["u_h"], GATES * G, H, f"{key}.u_h")
    if formats["w"] == "csr":  # gates never read each other's neurons
        _check_block_diagonal(weights["w"], H, G, f"{key}.w")
    u_b = read_dense(raw, f"{key}.u_b", "u_b", (D * GATES * G,), dtype)
    w_b = read_dense(raw, f"{key}.w_b", "w_b", (D * GATES, H), dtype)
    return layer_cls(formats, weights, u_b, w_b)
