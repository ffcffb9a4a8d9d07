"""Online SAC training of the suite's behavior policies (their export: :mod:`.behavior_export`).

``policyfit behavior train Hopper-v5 --steps 1000000`` runs :func:`train_behavior`: one gymnasium
environment, a replay buffer that lives on the device, and SAC updates fused ``chunk`` at a time
into one jitted ``lax.scan`` (insert ``chunk`` new transitions, then ``chunk`` updates: one update
per environment step, as in the paper, without a Python dispatch per update).

A run directory holds

* ``config.json``: environment, steps, seed, SAC hyperparameters, versions;
* ``metrics.jsonl``: one line per evaluation (deterministic policy, ``eval_episodes`` episodes);
* ``snapshots/step_XXXXXXXX.msgpack`` + ``snapshots/index.jsonl``: the actor every
  ``snapshot_every`` steps with its evaluation, from which
  :func:`~policyfit.training.behavior_export.export_policies` picks the
  ``random`` / ``medium`` / ``medium-replay`` / ``expert`` policies (D4RL's recipe);
* ``checkpoints/step_N/``: everything needed to continue exactly (SAC state, replay buffer,
  counters); written atomically at the first episode end after every ``checkpoint_every`` steps.

Resuming (``--resume``) restores the latest checkpoint; because checkpoints are taken at episode
boundaries, every episode reset is seeded from ``(seed, episode index)`` and all randomness is
``fold_in(key, step)``, a resumed run continues exactly as the uninterrupted run would have.

Example:
    >>> from policyfit.training.behavior import train_behavior
    >>> summary = train_behavior("Hopper-v5", steps=2_000, out="runs/behavior/demo",
    ...                          start_steps=1_000, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import DatasetSpec
from policyfit.algos.sac import SAC, SACConfig, SACState
from policyfit.common.files import (
    atomic_write_bytes,
    atomic_write_npz,
    dumps,
    ensure_dir,
    write_json,
)
from policyfit.common.progress import ProgressBar
from policyfit.common.versions import library_versions
from policyfit.envs.collect import episode_seed
from policyfit.envs.registry import ENVS, make_env, normalized_score
from policyfit.errors import PolicyfitError

BUFFER_FIELDS = ("observations", "actions", "rewards", "terminals", "next_observations")


@dataclasses.dataclass(frozen=True)
class BehaviorConfig:
    """How a behavior policy is trained (SAC's own hyperparameters are in ``sac``)."""

    env_id: str
    steps: int = 1_000_000  # environment steps (= SAC updates + start_steps)
    seed: int = 0
    start_steps: int = 5_000  # uniform-random warm-up actions before the first update
    chunk: int = 50  # env steps collected, then this many updates in one jitted call (UTD 1)
    buffer_capacity: int = 1_000_000
    eval_every: int = 10_000  # also the snapshot cadence
    eval_episodes: int = 10
    checkpoint_every: int = 25_000
    stop_at_score: float | None = None  # stop once a deterministic eval reaches this score
    sac: SACConfig = dataclasses.field(default_factory=SACConfig)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["sac"] = self.sac.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BehaviorConfig:
        values = dict(values)
        sac = SACConfig.from_dict(values.pop("sac", {}), algo="sac")
        return cls(**values, sac=sac)


# ---------------------------------------------------------------------------------- jitted parts
def _scale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map a tanh-squashed action in ``[-1, 1]`` to the environment's box."""
    return low + (action + 1.0) * 0.5 * (high - low)


@functools.lru_cache(maxsize=8)
def make_actor_fns(algo: SAC, action_dim: int) -> tuple[Callable, Callable, Callable]:
    """Jitted ``sample(params, obs[obs_dim], key, step)``, ``uniform(key, step)`` and the batched
    deterministic ``mode(params, obs[n, obs_dim])``."""
    actor, _ = algo.networks(action_dim)

    @jax.jit
    def sample(params, obs, key, step):
        return actor.apply(params, obs[None]).sample(jax.random.fold_in(key, step))[0]

    @jax.jit
    def uniform(key, step):
        return jax.random.uniform(
            jax.random.fold_in(key, step), (action_dim,), minval=-1.0, maxval=1.0
        )

    @jax.jit
    def mode(params, obs):
        return actor.apply(params, obs).mode()

    return sample, uniform, mode


@functools.lru_cache(maxsize=8)
def make_chunk_fns(algo: SAC, batch_size: int) -> tuple[Callable, Callable]:
    """Jitted ``insert(buffer, new, pos)`` and ``train(state, buffer, new, pos, size, key)``.

    ``train`` writes the ``k`` new transitions into the ring buffer, then runs ``k`` SAC updates in
    one ``lax.scan``, each on a batch drawn uniformly (with replacement) from the filled part.
    Buffer and state are donated, so the buffer is updated in place.
    """

    def _insert(buffer, new, pos):
        k = new["rewards"].shape[0]
        cap = buffer["rewards"].shape[0]
        idx = (pos + jnp.arange(k)) % cap
        return {name: buffer[name].at[idx].set(new[name]) for name in BUFFER_FIELDS}

    def _train(state, buffer, new, pos, size, key):
        k = new["rewards"].shape[0]
        buffer = _insert(buffer, new, pos)
        size = jnp.minimum(size + k, buffer["rewards"].shape[0])

        def one_update(state, key_t):
            k_idx, k_upd = jax.random.split(key_t)
            idx = jax.random.randint(k_idx, (batch_size,), 0, size)
            batch = {name: buffer[name][idx] for name in BUFFER_FIELDS}
            return algo.update(state, batch, k_upd)

        state, metrics = jax.lax.scan(one_update, state, jax.random.split(key, k))
        return state, buffer, jax.tree_util.tree_map(jnp.mean, metrics)

    insert = jax.jit(_insert, donate_argnums=(0,))
    train = jax.jit(_train, donate_argnums=(0, 1))
    return insert, train


def empty_buffer(capacity: int, obs_dim: int, action_dim: int) -> dict[str, jnp.ndarray]:
    return {
        "observations": jnp.zeros((capacity, obs_dim), jnp.float32),
        "actions": jnp.zeros((capacity, action_dim), jnp.float32),
        "rewards": jnp.zeros((capacity,), jnp.float32),
        "terminals": jnp.zeros((capacity,), jnp.float32),
        "next_observations": jnp.zeros((capacity, obs_dim), jnp.float32),
    }


EVAL_SEED = 1_000_000  # evaluation episodes use seeds EVAL_SEED + i, never seen in training


def evaluate_actor(
    env_id: str,
    act_batch: Callable[[np.ndarray], np.ndarray],
    episodes: int = 10,
    seed: int = EVAL_SEED,
    envs: Sequence[Any] | None = None,
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes run side by side with a batched policy.

    ``act_batch`` maps ``[n, obs_dim]`` observations to ``[n, act_dim]`` actions in ``[-1, 1]``.

    Example:
        >>> import numpy as np
        >>> evaluate_actor("Hopper-v5", lambda o: np.zeros((len(o), 3)), episodes=2)  # doctest: +SKIP
        array([...])
    """
    envs = list(envs) if envs is not None else [make_env(env_id) for _ in range(episodes)]
    envs = envs[:episodes]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    returns = np.zeros(len(envs))
    active = np.ones(len(envs), bool)
    while active.any():
        actions = _scale_action(np.asarray(act_batch(obs)), low, high)
        for i in np.flatnonzero(active):
            o, r, terminated, truncated, _ = envs[i].step(actions[i])
            returns[i] += r
            obs[i] = o
            if terminated or truncated:
                active[i] = False
    return returns


# ---------------------------------------------------------------------------------- checkpoints
def _save_checkpoint(run_dir: Path, step: int, state: SACState, buffer, counters, pending) -> None:
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_root / f".tmp_step_{step}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    atomic_write_bytes(tmp / "state.msgpack", flax.serialization.to_bytes(state))
    size = int(counters["size"])
    arrays = {name: np.asarray(buffer[name][:size]) for name in BUFFER_FIELDS}
    for name in BUFFER_FIELDS:
        arrays[f"pending_{name}"] = (
            np.stack([p[name] for p in pending]) if pending else np.zeros((0,), np.float32)
        )
    atomic_write_npz(tmp / "buffer.npz", arrays)
    write_json(tmp / "counters.json", counters, indent=1)
    final = ckpt_root / f"step_{step}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in ckpt_root.glob("step_*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = [p for p in (run_dir / "checkpoints").glob("step_*") if (p / "counters.json").exists()]
    return max(ckpts, key=lambda p: int(p.name.split("_")[1])) if ckpts else None


# ---------------------------------------------------------------------------------- training
def train_behavior(
    env_id: str,
    steps: int = 1_000_000,
    out: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Train a SAC behavior policy online; returns a summary (steps, best eval, run dir).

    ``overrides`` set :class:`BehaviorConfig` fields (``start_steps``, ``eval_every``, ...) or SAC
    fields via ``sac=SACConfig(...)``. With ``resume=True`` the run continues from the latest
    checkpoint in ``out`` (``steps`` may be raised to train longer).

    Example:
        >>> train_behavior("Hopper-v5", steps=20_000, out="runs/behavior/hopper")  # doctest: +SKIP
        {'env_id': 'Hopper-v5', 'steps': 20000, ...}
    """
    run_dir = Path(out) if out is not None else Path("runs") / "behavior" / f"{env_id}-s{seed}"
    ckpt = _latest_checkpoint(run_dir) if resume else None
    if resume and (run_dir / "config.json").exists():
        values = json.loads((run_dir / "config.json").read_text())["behavior"]
        values.update(steps=steps)
        for key in ("stop_at_score",):
            if key in overrides:
                values[key] = overrides[key]
        cfg = BehaviorConfig.from_dict(values)
    else:
        if env_id not in ENVS and not env_id.startswith(("Pendulum", "MountainCarContinuous")):
            raise PolicyfitError(
                f"unknown environment; known: {', '.join(ENVS)}", path=env_id, field="env_id"
            )
        cfg = BehaviorConfig(env_id=env_id, steps=steps, seed=seed, **overrides)
        if (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
            raise PolicyfitError(
                "run directory already has checkpoints; pass --resume to continue it or choose "
                "another --out",
                path=str(run_dir),
            )
    if cfg.start_steps % cfg.chunk:
        raise PolicyfitError("start_steps must be a multiple of chunk", field="start_steps")
    ensure_dir(run_dir)
    (run_dir / "snapshots").mkdir(exist_ok=True)
    _write_config(run_dir, cfg)
    return _BehaviorRun(cfg, run_dir, ckpt, progress).run()


def _write_config(run_dir: Path, cfg: BehaviorConfig) -> None:
    payload = {"algorithm": "sac", "behavior": cfg.to_dict(), "versions": library_versions()}
    write_json(run_dir / "config.json", payload, indent=1)


class _BehaviorRun:
    """The mutable parts of one training run (kept out of the public function for readability)."""

    def __init__(self, cfg: BehaviorConfig, run_dir: Path, ckpt: Path | None, progress: bool):
        self.cfg, self.run_dir, self.progress = cfg, run_dir, progress
        self.env = make_env(cfg.env_id)
        self.eval_envs = [make_env(cfg.env_id) for _ in range(cfg.eval_episodes)]
        self.low = self.env.action_space.low.astype(np.float32)
        self.high = self.env.action_space.high.astype(np.float32)
        self.obs_dim = int(np.prod(self.env.observation_space.shape))
        self.act_dim = int(np.prod(self.env.action_space.shape))
        self.algo = SAC(cfg.sac)
        root = jax.random.PRNGKey(cfg.seed)
        k_init, self.k_act, self.k_update = jax.random.split(root, 3)
        self.sample, self.uniform, self.mode = make_actor_fns(self.algo, self.act_dim)
        self.insert, self.train_chunk = make_chunk_fns(self.algo, cfg.sac.batch_size)
        spec = DatasetSpec(observation_dim=self.obs_dim, action_dim=self.act_dim)
        self.state = self.algo.init(spec, k_init)
        capacity = min(cfg.buffer_capacity, max(cfg.steps, cfg.chunk))
        self.buffer = empty_buffer(capacity, self.obs_dim, self.act_dim)
        self.counters: dict[str, Any] = {
            "step": 0,
            "episode": 0,
            "pos": 0,
            "size": 0,
            "chunks": 0,
            "next_checkpoint": cfg.checkpoint_every,
            "next_eval": 0,
            "best_return": -np.inf,
            "last_eval_return": None,
            "train_returns": [],
            "wall_time": 0.0,
        }
        self.pending: list[dict[str, np.ndarray]] = []
        self.last_metrics: dict[str, float] = {}
        if ckpt is not None:
            self._restore(ckpt)

    # -------------------------------------------------------------- checkpoint I/O
    def _restore(self, ckpt: Path) -> None:
        self.state = flax.serialization.from_bytes(
            self.state, (ckpt / "state.msgpack").read_bytes()
        )
        self.counters = json.loads((ckpt / "counters.json").read_text())
        with np.load(ckpt / "buffer.npz") as data:
            size, pos = int(self.counters["size"]), int(self.counters["pos"])
            capacity = int(self.buffer["rewards"].shape[0])
            saved = {name: data[name] for name in BUFFER_FIELDS}
            if capacity != size:
                # A different capacity than the run that saved it (--steps was raised): lay the
                # ring out oldest-first so the next write goes after the newest transition.
                saved = {
                    k: np.roll(v, -(pos % max(size, 1)), axis=0)[-capacity:]
                    for k, v in saved.items()
                }
                size = min(size, capacity)
                self.counters["size"], self.counters["pos"] = size, size % capacity
            self.buffer = {
                name: self.buffer[name].at[:size].set(jnp.asarray(saved[name]))
                for name in BUFFER_FIELDS
            }
            n_pending = data["pending_rewards"].shape[0]
            self.pending = [
                {name: data[f"pending_{name}"][i] for name in BUFFER_FIELDS}
                for i in range(n_pending)
            ]
        self._log(f"resumed from {ckpt} at step {self.counters['step']}")

    def _checkpoint(self) -> None:
        c = self.counters
        _save_checkpoint(self.run_dir, c["step"], self.state, self.buffer, c, self.pending)
        c["next_checkpoint"] = (
            c["step"] // self.cfg.checkpoint_every + 1
        ) * self.cfg.checkpoint_every

    # -------------------------------------------------------------- evaluation and snapshots
    def _evaluate_and_snapshot(self) -> float | None:
        c = self.counters
        params = self.state.actor_params
        returns = evaluate_actor(
            self.cfg.env_id,
            lambda o: self.mode(params, jnp.asarray(o)),
            self.cfg.eval_episodes,
            envs=self.eval_envs,
        )
        step = c["step"]
        name = f"step_{step:08d}.msgpack"
        atomic_write_bytes(
            self.run_dir / "snapshots" / name,
            flax.serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, params)),
        )
        record = {
            "step": step,
            "file": name,
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "returns": returns.tolist(),
            "wall_time": c["wall_time"],
        }
        if self.cfg.env_id in ENVS:
            record["normalized_score"] = float(normalized_score(self.cfg.env_id, returns.mean()))
        record.update({k: float(v) for k, v in self.last_metrics.items()})
        recent = c["train_returns"][-10:]
        record["train_return"] = float(np.mean(recent)) if recent else None
        line = dumps(record, indent=None) + "\n"
        for log in (self.run_dir / "snapshots" / "index.jsonl", self.run_dir / "metrics.jsonl"):
            with open(log, "a") as f:
                f.write(line)
        c["last_eval_return"] = record["return_mean"]
        c["best_return"] = max(float(c["best_return"]), record["return_mean"])
        c["next_eval"] = step + self.cfg.eval_every
        score = record.get("normalized_score")
        self._log(
            f"step {step:>8d}  eval return {record['return_mean']:9.1f} ± {record['return_std']:7.1f}"
            + (f"  normalized {score:6.1f}" if score is not None else "")
            + f"  train return {record['train_return'] or float('nan'):9.1f}"
            + f"  ({c['wall_time'] / 60:.1f} min)"
        )
        return score

    def _log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {self.cfg.env_id}: {message}", flush=True)

    # -------------------------------------------------------------- main loop
    def _flush(self) -> None:
        """Insert the pending chunk into the buffer; after warm-up also run one update per step."""
        c, cfg = self.counters, self.cfg
        new = {name: np.stack([p[name] for p in self.pending]) for name in BUFFER_FIELDS}
        if c["step"] <= cfg.start_steps:
            self.buffer = self.insert(self.buffer, new, c["pos"])
        else:
            key = jax.random.fold_in(self.k_update, c["chunks"])
            self.state, self.buffer, metrics = self.train_chunk(
                self.state, self.buffer, new, c["pos"], c["size"], key
            )
            c["chunks"] += 1
            self.last_metrics = metrics
        cap = self.buffer["rewards"].shape[0]
        c["pos"] = (c["pos"] + len(self.pending)) % cap
        c["size"] = min(c["size"] + len(self.pending), cap)
        self.pending = []

    def _env_state(self, obs: np.ndarray, episode_return: float) -> dict[str, Any] | None:
        """The physics state of the episode in progress (for a checkpoint taken mid-episode).

        None right after a reset (the seeded reset reproduces it exactly) and for non-MuJoCo
        environments (their episode restarts on resume).
        """
        env = self.env.unwrapped
        if self.fresh_episode or not hasattr(env, "data"):
            return None
        return {
            "qpos": env.data.qpos.tolist(),
            "qvel": env.data.qvel.tolist(),
            "elapsed_steps": int(getattr(self.env, "_elapsed_steps", 0) or 0),
            "obs": obs.tolist(),
            "episode_return": episode_return,
        }

    def _reset_env(self) -> tuple[np.ndarray, float]:
        """Start the next episode, or continue the one a mid-episode checkpoint was taken in."""
        saved = self.counters.pop("env_state", None)
        obs, _ = self.env.reset(seed=episode_seed(self.cfg.seed, self.counters["episode"]))
        self.fresh_episode = saved is None
        if saved is None:
            return obs.astype(np.float32), 0.0
        self.env.unwrapped.set_state(np.asarray(saved["qpos"]), np.asarray(saved["qvel"]))
        self.env._elapsed_steps = saved["elapsed_steps"]
        return np.asarray(saved["obs"], np.float32), float(saved["episode_return"])

    def run(self) -> dict[str, Any]:
        cfg, c = self.cfg, self.counters
        bar = _progress_bar(cfg.env_id, cfg.steps, c["step"], enabled=self.progress)
        obs, episode_return = self._reset_env()
        stop = False
        t_last = time.perf_counter()
        previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            while c["step"] < cfg.steps and not stop:
                if c["step"] >= c["next_eval"]:
                    self.last_metrics = {k: float(v) for k, v in self.last_metrics.items()}
                    score = self._evaluate_and_snapshot()
                    if c["last_eval_return"] is not None:
                        bar.update(eval=_eval_text(c["last_eval_return"], score))
                    if (
                        cfg.stop_at_score is not None
                        and score is not None
                        and score >= cfg.stop_at_score
                    ):
                        self._log(f"reached stop_at_score {cfg.stop_at_score}; stopping")
                        stop = True
                        break
                step = c["step"]
                if step < cfg.start_steps:
                    action = self.uniform(self.k_act, step)
                else:
                    action = self.sample(self.state.actor_params, obs, self.k_act, step)
                action = np.asarray(action, dtype=np.float32)
                next_obs, reward, terminated, truncated, _ = self.env.step(
                    _scale_action(action, self.low, self.high)
                )
                next_obs = next_obs.astype(np.float32)
                self.pending.append(
                    {
                        "observations": obs,
                        "actions": action,
                        "rewards": np.float32(reward),
                        "terminals": np.float32(terminated),
                        "next_observations": next_obs,
                    }
                )
                episode_return += float(reward)
                self.fresh_episode = False
                c["step"] = step + 1
                if len(self.pending) == cfg.chunk:
                    self._flush()
                    now = time.perf_counter()
                    c["wall_time"] += now - t_last
                    t_last = now
                    bar.update(c["step"])
                if terminated or truncated:
                    c["train_returns"] = (c["train_returns"] + [episode_return])[-20:]
                    bar.update(train=f"{episode_return:.0f}")
                    c["episode"] += 1
                    if c["step"] >= c["next_checkpoint"]:
                        self._checkpoint()
                    obs, episode_return = self._reset_env()
                else:
                    obs = next_obs
            if not stop and c["step"] >= cfg.steps and c["step"] >= c["next_eval"]:
                self.last_metrics = {k: float(v) for k, v in self.last_metrics.items()}
                self._evaluate_and_snapshot()
        except KeyboardInterrupt:
            self._log(f"interrupted at step {c['step']}; saving a checkpoint")
            raise
        finally:
            bar.close()
            signal.signal(signal.SIGTERM, previous_handler)
            # A last checkpoint mid-episode (with the physics state, so the episode continues on
            # resume). Periodic checkpoints are taken at episode ends and resume bit-exactly; this
            # one continues from the saved qpos/qvel, which MuJoCo's solver warm start makes
            # equal only to rounding.
            c["wall_time"] += time.perf_counter() - t_last
            env_state = self._env_state(obs, episode_return)
            if env_state is not None:
                c["env_state"] = env_state
            _save_checkpoint(self.run_dir, c["step"], self.state, self.buffer, c, self.pending)
            c.pop("env_state", None)
        return {
            "env_id": cfg.env_id,
            "steps": c["step"],
            "best_eval_return": float(c["best_return"]),
            "last_eval_return": c["last_eval_return"],
            "run_dir": str(self.run_dir),
            "wall_time": c["wall_time"],
        }


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _progress_bar(env_id: str, total: int, completed: int, enabled: bool) -> ProgressBar:
    """Steps done, the latest evaluation (return and normalized score) and training return (the
    log lines carry the same numbers)."""
    return ProgressBar(
        env_id,
        total,
        completed=completed,
        texts=("eval {task.fields[eval]}  train {task.fields[train]}",),
        fields={"eval": "-", "train": "-"},
        enabled=enabled,
    )


def _eval_text(ret: float, score: float | None) -> str:
    return f"{ret:.0f}" + (f" ({score:.0f})" if score is not None else "")
