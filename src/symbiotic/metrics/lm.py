"""Language modelling metric: perplexity from summed negative log-likelihood."""

from __future__ import annotations

import math

MAX_LOG = 50.0  # a diverged model reports e^50, not inf: metrics files and thresholds stay finite


def perplexity(total_nll: float, count: int) -> float:
    """exp(mean NLL per token), capped at e^50."""
    if count <= 0:
        raise ValueError("perplexity of zero tokens")
    return math.exp(min(total_nll / count, MAX_LOG))
