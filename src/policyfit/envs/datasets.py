"""Dataset names resolved: files, local Minari ids and the built-in suite (the public ``load_dataset``).

:mod:`policyfit.data.io` only reads and writes files; this module, one layer up, also knows the
built-in suite (:mod:`policyfit.envs.suite`). ``policyfit.load_dataset``, the trainer and the CLI
load through :func:`load_dataset`. :func:`suite_reference` gives the diagnostics their default
SACo reference (the suite's ``<env>-medium-replay``); :mod:`policyfit.diagnostics` never imports
the suite itself, its callers pass this function as ``reference_resolver``.

Built-in names are the MuJoCo suite's (``hopper-medium``, built from shipped SAC policies,
:mod:`policyfit.envs.suite`), the discrete suite's (``cartpole-replay``, ``breakout-noisy``, from
shipped online DQN runs, :mod:`policyfit.envs.discrete_suite`), the maze suite's
(``pointmaze-umaze``, ``pointmaze-stitch``, from a waypoint controller on gymnasium-robotics'
PointMaze, :mod:`policyfit.envs.maze`) and ``cartpole-medium`` (a fixed controller,
:mod:`policyfit.envs.classic`), DoC's stochastic tasks (``doc-bandit``, ``frozenlake``,
:mod:`policyfit.envs.stochastic` and :mod:`policyfit.envs.frozenlake`). Resolution order: an existing path, then a
built-in name (case-insensitive), then a Minari id in the local Minari root.

Example:
    >>> ds = load_dataset("hopper-medium", size=10_000, seed=1)   # doctest: +SKIP
    >>> load_dataset("logs.hdf5", size=10)                          # doctest: +SKIP
    Traceback (most recent call last):
    policyfit.errors.ConfigError: logs.hdf5: size: ...
"""

from __future__ import annotations

import os
from pathlib import Path

from policyfit.data.dataset import Dataset
from policyfit.data.io import find_dataset
from policyfit.data.io import load_dataset as load_file
from policyfit.envs import classic, discrete_suite, frozenlake, maze, stochastic, suite
from policyfit.errors import ConfigError, DatasetError


def load_dataset(
    name_or_path: str | os.PathLike | Dataset,
    *,
    size: int | None = None,
    seed: int | None = None,
    clip_actions: bool = False,
) -> Dataset:
    """Load a file, a local Minari id, or a built-in suite dataset (built on first use).

    Args:
        name_or_path: Minari directory, HDF5 / ``.npz`` file, built-in name (``hopper-medium``;
            built on first use, then cached under ``$POLICYFIT_HOME/datasets``) or Minari id.
        size: transitions of a built-in dataset (default: D4RL's size for the name).
        seed: seed of a built-in dataset (default 0).
        clip_actions: clip actions into the declared action space instead of rejecting them.

    Raises:
        ConfigError: ``size``/``seed`` given with a file or Minari id (they only shape built-in
            datasets, and a file's content is fixed).
        DatasetError: no such file, built-in name or Minari id; or an unreadable file.
    """
    if isinstance(name_or_path, Dataset):
        return name_or_path
    name = str(name_or_path)
    if not Path(name_or_path).expanduser().exists() and is_builtin_name(name):
        # Built by the shipped policies inside the action space: clip_actions has nothing to do.
        return make_dataset(name, size=size, seed=0 if seed is None else seed)
    found = find_dataset(name_or_path)
    if found is None:
        raise DatasetError(
            "no such file, Minari dataset or built-in dataset; built-in names: "
            f"{', '.join(suite.SUITE_NAMES[:3])}, ... (see `policyfit data list`)",
            path=name,
            field="path",
        )
    _reject_suite_options(name, size=size, seed=seed)
    return load_file(found, clip_actions=clip_actions)


def is_builtin_name(name: str) -> bool:
    """A name :func:`make_dataset` can build (any suite, or ``cartpole-medium``)."""
    return (
        suite.is_suite_name(name)
        or discrete_suite.is_discrete_name(name)
        or maze.is_maze_name(name)
        or classic.is_classic_name(name)
        or stochastic.is_bandit_name(name)
        or frozenlake.is_frozenlake_name(name)
    )


