"""V-GPS — "Steering Your Generalists: Improving Robotic Foundation Models via Value Guidance"
(Nakamoto, Mees, Kumar & Levine, CoRL 2024).

A trained policy is steered at test time, without retraining it: for each observation ``s``

* draw ``K`` actions ``a_1 .. a_K ~ pi_base(. | s)`` from the frozen base policy;
* score them with a critic trained offline on the same data, ``Q(s, a_i)`` (here an IQL or
  Robust IQL critic: the minimum over its Q heads, as the official ``get_q_values`` reduces its
  twin heads with ``jnp.min``);
* act ``a_argmax_i Q(s, a_i)`` when the temperature ``beta`` is 0, else ``a_i`` with
  ``i ~ softmax(Q(s, a_.) / beta)``.

Official code: ``nakamotoo/V-GPS`` — ``experiments/eval_vgps.py`` (flags ``num_samples=10``,
``action_temp=1.0``; ``experiments/scripts/eval_vgps.sh`` runs ``num_samples=50``), the critic's
``get_q_values`` in ``jaxrl_m/agents/continuous/cql.py`` (target parameters, min over heads), and
the re-ranking in its SimplerEnv fork, ``simpler_env/policies/octo/octo_model.py``
(``OctoInference.get_vgps_action``: ``jax.random.categorical(key, values / action_temp)`` when
``action_temp > 0``, else ``argmax``). The paper's ablations use ``K in {10, 50}`` and
``beta in {0, 0.1, 1}``. policyfit's defaults: ``k = 10`` (the code's flag default) and
``temperature = 0`` (argmax: the deterministic choice a D4RL evaluation wants); pass
``temperature = 1.0`` for the code's default.

This is a *wrapper*: an :class:`~policyfit.algos.base.Algorithm` whose config names the base
algorithm and the critic algorithm (each with its config) and whose policy parameters are
``{"base": <base policy params>, "critic": {"critic": <critic target params>, "obs_norm",
"action_scale"}}``. A steered policy is therefore saved, loaded (:func:`policyfit.load_policy`),
evaluated and reported like any other; :meth:`update` refuses to train it.
``policyfit steer`` (:mod:`policyfit.cli.steer`) builds one from two training runs.

Randomness. ``act(params, obs, carry, key)`` draws the K candidates with ``key``; with
``key=None`` (deterministic evaluation) it uses an internal key made from ``config.seed`` and the
observation batch itself (its bits folded in), so equal observations give equal actions and the
candidates still change from step to step. The temperature is honoured with either key.
A deterministic base policy (BC's default MSE policy, TD3+BC) returns the same action for every
key: all K candidates coincide and steering changes nothing — steer a stochastic policy
(``bc`` with ``policy=gaussian``, IQL's Gaussian actor). With ``k = 1`` the steered policy is the
base policy sampled with the first of the split keys.

Export: ``policyfit export`` of a steered policy fails with a one-line error naming the JAX
primitive jax2onnx 0.8.1 cannot convert (``bitcast_convert_type``, then the threefry random
generator's ``iota``): sampling K actions inside the graph needs a random generator ONNX lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from policyfit.algos.base import (
    AlgoConfig,
    Algorithm,
    Carry,
    DatasetSpec,
    find_algorithm,
    register,
)
from policyfit.errors import ConfigError
from policyfit.nn.normalization import normalize_observations, to_unit_actions

#: algorithms whose train state holds an ensemble Q (``critic_target``) over normalized
#: observations and unit-box actions, in the layout :func:`critic_params_from_state` reads
CRITIC_ALGORITHMS = ("iql", "riql")


@dataclass(frozen=True)
class VGPSConfig(AlgoConfig):
    base_algorithm: str = ""  # registry name of the steered policy's algorithm
    base_config: dict = field(default_factory=dict)  # its config (from its policy.json)
    critic_algorithm: str = "iql"  # registry name of the critic's algorithm (IQL-like)
    critic_config: dict = field(default_factory=dict)  # its config (from its run's config.json)
    k: int = 10  # K, candidate actions per observation (official flag num_samples = 10)
    temperature: float = 0.0  # beta; 0 = argmax, > 0 = sample softmax(Q / beta) (code: 1.0)
    seed: int = 0  # the internal key of deterministic (key=None) calls


def critic_params_from_state(state: dict) -> dict:
    """The part of an IQL-like train state the steering critic needs: the target critic (the
    official code scores with target parameters), observation statistics and action scale."""
    return {
        "critic": state["critic_target"],
        "obs_norm": state["obs_norm"],
        "action_scale": state["action_scale"],
    }


def _build(name: str, config: dict[str, Any], spec: DatasetSpec) -> Algorithm:
    """An algorithm with its networks set up, by registry name (what
    :func:`policyfit.algos.policy.build_algorithm` does, without importing the registry, which
    imports this module)."""
    cls = find_algorithm(name)
    algo = cls(cls.Config.from_dict(dict(config), algo=cls.name))
    algo.setup(spec)
    return algo


@register("vgps")
class VGPS(Algorithm):
    """A trained policy steered by an offline critic (see the module docstring)."""

    Config = VGPSConfig
    policy_keys = ("base", "critic")

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if cfg.k < 1:
            raise ConfigError("must be >= 1", path=self.name, field="k")
        if cfg.temperature < 0:
            raise ConfigError("must be >= 0 (0 = argmax)", path=self.name, field="temperature")
        if not cfg.base_algorithm:
            raise ConfigError(
                "names no base policy algorithm; build steered policies with `policyfit steer`",
                path=self.name,
                field="base_algorithm",
            )
        critic_name = find_algorithm(cfg.critic_algorithm).name
        if critic_name not in CRITIC_ALGORITHMS:
            raise ConfigError(
                f"{critic_name!r} has no critic V-GPS can read; use one of "
                f"{', '.join(CRITIC_ALGORITHMS)}",
                path=self.name,
                field="critic_algorithm",
            )
        if spec.discrete:
            raise ConfigError(
                "V-GPS re-ranks continuous actions with a Q(s, a) critic; this policy is discrete",
                path=self.name,
                field="base_algorithm",
            )
        self.spec = spec
        self.base = _build(cfg.base_algorithm, cfg.base_config, spec)
        if jax.tree_util.tree_leaves(self.base.initial_carry(1)):
            raise ConfigError(
                f"{self.base.name} keeps a carry between steps; V-GPS steers stateless policies",
                path=self.name,
                field="base_algorithm",
            )
        self.critic_algo = _build(critic_name, cfg.critic_config, spec)

    def init(self, spec: DatasetSpec, key: Any) -> dict:
        """Fresh (untrained) base and critic parameters: only for shape checks and tests."""
        self.setup(spec)
        k_base, k_critic = jax.random.split(key)
        base_state = self.base.init(spec, k_base)
        critic_state = self.critic_algo.init(spec, k_critic)
        return {
            "base": self.base.policy_params(base_state),
            "critic": critic_params_from_state(critic_state),
        }

    def update(self, state: Any, batch: dict, key: Any) -> tuple[Any, dict]:
        raise ConfigError(
            "vgps steers trained policies; it is not trained — train the base policy and an IQL "
            "critic, then run `policyfit steer POLICY_RUN --critic CRITIC_RUN --out RUN`",
            path=self.name,
            field="algorithm",
        )

    # ------------------------------------------------------------------ acting
    def q_values(self, critic: dict, obs: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
        """``min_i Q_i(s, a)`` ``[B]`` of environment-space ``actions [B, act_dim]``."""
        q = self.critic_algo.critic.apply(
            critic["critic"],
            normalize_observations(obs, critic["obs_norm"]),
            to_unit_actions(actions, critic["action_scale"]),
        )
        return jnp.min(q, axis=0)

    def candidates(self, base: Any, obs: jnp.ndarray, carry: Carry, key: jax.Array) -> jnp.ndarray:
        """``K`` actions from the base policy, ``[K, B, act_dim]``: its ``act`` with the keys
        ``jax.random.split(key, K)``."""
        keys = jax.random.split(key, self.config.k)
        return jax.vmap(lambda k: self.base.act(base, obs, carry, k)[0])(keys)

    def internal_key(self, obs: jnp.ndarray) -> jax.Array:
        """The key of a ``key=None`` call: ``config.seed`` with the observation batch's bits
        folded in (deterministic, and different from one observation to the next)."""
        bits = jax.lax.bitcast_convert_type(obs.astype(jnp.float32), jnp.uint32)
        mixed = jnp.sum(bits * (jnp.arange(bits.size, dtype=jnp.uint32).reshape(bits.shape) + 1))
        return jax.random.fold_in(jax.random.PRNGKey(self.config.seed), mixed)

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        if key is None:
            key = self.internal_key(obs)
        k_samples, k_choice = jax.random.split(key)
        actions = self.candidates(params["base"], obs, carry, k_samples)  # [K, B, A]
        k, b = actions.shape[:2]
        flat_obs = jnp.broadcast_to(obs[None], (k, *obs.shape)).reshape(k * b, -1)
        q = self.q_values(params["critic"], flat_obs, actions.reshape(k * b, -1)).reshape(k, b)
        if self.config.temperature > 0:
            index = jax.random.categorical(k_choice, q / self.config.temperature, axis=0)
        else:
            index = jnp.argmax(q, axis=0)
        return jnp.take_along_axis(actions, index[None, :, None], axis=0)[0], carry
