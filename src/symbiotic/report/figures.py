"""The report's own figures, as PNG bytes: training curves of every step and the masks of one
gate matrix after each step (the paper's Fig. 6). The profile and trade-off figures are the
profile and evaluate stages' own PNGs, embedded as they are."""

from __future__ import annotations

import io as _io

import pandas as pd
import torch


def _pyplot():
    import matplotlib  # here: only the report stage draws

    matplotlib.use("Agg")  # files only; no display on build machines
    import matplotlib.pyplot as plt
    return plt


def png(fig) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _pyplot().close(fig)
    return buf.getvalue()


def curves(histories: dict[str, pd.DataFrame], metric: str) -> bytes:
    """Training loss and validation score per epoch, every step one after the other on a common
    epoch axis (each step's curve starts where the previous one ended)."""
    plt = _pyplot()
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(12, 4))
    start = 0
    for step, frame in histories.items():
        x = range(start, start + len(frame))
        loss_ax.plot(x, frame["train_loss"], marker=".", label=step)
        score_ax.plot(x, frame[metric], marker=".", label=step)
        start += len(frame)
    loss_ax.set_ylabel("training loss")
    score_ax.set_ylabel(f"validation {metric}")
    for ax in (loss_ax, score_ax):
        ax.set_xlabel("epoch (all steps in order)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return png(fig)


def gate_block(mask: torch.Tensor) -> torch.Tensor:
    """The first gate's rows of a stacked gate matrix (4 gates one above the other)."""
    return mask[: mask.shape[0] // 4].float()


def masks(blocks: dict[str, torch.Tensor], name: str) -> bytes:
    """Each step's mask of the same matrix drawn at one scale (a pixel a weight), so that removed
    rows and columns show as a smaller picture and pruned weights as white."""
    plt = _pyplot()
    tallest = max(b.shape[0] for b in blocks.values())
    widest = sum(b.shape[1] for b in blocks.values())
    fig, axes = plt.subplots(1, len(blocks), figsize=(max(6, widest / 40), max(2.5, tallest / 40 + 1)),
                             gridspec_kw={"width_ratios": [b.shape[1] for b in blocks.values()]})
    for ax, (step, block) in zip(axes, blocks.items()):
        ax.imshow(block.numpy(), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylim(tallest - 0.5, -0.5)
        ax.set_title(f"{step}\n{block.shape[0]}x{block.shape[1]}, {100 * float(block.mean()):.1f}% kept",
                     fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{name}, first gate (black: weight kept)", fontsize=9)
    fig.tight_layout()
    return png(fig)
