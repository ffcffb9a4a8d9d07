"""The algorithm contract (see shared DESIGN.md): a frozen config dataclass plus pure functions.

An :class:`Algorithm` never does I/O and never loops: the trainer owns loops, sampling, jit/scan,
evaluation, checkpoints and logging.

* ``init(spec, key) -> state``: networks and optimizer states, one pytree;
* ``update(state, batch, key) -> (state, metrics)``: ONE gradient step, pure and jit-able;
* ``act(params, obs, key=None) -> actions``: pure and batched; ``key=None`` means deterministic.

``batch`` is a dict of device arrays with the :data:`~policyfit.data.ARRAY_FIELDS` keys
(``terminals`` and ``timeouts`` as float32).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from policyfit.errors import ConfigError

Metrics = dict[str, Any]
NONE_WORDS = ("none", "null")


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
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            parts = [p for p in text.strip("()[]").split(",") if p.strip()]
            kind = type(default[0]) if default else int
            return tuple(kind(p) for p in parts)
        if default is None:
            try:
                return float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError:
                return None if text.lower() in NONE_WORDS else text
    except ValueError:
        raise ConfigError(
            f"cannot read {value!r} as {type(default).__name__}", path=algo, field=key
        ) from None
    return text


class Algorithm:
    """Base class: holds the config; subclasses implement ``init``, ``update`` and ``act``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AlgoConfig]] = AlgoConfig

    def __init__(self, config: AlgoConfig | None = None):
        self.config = config if config is not None else self.Config()

    def init(self, spec: DatasetSpec, key: Any) -> Any:
        raise NotImplementedError

    def update(self, state: Any, batch: dict[str, Any], key: Any) -> tuple[Any, Metrics]:
        raise NotImplementedError

    def act(self, params: Any, obs: Any, key: Any = None) -> Any:
        raise NotImplementedError
