"""Flax building blocks shared by every algorithm: MLPs, critic ensembles and policy heads."""

from policyfit.nn.modules import (
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
    "MLP",
    "CategoricalPolicy",
    "DeterministicPolicy",
    "DiscreteQNetwork",
    "EnsembleCritic",
    "GaussianPolicy",
    "TanhGaussianPolicy",
    "ValueNet",
]
