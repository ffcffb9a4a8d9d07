"""Layer 2: rollouts, normalized scores, OPE, aggregate statistics, certificates.

The public entry point is :func:`policyfit.evaluate` (defined in :mod:`policyfit.evaluation.rollout`).
"""
