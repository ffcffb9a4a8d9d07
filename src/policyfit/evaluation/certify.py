"""Policy smoothing certificates (Kumar, Levine & Feizi, "Policy Smoothing for Provably Robust
Reinforcement Learning", ICLR 2022).

**Smoothed policy.** ``pi_sigma(s) = pi(s + eta)``, ``eta ~ N(0, sigma^2 I)`` drawn afresh at every
step. An adversary may add ``eps_t`` to each observation, chosen adaptively from everything it has
seen, with a *total* budget over the episode ``sqrt(sum_t ||eps_t||_2^2) <= B``.

**Certificate.** Run ``m`` clean episodes of the smoothed policy, sort their returns
``v_1 <= ... <= v_m`` (shifted so that ``v_0 = 0`` is a lower bound of every return, see below) and
let ``F_hat`` be their empirical CDF, ``F_hat(v) = #{j : v_j <= v} / m``. With probability
``1 - alpha`` over the ``m`` episodes, the expected return under *any* such attack is at least

    bound(B) = sum_i (v_i - v_{i-1}) * Phi( Phi^-1( max(1 - F_hat(v_i) - sqrt(ln(2/alpha) / (2m)), 0) ) - B / sigma )

This is the layer-cake formula ``E[X] = int_0^inf P(X > x) dx`` with three steps: (1) on
``[v_{i-1}, v_i)`` the tail ``P(X > x)`` is at least ``P(X > v_i) = 1 - F(v_i)``; (2) the
Dvoretzky–Kiefer–Wolfowitz inequality (Massart's constant) lowers ``1 - F_hat`` by
``sqrt(ln(2/alpha)/(2m))`` to hold for the true ``F`` with probability ``1 - alpha``; (3) the
adaptive Neyman–Pearson lemma (Theorem 1 of the paper) turns a probability ``p`` of an event under
the clean smoothed policy into ``Phi(Phi^-1(p) - B/sigma)`` under an attack of total budget ``B``
(the Gaussian-smoothing bound of Cohen et al. 2019, extended to adaptive adversaries over the
episode). ``Phi^-1(0) = -inf`` makes the terms with ``p = 0`` vanish.

**Shift to non-negative returns** (``floor``). The formula needs returns ``>= 0``; we subtract a floor
``c`` and add it back: ``bound = c + bound_shifted``. If ``floor`` is a true lower bound of *every*
episode's return (e.g. per-step reward minimum x horizon, or 0 for non-negative rewards) the
result bounds ``E[R]`` under attack. Without one, ``floor`` defaults to the smallest observed clean
return; the certified quantity is then ``E[max(R, c)]`` under attack (returns below ``c`` count as
``c``) — reported as ``floor_kind = "observed-min"`` so nobody mistakes it for more.

Example:
    >>> import numpy as np
    >>> returns = np.array([1.0, 2.0, 3.0, 4.0])
    >>> round(smoothing_certificate(returns, sigma=1.0, budget=0.0, alpha=0.5, floor=0.0), 4)
    0.4174
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from policyfit.common.checks import check_float, check_int
from policyfit.errors import PolicyfitError


# --------------------------------------------------------------------------- the certificate
def dkw_epsilon(m: int, alpha: float) -> float:
    """``sqrt(ln(2/alpha) / (2m))``: the DKW(-Massart) band of an empirical CDF of ``m`` samples."""
    m = check_int(m, "episodes", minimum=1)
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * m))


def smoothing_certificate(
    returns: Sequence[float] | np.ndarray,
    sigma: float,
    budget: float | Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    floor: float | None = None,
) -> Any:
    """Certified lower bound on the expected return under an ℓ2 attack of total budget ``budget``.

    ``returns`` are clean episode returns of the *smoothed* policy (noise ``sigma``); ``budget`` may
    be a scalar (returns a float) or an array (returns an array). See the module docstring for the
    formula and for ``floor``.

    Example:
        >>> r = [10.0, 20.0, 30.0, 40.0, 50.0] * 40   # 200 episodes
        >>> b0, b1 = smoothing_certificate(r, sigma=0.2, budget=[0.0, 0.2], floor=0.0)
        >>> bool(b1 < b0 < np.mean(r))
        True
    """
    x = np.sort(_floats(returns, "returns").reshape(-1))
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise PolicyfitError("needs finite returns of at least one episode", field="returns")
    sigma = check_float(sigma, "sigma", low=0.0, low_open=True)
    alpha = check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    b = _floats(budget, "budget")
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise PolicyfitError(f"must be finite and >= 0, got {budget!r}", field="budget")
    c = float(x[0]) if floor is None else check_float(floor, "floor")
    if x[0] < c:
        raise PolicyfitError(
            f"a return ({x[0]:.4g}) lies below the floor {c:.4g}; the floor must bound every return",
            field="floor",
        )
    m = x.size
    v = x - c  # shifted returns, >= 0; v_0 = 0
    steps = np.diff(np.concatenate([[0.0], v]))  # v_i - v_{i-1}
    ecdf = np.searchsorted(v, v, side="right") / m  # F_hat(v_i)
    p = np.maximum(1.0 - ecdf - dkw_epsilon(m, alpha), 0.0)
    # Phi(Phi^-1(p) - B/sigma), Theorem 1 of Kumar et al. 2022; norm.ppf(0) = -inf -> cdf 0.
    with np.errstate(divide="ignore"):
        z = norm.ppf(p)[:, None] - np.atleast_1d(b)[None, :] / sigma
    out = c + np.sum(steps[:, None] * norm.cdf(z), axis=0)
    return float(out[0]) if b.ndim == 0 else out


def _floats(values: Any, field: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise PolicyfitError(f"must be numbers, got {values!r}", field=field) from None


# --------------------------------------------------------------------------- smoothed rollouts
def smoothed_policy(
    policy: Callable[[np.ndarray], Any],
    sigma: float,
    seed: int = 0,
    attack: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """``obs -> policy(obs + attack(obs) + N(0, sigma^2 I))`` on batches, noise drawn per call.

    The attack (if any) sees the clean observation and acts before the smoothing noise, as in the
    paper's threat model.
    """
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if attack is not None:
            obs = obs + attack(obs).astype(np.float32)
        noise = rng.normal(0.0, sigma, size=obs.shape).astype(np.float32)
        return np.asarray(policy(obs + noise))

    return act


def action_deviation_attack(
    policy: Callable[[np.ndarray], Any],
    per_step_norm: float,
    *,
    candidates: int = 8,
    seed: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """A black-box ℓ2 attack: of ``candidates`` random directions of norm ``per_step_norm``, take the
    one that moves the base policy's action the most (per environment in the batch).

    With ``per_step_norm = B / sqrt(T)`` over at most ``T`` steps, the total budget is at most ``B``.
    ``candidates=1`` is a plain random-direction attack.
    """
    per_step_norm = check_float(per_step_norm, "per_step_norm", low=0.0)
    candidates = check_int(candidates, "candidates", minimum=1)
    rng = np.random.default_rng(seed)

    def attack(obs: np.ndarray) -> np.ndarray:
        n, d = obs.shape
        dirs = rng.normal(size=(candidates, n, d))
        dirs *= per_step_norm / np.linalg.norm(dirs, axis=-1, keepdims=True)
        if candidates == 1 or per_step_norm == 0:
            return dirs[0]
        clean = np.asarray(policy(obs)).reshape(n, -1)
        moved = np.asarray(policy((obs[None] + dirs).reshape(candidates * n, d).astype(np.float32)))
        dev = np.linalg.norm(moved.reshape(candidates, n, -1) - clean[None], axis=-1)
        return dirs[np.argmax(dev, axis=0), np.arange(n)]

    return attack


@dataclass
class CertificateReport:
    """Everything ``policyfit certify`` prints and plots."""

    env_id: str
    alpha: float
    episodes: int
    budget: float
    floor: float | None
    floor_kind: str
    budgets: list[float]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "alpha": self.alpha,
            "episodes": self.episodes,
            "budget": self.budget,
            "floor": self.floor,
            "floor_kind": self.floor_kind,
            "budgets": self.budgets,
            "rows": self.rows,
        }


def certify_policy(
    policy: Callable[[np.ndarray], Any],
    env_id: str,
    sigmas: Sequence[float],
    budget: float,
    *,
    episodes: int = 100,
    attack_episodes: int | None = None,
    alpha: float = 0.05,
    floor: float | None = None,
    grid: int = 21,
    horizon: int | None = None,
    seed: int = 0,
    max_envs: int = 25,
) -> CertificateReport:
    """Certificates of ``policy`` smoothed with each ``sigma``, and an attack at ``budget`` to compare.

    For every ``sigma``: ``episodes`` clean smoothed episodes give the bound on a grid of budgets
    ``0 .. budget`` (``grid`` points); ``attack_episodes`` (default ``episodes // 2``, at least 5)
    episodes under :func:`action_deviation_attack` with total budget ``budget`` give the empirical
    attacked return, which the bound at ``budget`` must not exceed.

    Example:
        >>> rep = certify_policy(policy, "Hopper-v5", [0.1, 0.2], budget=0.5)   # doctest: +SKIP
        >>> rep.rows[0]["bound_at_budget"] <= rep.rows[0]["attacked_return_mean"]  # doctest: +SKIP
        True
    """
    from policyfit.algos.policy import Policy
    from policyfit.envs.rollout import rollout_returns

    if isinstance(policy, Policy) and policy.stateful:
        raise PolicyfitError(
            f"{policy.name} acts on a carry (its memory), not on the observation alone; the "
            "smoothing certificate covers Markov policies obs -> action only",
            field="policy",
        )
    budget, episodes, n_attack, grid, horizon = _check_certify_options(
        env_id,
        sigmas,
        budget,
        episodes,
        attack_episodes,
        alpha,
        floor,
        grid,
        horizon,
        seed,
        max_envs,
    )
    budgets = np.linspace(0.0, budget, grid) if budget > 0 else np.zeros(1)
    per_step = budget / math.sqrt(horizon)
    rows = []
    floor_kind = "given" if floor is not None else "observed-min"
    for k, sigma in enumerate(sigmas):
        clean, _ = rollout_returns(
            smoothed_policy(policy, sigma, seed=seed + 7919 * k),
            env_id,
            episodes=episodes,
            seed=seed,
            max_envs=max_envs,
        )
        attack = action_deviation_attack(policy, per_step, seed=seed + 104729 * (k + 1))
        attacked, _ = rollout_returns(
            smoothed_policy(policy, sigma, seed=seed + 7919 * k + 1, attack=attack),
            env_id,
            episodes=n_attack,
            seed=seed + 1_000_000,
            max_envs=max_envs,
        )
        c = float(clean.min()) if floor is None else floor
        bounds = smoothing_certificate(clean, sigma, budgets, alpha=alpha, floor=c)
        at_budget = float(smoothing_certificate(clean, sigma, budget, alpha=alpha, floor=c))
        rows.append(
            {
                "sigma": float(sigma),
                "clean_return_mean": float(clean.mean()),
                "clean_return_std": float(clean.std()),
                "floor_used": c,
                "bounds": bounds.tolist(),
                "bound_at_budget": at_budget,
                "attacked_return_mean": float(attacked.mean()),
                "attacked_return_std": float(attacked.std()),
                "attacked_floored_mean": float(np.maximum(attacked, c).mean()),
                "attack_per_step_norm": per_step,
                "bound_below_attack": bool(at_budget <= attacked.mean()),
            }
        )
    return CertificateReport(
        env_id=env_id,
        alpha=alpha,
        episodes=episodes,
        budget=float(budget),
        floor=floor,
        floor_kind=floor_kind,
        budgets=budgets.tolist(),
        rows=rows,
    )


def _check_certify_options(
    env_id: str,
    sigmas: Sequence[float],
    budget: float,
    episodes: int,
    attack_episodes: int | None,
    alpha: float,
    floor: float | None,
    grid: int,
    horizon: int | None,
    seed: int,
    max_envs: int,
) -> tuple[float, int, int, int, int]:
    """Every option of :func:`certify_policy` checked before the first (slow) rollout.

    Returns ``(budget, episodes, attack_episodes, grid, horizon)`` with the defaults filled in.
    """
    budget = check_float(budget, "budget", low=0.0)
    episodes = check_int(episodes, "episodes", minimum=2)
    if isinstance(sigmas, str) or not hasattr(sigmas, "__len__") or len(sigmas) == 0:
        raise PolicyfitError("give at least one --sigma", field="sigma")
    for sigma in sigmas:
        check_float(sigma, "sigma", low=0.0, low_open=True)
    check_float(alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True)
    if floor is not None:
        check_float(floor, "floor")
    n_attack = max(5, episodes // 2) if attack_episodes is None else attack_episodes
    n_attack = check_int(n_attack, "attack_episodes", minimum=1)
    grid = check_int(grid, "grid", minimum=2 if budget > 0 else 1)
    check_int(seed, "seed", minimum=0)
    check_int(max_envs, "max_envs", minimum=1)
    horizon = _max_episode_steps(env_id) if horizon is None else horizon
    horizon = check_int(horizon, "horizon", minimum=1)
    return budget, episodes, n_attack, grid, horizon


def _max_episode_steps(env_id: str) -> int:
    import gymnasium as gym

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise PolicyfitError(f"unknown environment: {exc}", path=env_id, field="env_id") from None
    return int(spec.max_episode_steps or 1000)


def plot_certificate(report: CertificateReport) -> Any:
    """Bound versus budget, one line per sigma; the attacked return at ``budget`` as a marker.

    Returns a matplotlib figure (Agg); :func:`policyfit.evaluation.stats.figure_png_bytes` gives PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for row in report.rows:
        (line,) = ax.plot(report.budgets, row["bounds"], label=f"certified, σ={row['sigma']:g}")
        ax.scatter(
            [report.budget],
            [row["attacked_return_mean"]],
            marker="x",
            color=line.get_color(),
            label=f"attacked, σ={row['sigma']:g}",
        )
        ax.axhline(row["clean_return_mean"], color=line.get_color(), ls=":", lw=0.8)
    ax.set_xlabel("ℓ2 attack budget B (whole episode)")
    ax.set_ylabel("expected return")
    what = "E[R]" if report.floor_kind == "given" else "E[max(R, min clean R)]"
    ax.set_title(
        f"{report.env_id}: certified {what}\nα={report.alpha:g}, m={report.episodes} clean episodes",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    return fig


def format_certificate_table(report: CertificateReport, columns: int = 5) -> str:
    """Markdown table: one row per sigma; bound at a few budgets, clean and attacked returns."""
    idx = np.unique(
        np.linspace(0, len(report.budgets) - 1, min(columns, len(report.budgets))).astype(int)
    )
    head = (
        ["σ", "clean mean"]
        + [f"bound B={report.budgets[i]:.3g}" for i in idx]
        + [f"attacked B={report.budget:g}"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report.rows:
        cells = [f"{row['sigma']:g}", f"{row['clean_return_mean']:.1f}"]
        cells += [f"{row['bounds'][i]:.1f}" for i in idx]
        cells.append(f"{row['attacked_return_mean']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
