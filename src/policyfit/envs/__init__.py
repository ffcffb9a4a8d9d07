"""Environments and the built-in dataset suite.

Modules: :mod:`~policyfit.envs.registry` (environments; their reference scores are in
:mod:`policyfit.common.scores`),
:mod:`~policyfit.envs.shipped` (the shipped behavior policies), :mod:`~policyfit.envs.collect`
(vectorized rollouts), :mod:`~policyfit.envs.suite` (the fifteen dataset recipes) and
:mod:`~policyfit.envs.datasets` (dataset names resolved: files, Minari ids, built-in names).
"""
