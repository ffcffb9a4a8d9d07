"""The algorithm contract: a frozen config dataclass plus pure functions, declared here in full.

Everything the trainer, :func:`policyfit.load_policy`, rollouts and export call on an algorithm is a
method of :class:`Algorithm` below, with a default where one makes sense; nothing is discovered
with ``hasattr``. An algorithm never does I/O and never loops: the trainer owns loops, sampling,
jit/``lax.scan`` fusion, evaluation, checkpoints and logging. See ``docs/architecture.md``.

Required:

* ``setup(spec)``: build the (parameter-free) networks for a dataset spec; called by ``init`` and
  by ``load_policy`` before ``act``;
* ``init(spec, key) -> state``: networks and optimizer states, one pytree;
* ``update(state, batch, key) -> (state, metrics)``: ONE gradient step, pure and jit-able;
* ``act(params, obs, carry, key=None) -> (actions, carry)``: pure and batched; ``key=None`` means
  deterministic. ``carry`` is the policy's memory (a return-to-go target, a context window); a
  stateless policy passes it through unchanged.

With defaults:

* ``supports_continuous`` / ``supports_discrete``: which action spaces it handles (the trainer
  checks them);
* ``policy_keys`` / ``policy_params(state)``: the part of the state a saved policy needs;
* ``initial_carry(batch_size)`` (empty) and ``observe_reward(carry, reward)`` (unchanged): how the
  carry starts and what a rollout feeds back after each environment step;
* ``prepare(dataset)``: host-side preprocessing before training (%BC's filter, relabeling);
* ``make_sampler(dataset, spec)``: transitions by default; trajectory windows for sequence models;
* ``pretrain_steps`` and ``pretrain_update(state, batch, key)``: an optional phase before the main
  updates (dynamics ensembles, behavior VAEs, BC warm starts).
* ``action_log_prob(params, obs, carry, actions)``: ``log pi(a|s)`` of given actions under the
  distribution ``act`` samples from with a key (a log-density in the action box for continuous
  actions, see :mod:`policyfit.algos.propensity`); raises ``NotImplementedError`` for policies
  without a distribution (the default). ``policyfit serve --explore sample`` reports it.

``batch`` is what the sampler draws: for :class:`~policyfit.data.sampler.TransitionSampler` a
dict of device arrays with the :data:`~policyfit.data.ARRAY_FIELDS` keys (``terminals`` and
``timeouts`` as float32) and ``next_actions``.

Example (a complete, if useless, algorithm):

    >>> import jax.numpy as jnp
    >>> @register("zero_policy_doc")
    ... class ZeroPolicy(Algorithm):
    ...     supports_discrete = True
    ...     policy_keys = ("action_dim",)
    ...     def init(self, spec, key):
    ...         self.setup(spec)
    ...         return {"action_dim": jnp.zeros(spec.action_dim)}
    ...     def update(self, state, batch, key):
    ...         return state, {}
    ...     def act(self, params, obs, carry, key=None):
    ...         return jnp.zeros((obs.shape[0], params["action_dim"].shape[0])), carry
    >>> ZeroPolicy.name, "zero_policy_doc" in ALGORITHMS
    ('zero_policy_doc', True)
    >>> del ALGORITHMS["zero_policy_doc"]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from policyfit.errors import ConfigError

Metrics = dict[str, Any]
Carry = Any  # a pytree whose leaves have a leading batch axis; () for stateless policies
NONE_WORDS = ("none", "null")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class DatasetSpec:
    """What an algorithm may know about its data when it builds its networks."""

    observation_dim: int
    action_dim: int
    discrete: bool = False
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    obs_mean: tuple[float, ...] = ()
    obs_std: tuple[float, ...] = ()
    # the same over observations and next_observations together (Robust IQL's normalization)
    obs_next_mean: tuple[float, ...] = ()
    obs_next_std: tuple[float, ...] = ()
    return_min: float = 0.0
    return_max: float = 0.0
    reward_abs_mean: float = 0.0  # mean |r| per transition (IQL's "per_step" reward scaling)
    num_transitions: int = 0
    max_episode_length: int = 1000

    @classmethod
    def from_dataset(cls, ds: Any) -> DatasetSpec:
        space = ds.metadata.get("action_space") or {}
        if ds.discrete:
            low, high = (), ()
        elif space.get("type") == "box":
            low, high = tuple(space["low"]), tuple(space["high"])
        else:
            low = tuple(np.minimum(ds.actions.min(0), -1.0).tolist())
            high = tuple(np.maximum(ds.actions.max(0), 1.0).tolist())
        obs = ds.observations
        both = np.concatenate([obs, ds.next_observations])
        rets = ds.episode_returns()
        return cls(
            observation_dim=ds.observation_dim,
            action_dim=ds.action_dim,
            discrete=ds.discrete,
            action_low=low,
            action_high=high,
            obs_mean=tuple(obs.mean(0, dtype=np.float64).tolist()),
            obs_std=tuple(obs.std(0, dtype=np.float64).tolist()),
            obs_next_mean=tuple(both.mean(0, dtype=np.float64).tolist()),
            obs_next_std=tuple(both.std(0, dtype=np.float64).tolist()),
            return_min=float(rets.min()),
            return_max=float(rets.max()),
            reward_abs_mean=float(np.abs(ds.rewards).mean(dtype=np.float64)),
            num_transitions=len(ds),
            max_episode_length=int(ds.episode_lengths.max()),
        )


@dataclass(frozen=True)
class AlgoConfig:
    """Base of every algorithm's hyperparameters. Subclasses add fields with the paper's defaults."""

    batch_size: int = 256  # transitions per gradient step (CORL: 256 for every algorithm)
    discount: float = 0.99  # gamma

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, algo: str = "") -> AlgoConfig:
        """Build a config, rejecting unknown keys and converting strings (``--set key=value``)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"unknown config key {key!r}; valid keys: {', '.join(sorted(fields))}",
                    path=algo or cls.__name__,
                    field=key,
                )
            default = getattr(cls(), key)
            annotation = str(fields[key].type)
            optional = "None" in annotation
            if optional and (
                value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)
            ):
                out[key] = None
                continue
            if default is None and annotation.startswith("tuple"):
                # an optional tuple (e.g. target_clip) is read as the tuple it would hold
                default = (0.0,) if "float" in annotation else (0,)
            out[key] = coerce_value(value, default, key=key, algo=algo or cls.__name__)
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def coerce_value(value: Any, default: Any, *, key: str, algo: str) -> Any:
    """Convert ``value`` (often a CLI string) to the type of ``default``; clear error otherwise."""
    if not isinstance(value, str):
        return _check_type(value, default, key=key, algo=algo)
    try:
        return _parse_text(value.strip(), default)
    except ValueError:
        raise ConfigError(
            f"cannot read {value!r} as {type(default).__name__}", path=algo, field=key
        ) from None


