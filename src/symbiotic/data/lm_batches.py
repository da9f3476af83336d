"""Language-model batches: a token stream cut into parallel columns and BPTT windows."""

from __future__ import annotations

from typing import Iterator

import torch


def batchify(tokens: torch.Tensor, batch: int) -> torch.Tensor:
    """(N,) -> (N // batch, batch): ``batch`` contiguous streams side by side, tail dropped."""
    steps = tokens.numel() // batch
    return tokens[: steps * batch].view(batch, steps).t().contiguous()  # (steps, batch)


def windows(data: torch.Tensor, bptt: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(input, target) pairs of up to ``bptt`` steps; the target is the input shifted by one."""
    for start in range(0, data.shape[0] - 1, bptt):
        length = min(bptt, data.shape[0] - 1 - start)
        yield data[start:start + length], data[start + 1:start + 1 + length]  # (T, B) each


def window_count(data: torch.Tensor, bptt: int) -> int:
    return (data.shape[0] - 1 + bptt - 1) // bptt