def make_dataset(
    name: str,
    size: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
) -> Dataset:
    """Build the built-in dataset ``name``: a MuJoCo, discrete or maze suite name (cached under
    ``$POLICYFIT_HOME``) or ``cartpole-medium`` (collected in seconds; written only to ``out``).

    Example:
        >>> ds = make_dataset("cartpole-medium", size=1_000)
        >>> ds.discrete, ds.env_id
        (True, 'CartPole-v1')
    """
    if discrete_suite.is_discrete_name(name):
        return discrete_suite.make_dataset(name, size=size, seed=seed, out=out, progress=progress)
    if maze.is_maze_name(name):
        return maze.make_dataset(name, size=size, seed=seed, out=out, progress=progress)
    if stochastic.is_bandit_name(name):
        return stochastic.make_bandit_dataset(name, size=size, seed=seed, out=out)
    if frozenlake.is_frozenlake_name(name):
        return frozenlake.make_frozenlake_dataset(name, size=size, seed=seed, out=out)
    if classic.is_classic_name(name):
        ds = classic.make_cartpole_dataset(name, size=size, seed=seed)
        if out is not None:
            from policyfit.data.io import save_dataset

            save_dataset(ds, out)
        return ds
    return suite.make_dataset(name, size=size, seed=seed, out=out, progress=progress)


def list_datasets() -> list[dict]:
    """Every built-in name (the MuJoCo, discrete and maze suites and ``cartpole-medium``), as
    :func:`policyfit.envs.suite.list_datasets`."""
    return (
        suite.list_datasets()
        + discrete_suite.list_datasets()
        + maze.list_datasets()
        + classic.list_datasets()
        + stochastic.list_datasets()
        + frozenlake.list_datasets()
    )


def _reject_suite_options(name: str, **options: int | None) -> None:
    for field, value in options.items():
        if value is not None:
            raise ConfigError(
                f"{field}={value} applies only to built-in datasets (such as hopper-medium); "
                f"a file or Minari dataset is loaded whole: drop {field}",
                path=name,
                field=field,
            )


def suite_reference(dataset: Dataset, build: bool = False) -> tuple[Dataset, str]:
    """SACo's default reference: the environment's replay data in the built-in suites.

    For the MuJoCo suite, ``<env>-medium-replay`` (cached copy; built, minutes of rollouts, only
    with ``build=True``). For a discrete-suite dataset, its environment's ``<env>-replay`` with the
    same size and seed (Schweighofer et al. 2022; built in seconds when missing). The default
    reference of ``policyfit data inspect --full``, ``policyfit report`` and
    ``policyfit.diagnose``: pass it as ``diagnose(..., reference_resolver=suite_reference)``. Any
    failure raises ``LookupError`` with the reason and what to do (the card then shows no SACo
    and why).

    Example:
        >>> from policyfit.diagnostics import diagnose
        >>> card = diagnose(ds, reference_resolver=suite_reference)   # doctest: +SKIP
    """
    if discrete_suite.is_discrete_name(str(dataset.metadata.get("suite_name", ""))):
        name, size, seed = discrete_suite.reference_for(dataset)
        try:
            ref = discrete_suite.make_dataset(name, size=size, seed=seed, progress=False)
        except Exception as exc:
            raise LookupError(f"suite dataset {name} unavailable: {exc}") from exc
        return ref, f"suite:{discrete_suite.minari_dataset_id(name, size, seed)}"
    return _mujoco_reference(dataset, build)


def _mujoco_reference(dataset: Dataset, build: bool) -> tuple[Dataset, str]:
    env_id = dataset.env_id
    if not env_id:
        raise LookupError("the dataset has no env_id, so there is no suite reference; pass one")
    name = f"{env_id.split('-')[0].lower()}-medium-replay"
    if not build:
        rows = {row["name"]: row for row in suite.list_datasets()}
        if name not in rows:
            raise LookupError(f"the suite has no {name} for {env_id}; pass a reference dataset")
        if not rows[name]["cached"]:
            raise LookupError(
                f"suite reference {name} is not built yet: run `policyfit data make {name}` "
                "or pass a reference dataset"
            )
    try:
        return suite.make_dataset(name, progress=False), f"suite:{name}"
    except Exception as exc:
        raise LookupError(f"suite dataset {name} unavailable: {exc}") from exc
