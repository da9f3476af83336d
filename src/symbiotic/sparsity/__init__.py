"""Sparsity: masks beside weights, structured units, pruning/growth decisions and thinning."""
