"""The generations loop: deploy, log with delayed rewards, retrain the oracle, redeploy.

Vangara & Egg (Adyen, arXiv 2412.00569) report that in payment processing a contextual bandit whose
regression oracle is retrained on its own logs can get *worse* as it improves — the reward
distribution shifts and the training labels grow more imbalanced — and that performance can
oscillate across generations. :func:`simulate` reproduces that setting on a synthetic,
payment-authorization-like environment with known truth, so the effect and its mitigations can be
measured:

* :class:`PaymentEnv` — contexts ``x ~ N(0, I_d)``; ``K`` interventions; the bank authorizes with
  probability ``sigmoid(base + g(x) + h_a(x))`` where ``base`` is high (most payments succeed:
  binary reward, imbalanced classes) and ``h_a`` is nonlinear in ``x`` (a linear oracle is
  misspecified, as any real model is); some actions exist only for some payments (per-round
  masks), one action is introduced late and one retired (dynamic action sets).
* Each generation deploys inverse-gap weighting over the current oracle
  (:func:`~policyfit.bandit.explore.igw_probs`), logs ``rounds`` decisions with their
  propensities, and retrains. Rewards are delayed: the last ``delay`` fraction of a generation's
  rewards have not arrived at retraining time (they join the training pool one generation late).
* Variants (:data:`VARIANTS`): ``naive`` (refit on the last generation's arrived logs),
  ``ipw`` (importance-weighted refit), ``balanced`` (class-balanced refit), ``pooled`` (all
  generations), ``floor`` (naive plus a floor of uniform exploration), ``uniform`` (no learning).

The result holds, per variant, seed and generation: the realized authorization rate, the
expected rate of the deployed policy under the true model, the optimum's, the positive share of the
training labels, and the oracle's mean squared error against the truth.

Example:
    >>> env = PaymentEnv(seed=0)
    >>> out = simulate(env, ["naive", "uniform"], generations=3, rounds=2000, seeds=[0],
    ...                progress=False)
    >>> sorted(out["variants"]), len(out["variants"]["naive"]["expected_reward"][0])
    (['naive', 'uniform'], 3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from policyfit.bandit import explore
from policyfit.bandit.learn import sample_weights
from policyfit.bandit.oracle import RidgeOracle
from policyfit.errors import PolicyfitError


@dataclass(frozen=True)
class Variant:
    """How a generation's oracle is retrained and explored with."""

    name: str
    weighting: str = "none"  # none | ipw | balanced
    memory: int = 1  # generations of logs kept for retraining (0 = all)
    floor: float = 0.0  # uniform exploration mixed into the IGW probabilities
    learn: bool = True  # False: uniform play throughout


VARIANTS: dict[str, Variant] = {
    "naive": Variant("naive"),
    "ipw": Variant("ipw", weighting="ipw"),
    "balanced": Variant("balanced", weighting="balanced"),
    "pooled": Variant("pooled", memory=0),
    "floor": Variant("floor", floor=0.1),
    "uniform": Variant("uniform", learn=False),
}


@dataclass(frozen=True)
class PaymentEnv:
    """A payment-authorization-like contextual bandit with known truth (module docstring)."""

    n_actions: int = 5
    dim: int = 6
    base: float = 1.6  # logit of the no-intervention authorization rate (~83%)
    effect: float = 1.2  # scale of the interventions' nonlinear effects
    late_action: int | None = 4  # introduced at generation `late_from`
    late_from: int = 4
    retired_action: int | None = 2  # retired from generation `retired_from`
    retired_from: int = 8
    seed: int = 0
    _w: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_actions < 2 or self.dim < 2:
            raise PolicyfitError("need n_actions >= 2 and dim >= 2", field="env")
        rng = np.random.default_rng(10_000 + self.seed)
        w = {
            "g": rng.normal(size=self.dim) / np.sqrt(self.dim),
            "u": rng.normal(size=(self.n_actions, self.dim)) / np.sqrt(self.dim),
            "v": rng.normal(size=(self.n_actions, self.dim)) / np.sqrt(self.dim),
            "c": rng.normal(size=self.n_actions) * 0.3,
        }
        object.__setattr__(self, "_w", w)

    def contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(size=(n, self.dim))

    def auth_prob(self, x: np.ndarray) -> np.ndarray:
        """True authorization probabilities ``[n, K]``."""
        w = self._w
        g = x @ w["g"]
        h = self.effect * (np.tanh(2.0 * x @ w["u"].T) * np.abs(x @ w["v"].T) + w["c"])
        h[:, 0] = 0.0  # action 0: no intervention
        return 1.0 / (1.0 + np.exp(-(self.base + g[:, None] + h)))

    def mask(self, x: np.ndarray, generation: int) -> np.ndarray:
        """Available actions ``[n, K]``: per-payment eligibility and the action set's schedule."""
        m = np.ones((len(x), self.n_actions), dtype=bool)
        m[:, 1] = x[:, 0] > -1.0  # e.g. an intervention some issuers do not support
        if self.late_action is not None and generation < self.late_from:
            m[:, self.late_action] = False
        if self.retired_action is not None and generation >= self.retired_from:
            m[:, self.retired_action] = False
        return m

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


