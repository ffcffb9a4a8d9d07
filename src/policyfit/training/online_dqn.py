"""The online DQN behind the discrete suite's behavior policies (Schweighofer et al., CoLLAs 2022).

The paper's code (github.com/ml-jku/OfflineRL, ``source/train_online.py``, ``source/agents/dqn.py``)
trains one DQN per environment and builds every dataset from that run. This module runs the same
algorithm, jitted end to end:

- one environment (the gymnax port, :mod:`policyfit.envs.jaxenv`) for ``online_steps`` steps
  (100k classic control, 2M MinAtar) and a ring replay buffer of ``online_buffer`` transitions
  (50k / 500k) on the device, sampled uniformly;
- after every environment step ``t > 32`` (0-indexed; the paper's ``iteration > batch_size``) one
  update on a batch of 32: Double DQN (``Q`` picks ``a'``, ``Q'`` scores it), Huber loss
  (``SmoothL1Loss``), Adam 1e-4, ``Q'`` copied every 100 updates, the environment's discount
  (0.95 CartPole, 0.99 otherwise). The update is :meth:`policyfit.algos.dqn.DQN.update`;
- epsilon-greedy acting with ``epsilon = max(1 - 0.99 * updates / 1000, 0.01)``;
- a greedy evaluation (10 episodes) every ``online_steps // evaluations`` steps (500 evaluations
  as the paper for classic control, 100 for MinAtar); the best mean is the paper's "online" expert
  return.

Steps run ``chunk`` at a time inside one ``jax.lax.scan``; step ``t`` draws its randomness from
``fold_in(key, t)``, so a run is deterministic per seed on one machine and does not depend on the
chunking. :func:`ship_online_dqn` (``policyfit behavior dqn KEY``) trains, measures and ships the
Q-network snapshots that :mod:`policyfit.envs.dqn_behavior` loads.

Deviations from the paper's code: a 2x128 ReLU MLP with flax's orthogonal initialization instead of
3x256 SELU (the weights ship in the wheel); time-limit cuts bootstrap (only terminals stop it; the
paper stores gym's ``done``); batches are drawn with replacement (the paper's without); evaluation
episodes start from ``episode_returns``'s seeded resets, not gym seeds 0..9.

Example:
    >>> result = train_online_dqn("cartpole", steps=2_000, snapshots=2,
    ...                           progress=False)  # doctest: +SKIP
    >>> len(result.snapshots), result.snapshot_steps  # doctest: +SKIP
    (3, [0, 1000, 2000])
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import DatasetSpec
from policyfit.algos.dqn import DQN, DQNConfig
from policyfit.common.files import atomic_write_bytes, atomic_write_text, dumps
from policyfit.common.progress import ProgressBar
from policyfit.common.versions import git_state, library_versions, machine_info
from policyfit.common.xla import compiler_options
from policyfit.envs import jaxenv
from policyfit.envs.dqn_behavior import (
    INDEX_NAME,
    behavior_index,
    epsilon_greedy,
    network_act_fn,
    policies_dir,
)
from policyfit.errors import ConfigError

CPU_RUNTIME_OPTION = "xla_cpu_use_thunk_runtime"
#: the protocol of ``final_greedy_return`` and ``random_return`` in the shipped index
RETURN_EPISODES = 100
RETURN_SEED = 10_000


@dataclasses.dataclass(frozen=True)
class OnlineDQNConfig:
    """The paper's online DQN (``train_online.py`` / ``agents/dqn.py``); ``steps``, ``buffer`` and
    ``discount`` default to the environment's :class:`~policyfit.envs.jaxenv.DiscreteEnvSpec`."""

    key: str = "cartpole"
    steps: int | None = None  # environment steps; None: spec.online_steps
    buffer: int | None = None  # replay capacity; None: spec.online_buffer
    discount: float | None = None  # None: spec.discount
    seed: int = 0
    batch_size: int = 32
    learning_rate: float = 1e-4  # Adam
    target_update_period: int = 100  # updates between hard copies into Q'
    huber_delta: float = 1.0  # SmoothL1Loss
    double: bool = True  # dqn.py: Q picks a', Q' scores it
    hidden_dims: tuple[int, ...] = (128, 128)  # the paper: 3x256 SELU
    eps_start: float = 1.0
    eps_end: float = 0.01
    eps_decay_updates: int = 1000
    warmup: int = 32  # one update after every env step t > warmup (0-indexed)
    # a greedy evaluation every steps // evaluations steps; None: 500 classic control (the paper),
    # 100 MinAtar (the paper's 500 would cost more than the training on two CPU cores)
    evaluations: int | None = None
    eval_episodes: int = 10
    eval_seed: int = 0  # the same start states at every evaluation (the paper: gym seeds 0..9)
    snapshots: int = 10  # K: parameters kept at steps k * steps / K, k = 0..K

    def resolved(self) -> OnlineDQNConfig:
        """This config with the environment's defaults filled in, checked."""
        spec = jaxenv.get_discrete_env(self.key)
        cfg = dataclasses.replace(
            self,
            key=spec.key,
            steps=spec.online_steps if self.steps is None else int(self.steps),
            buffer=spec.online_buffer if self.buffer is None else int(self.buffer),
            discount=spec.discount if self.discount is None else float(self.discount),
            evaluations=(100 if spec.minatar else 500)
            if self.evaluations is None
            else int(self.evaluations),
            hidden_dims=tuple(self.hidden_dims),
        )
        for name in ("steps", "buffer", "batch_size", "snapshots", "evaluations", "eval_episodes"):
            if getattr(cfg, name) < 1:
                raise ConfigError("must be >= 1", path=f"online dqn {cfg.key}", field=name)
        if cfg.steps < cfg.snapshots or cfg.steps < cfg.evaluations:
            raise ConfigError(
                f"steps={cfg.steps} must be >= snapshots={cfg.snapshots} and "
                f">= evaluations={cfg.evaluations}",
                path=f"online dqn {cfg.key}",
                field="steps",
            )
        return cfg

    @property
    def eval_every(self) -> int:
        return max(1, self.steps // self.evaluations)

    @property
    def snapshot_steps(self) -> list[int]:
        return [k * self.steps // self.snapshots for k in range(self.snapshots + 1)]

    @property
    def eval_steps(self) -> list[int]:
        return list(range(self.eval_every, self.steps + 1, self.eval_every))

    @property
    def chunk(self) -> int:
        """Steps per jitted call: every snapshot and evaluation falls on a chunk boundary."""
        return math.gcd(self.eval_every, *self.snapshot_steps[1:])

    def epsilon_record(self) -> dict[str, Any]:
        return {
            "start": self.eps_start,
            "end": self.eps_end,
            "decay_updates": self.eps_decay_updates,
            "warmup": self.warmup,
            "rule": "max(start + (end - start) * updates / decay_updates, end); one update "
            "after every environment step t > warmup (0-indexed), so updates = max(0, t - warmup "
            "- 1) before the action at step t",
        }

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out


def epsilon_schedule(updates: Any, cfg: OnlineDQNConfig) -> Any:
    """``max(start + (end - start) * updates / decay_updates, end)``: linear from 1.0 to 0.01
    over the first 1000 updates (``agents/dqn.py``: ``slope * iterations + initial_eps``)."""
    slope = (cfg.eps_end - cfg.eps_start) / cfg.eps_decay_updates
    return jnp.maximum(slope * jnp.asarray(updates, jnp.float32) + cfg.eps_start, cfg.eps_end)


def epsilon_at_step(t: int, cfg: OnlineDQNConfig) -> float:
    """The exploration epsilon of environment step ``t`` (0-indexed) of a run."""
    updates = max(0, t - cfg.warmup - 1)
    return float(epsilon_schedule(updates, cfg))


@dataclasses.dataclass
class OnlineDQNResult:
    """What :func:`train_online_dqn` returns (parameters as numpy pytrees)."""

    config: OnlineDQNConfig
    snapshots: list[Any]  # K + 1 Q-network parameter pytrees
    snapshot_steps: list[int]
    eval_steps: list[int]
    eval_returns: list[float]  # mean greedy return of each evaluation
    best_return: float
    best_step: int
    train_curve: list[dict[str, Any]]  # per chunk: step, episodes, return_mean, q_loss, epsilon
    timings: dict[str, float]
    transitions: dict[str, np.ndarray] | None = None  # every transition (keep_transitions=True)

    @property
    def final_params(self) -> Any:
        return self.snapshots[-1]


# ---------------------------------------------------------------------------------- buffer codec
def _obs_codec(spec: jaxenv.DiscreteEnvSpec) -> tuple[Any, Callable, Callable]:
    """``(dtype, pack, unpack)`` of the replay buffer's observations.

    MinAtar's encoded observation ``k / C - 0.5`` is stored as the channel index ``k`` (uint8):
    a quarter of the memory, and ``unpack`` computes exactly what ``encode_obs`` computed.
    """
    if not spec.minatar:
        return jnp.float32, lambda o: o, lambda o: o
    env, env_params = jaxenv.make_gymnax(spec.key)
    channels = float(env.observation_space(env_params).shape[-1])

    def pack(obs):
        return jnp.round((obs + 0.5) * channels).astype(jnp.uint8)

    def unpack(stored):
        return stored.astype(jnp.float32) / channels - 0.5

    return jnp.uint8, pack, unpack


def _dqn(cfg: OnlineDQNConfig, spec: jaxenv.DiscreteEnvSpec) -> tuple[DQN, DatasetSpec]:
    algo = DQN(
        DQNConfig(
            batch_size=cfg.batch_size,
            discount=cfg.discount,
            hidden_dims=cfg.hidden_dims,
            learning_rate=cfg.learning_rate,
            double=cfg.double,
            target_update_period=cfg.target_update_period,
            huber_delta=cfg.huber_delta,
            normalize_observations=False,
        )
    )
    dspec = DatasetSpec(observation_dim=spec.obs_dim, action_dim=spec.n_actions, discrete=True)
    return algo, dspec


def _initial_carry(cfg: OnlineDQNConfig, spec, algo: DQN, dspec: DatasetSpec, root: jax.Array):
    k_init, k_reset = jax.random.split(root)
    env, env_params = jaxenv.make_gymnax(spec.key)
    dtype, pack, _ = _obs_codec(spec)
    capacity = min(cfg.buffer, cfg.steps)
    raw_obs, env_state = env.reset_env(k_reset, env_params)
    carry = {
        "dqn": algo.init(dspec, k_init),
        "buffer": {
            "observations": jnp.zeros((capacity, spec.obs_dim), dtype),
            "actions": jnp.zeros((capacity,), jnp.int32),
            "rewards": jnp.zeros((capacity,), jnp.float32),
            "terminals": jnp.zeros((capacity,), jnp.float32),
            "next_observations": jnp.zeros((capacity, spec.obs_dim), dtype),
        },
        "pos": jnp.zeros((), jnp.int32),
        "size": jnp.zeros((), jnp.int32),
        "env_state": env_state,
        "obs": jaxenv.encode_obs(spec, raw_obs),
        "t": jnp.zeros((), jnp.int32),
        "ep_return": jnp.zeros((), jnp.float32),
    }
    # distinct buffers (Q' starts as Q itself): the chunk function donates every leaf
    return jax.tree_util.tree_map(lambda x: jnp.array(x, copy=True), carry)


def make_chunk_fn(
    cfg: OnlineDQNConfig, algo: DQN, run_key: jax.Array, length: int, keep_transitions: bool
) -> Callable:
    """A jitted ``carry -> (carry, outputs)`` of ``length`` environment steps, each followed by
    one DQN update once ``t > warmup`` (the carry is donated: the buffer is updated in place)."""
    spec = jaxenv.get_discrete_env(cfg.key)
    env, env_params = jaxenv.make_gymnax(spec.key)
    lane_step = jaxenv.lane_step(env, env_params, spec)
    _, pack, unpack = _obs_codec(spec)

    def sample_batch(buffer, size, key):
        idx = jax.random.randint(key, (cfg.batch_size,), 0, size)
        return {
            "observations": unpack(buffer["observations"][idx]),
            "actions": buffer["actions"][idx],
            "rewards": buffer["rewards"][idx],
            "terminals": buffer["terminals"][idx],
            "next_observations": unpack(buffer["next_observations"][idx]),
        }

    def body(carry, _):
        t = carry["t"]
        k_act, k_env, k_batch, k_update = jax.random.split(jax.random.fold_in(run_key, t), 4)
        dqn = carry["dqn"]
        eps = epsilon_schedule(dqn["step"], cfg)
        q = algo.q_values(dqn["q"], carry["obs"][None])
        action = epsilon_greedy(q, eps, k_act)[0]
        next_obs, reward, terminal, timeout, env_state, obs_after = lane_step(
            k_env, carry["env_state"], action
        )
        pos, buffer = carry["pos"], carry["buffer"]
        new = {
            "observations": pack(carry["obs"]),
            "actions": action,
            "rewards": reward,
            "terminals": terminal.astype(jnp.float32),
            "next_observations": pack(next_obs),
        }
        # a dynamic update slice is in place; ``.at[pos].set`` (a scatter that drops out-of-range
        # writes) becomes a select over the whole buffer: O(capacity) per step
        buffer = {
            name: jax.lax.dynamic_update_index_in_dim(buffer[name], new[name], pos, 0)
            for name in buffer
        }
        capacity = buffer["rewards"].shape[0]
        size = jnp.minimum(carry["size"] + 1, capacity)

        batch = sample_batch(buffer, size, k_batch)  # outside the cond: no buffer operand

        def update(state):
            return algo.update(state, batch, k_update)

        shapes = jax.eval_shape(update, dqn)[1]

        def skip(state):
            return state, jax.tree_util.tree_map(
                lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes
            )

        dqn, metrics = jax.lax.cond(t > cfg.warmup, update, skip, dqn)
        done = jnp.logical_or(terminal, timeout)
        ep_return = carry["ep_return"] + reward
        out = {
            "done": done,
            "episode_return": jnp.where(done, ep_return, jnp.nan),
            "q_loss": metrics["q_loss"],
            "epsilon": eps,
        }
        if keep_transitions:
            out["transition"] = dict(new, timeouts=timeout, terminals=terminal)
        carry = dict(
            carry,
            dqn=dqn,
            buffer=buffer,
            pos=(pos + 1) % capacity,
            size=size,
            env_state=env_state,
            obs=obs_after,
            t=t + 1,
            ep_return=jnp.where(done, 0.0, ep_return),
        )
        return carry, out

    def chunk(carry):
        carry, out = jax.lax.scan(body, carry, None, length=length)
        summary = {
            "episodes": jnp.sum(out["done"]),
            "return_mean": jnp.nanmean(out["episode_return"]),
            "q_loss": jnp.nanmean(out["q_loss"]),
            "epsilon": out["epsilon"][-1],
        }
        return carry, summary, out.get("transition")

    return jax.jit(chunk, donate_argnums=0, compiler_options=_chunk_options())


def _chunk_options(fast_compile: bool | None = None) -> dict[str, Any]:
    """XLA options of the training chunk: on CPU, XLA's classic runtime (one compiled loop body
    instead of one runtime call per operation) runs this small-op loop about 2.5x faster."""
    options = dict(compiler_options(fast_compile) or {})
    if jax.default_backend() == "cpu":
        options[CPU_RUNTIME_OPTION] = False
    return options


def compile_chunk(chunk_fn: Callable, carry: Any) -> Callable:
    """``chunk_fn`` compiled for ``carry``; without :data:`CPU_RUNTIME_OPTION` when this XLA does
    not know it."""
    try:
        return chunk_fn.lower(carry).compile()
    except Exception as exc:  # an XLA that no longer has the flag
        if CPU_RUNTIME_OPTION not in str(exc):
            raise
        options = {k: v for k, v in _chunk_options().items() if k != CPU_RUNTIME_OPTION}
        return (
            jax.jit(chunk_fn.__wrapped__, donate_argnums=0, compiler_options=options)
            .lower(carry)
            .compile()
        )


def _host(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: np.array(x), jax.device_get(tree))


def train_online_dqn(
    key: str,
    seed: int = 0,
    steps: int | None = None,
    snapshots: int = 10,
    progress: bool = True,
    *,
    config: OnlineDQNConfig | None = None,
    keep_transitions: bool = False,
    log: Callable[[str], None] | None = None,
) -> OnlineDQNResult:
    """Train the paper's online DQN on ``key`` (``cartpole``, ``breakout``, ...).

    Returns the ``snapshots + 1`` Q-network parameter snapshots taken after ``k * steps /
    snapshots`` environment steps (``k = 0``: the initial network; the last: the final one), the
    greedy evaluation curve and its best mean (the paper's expert reference), a training curve and
    timings. ``config`` overrides any other setting (``key``, ``seed``, ``steps`` and
    ``snapshots`` given here win over it); ``keep_transitions`` also returns every transition of
    the run (the paper's ``replay`` buffer) as flat dataset arrays; ``log`` receives a line at
    every snapshot.
    """
    base = config or OnlineDQNConfig()
    cfg = dataclasses.replace(base, key=key, seed=seed, snapshots=snapshots)
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    cfg = cfg.resolved()
    spec = jaxenv.get_discrete_env(cfg.key)
    algo, dspec = _dqn(cfg, spec)
    root, run_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    carry = _initial_carry(cfg, spec, algo, dspec, root)
    length = cfg.chunk
    t0 = time.perf_counter()
    chunk_fn = compile_chunk(make_chunk_fn(cfg, algo, run_key, length, keep_transitions), carry)
    act = network_act_fn(spec.n_actions, cfg.hidden_dims, 0.0)
    evaluator = jaxenv.make_evaluator(cfg.key, act, cfg.eval_episodes)
    eval_key = jax.random.PRNGKey(cfg.eval_seed)
    compile_seconds = time.perf_counter() - t0

    snaps = [_host(carry["dqn"]["q"])]
    snapshot_steps, eval_steps = cfg.snapshot_steps, set(cfg.eval_steps)
    evals: list[tuple[int, float]] = []
    curve: list[dict[str, Any]] = []
    pieces: list[Any] = []
    train_seconds = eval_seconds = 0.0
    bar = ProgressBar(
        f"dqn {cfg.key}",
        cfg.steps,
        texts=("{task.fields[rate]} steps/s", "eval {task.fields[eval]}"),
        fields={"rate": "-", "eval": "-"},
        elapsed=True,
        enabled=progress,
    )
    with bar:
        for step in range(length, cfg.steps + 1, length):
            t1 = time.perf_counter()
            carry, summary, trans = chunk_fn(carry)
            summary = jax.device_get(summary)
            train_seconds += time.perf_counter() - t1
            if keep_transitions:
                pieces.append(jax.device_get(trans))
            curve.append(
                {
                    "step": step,
                    "episodes": int(summary["episodes"]),
                    "return_mean": float(summary["return_mean"]),
                    "q_loss": float(summary["q_loss"]),
                    "epsilon": float(summary["epsilon"]),
                }
            )
            if step in eval_steps:
                t2 = time.perf_counter()
                returns = np.asarray(evaluator(carry["dqn"]["q"], eval_key), np.float64)
                eval_seconds += time.perf_counter() - t2
                evals.append((step, float(returns.mean())))
            if step in snapshot_steps:
                snaps.append(_host(carry["dqn"]["q"]))
                if log is not None:
                    best = max((r for _, r in evals), default=float("nan"))
                    log(
                        f"dqn {cfg.key} step {step}/{cfg.steps}: "
                        f"{step / max(train_seconds, 1e-9):,.0f} steps/s, "
                        f"last eval {evals[-1][1] if evals else float('nan'):.2f}, best {best:.2f}"
                    )
            bar.update(
                step,
                rate=f"{step / max(train_seconds, 1e-9):,.0f}",
                eval=f"{evals[-1][1]:.1f}" if evals else "-",
            )
    best_step, best_return = max(evals, key=lambda e: e[1])
    timings = {
        "compile_seconds": compile_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": time.perf_counter() - t0,
        "steps_per_second": cfg.steps / max(train_seconds, 1e-9),
    }
    return OnlineDQNResult(
        config=cfg,
        snapshots=snaps,
        snapshot_steps=snapshot_steps,
        eval_steps=[s for s, _ in evals],
        eval_returns=[r for _, r in evals],
        best_return=best_return,
        best_step=best_step,
        train_curve=curve,
        timings=timings,
        transitions=_flat_transitions(pieces, spec) if keep_transitions else None,
    )


def _flat_transitions(pieces: list[Any], spec: jaxenv.DiscreteEnvSpec) -> dict[str, np.ndarray]:
    """The run's transitions in order, as the dataset arrays of :func:`jaxenv.collect`."""
    _, _, unpack = _obs_codec(spec)
    joined = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    out = {
        "observations": np.asarray(unpack(jnp.asarray(joined["observations"])), np.float32),
        "actions": joined["actions"].astype(np.int64),
        "rewards": joined["rewards"].astype(np.float32),
        "terminals": joined["terminals"].astype(bool),
        "timeouts": joined["timeouts"].astype(bool),
        "next_observations": np.asarray(
            unpack(jnp.asarray(joined["next_observations"])), np.float32
        ),
    }
    out["timeouts"][-1] |= not out["terminals"][-1]  # the run's last episode is cut
    return out


# ---------------------------------------------------------------------------------- shipping
def _cast(tree: Any, dtype: str) -> Any:
    return jax.tree_util.tree_map(lambda x: np.asarray(x, dtype), tree)


def ship_online_dqn(
    key: str,
    seed: int = 0,
    steps: int | None = None,
    out: str | Path | None = None,
    snapshots: int = 10,
    progress: bool = True,
    *,
    dtype: str = "float16",
    config: OnlineDQNConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train :func:`train_online_dqn`, write ``{key}.msgpack`` (the snapshots, stored as
    ``dtype``) and ``key``'s record in ``index.json`` of ``out`` (default: the package's
    ``envs/policies/discrete``), both atomically; other keys of the index are kept. The returns
    in the record are measured with the stored weights. Returns the record."""
    import flax.serialization

    if dtype not in ("float16", "float32"):
        raise ConfigError("must be float16 or float32", path=f"online dqn {key}", field="dtype")
    git = git_state()  # the code that trains, before anything is written
    result = train_online_dqn(
        key, seed=seed, steps=steps, snapshots=snapshots, progress=progress, config=config, log=log
    )
    cfg = result.config
    spec = jaxenv.get_discrete_env(cfg.key)
    dest = policies_dir(out)
    stored = [_cast(p, dtype) for p in result.snapshots]
    data = flax.serialization.msgpack_serialize({"snapshots": stored})
    file_name = f"{cfg.key}.msgpack"
    atomic_write_bytes(dest / file_name, data)

    final = _cast(stored[-1], "float32")
    greedy = network_act_fn(spec.n_actions, cfg.hidden_dims, 0.0)
    final_returns = jaxenv.episode_returns(cfg.key, greedy, final, RETURN_EPISODES, RETURN_SEED)
    random_returns = jaxenv.episode_returns(
        cfg.key, jaxenv.random_act_fn(spec.n_actions), None, RETURN_EPISODES, RETURN_SEED
    )
    t = result.timings
    record = {
        "key": cfg.key,
        "env_id": spec.env_id,
        "gymnax_id": spec.gymnax_id,
        "file": file_name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "weights_dtype": dtype,
        "network": "DiscreteQNetwork: ReLU MLP, one Q-value per action",
        "hidden_dims": list(cfg.hidden_dims),
        "n_actions": spec.n_actions,
        "obs_dim": spec.obs_dim,
        "snapshots": cfg.snapshots,
        "snapshot_steps": result.snapshot_steps,
        "online_steps": cfg.steps,
        "buffer": cfg.buffer,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "target_update_period": cfg.target_update_period,
        "double": cfg.double,
        "epsilon": cfg.epsilon_record(),
        "discount": cfg.discount,
        "bootstrap": "terminals stop the bootstrap; time-limit cuts do not",
        "seed": cfg.seed,
        "online_best_return": result.best_return,
        "online_best_step": result.best_step,
        "final_greedy_return": float(final_returns.mean()),
        "final_greedy_std": float(final_returns.std()),
        "random_return": float(random_returns.mean()),
        "random_std": float(random_returns.std()),
        "return_protocol": (
            f"online_best_return: best mean of {cfg.eval_episodes} greedy episodes over the run's "
            f"evaluations (every {cfg.eval_every} steps, evaluator seed {cfg.eval_seed}); "
            f"final_greedy_return / random_return: {RETURN_EPISODES} episodes of the stored final "
            f"snapshot (epsilon 0) / of uniform actions, episode_returns seed {RETURN_SEED}"
        ),
        "eval_every": cfg.eval_every,
        "eval_episodes": cfg.eval_episodes,
        "eval_curve": [[s, r] for s, r in zip(result.eval_steps, result.eval_returns, strict=True)],
        "train_seconds": t["train_seconds"],
        "eval_seconds": t["eval_seconds"],
        "compile_seconds": t["compile_seconds"],
        "steps_per_second": t["steps_per_second"],
        "machine": machine_info(),
        "versions": library_versions(extra=("gymnax",)),
        "git": git,
        "command": f"policyfit behavior dqn {cfg.key} --seed {cfg.seed} --steps {cfg.steps}"
        + (f" --snapshots {cfg.snapshots}" if cfg.snapshots != 10 else ""),
    }
    index = behavior_index(out)
    index[cfg.key] = record
    text = dumps(dict(sorted(index.items())), indent=1) + "\n"
    atomic_write_text(dest / INDEX_NAME, _compact_pairs(text))
    return record


def _compact_pairs(text: str) -> str:
    """``dumps(indent=1)`` puts every number of the evaluation curves on its own line; write each
    ``[step, return]`` pair on one line instead."""
    import re

    return re.sub(r"\[\n\s*(-?[\d.e+-]+),\n\s*(-?[\d.e+-]+|null)\n\s*\]", r"[\1, \2]", text)
