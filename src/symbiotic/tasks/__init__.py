"""Tasks: what makes the training steps task-agnostic.

A task builds its models, trains one epoch, scores a model on a split (lower is
better: perplexity, WER), and yields losses for gradient statistics. The four
steps of the flow (flow/) are written once against this interface.
"""
