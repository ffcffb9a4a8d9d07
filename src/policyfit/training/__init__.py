"""The one training loop (jit-fused updates, evaluation, checkpoints, logging, progress).

The public entry point is :func:`policyfit.train` (defined in :mod:`policyfit.training.trainer`).
"""