def _check_type(value: Any, default: Any, *, key: str, algo: str) -> Any:
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if default is not None and type(value) is not type(default):
        raise ConfigError(
            f"expected {type(default).__name__}, got {type(value).__name__} {value!r}",
            path=algo,
            field=key,
        )
    return value


def _parse_bool(text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise ValueError(text)


def _parse_untyped(text: str) -> Any:
    """A value for a field whose default is None: a number if it reads as one, else the text."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return None if text.lower() in NONE_WORDS else text


def _parse_text(text: str, default: Any) -> Any:
    """``text`` read as the type of ``default`` (bool before int: bool is an int subclass)."""
    if isinstance(default, bool):
        return _parse_bool(text)
    if isinstance(default, int | float):
        return type(default)(text)
    if isinstance(default, tuple):
        parts = [p for p in text.strip("()[]").split(",") if p.strip()]
        kind = type(default[0]) if default else int
        return tuple(kind(p) for p in parts)
    if default is None:
        return _parse_untyped(text)
    return text


A = TypeVar("A", bound="type[Algorithm]")

#: Every registered algorithm, by its canonical name (filled by :func:`register`).
ALGORITHMS: dict[str, type[Algorithm]] = {}


def canonical_key(name: str) -> str:
    """How names are compared: case, ``-``, ``_`` and ``+`` do not matter (``TD3+BC`` = ``td3bc``)."""
    return name.strip().lower().replace("+", "").replace("-", "").replace("_", "")


def find_algorithm(name: str) -> type[Algorithm]:
    """The class registered as ``name`` among those imported so far (case, ``-``, ``_``, ``+``
    ignored); :func:`policyfit.algos.registry.get_algorithm` imports every built-in one first.

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    key = canonical_key(name)
    for registered, cls in ALGORITHMS.items():
        if canonical_key(registered) == key:
            return cls
    raise ConfigError(
        f"unknown algorithm; valid: {', '.join(sorted(ALGORITHMS))}",
        path=name,
        field="algorithm",
    )


def register(name: str) -> Callable[[A], A]:
    """Class decorator: add an :class:`Algorithm` to :data:`ALGORITHMS` under ``name``.

    Example:
        >>> @register("my_bc")                       # doctest: +SKIP
        ... class MyBC(Algorithm): ...
    """

    def add(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
            raise TypeError(f"@register({name!r}) needs an Algorithm subclass, got {cls!r}")
        clash = [n for n in ALGORITHMS if canonical_key(n) == canonical_key(name)]
        if clash and ALGORITHMS[clash[0]] is not cls:
            raise ValueError(f"algorithm name {name!r} is already registered ({clash[0]!r})")
        cls.name = name
        ALGORITHMS[name] = cls
        return cls

    return add


class Algorithm:
    """Base class of every offline learner; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AlgoConfig]] = AlgoConfig
    #: action spaces this algorithm can learn; :func:`policyfit.train` checks them
    supports_continuous: ClassVar[bool] = True
    supports_discrete: ClassVar[bool] = False
    #: the train-state entries that make up the saved policy (see :meth:`policy_params`)
    policy_keys: ClassVar[tuple[str, ...]] = ("actor", "obs_norm", "action_scale")

    def __init__(self, config: AlgoConfig | None = None):
        self.config = config if config is not None else self.Config()
        self.spec: DatasetSpec | None = None

    # ------------------------------------------------------------------ required
    def setup(self, spec: DatasetSpec) -> None:
        """Build the networks (modules, no parameters) for ``spec``; check the config.

        Called by :meth:`init` and by :func:`policyfit.load_policy` before :meth:`act`.
        Subclasses that override it call ``super().setup(spec)`` or set ``self.spec``.
        """
        self.spec = spec

    def init(self, spec: DatasetSpec, key: Any) -> Any:
        """Fresh train state (networks, optimizer states, statistics) as one pytree."""
        raise NotImplementedError

    def update(self, state: Any, batch: dict[str, Any], key: Any) -> tuple[Any, Metrics]:
        """ONE gradient step: ``(state, metrics)``; pure and jit-able."""
        raise NotImplementedError

    def act(self, params: Any, obs: Any, carry: Carry, key: Any = None) -> tuple[Any, Carry]:
        """Actions for a batch of observations ``[B, obs_dim]`` and the next carry.

        ``key=None``: the deterministic (mode) action. Discrete algorithms return int32 ``[B]``.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ with defaults
    def policy_params(self, state: Any) -> Any:
        """The part of a train state :meth:`act` needs (saved as ``policy/params.msgpack``)."""
        return {k: state[k] for k in self.policy_keys}

    def initial_carry(self, batch_size: int) -> Carry:
        """The carry at the start of an episode, for ``batch_size`` parallel episodes."""
        return ()

    def observe_reward(self, carry: Carry, reward: Any) -> Carry:
        """The carry after the environment paid ``reward`` ``[B]`` for the last action."""
        return carry

    def prepare(self, dataset: Any) -> Any:
        """Host-side preprocessing of the training data (runs once, before the spec is built)."""
        return dataset

    def make_sampler(self, dataset: Any, spec: DatasetSpec) -> Any:
        """The on-device batch sampler; uniform transitions by default."""
        from policyfit.data.sampler import TransitionSampler

        return TransitionSampler(dataset)

    @property
    def pretrain_steps(self) -> int:
        """Updates of :meth:`pretrain_update` to run before the main phase (0: none)."""
        return 0

    def pretrain_update(self, state: Any, batch: dict[str, Any], key: Any) -> tuple[Any, Metrics]:
        """One step of the pretraining phase (only called when :attr:`pretrain_steps` > 0)."""
        raise NotImplementedError(f"{self.name} declares pretrain_steps but no pretrain_update")

    def action_log_prob(self, params: Any, obs: Any, carry: Carry, actions: Any) -> Any:
        """``log pi(a|s)`` ``[B]`` of ``actions`` under the distribution :meth:`act` samples from
        with a key (``carry`` as passed to that ``act``); pure and jit-able.

        Discrete: a log-probability; continuous: a log-density in the environment's action box
        (:mod:`policyfit.algos.propensity`). The default raises NotImplementedError: the policy
        has no distribution (Q-argmax and deterministic actors).
        """
        raise NotImplementedError(f"{self.name} has no action distribution to score actions with")

    @classmethod
    def action_spaces(cls) -> str:
        """``"continuous"``, ``"discrete"`` or ``"continuous, discrete"``."""
        kinds = [
            k
            for k, ok in (
                ("continuous", cls.supports_continuous),
                ("discrete", cls.supports_discrete),
            )
            if ok
        ]
        return ", ".join(kinds)
