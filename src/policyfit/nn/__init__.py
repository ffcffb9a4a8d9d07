"""Flax building blocks shared by every algorithm: MLPs, critic ensembles and policy heads."""

from policyfit.nn.modules import (
    INIT_SCHEMES,
    MLP,
    CategoricalPolicy,
    DeterministicPolicy,
    DiscreteQNetwork,
    EnsembleCritic,
    GaussianPolicy,
    TanhGaussianPolicy,
    ValueNet,
)

__all__ = [
    "INIT_SCHEMES",
    "MLP",
    "CategoricalPolicy",
    "DeterministicPolicy",
    "DiscreteQNetwork",
    "EnsembleCritic",
    "GaussianPolicy",
    "TanhGaussianPolicy",
    "ValueNet",
]
