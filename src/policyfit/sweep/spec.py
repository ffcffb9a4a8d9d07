"""The sweep specification (``SPEC.yaml``) and its expansion into trials.

A spec names a grid; every point of ``algorithms x datasets x config overrides x seeds`` is one
trial, i.e. one call of :func:`policyfit.train`::

    algorithms: [iql, td3bc]
    datasets: [hopper-medium, walker2d-medium-replay]   # names or paths
    seeds: [0, 1, 2]
    steps: 100000
    eval_episodes: 10
    eval_every: 0                                      # optional; 0 = evaluate at the end only
    tensorboard: true                                  # optional; event files in every run dir
    overrides: {iql: {expectile: [0.7, 0.9]}}          # optional grid per algorithm
    config: {td3bc: {alpha: 2.5}}                      # optional fixed values per algorithm

Example:
    >>> spec = SweepSpec(algorithms=("bc",), datasets=("hopper-medium",), seeds=(0, 1), steps=10)
    >>> [t.trial_id for t in expand_trials(spec)]
    ['bc-hopper-medium-s0', 'bc-hopper-medium-s1']
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from policyfit.errors import ConfigError, PolicyfitError

KNOWN_KEYS = (
    "algorithms",
    "datasets",
    "seeds",
    "steps",
    "eval_episodes",
    "eval_every",
    "tensorboard",
    "overrides",
    "config",
)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep grid."""

    algorithms: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    steps: int = 100_000
    eval_episodes: int = 10
    eval_every: int = 0
    overrides: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensorboard: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trial:
    """One point of the grid: what :func:`policyfit.train` is called with."""

    trial_id: str
    algorithm: str
    dataset: str
    seed: int
    steps: int
    eval_episodes: int
    eval_every: int
    config: dict[str, Any]  # fixed config values merged with this trial's overrides
    overrides: dict[str, Any]  # the grid values only (names the variant)
    tensorboard: bool = False

    @property
    def variant(self) -> str:
        """``algo`` or ``algo[key=value,...]``: what the results table groups seeds by."""
        if not self.overrides:
            return self.algorithm
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.algorithm}[{inner}]"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "variant": self.variant}


def _slug(text: str) -> str:
    """A file-name-safe piece: odd characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "x"


def _dataset_slug(dataset: str) -> str:
    """A dataset name as is; a path (``data/walker.hdf5``) by its stem (``walker``)."""
    path = Path(dataset)
    if "/" in dataset or "\\" in dataset or path.suffix.lower() in (".npz", ".hdf5", ".h5"):
        return _slug(path.stem)
    return _slug(dataset)


def _as_list(value: Any, name: str, source: str) -> list[Any]:
    if isinstance(value, list | tuple):
        if not value:
            raise ConfigError("must not be empty", path=source, field=name)
        return list(value)
    if value is None:
        raise ConfigError("is required", path=source, field=name)
    return [value]


def _positive_int(value: Any, name: str, source: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"must be an integer >= {minimum}, got {value!r}", path=source, field=name
        )
    return value


def spec_from_dict(values: dict[str, Any], source: str = "<spec>") -> SweepSpec:
    """Validate a parsed spec; every problem is a :class:`ConfigError` naming the key."""
    from policyfit.algos.registry import get_algorithm

    if not isinstance(values, dict):
        raise ConfigError("the spec must be a YAML mapping", path=source)
    unknown = sorted(set(values) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(KNOWN_KEYS)}", path=source
        )
    algorithms = [str(a) for a in _as_list(values.get("algorithms"), "algorithms", source)]
    names = []
    for a in algorithms:
        cls = get_algorithm(a)  # raises ConfigError listing valid names
        names.append(cls.name)
    datasets = [str(d) for d in _as_list(values.get("datasets"), "datasets", source)]
    seeds = [
        _positive_int(s, "seeds", source, 0)
        for s in _as_list(values.get("seeds", [0]), "seeds", source)
    ]
    steps = _positive_int(values.get("steps", 100_000), "steps", source)
    eval_episodes = _positive_int(values.get("eval_episodes", 10), "eval_episodes", source)
    eval_every = _positive_int(values.get("eval_every", 0), "eval_every", source, 0)
    tensorboard = values.get("tensorboard", False)
    if not isinstance(tensorboard, bool):
        raise ConfigError(
            f"must be true or false, got {tensorboard!r}", path=source, field="tensorboard"
        )

    def per_algo(key: str) -> dict[str, dict[str, Any]]:
        raw = values.get(key) or {}
        if not isinstance(raw, dict):
            raise ConfigError("must map algorithm -> {key: value}", path=source, field=key)
        out: dict[str, dict[str, Any]] = {}
        for algo, table in raw.items():
            name = get_algorithm(str(algo)).name
            if name not in names:
                raise ConfigError(
                    f"{algo!r} is not in algorithms ({', '.join(algorithms)})",
                    path=source,
                    field=key,
                )
            if not isinstance(table, dict):
                raise ConfigError(
                    "must map config key -> value(s)", path=source, field=f"{key}.{algo}"
                )
            cls = get_algorithm(name)
            for k in table:
                if k not in cls.Config.field_names():
                    raise ConfigError(
                        f"unknown config key {k!r} for {name}; valid: "
                        f"{', '.join(sorted(cls.Config.field_names()))}",
                        path=source,
                        field=f"{key}.{algo}.{k}",
                    )
            out[name] = dict(table)
        return out

    overrides = {
        a: {k: _as_list(v, f"overrides.{a}.{k}", source) for k, v in table.items()}
        for a, table in per_algo("overrides").items()
    }
    return SweepSpec(
        algorithms=tuple(names),
        datasets=tuple(datasets),
        seeds=tuple(seeds),
        steps=steps,
        eval_episodes=eval_episodes,
        eval_every=eval_every,
        overrides=overrides,
        config=per_algo("config"),
        tensorboard=tensorboard,
    )


def read_spec(path: str | Path) -> SweepSpec:
    """Read and validate ``SPEC.yaml``.

    Example:
        >>> spec = read_spec("sweep.yaml")   # doctest: +SKIP
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PolicyfitError("no such file", path=str(path), field="spec")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}".replace("\n", " "), path=str(path)) from None
    return spec_from_dict(values, source=str(path))


def expand_trials(spec: SweepSpec) -> list[Trial]:
    """Every trial of the grid, in a stable order (algorithm, dataset, override variant, seed)."""
    trials = []
    for algo in spec.algorithms:
        grid = spec.overrides.get(algo, {})
        keys = sorted(grid)
        variants = [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(grid[k] for k in keys))
        ]
        for dataset in spec.datasets:
            for variant in variants:
                for seed in spec.seeds:
                    tag = "".join(
                        f"-{_slug(k)}={_slug(str(v))}" for k, v in sorted(variant.items())
                    )
                    trials.append(
                        Trial(
                            trial_id=f"{algo}-{_dataset_slug(dataset)}{tag}-s{seed}",
                            algorithm=algo,
                            dataset=dataset,
                            seed=seed,
                            steps=spec.steps,
                            eval_episodes=spec.eval_episodes,
                            eval_every=spec.eval_every,
                            config={**spec.config.get(algo, {}), **variant},
                            overrides=variant,
                            tensorboard=spec.tensorboard,
                        )
                    )
    ids = [t.trial_id for t in trials]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(
            f"two grid points share a trial name ({', '.join(dup[:3])}); datasets must have distinct names",
            field="datasets",
        )
    return trials
