"""Parameter counts, dense and nonzero, per part of a model.

Compactness is judged on the nonzero count: a masked-out weight costs nothing
once the model is thinned or stored sparse. Works for every model class of the
project because it groups parameters by their top-level module name.
"""

from __future__ import annotations

from torch import nn

from symbiotic.sparsity.masks import masked_weights

__all__ = ["count_parameters", "GROUPS"]

GROUPS = ("embedding", "frontend", "recurrent", "decoder")

# Top-level name in named_parameters() -> group. "layers" is the recurrent stack (H-LSTM or
# nn.LSTM layers of DeepSpeech2), "lstm" the LM baseline's nn.LSTM, "norms" the batch norms
# between DeepSpeech2's recurrent layers, "conv" its convolutional front end; "decoder" also
# prefixes decoder_w/decoder_b.
_PREFIXES = (("embedding", "embedding"), ("conv", "frontend"), ("layers", "recurrent"), ("lstm", "recurrent"),
             ("norms", "recurrent"), ("decoder", "decoder"))


def _group(name: str) -> str:
    for prefix, group in _PREFIXES:
        if name.startswith(prefix):
            return group
    raise ValueError(f"parameter {name} belongs to no known group {GROUPS}")


def _nonzero(name: str, param, masks: dict) -> int:
    """Active mask entries for masked weights; actual nonzeros for unmasked matrices
    (a magnitude-pruned baseline holds its zeros in the weights); all entries of
    biases, embeddings and convolutions, which are stored and used dense."""
    if name in masks:
        return int(masks[name].count_nonzero().item())
    if param.dim() >= 2 and _group(name) not in ("embedding", "frontend"):
        return int(param.count_nonzero().item())
    return param.numel()


def count_parameters(model: nn.Module) -> dict:
    """``{group}_dense``, ``{group}_nonzero`` for each group, plus ``total_dense``/``total_nonzero``."""
    masks = {name: mask for name, _, mask in masked_weights(model)}
    counts = {f"{g}_{kind}": 0 for g in GROUPS for kind in ("dense", "nonzero")}
    for name, param in model.named_parameters():
        group = _group(name)
        counts[f"{group}_dense"] += param.numel()
        counts[f"{group}_nonzero"] += _nonzero(name, param, masks)
    counts["total_dense"] = sum(counts[f"{g}_dense"] for g in GROUPS)
    counts["total_nonzero"] = sum(counts[f"{g}_nonzero"] for g in GROUPS)
    return counts
