"""Evaluating learned policies: `evaluate` (rollouts of a run), OPE, aggregate statistics, certificates.

The public entry point is :func:`policyfit.evaluate` (defined in :mod:`policyfit.evaluation.rollout`).
"""