@dataclass
class _Logs:
    generation: list[np.ndarray] = field(default_factory=list)
    context: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    reward: list[np.ndarray] = field(default_factory=list)
    pscore: list[np.ndarray] = field(default_factory=list)
    arrived: list[np.ndarray] = field(default_factory=list)  # generation its reward arrives by

    def add(self, g, x, a, r, p, arrival) -> None:
        for name, value in zip(
            ("generation", "context", "action", "reward", "pscore", "arrived"),
            (np.full(len(a), g), x, a, r, p, arrival),
            strict=True,
        ):
            getattr(self, name).append(value)

    def training_rows(self, now: int, memory: int) -> dict[str, np.ndarray]:
        """Rows whose reward has arrived by generation ``now`` within the memory window."""
        cat = {k: np.concatenate(v) for k, v in asdict(self).items()}
        keep = cat["arrived"] <= now
        if memory > 0:
            keep &= cat["generation"] >= now - memory
        return {k: v[keep] for k, v in cat.items()}


def _oracle(env: PaymentEnv, rows: dict[str, np.ndarray], variant: Variant, l2: float):
    oracle = RidgeOracle(env.n_actions, env.dim, l2=l2)
    if len(rows["action"]):
        w = sample_weights(rows["reward"], rows["pscore"], variant.weighting)
        oracle.fit(rows["context"], rows["action"], rows["reward"], w)
    return oracle


def _generation(env, variant, oracle, g, rounds, gamma, rng, truth_x):
    """Deploy one generation; returns its logs and its metrics."""
    x = env.contexts(rounds, rng)
    mask = env.mask(x, g)
    if oracle is None or not variant.learn:
        probs = mask / mask.sum(axis=1, keepdims=True)
    else:
        probs = explore.igw_probs(oracle.predict(x), gamma, mask)
        if variant.floor:
            probs = explore.uniform_floor(probs, variant.floor, mask)
    a, p = explore.sample_actions(probs, rng)
    q = env.auth_prob(x)
    r = (rng.random(rounds) < q[np.arange(rounds), a]).astype(np.float64)
    best = np.where(mask, q, -np.inf).max(axis=1)
    metrics = {
        "reward": float(r.mean()),
        "expected_reward": float((probs * q).sum(axis=1).mean()),
        "optimal_reward": float(best.mean()),
    }
    if oracle is None:
        metrics["oracle_mse"] = None
    else:  # over the actions available this generation
        avail = env.mask(truth_x, g)
        err = (oracle.predict(truth_x) - env.auth_prob(truth_x)) ** 2
        metrics["oracle_mse"] = float(err[avail].mean())
    return (x, a, r, p), metrics


def simulate(
    env: PaymentEnv,
    variants: list[str] | None = None,
    *,
    generations: int = 12,
    rounds: int = 10_000,
    delay: float = 0.2,
    gamma: float = 200.0,
    l2: float = 1.0,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    progress: bool = True,
) -> dict[str, Any]:
    """Run every variant for ``generations`` generations of ``rounds`` decisions, per seed.

    Returns ``{"config": ..., "variants": {name: {metric: [[per generation] per seed]}}}``.
    """
    names = list(VARIANTS) if variants is None else list(variants)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise PolicyfitError(
            f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}",
            field="variants",
        )
    if generations < 2 or rounds < 10 or not 0.0 <= delay < 1.0 or gamma < 0:
        raise PolicyfitError(
            "need generations >= 2, rounds >= 10, 0 <= delay < 1, gamma >= 0", field="simulate"
        )
    from policyfit.common.progress import ProgressBar

    out: dict[str, Any] = {
        "config": {
            "env": env.describe(),
            "generations": generations,
            "rounds": rounds,
            "delay": delay,
            "gamma": gamma,
            "l2": l2,
            "seeds": list(seeds),
            "variants": {n: asdict(VARIANTS[n]) for n in names},
        },
        "variants": {},
    }
    total = len(names) * len(seeds) * generations
    with ProgressBar("generations", total=total, enabled=progress) as bar:
        for name in names:
            variant = VARIANTS[name]
            per_metric: dict[str, list[list[float]]] = {}
            for seed in seeds:
                rows = _run_one(env, variant, generations, rounds, delay, gamma, l2, seed, bar)
                for key, values in rows.items():
                    per_metric.setdefault(key, []).append(values)
            out["variants"][name] = per_metric
    return out


def _run_one(env, variant, generations, rounds, delay, gamma, l2, seed, bar) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    truth_x = env.contexts(5_000, np.random.default_rng(99))
    logs, oracle = _Logs(), None
    rows: dict[str, list] = {}
    for g in range(generations):
        if g > 0:
            train = logs.training_rows(g, variant.memory)
            oracle = _oracle(env, train, variant, l2)
            rows.setdefault("train_positive_share", []).append(
                float(train["reward"].mean()) if len(train["reward"]) else None
            )
        else:
            rows.setdefault("train_positive_share", []).append(None)
        (x, a, r, p), metrics = _generation(env, variant, oracle, g, rounds, gamma, rng, truth_x)
        arrival = np.where(np.arange(rounds) >= int(round(rounds * (1 - delay))), g + 2, g + 1)
        logs.add(g, x, a, r, p, arrival)
        for key, value in metrics.items():
            rows.setdefault(key, []).append(value)
        bar.advance(1)
    return rows
