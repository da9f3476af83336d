"""Which format each product of an exported layer runs in, and the one rule that picks it.

The profile stage measures, per product, the sparsity from which CSR beats dense on the target
device (its ``sparse_crossover``). :func:`formats_at` turns those crossovers and a sparsity
into formats; :func:`choose_formats` applies it to a trained model's own sparsity.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from symbiotic.errors import UserError
from symbiotic.models.hlstm import HLSTMLayer
from symbiotic.runtime.packing import deployable
from symbiotic.sparsity.masks import output_sparsity

__all__ = ["MATRICES", "FORMATS", "OUTPUT", "every", "choose_decoder", "output_sparsity", "check_formats", "formats_at", "matrix_sparsity", "choose_formats"]

MATRICES = ("u_x", "u_h", "w")  # the masked products of a layer, as the profile names them
FORMATS = ("dense", "csr")
OUTPUT = "decoder"  # the output product (vocabulary or labels x last hidden), one per model


def every(fmt: str) -> dict[str, str]:
    """The same format for every product, e.g. ``every("dense")``."""
    return dict.fromkeys(MATRICES, fmt)


def check_formats(formats: Mapping[str, str]) -> dict[str, str]:
    """``formats`` as a dict in MATRICES order; UserError unless it gives a known format for each."""
    if not isinstance(formats, Mapping) or set(formats) != set(MATRICES):
        got = sorted(formats) if isinstance(formats, Mapping) else type(formats).__name__
        raise UserError(
            f"formats must name exactly {list(MATRICES)}, got {got}",
            f"give one of {list(FORMATS)} for each of {list(MATRICES)}",
        )
    for name in MATRICES:
        if formats[name] not in FORMATS:
            raise UserError(
                f"format {formats[name]!r} for {name} is unknown",
                f"use one of {list(FORMATS)} for {name}",
            )
    return {name: formats[name] for name in MATRICES}


def formats_at(crossover: Mapping[str, float | None], sparsity: float | Mapping[str, float]) -> dict[str, str]:
    """The crossover rule: "csr" for each product whose sparsity is at or above the profile's
    crossover for it, else "dense"; a crossover that is None or absent means dense always wins.

    ``sparsity`` is one value per product, or one for all of them: a flow step comparing
    candidates passes the nominal sparsity it expects, so that every candidate gets the same
    formats (a pruned copy's own sparsity can round just below a crossover and flip it).
    """
    per_matrix = sparsity if isinstance(sparsity, Mapping) else every(sparsity)
    return {name: "csr" if crossover.get(name) is not None and per_matrix[name] >= crossover[name] else "dense"
            for name in MATRICES}


@torch.no_grad()
def matrix_sparsity(model: nn.Module) -> dict[str, float]:
    """1 - mask mean per product over all H-LSTM layers (and directions) of ``model`` as it is.

    ``w`` counts only its four (H, G) blocks, the block diagonal that CSR stores.
    """
    out = {}
    for name in MATRICES:
        masks = [getattr(layer, f"mask_{name}") for layer in model.modules() if isinstance(layer, HLSTMLayer)]
        total = sum(m.numel() for m in masks)
        active = sum(int(m.count_nonzero()) for m in masks)
        out[name] = 1.0 - active / total if total else 0.0
    return out


def choose_formats(model: nn.Module, crossover: Mapping[str, float | None]) -> dict[str, str]:
    """The formats :func:`formats_at` picks for ``model``'s sparsity once thinned (what the
    export runs); UserError if the profile left a product out (it was not measured)."""
    missing = [name for name in MATRICES if name not in crossover]
    if missing:
        raise UserError(
            f"the sparse crossover has no entry for {missing}",
            "re-run the profile stage so it measures every product (u_x, u_h, w)",
        )
    return formats_at(crossover, matrix_sparsity(deployable(model)))


def choose_decoder(model: nn.Module, crossover: Mapping[str, float | None]) -> str:
    """The decoder's format by the same rule as the layers' (:func:`formats_at`): "csr" from the
    profile's crossover for ``OUTPUT`` on, once thinned; "dense" where the profile has none."""
    point = crossover.get(OUTPUT)
    return "csr" if point is not None and output_sparsity(deployable(model)) >= point else "dense"
