"""Jitted, vectorized discrete-action environments (gymnax) for the discrete dataset suite.

The discrete suite (Schweighofer et al., "A Dataset Perspective on Offline Reinforcement Learning",
CoLLAs 2022) uses classic control and MinAtar. Data generation, online DQN training and fast
evaluation step ``gymnax`` ports of these environments inside ``jax.lax.scan`` over a ``vmap`` of
lanes; ``policyfit eval`` and the trainer's evaluations use the gymnasium environment named by
:attr:`DiscreteEnvSpec.env_id` (gymnasium's classic control; the reference ``minatar`` package for
MinAtar, registered here as ``policyfit/<Game>-MinAtar-v1``).

Observations are what the paper's code (ml-jku/OfflineRL) feeds its networks:

- classic control: the state vector, float32;
- MinAtar: the ``10 x 10 x C`` boolean grid collapsed to one channel-index plane,
  ``max_c((c + 1) * grid[..., c]) / C - 0.5``, flattened to 100 floats
  (``source/utils/wrappers.py::MinAtarObsWrapper``).

Example:
    >>> import jax, jax.numpy as jnp
    >>> spec = DISCRETE_ENVS["cartpole"]
    >>> spec.gymnax_id, spec.obs_dim, spec.n_actions, spec.discount
    ('CartPole-v1', 4, 2, 0.95)
    >>> out = collect("cartpole", random_act_fn(2), None, n=64, seed=0)
    >>> out["observations"].shape, out["actions"].dtype.name, bool(out["timeouts"][-1])
    ((64, 4), 'int64', True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np

from policyfit.common.xla import compiler_options
from policyfit.errors import PolicyfitError

#: ``act_fn(params, obs [B, obs_dim], key) -> actions [B]`` (int32), jax-traceable.
ActFn = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class DiscreteEnvSpec:
    """One environment of the discrete suite.

    ``discount``, ``online_steps`` and ``online_buffer`` are the paper code's values
    (ml-jku/OfflineRL ``ex_01.py`` CartPole, ``ex_02.py`` MountainCar, ``ex_05/06.py`` MinAtar);
    Acrobot is not in the paper and takes MountainCar's.
    """

    key: str  # dataset prefix: cartpole
    gymnax_id: str  # CartPole-v1
    env_id: str  # gymnasium id for evaluation
    obs_dim: int
    n_actions: int
    discount: float
    online_steps: int  # transitions of the online DQN run (the paper's ``transitions_online``)
    online_buffer: int  # its replay-buffer capacity
    default_size: int  # transitions per dataset unless ``size`` is given
    max_episode_steps: int
    minatar: bool = False


def _classic(key, gid, obs_dim, n_actions, discount, max_steps) -> DiscreteEnvSpec:
    return DiscreteEnvSpec(
        key, gid, gid, obs_dim, n_actions, discount, 100_000, 50_000, 100_000, max_steps
    )


def _minatar(key: str, game: str, n_actions: int, max_steps: int = 1000) -> DiscreteEnvSpec:
    return DiscreteEnvSpec(
        key,
        f"{game}-MinAtar",
        f"policyfit/{game}-MinAtar-v1",
        100,
        n_actions,
        0.99,
        2_000_000,
        500_000,
        1_000_000,
        max_steps,
        minatar=True,
    )


DISCRETE_ENVS: dict[str, DiscreteEnvSpec] = {
    "cartpole": _classic("cartpole", "CartPole-v1", 4, 2, 0.95, 500),
    "acrobot": _classic("acrobot", "Acrobot-v1", 6, 3, 0.99, 500),
    "mountaincar": _classic("mountaincar", "MountainCar-v0", 2, 3, 0.99, 200),
    "breakout": _minatar("breakout", "Breakout", 3),
    "asterix": _minatar("asterix", "Asterix", 5),
    "freeway": _minatar("freeway", "Freeway", 3, 2500),
    "spaceinvaders": _minatar("spaceinvaders", "SpaceInvaders", 4),
    "seaquest": _minatar("seaquest", "Seaquest", 6),
}
MINATAR_GAMES = {
    "Breakout": "breakout",
    "Asterix": "asterix",
    "Freeway": "freeway",
    "SpaceInvaders": "space_invaders",
    "Seaquest": "seaquest",
}


def get_discrete_env(key: str) -> DiscreteEnvSpec:
    """The spec of ``key`` (``cartpole``) or of its gymnax/gymnasium id."""
    k = key.strip().lower()
    if k in DISCRETE_ENVS:
        return DISCRETE_ENVS[k]
    for spec in DISCRETE_ENVS.values():
        if key in (spec.gymnax_id, spec.env_id):
            return spec
    raise PolicyfitError(
        f"unknown discrete environment; known: {', '.join(DISCRETE_ENVS)}", path=key, field="env"
    )


@cache
def make_gymnax(key: str) -> tuple[Any, Any]:
    """``(env, env_params)`` of the gymnax port."""
    import gymnax

    spec = get_discrete_env(key)
    return gymnax.make(spec.gymnax_id)


def encode_obs(spec: DiscreteEnvSpec, obs: Any) -> Any:
    """The network input of a raw observation (see the module docstring); jax or numpy."""
    import jax.numpy as jnp

    if not spec.minatar:
        return jnp.asarray(obs, jnp.float32)
    grid = jnp.asarray(obs, jnp.float32)
    channels = grid.shape[-1]
    plane = jnp.max(grid * jnp.arange(1, channels + 1, dtype=jnp.float32), axis=-1)
    return (plane.reshape(*plane.shape[:-2], -1) / channels - 0.5).astype(jnp.float32)


def encode_obs_np(spec: DiscreteEnvSpec, obs: np.ndarray) -> np.ndarray:
    """:func:`encode_obs` in numpy (the gymnasium evaluation wrapper)."""
    if not spec.minatar:
        return np.asarray(obs, np.float32)
    grid = np.asarray(obs, np.float32)
    channels = grid.shape[-1]
    plane = np.max(grid * np.arange(1, channels + 1, dtype=np.float32), axis=-1)
    return (plane.reshape(*plane.shape[:-2], -1) / channels - 0.5).astype(np.float32)


@cache
def random_act_fn(n_actions: int) -> ActFn:
    """The uniformly random policy as an :data:`ActFn` (``params`` is ignored; one object per
    ``n_actions``, so that compiled collectors are reused)."""
    import jax

    def act(params, obs, key):
        return jax.random.randint(key, (obs.shape[0],), 0, n_actions, dtype=np.int32)

    return act


def lane_step(env, env_params, spec: DiscreteEnvSpec):
    """One step of one lane that keeps the true next observation and the episode's end as
    ``terminal`` (the task's rule: ``step_env``'s done) or ``timeout`` (gymnax's
    ``is_truncated``: the episode cap), then auto-resets."""
    import jax
    import jax.numpy as jnp

    def step(key, state, action):
        k_step, k_reset = jax.random.split(key)
        next_obs, next_state, reward, terminal, _ = env.step_env(k_step, state, action, env_params)
        terminal = jnp.asarray(terminal, bool)
        timeout = jnp.logical_and(env.is_truncated(next_state, env_params), ~terminal)
        done = jnp.logical_or(terminal, timeout)
        reset_obs, reset_state = env.reset_env(k_reset, env_params)
        state_out = jax.tree_util.tree_map(
            lambda r, s: jnp.where(done, r, s), reset_state, next_state
        )
        obs_out = jnp.where(done, reset_obs, next_obs)
        return (
            encode_obs(spec, next_obs),
            reward.astype(jnp.float32),
            terminal,
            timeout,
            state_out,
            encode_obs(spec, obs_out),
        )

    return step


def _reset_lanes(env, env_params, spec: DiscreteEnvSpec, rng, lanes: int):
    """``(rng, encoded observations, states)`` of ``lanes`` fresh episodes."""
    import jax

    rng, k_reset = jax.random.split(rng)
    raw_obs, states = jax.vmap(env.reset_env, in_axes=(0, None))(
        jax.random.split(k_reset, lanes), env_params
    )
    return rng, encode_obs(spec, raw_obs), states


@lru_cache(maxsize=32)
def make_collector(key: str, act_fn: ActFn, num_envs: int, steps_per_lane: int) -> Callable:
    """A jitted ``(params, rng) -> arrays [steps_per_lane, num_envs, ...]`` of one collection
    (cached: the same ``act_fn`` object and shape reuse the compiled function)."""
    import jax
    import jax.numpy as jnp

    spec = get_discrete_env(key)
    env, env_params = make_gymnax(key)
    step_lanes = jax.vmap(lane_step(env, env_params, spec))

    def run(params, rng):
        rng, obs, states = _reset_lanes(env, env_params, spec, rng, num_envs)

        def body(carry, _):
            obs, states, rng = carry
            rng, k_act, k_env = jax.random.split(rng, 3)
            actions = act_fn(params, obs, k_act).astype(jnp.int32)
            nxt, rew, term, tout, states, obs_next = step_lanes(
                jax.random.split(k_env, num_envs), states, actions
            )
            out = {
                "observations": obs,
                "actions": actions,
                "rewards": rew,
                "terminals": term,
                "timeouts": tout,
                "next_observations": nxt,
            }
            return (obs_next, states, rng), out

        _, traj = jax.lax.scan(body, (obs, states, rng), None, length=steps_per_lane)
        return traj

    # one long scan of environment steps: always XLA's full optimization
    return jax.jit(run, compiler_options=compiler_options(False))


def steps_bucket(steps: int) -> int:
    """``steps`` rounded up to a multiple of an eighth of its power of two (at most 12.5% more),
    so that collections of similar sizes share one compiled scan.

    >>> steps_bucket(1000), steps_bucket(1024), steps_bucket(16_625)
    (1024, 1024, 18432)
    """
    grain = max(1, 1 << max(0, int(steps).bit_length() - 4))
    return -(-int(steps) // grain) * grain


def lanes_for(spec: DiscreteEnvSpec, n: int, max_lanes: int = 64) -> int:
    """How many lanes :func:`collect` runs for ``n`` transitions: about four episode caps per
    lane, at most ``max_lanes`` (each lane's unfinished last episode is dropped)."""
    return int(max(1, min(max_lanes, n // (4 * spec.max_episode_steps))))


def collect(
    key: str,
    act_fn: ActFn,
    params: Any,
    n: int,
    seed: int,
    num_envs: int | None = None,
) -> dict[str, np.ndarray]:
    """``n`` transitions of ``act_fn``, as flat dataset arrays of whole episodes.

    ``num_envs`` lanes (default :func:`lanes_for`) each run ``ceil(n / num_envs)`` steps plus one
    episode cap (rounded up by :func:`steps_bucket`), so that each lane's *completed* episodes
    cover its share; a lane's unfinished
    last episode is dropped, the lanes are concatenated (lane ``i``'s episodes before lane
    ``i + 1``'s) and cut at ``n``: only the dataset's last episode can be cut (a timeout), as in
    a single stream of experience. Deterministic in ``(key, act_fn, params, n, seed, num_envs)``.
    """
    import jax

    spec = get_discrete_env(key)
    num_envs = lanes_for(spec, n) if num_envs is None else max(1, int(num_envs))
    per_lane = steps_bucket(-(-n // num_envs) + spec.max_episode_steps)
    traj = make_collector(key, act_fn, num_envs, per_lane)(params, jax.random.PRNGKey(seed))
    traj = {k: np.swapaxes(np.asarray(v), 0, 1) for k, v in jax.device_get(traj).items()}
    ends = traj["terminals"] | traj["timeouts"]  # [num_envs, per_lane]
    keep = []
    for lane in range(num_envs):
        done = np.flatnonzero(ends[lane])
        keep.append(np.arange(done[-1] + 1) if len(done) else np.arange(0))
    out: dict[str, np.ndarray] = {
        field: np.concatenate([arr[lane][idx] for lane, idx in enumerate(keep)])[:n]
        for field, arr in traj.items()
    }
    if len(out["rewards"]) < n:  # cannot happen unless an episode outlasts max_episode_steps
        raise PolicyfitError(
            f"collected {len(out['rewards'])} of {n} transitions", path=key, field="size"
        )
    out["timeouts"][-1] = not out["terminals"][-1]
    out["actions"] = out["actions"].astype(np.int64)
    out["rewards"] = out["rewards"].astype(np.float32)
    return out


def make_evaluator(key: str, act_fn: ActFn, episodes: int) -> Callable:
    """A jitted ``(params, rng) -> returns [episodes]``: one full episode per lane."""
    import jax
    import jax.numpy as jnp

    spec = get_discrete_env(key)
    env, env_params = make_gymnax(key)
    step_lanes = jax.vmap(lane_step(env, env_params, spec))

    def run(params, rng):
        rng, obs, states = _reset_lanes(env, env_params, spec, rng, episodes)

        def body(carry, _):
            obs, states, rng, ret, alive = carry
            rng, k_act, k_env = jax.random.split(rng, 3)
            actions = act_fn(params, obs, k_act).astype(jnp.int32)
            _, rew, term, tout, states, obs_next = step_lanes(
                jax.random.split(k_env, episodes), states, actions
            )
            ret = ret + jnp.where(alive, rew, 0.0)
            alive = jnp.logical_and(alive, jnp.logical_not(jnp.logical_or(term, tout)))
            return (obs_next, states, rng, ret, alive), None

        init = (
            obs,
            states,
            rng,
            jnp.zeros(episodes, jnp.float32),
            jnp.ones(episodes, bool),
        )
        (_, _, _, ret, _), _ = jax.lax.scan(body, init, None, length=spec.max_episode_steps)
        return ret

    return jax.jit(run, compiler_options=compiler_options(False))


def episode_returns(key: str, act_fn: ActFn, params: Any, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``episodes`` full episodes of ``act_fn`` in the gymnax port."""
    import jax

    fn = make_evaluator(key, act_fn, episodes)
    return np.asarray(fn(params, jax.random.PRNGKey(seed)), np.float64)


def _register_minatar() -> None:
    """Register ``policyfit/<Game>-MinAtar-v1``: the reference ``minatar`` game with the minimal
    action set, no sticky actions (as gymnax), the paper's observation encoding, and gymnax's
    episode cap as a time limit."""
    import gymnasium as gym

    for spec in DISCRETE_ENVS.values():
        if spec.minatar and spec.env_id not in gym.registry:
            gym.register(
                id=spec.env_id,
                entry_point="policyfit.envs.jaxenv:MinAtarEnv",
                kwargs={"key": spec.key},
                max_episode_steps=spec.max_episode_steps,
            )


def _minatar_env_class():
    import gymnasium as gym

    class _MinAtarEnv(gym.Env):
        """The reference MinAtar game (``minatar.Environment``) with the paper's observation."""

        metadata = {"render_modes": []}

        def __init__(self, key: str):
            from minatar import Environment

            self.spec_ = get_discrete_env(key)
            game = MINATAR_GAMES[self.spec_.gymnax_id.split("-")[0]]
            self.game = Environment(game, sticky_action_prob=0.0, difficulty_ramping=True)
            self.actions = self.game.minimal_action_set()
            self.action_space = gym.spaces.Discrete(len(self.actions))
            self.observation_space = gym.spaces.Box(-0.5, 0.5, (100,), np.float32)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            if seed is not None:
                self.game.seed(seed)
            self.game.reset()
            return encode_obs_np(self.spec_, self.game.state()), {}

        def step(self, action):
            reward, done = self.game.act(self.actions[int(action)])
            obs = encode_obs_np(self.spec_, self.game.state())
            return obs, float(reward), bool(done), False, {}

    return _MinAtarEnv


def __getattr__(name: str) -> Any:
    if name == "MinAtarEnv":  # built lazily: importing gymnasium/minatar is not free
        return _minatar_env_class()
    raise AttributeError(name)


def register_envs() -> None:
    """Make the evaluation environments of the discrete suite known to ``gymnasium.make``."""
    _register_minatar()
