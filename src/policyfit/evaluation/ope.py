"""Off-policy evaluation without a simulator: Fitted Q Evaluation (Le, Voloshin & Yue, ICML 2019).

FQE (Algorithm 3 of the paper) evaluates a fixed policy ``pi`` from logged transitions by repeated
regression onto its own Bellman targets:

    Q_{k+1} = argmin_Q  E_{(s,a,r,s',d) ~ D} [ (Q(s, a) - r - gamma (1 - d) Q_k(s', pi(s')))^2 ]
    J_gamma(pi) = E_{s_0 ~ D_0} [ Q_K(s_0, pi(s_0)) ]

Each outer iteration ``k`` is ``target_update_every`` Adam steps on minibatches with ``Q_k`` held fixed
(a hard target-network copy), ``iterations`` steps in all; ``d`` is the *terminal* flag only
(time-limit cuts bootstrap). ``D_0`` is the first observation of every episode in the data. The
steps run in jitted chunks of ``fuse``; when ``iterations`` is not a multiple of ``fuse`` the rest
runs as a last, shorter chunk (one more compilation).

**From a discounted value to an undiscounted return and a normalized score.** FQE is fitted with
``gamma = 0.99`` (stable regression with an effective horizon of 100 steps; ``gamma = 1`` over a
1000-step horizon diverges without time-indexed Q-functions). Alongside the reward channel the same
network fits a second output on the constant reward 1 — the policy's *discounted length*
``L_gamma = E[sum_t gamma^t] = E[(1 - gamma^T) / (1 - gamma)]`` — from which the episode length
``T_hat = ln(1 - (1 - gamma) L_gamma) / ln(gamma)`` (clipped to ``[1, H]``) follows. Assuming a constant
reward rate ``rho = J_gamma / L_gamma`` over the episode, the undiscounted return estimate is
``R_hat = rho * T_hat``, and the D4RL normalized score is computed from ``R_hat``. ``J_gamma`` is the
primary estimate (it is what FQE estimates without assumptions); ``R_hat`` is an approximation whose
ranking of policies equals that of ``J_gamma`` when episodes run to the time limit.

**Interval.** ``bootstrap`` extra fits, each on a resample of the dataset's *episodes* with replacement
(start states included) and its own network initialization; all fits run together, vmapped in one
jitted ``lax.scan``. The point estimate is the fit on the full data; the interval is the percentile
interval of the bootstrap fits (with few fits, close to their range), widened to include the point
estimate when it falls outside.

**The policy.** ``act_fn(obs[B, obs_dim]) -> actions[B, act_dim]``. Because ``pi`` is deterministic
and fixed, ``pi(s')`` and ``pi(s_0)`` are computed once for the whole dataset (in chunks of
``act_chunk``) and gathered inside the jitted loop. A jax-traceable ``act_fn`` (e.g.
``lambda o: algo.act(params, o, ())[0]``, what :func:`policy_act_fn` builds from a loaded policy) is jitted;
any numpy callable works as well.

Example:
    >>> import numpy as np, policyfit
    >>> ds = policyfit.load_dataset("hopper-medium")                             # doctest: +SKIP
    >>> policy = policyfit.load_policy("runs/iql-hopper-medium-s0")              # doctest: +SKIP
    >>> res = fitted_q_evaluation(ds, policy, env_id="Hopper-v5")  # doctest: +SKIP
    >>> res.value, res.normalized_score, res.normalized_ci                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.common.checks import check_float, check_int
from policyfit.common.scores import check_ref_scores, normalized_score, reference_scores
from policyfit.common.xla import compiler_options
from policyfit.data.dataset import Dataset
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.nn.modules import MLP


@dataclass(frozen=True)
class FQEConfig:
    """Hyperparameters of Fitted Q Evaluation."""

    discount: float = 0.99  # gamma
    iterations: int = 30_000  # gradient steps in all (= K outer iterations x target_update_every)
    # Steps per FQE iteration: Q_k is copied to the target this often, so the default runs
    # K = 1500 inexact iterations (gamma^K ~ 0 at gamma = 0.99). On Hopper (benchmarks/
    # ope_validation.py) 20 steps x 1000 iterations cut the mean absolute error of J from 69 to 10
    # against 100 steps x 200 iterations at the same cost: too few iterations bias J low.
    target_update_every: int = 20
    batch_size: int = 256
    learning_rate: float = 3e-4
    hidden_dims: tuple[int, ...] = (256, 256)
    layer_norm: bool = True  # stabilizes bootstrapped regression
    normalize_observations: bool = True
    bootstrap: int = 4  # extra fits on episode-level bootstrap resamples, for the interval
    confidence: float = 0.95
    fuse: int = 500  # steps per jitted call
    act_chunk: int = 16_384  # observations per act_fn call when precomputing pi(s')

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def checked(self) -> FQEConfig:
        """This config with ``hidden_dims`` a tuple, or a ConfigError naming the bad field."""
        ints = {
            "iterations": 1,
            "target_update_every": 1,
            "batch_size": 1,
            "bootstrap": 0,
            "fuse": 1,
            "act_chunk": 1,
        }
        for name, minimum in ints.items():
            check_int(getattr(self, name), name, minimum=minimum)
        check_float(self.discount, "discount", low=0.0, high=1.0, low_open=True, high_open=True)
        check_float(self.confidence, "confidence", low=0.0, high=1.0, low_open=True, high_open=True)
        check_float(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        dims = self.hidden_dims
        if isinstance(dims, int | str) or not hasattr(dims, "__iter__"):
            raise ConfigError(
                f"must be a sequence of layer widths, got {dims!r}", field="hidden_dims"
            )
        dims = tuple(check_int(h, "hidden_dims", minimum=1) for h in dims)
        return dataclasses.replace(self, hidden_dims=dims)  # hashable: programs are cached


def chunk_lengths(iterations: int, fuse: int) -> list[int]:
    """Steps of each jitted call: ``fuse`` each, the remainder (if any) as a last, shorter one.

    Example:
        >>> chunk_lengths(1_250, 500)
        [500, 500, 250]
    """
    full, rest = divmod(iterations, fuse)
    return [fuse] * full + ([rest] if rest else [])


@dataclass
class FQEResult:
    """What :func:`fitted_q_evaluation` returns (``to_dict`` gives the JSON of ``policyfit ope``)."""

    value: float  # J_gamma of the fit on the full data
    value_ci: tuple[float, float]
    fit_values: list[float]  # J_gamma of every fit: [full data, bootstrap 1, ...]
    discounted_length: float  # L_gamma
    episode_length: float  # T_hat
    return_estimate: float  # R_hat = J_gamma / L_gamma * T_hat
    return_ci: tuple[float, float]
    normalized_score: float | None
    normalized_ci: tuple[float, float] | None
    discount: float
    horizon: int
    start_states: int
    final_td_loss: float
    # J must lie in [min(0, r_min), max(0, r_max)] / (1 - gamma) for any policy; outside it, the
    # Q-function extrapolates (typically: the policy's actions are outside the data's support).
    value_bounds: tuple[float, float]
    in_bounds: bool
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class TwoChannelQ:
    """``Q(s, a) -> [..., 2]``: channel 0 for the reward, channel 1 for the constant reward 1."""

    def __init__(self, hidden_dims: tuple[int, ...], layer_norm: bool):
        import flax.linen as nn

        class _Q(nn.Module):
            @nn.compact
            def __call__(self, obs, act):
                x = jnp.concatenate([obs, act], axis=-1)
                x = MLP(hidden_dims, activate_final=True, layer_norm=layer_norm)(x)
                return nn.Dense(2)(x)

        self.module = _Q()

    def init(self, key: jax.Array, obs_dim: int, act_dim: int) -> Any:
        return self.module.init(key, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)))

    def apply(self, params: Any, obs: jnp.ndarray, act: jnp.ndarray) -> jnp.ndarray:
        return self.module.apply(params, obs, act)


def policy_act_fn(policy: Any) -> Callable[[Any], Any]:
    """A jax-traceable ``obs -> action`` from a :func:`policyfit.load_policy` result.

    Any other callable is used as it is (a numpy ``obs -> action`` function). FQE evaluates a
    Markov policy: a policy with a carry (a return target, a context) raises.
    """
    from policyfit.algos.policy import Policy

    if not isinstance(policy, Policy):
        return policy
    if policy.stateful:
        raise PolicyfitError(
            f"{policy.name} acts on a carry (its memory), not on the observation alone; FQE "
            "evaluates Markov policies only",
            field="policy",
        )
    algo, params = policy.algo, policy.params
    return lambda obs: algo.act(params, obs, ())[0]


def _actions_for(act_fn: Callable, obs: np.ndarray, chunk: int, discrete: bool, n_actions: int):
    """``act_fn`` over all rows (jitted when traceable), as float32 inputs for the Q-network."""
    try:
        fn = jax.jit(act_fn)
        fn(jnp.asarray(obs[:1]))
    except Exception:  # a numpy callable that cannot be traced
        fn = act_fn
    out = [np.asarray(fn(obs[i : i + chunk])) for i in range(0, len(obs), chunk)]
    act = np.concatenate(out) if out else np.zeros((0,))
    return _encode_actions(act, discrete, n_actions)


def _encode_actions(actions: np.ndarray, discrete: bool, n_actions: int) -> np.ndarray:
    if discrete:
        return np.eye(n_actions, dtype=np.float32)[np.asarray(actions).astype(np.int64).reshape(-1)]
    return np.asarray(actions, dtype=np.float32).reshape(len(actions), -1)


def _bootstrap_rows(ds: Dataset, fits: int, rng: np.random.Generator):
    """Row indices (``[fits, N]``) and start-state weights (``[fits, E]``) of each fit.

    Fit 0 is the full data; fit ``k > 0`` resamples episodes with replacement and draws its ``N``
    training rows from the resampled episodes' transitions.
    """
    n, n_ep = len(ds), ds.num_episodes
    ids = ds.episode_ids()
    rows = np.empty((fits, n), dtype=np.int32)
    weights = np.empty((fits, n_ep), dtype=np.float32)
    rows[0] = np.arange(n)
    weights[0] = 1.0 / n_ep
    for k in range(1, fits):
        counts = np.bincount(rng.integers(0, n_ep, size=n_ep), minlength=n_ep)
        p = counts[ids].astype(np.float64)
        rows[k] = rng.choice(n, size=n, p=p / p.sum())
        weights[k] = counts / counts.sum()
    return rows, weights


def fitted_q_evaluation(
    dataset: Dataset,
    policy: Any,
    *,
    config: FQEConfig | None = None,
    seed: int = 0,
    env_id: str | None = None,
    ref_scores: tuple[float, float] | None = None,
    horizon: int | None = None,
) -> FQEResult:
    """Estimate the value of the deterministic ``policy`` from ``dataset`` by FQE.

    ``policy`` is what :func:`policyfit.load_policy` returns (its jax-traceable ``act`` is jitted
    through :func:`policy_act_fn`; a policy with a carry is rejected) or any function
    ``obs [B, obs_dim] -> actions``. ``env_id`` / ``ref_scores`` give the D4RL normalized score (default: the dataset's env and
    reference scores); ``horizon`` (default: the env's time limit, else the longest episode) caps the
    length estimate. See the module docstring for the estimator, the conversion and the interval.

    Example:
        >>> res = fitted_q_evaluation(ds, lambda o: -o[:, :1], config=FQEConfig(iterations=5_000))  # doctest: +SKIP
        >>> res = fitted_q_evaluation(ds, policyfit.load_policy("runs/iql-hopper-medium-s0"))  # doctest: +SKIP
    """
    act_fn = policy_act_fn(policy)
    cfg = config or FQEConfig()
    if not isinstance(cfg, FQEConfig):
        raise ConfigError(f"must be an FQEConfig, not {type(cfg).__name__}", field="config")
    cfg = cfg.checked()
    seed = check_int(seed, "seed", minimum=0)
    if horizon is not None:
        horizon = check_int(horizon, "horizon", minimum=1)
    if ref_scores is not None:
        ref_scores = check_ref_scores(ref_scores)
    gamma = cfg.discount
    env_id = env_id or dataset.env_id
    discrete = dataset.discrete
    n_actions = dataset.action_dim
    obs = dataset.observations.astype(np.float32)
    next_obs = dataset.next_observations.astype(np.float32)
    starts = dataset.episode_starts

    # Observation normalization from the data (eps as TD3+BC); values scaled to O(1) for the
    # regression and scaled back at the end.
    if cfg.normalize_observations:
        mean, std = obs.mean(0), obs.std(0) + 1e-3
    else:
        mean, std = np.zeros(obs.shape[1], np.float32), np.ones(obs.shape[1], np.float32)
    rewards = dataset.rewards.astype(np.float64)
    scale, length_scale = _value_scales(dataset, gamma)
    pi_next = _actions_for(act_fn, next_obs, cfg.act_chunk, discrete, n_actions)
    pi_start = _actions_for(act_fn, obs[starts], cfg.act_chunk, discrete, n_actions)
    actions = _encode_actions(dataset.actions, discrete, n_actions)
    if pi_next.shape[1] != actions.shape[1]:
        raise PolicyfitError(
            f"the policy returns {pi_next.shape[1]} action dimensions, the dataset has "
            f"{actions.shape[1]}",
            field="actions",
        )
    if len(pi_next) != len(next_obs) or len(pi_start) != len(starts):
        raise PolicyfitError(
            f"the policy returned {len(pi_next)} actions for {len(next_obs)} observations; it "
            "must return one action per row of its [B, obs_dim] input",
            field="actions",
        )

    fits = 1 + max(cfg.bootstrap, 0)
    rng = np.random.default_rng(seed)
    rows, start_weights = _bootstrap_rows(dataset, fits, rng)
    data = {
        "obs": jnp.asarray((obs - mean) / std),
        "act": jnp.asarray(actions),
        "rew": jnp.asarray(
            np.stack([rewards / scale, np.full_like(rewards, 1.0 / length_scale)], -1), jnp.float32
        ),
        "not_done": jnp.asarray(1.0 - dataset.terminals.astype(np.float32)),
        "next_obs": jnp.asarray((next_obs - mean) / std),
        "next_act": jnp.asarray(pi_next),
        "rows": jnp.asarray(rows),
    }

    q, init_state, run_chunk = _fqe_program(cfg, fits, obs.shape[1], actions.shape[1])
    state = init_state(jax.random.PRNGKey(seed))
    base = jax.random.PRNGKey(seed + 1)
    window = min(50, cfg.fuse)  # the final TD loss: mean over the last steps, per fit
    recent = None
    for c, length in enumerate(chunk_lengths(cfg.iterations, cfg.fuse)):
        state, losses = run_chunk(state, data, jax.random.fold_in(base, c), length)
        chunk = np.asarray(losses)
        recent = (chunk if recent is None else np.concatenate([recent, chunk]))[-window:]
    loss = recent.mean(0)

    s0 = jnp.asarray((obs[starts] - mean) / std)
    q0 = np.asarray(jax.vmap(lambda p: q.apply(p, s0, jnp.asarray(pi_start)))(state["params"]))
    # J = E_{s0}[Q(s0, pi(s0))], each fit with its own (bootstrap) start-state weights.
    values = (q0 * start_weights[:, :, None]).sum(1)  # [fits, 2]
    j = values[:, 0] * scale
    length = values[:, 1] * length_scale

    if horizon is None:
        horizon = _horizon(env_id, dataset)
    returns = np.array(
        [_undiscounted(jv, lv, gamma, horizon) for jv, lv in zip(j, length, strict=True)]
    )
    j_ci = _fit_interval(j, cfg.confidence)
    bounds = (
        float(min(0.0, rewards.min()) / (1.0 - gamma)),
        float(max(0.0, rewards.max()) / (1.0 - gamma)),
    )
    r_ci = _fit_interval(returns, cfg.confidence)
    refs = ref_scores or reference_scores(env_id, dataset.metadata, source=dataset.source)
    norm, norm_ci = None, None
    if refs is not None:
        norm = float(normalized_score(returns[0], refs))
        norm_ci = (float(normalized_score(r_ci[0], refs)), float(normalized_score(r_ci[1], refs)))
    length0 = float(length[0])
    return FQEResult(
        value=float(j[0]),
        value_ci=j_ci,
        fit_values=[float(v) for v in j],
        discounted_length=length0,
        episode_length=_length_from_discounted(length0, gamma, horizon),
        return_estimate=float(returns[0]),
        return_ci=r_ci,
        normalized_score=norm,
        normalized_ci=norm_ci,
        discount=gamma,
        horizon=int(horizon),
        start_states=int(len(starts)),
        final_td_loss=float(loss[0]),
        value_bounds=bounds,
        in_bounds=bool(bounds[0] <= j[0] <= bounds[1]),
        config=cfg.to_dict(),
    )


def _fit_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the bootstrap fits (``values[1:]``), widened to hold the full-data fit.

    With a handful of fits the percentile interval is close to their range, and network
    initialization alone can put it beside the full-data estimate; reporting the union keeps the
    point estimate inside its interval. Without bootstrap fits the interval is the point.
    """
    point = float(values[0])
    if len(values) < 2:
        return point, point
    lo, hi = np.percentile(values[1:], [50 * (1 - confidence), 50 * (1 + confidence)])
    return min(float(lo), point), max(float(hi), point)


def _value_scales(ds: Dataset, gamma: float) -> tuple[float, float]:
    """Typical sizes of the two channels' values in the data, so regression targets are O(1).

    Rewards: root mean square of ``r_t * L_t`` with ``L_t`` the discounted number of steps left to a
    terminal (``1/(1 - gamma)`` in episodes cut by a time limit), a cheap proxy for the size of
    returns-to-go. Length: the mean of ``L_t``.
    """
    ends, starts = ds.episode_ends, ds.episode_starts
    steps_left = np.empty(len(ds))
    for start, end in zip(starts, ends, strict=True):
        steps_left[start : end + 1] = np.arange(end - start + 1, 0, -1)
    ended = np.repeat(ds.terminals[ends], ds.episode_lengths)
    disc_len = np.where(ended, (1.0 - gamma**steps_left) / (1.0 - gamma), 1.0 / (1.0 - gamma))
    r = ds.rewards.astype(np.float64)
    scale = float(np.sqrt(np.mean((r * disc_len) ** 2))) or 1.0
    return scale, float(disc_len.mean())


@functools.lru_cache(maxsize=8)
def _fqe_program(cfg: FQEConfig, fits: int, obs_dim: int, act_dim: int):
    """The Q-network, a state initializer and the jitted chunk of ``length`` (default ``fuse``)
    steps, built once per shape.

    The data are an argument of the jitted chunk (not constants baked into the program), so
    evaluating many policies on one dataset compiles once.
    """
    gamma = cfg.discount
    q = TwoChannelQ(tuple(cfg.hidden_dims), cfg.layer_norm)
    opt = optax.adam(cfg.learning_rate)

    def init_state(key: jax.Array) -> dict[str, Any]:
        params = jax.vmap(lambda k: q.init(k, obs_dim, act_dim))(jax.random.split(key, fits))
        return {
            "params": params,
            "target": params,
            "opt": jax.vmap(opt.init)(params),
            "step": jnp.zeros((), jnp.int32),
        }

    def loss_fn(p, target_p, batch):
        # Bellman target of FQE (Le et al. 2019, Algorithm 3, line 4) for both channels.
        next_q = q.apply(target_p, batch["next_obs"], batch["next_act"])
        y = batch["rew"] + gamma * batch["not_done"][:, None] * next_q
        pred = q.apply(p, batch["obs"], batch["act"])
        return jnp.mean((pred - jax.lax.stop_gradient(y)) ** 2)

    def one_fit_step(p, target_p, opt_state, fit_rows, data, key):
        idx = fit_rows[jax.random.randint(key, (cfg.batch_size,), 0, fit_rows.shape[0])]
        batch = {k: v[idx] for k, v in data.items() if k != "rows"}
        loss, grads = jax.value_and_grad(loss_fn)(p, target_p, batch)
        updates, opt_state = opt.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    vmapped_step = jax.vmap(one_fit_step, in_axes=(0, 0, 0, 0, None, 0))

    def step(carry, key):
        state, data = carry
        keys = jax.random.split(key, fits)
        p, o, loss = vmapped_step(
            state["params"], state["target"], state["opt"], data["rows"], data, keys
        )
        t = state["step"] + 1
        # Periodic hard copy: Q_{k+1} becomes the regression target of the next FQE iteration.
        copy = t % cfg.target_update_every == 0
        target = jax.tree_util.tree_map(lambda a, b: jnp.where(copy, a, b), p, state["target"])
        return ({"params": p, "target": target, "opt": o, "step": t}, data), loss

    # thousands of small steps per call: always XLA's full optimization (FULL_COMPILE_OPTIONS
    # holds even where $XLA_FLAGS lowers it, as in the test suite; 3x faster steps there)
    @functools.partial(
        jax.jit, static_argnames=("length",), compiler_options=compiler_options(False)
    )
    def run_chunk(state, data, key, length: int = cfg.fuse):
        (state, _), losses = jax.lax.scan(step, (state, data), jax.random.split(key, length))
        return state, losses

    return q, jax.jit(init_state), run_chunk


def _length_from_discounted(length: float, gamma: float, horizon: int) -> float:
    """``T`` from ``L = (1 - gamma^T) / (1 - gamma)``, clipped to ``[1, horizon]``."""
    frac = 1.0 - (1.0 - gamma) * length
    if frac <= gamma**horizon:
        return float(horizon)
    return float(min(max(math.log(frac) / math.log(gamma), 1.0), horizon))


def _undiscounted(j: float, length: float, gamma: float, horizon: int) -> float:
    """``R_hat = (J_gamma / L_gamma) * T_hat``: a constant reward rate over the estimated length."""
    length = max(float(length), 1.0)
    return float(j / length * _length_from_discounted(length, gamma, horizon))


def _horizon(env_id: str | None, dataset: Dataset) -> int:
    if env_id:
        try:
            import gymnasium as gym

            steps = gym.spec(env_id).max_episode_steps
            if steps:
                return int(steps)
        except Exception:  # unknown to gymnasium: fall back to the data
            pass
    return int(dataset.episode_lengths.max())
