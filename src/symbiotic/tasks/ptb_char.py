"""Character-level language modelling on PTB: the example of a user's own task.

A task is a module registered in ``symbiotic.tasks.TASKS`` that gives the flow its data, its
models (an H-LSTM the steps can grow and prune, and a stock-LSTM baseline), a training loss and a
score (``tasks.base.Task``). This one reuses the word-level task's machinery (H-LSTM language
model, BPTT batches, export and timing) and changes only what differs: the data (characters,
``ptb_char_prepare``) and the score, bits per character. Its params are the ``ptb_char``
subsections of params.yaml; its stages are the ``ptb_char`` items of dvc.yaml's foreach.
"""

from __future__ import annotations

import math

from symbiotic.tasks import ptb
from symbiotic.tasks.base import Metric

# Its params classes are the word-level task's: the same fields mean the same things here.
TrainConfig, ModelSpec, BaselineSpec = ptb.TrainConfig, ptb.ModelSpec, ptb.BaselineSpec


def latency_target(params: dict):
    """What the profile times: the exported H-LSTM LM at the swept widths, over the symbols."""
    return ptb.latency_target(params, "ptb_char")


class CharPTBTask(ptb.PTBTask):
    name = "ptb_char"
    metric = Metric("bpc")  # bits per character: lower is better

    @staticmethod
    def from_nll(total_nll: float, count: int) -> float:
        """Mean negative log-likelihood per symbol in bits (capped as perplexity is: finite)."""
        return min(total_nll / count, 50.0) / math.log(2)
