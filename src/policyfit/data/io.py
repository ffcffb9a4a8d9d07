"""Readers and writers: Minari datasets, D4RL-style HDF5, ``.npz`` and d3rlpy's HDF5 layout, chosen
by sniffing the path.

* :func:`load_dataset` reads a path (Minari dataset directory, HDF5 file in D4RL's flat layout or
  in d3rlpy's per-episode layout (:mod:`policyfit.data.d3rlpy_io`), ``.npz`` file) or a
  Minari dataset id in the local Minari root. Files only: built-in suite names
  (``hopper-medium``) are resolved one layer up, by :func:`policyfit.envs.datasets.load_dataset`
  (the public ``policyfit.load_dataset``).
* :func:`save_dataset` writes any of the four formats; every writer writes to a temporary path
  in the same directory and renames it into place, so a crash never leaves a half-written file.
* Minari datasets with goal-conditioned dict observations (``observation``, ``desired_goal``,
  ``achieved_goal``: Minari's pointmaze and antmaze) are read flattened to
  ``observation ++ desired_goal`` (:mod:`policyfit.data.spaces`), the achieved goals kept as the
  extra arrays ``achieved_goal``/``next_achieved_goal``; such a dataset is written back to Minari
  as dicts (:func:`goal_layout_of`).

Example:
    >>> import numpy as np, tempfile, os
    >>> from policyfit.data import Dataset
    >>> from policyfit.data.io import load_dataset, save_dataset
    >>> ds = Dataset(observations=np.zeros((3, 2)), actions=np.zeros((3, 1)),
    ...              rewards=np.ones(3), terminals=np.array([0, 0, 1]))
    >>> path = save_dataset(ds, os.path.join(tempfile.mkdtemp(), "d.hdf5"))
    >>> load_dataset(path).fingerprint() == ds.fingerprint()
    True
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.files import atomic_write, atomic_write_npz, dumps, output_error
from policyfit.common.scores import metadata_reference_scores
from policyfit.data import d3rlpy_io
from policyfit.data.dataset import ARRAY_FIELDS, Dataset
from policyfit.data.hdf5_guard import check_global_heaps
from policyfit.data.spaces import (
    GOAL_OBSERVATION_KEYS,
    flatten_goal_observation,
    infer_box,
    is_goal_observation,
    space_from_gym,
    space_to_gym,
)
from policyfit.errors import DatasetError

FORMATS = ("minari", "hdf5", "npz", "d3rlpy")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
METADATA_KEY = "policyfit_metadata"  # JSON text holding Dataset.metadata in HDF5/npz/Minari files
# what h5py raises on a damaged file (its own errors are OSError/KeyError/ValueError/RuntimeError;
# TypeError for a datatype numpy has no equivalent of)
HDF5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def _hdf5_error(path: Path, exc: BaseException) -> DatasetError:
    """The one-line error for an HDF5 file that h5py could not read (``HDF5_ERRORS``, or a
    header asking for impossible memory). A :class:`DatasetError` raised inside is not one of
    these and passes through unchanged."""
    if isinstance(exc, MemoryError):
        message = "a dataset's header asks for more memory than there is (a damaged header?)"
    else:
        message = f"cannot be read as HDF5 (truncated or corrupt file?): {exc}"
    return DatasetError(message, path=str(path), field="file")


# what zipfile/zlib/numpy raise on a damaged .npz: a bad CRC or header (BadZipFile, zlib.error),
# an unknown zip version or compression (NotImplementedError), an "encrypted" flag (RuntimeError)
NPZ_ERRORS = (
    OSError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)


# ----------------------------------------------------------------------------- sniffing
def sniff_format(path: str | os.PathLike) -> str:
    """Return ``"minari"``, ``"hdf5"``, ``"d3rlpy"`` or ``"npz"`` for an existing path, by content.

    An HDF5 file is ``"d3rlpy"`` when its root keys are d3rlpy's per-episode ones
    (``num_episodes``, ``columns``, ``observations_0``, ... and no flat ``observations``).
    """
    p = Path(path)
    if p.is_dir():
        if (p / "data" / "metadata.json").is_file() or (p / "metadata.json").is_file():
            return "minari"
        raise DatasetError(
            "directory is not a Minari dataset (no data/metadata.json inside)",
            path=str(p),
            field="format",
        )
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(HDF5_MAGIC):
        return "d3rlpy" if d3rlpy_io.looks_like_d3rlpy(_hdf5_root_keys(p)) else "hdf5"
    if head.startswith(ZIP_MAGIC):
        return "npz"
    raise DatasetError(
        "not a dataset: unrecognized content (expected a Minari dataset directory, an HDF5 file "
        "or an .npz file)",
        path=str(p),
        field="format",
    )


def _hdf5_root_keys(path: Path) -> set[str]:
    """The root keys of an HDF5 file; empty when h5py cannot open it (the reader says why)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return set(f.keys())
    except Exception:  # noqa: BLE001 - any failure here is reported by the reader
        return set()


def format_for_destination(path: str | os.PathLike, fmt: str | None = None) -> str:
    """Pick a writer format: explicit ``fmt``, else by extension (.hdf5/.h5, .npz), else Minari.

    d3rlpy's layout is written only when asked for (``fmt="d3rlpy"``): its files end in .h5 too.
    """
    if fmt is not None:
        if fmt not in FORMATS:
            raise DatasetError(
                f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}",
                path=str(path),
                field="format",
            )
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return "hdf5"
    if suffix == ".npz":
        return "npz"
    return "minari"


# ----------------------------------------------------------------------------- public API
def find_dataset(path_or_id: str | os.PathLike) -> Path | None:
    """The existing path, or the folder of a Minari id in the local Minari root; else None.

    The local root is ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``).
    """
    p = Path(path_or_id).expanduser()
    if p.exists():
        return p
    return _local_minari_path(str(path_or_id))


def load_dataset(
    path_or_id: str | os.PathLike | Dataset,
    *,
    clip_actions: bool = False,
    allow_action_free: bool = False,
) -> Dataset:
    """Load a dataset from a path or a Minari dataset id in the local Minari root.

    Args:
        path_or_id: Minari directory, HDF5 (D4RL's flat keys or d3rlpy's ``MDPDataset.dump``
            layout) / ``.npz`` file (format sniffed from the content), or a Minari dataset id (``namespace/name-v0``) under ``$MINARI_DATASETS_PATH``.
        clip_actions: clip actions into the declared action space instead of rejecting them.
        allow_action_free: accept action-free episodes (all actions NaN; what ``policyfit data
            strip-actions`` writes) instead of the error that says to run ``policyfit data
            relabel``; only the relabelling tools need them.

    Raises:
        DatasetError: one line naming the file, the field and the problem.

    Example:
        >>> ds = load_dataset("logs/hopper.hdf5")   # doctest: +SKIP
    """
    if isinstance(path_or_id, Dataset):
        return path_or_id
    found = find_dataset(path_or_id)
    if found is None:
        raise DatasetError(
            "no such file or local Minari dataset", path=str(path_or_id), field="path"
        )
    fmt = sniff_format(found)
    reader = {"minari": read_minari, "hdf5": read_hdf5, "npz": read_npz, "d3rlpy": read_d3rlpy}[fmt]
    return reader(found, clip_actions=clip_actions, allow_action_free=allow_action_free)


def save_dataset(
    dataset: Dataset,
    path: str | os.PathLike,
    format: str | None = None,  # noqa: A002 - mirrors the CLI flag
    *,
    dataset_id: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``dataset`` atomically (temporary path, then rename) and return the final path."""
    dest = Path(path).expanduser()
    fmt = format_for_destination(dest, format)
    if dest.exists() and not overwrite:
        raise DatasetError(
            "already exists; pass overwrite=True to replace it", path=str(dest), field="path"
        )
    _make_parent(dest)
    writer = {"minari": write_minari, "hdf5": write_hdf5, "npz": write_npz, "d3rlpy": write_d3rlpy}[
        fmt
    ]
    if fmt == "minari":
        writer(dataset, dest, dataset_id=dataset_id)
    else:
        writer(dataset, dest)
    return dest


# ----------------------------------------------------------------------------- helpers
def _make_parent(dest: Path) -> None:
    """Create ``dest``'s folder; an OS refusal is a one-line error naming ``dest``."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(dest, exc) from None


def _local_minari_path(dataset_id: str) -> Path | None:
    root = os.environ.get(
        "MINARI_DATASETS_PATH", os.path.join(os.path.expanduser("~"), ".minari", "datasets")
    )
    candidate = Path(root) / dataset_id
    return candidate if (candidate / "data" / "metadata.json").is_file() else None


def _metadata_to_json(metadata: dict[str, Any]) -> str:
    md = {k: v for k, v in metadata.items() if k != "extra_arrays"}
    return dumps(md, indent=None, sort_keys=True)


def _metadata_from_json(text: Any, path: Path) -> dict[str, Any]:
    """Our metadata from its JSON text (a str, bytes or a 0-d array of either, as files give it)."""
    if isinstance(text, np.ndarray) and text.ndim == 0:
        text = text.item()
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise DatasetError(
            f"metadata must be JSON text, found {type(text).__name__}",
            path=str(path),
            field=METADATA_KEY,
        )
    try:
        md = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DatasetError(
            f"metadata is not valid JSON ({exc})", path=str(path), field=METADATA_KEY
        ) from None
    if not isinstance(md, dict):
        raise DatasetError("metadata must be a JSON object", path=str(path), field=METADATA_KEY)
    md.pop("extra_arrays", None)  # never JSON: the readers fill it from the file's arrays
    if not isinstance(md.get("extra", {}), dict):
        raise DatasetError(
            "metadata field 'extra' must be a JSON object",
            path=str(path),
            field=f"{METADATA_KEY}.extra",
        )
    return md


def _extra_arrays(ds: Dataset) -> dict[str, np.ndarray]:
    extra = ds.metadata.get("extra_arrays") or {}
    return {k: np.asarray(v) for k, v in extra.items()}


def _build(
    arrays: dict[str, Any],
    metadata: dict[str, Any],
    path: Path,
    clip_actions: bool,
    allow_action_free: bool = False,
) -> Dataset:
    """The validated Dataset; ``metadata["extra_arrays"]`` keeps the arrays with one row per
    transition, any other array the file held goes to ``metadata["extra"]``."""
    for name in ("observations", "actions", "rewards", "terminals"):
        if arrays.get(name) is None:
            raise DatasetError(
                "required key is missing (need observations, actions, rewards, terminals; "
                "timeouts and next_observations are optional)",
                path=str(path),
                field=name,
            )
    extra = metadata.pop("extra_arrays", None) or {}
    ds = Dataset(
        **{name: arrays.get(name) for name in ARRAY_FIELDS},
        metadata=metadata,
        source=str(path),
        clip_actions=clip_actions,
        allow_action_free=allow_action_free,
    )
    kept = {}
    for key, value in extra.items():
        arr = np.asarray(value)
        if arr.ndim >= 1 and arr.shape[0] == len(ds) and arr.dtype.kind in "biuf":
            kept[key] = arr
        else:
            ds.metadata.setdefault("extra", {})[key] = (
                arr.tolist() if arr.ndim else _scalar(arr.item())
            )
    if kept:
        ds.metadata["extra_arrays"] = kept
    return ds


# ----------------------------------------------------------------------------- HDF5 (D4RL style)
def read_hdf5(
    path: str | os.PathLike, *, clip_actions: bool = False, allow_action_free: bool = False
) -> Dataset:
    """Read a D4RL-style HDF5 file: flat keys; nested groups are flattened as ``group/key``."""
    import h5py

    path = Path(path)
    check_global_heaps(path)
    arrays: dict[str, Any] = {}
    extra: dict[str, np.ndarray] = {}
    other: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as f:
            if METADATA_KEY in f.attrs:
                metadata = _metadata_from_json(f.attrs[METADATA_KEY], path)
            keys: list[str] = []
            f.visititems(
                lambda name, obj: keys.append(name) if isinstance(obj, h5py.Dataset) else None
            )
            rewards = f.get("rewards")
            n = rewards.shape[0] if isinstance(rewards, h5py.Dataset) and rewards.shape else None
            for key in keys:
                dset = f[key]
                if key in ARRAY_FIELDS:
                    arrays[key] = dset[()]
                elif dset.shape and n is not None and dset.shape[0] == n:
                    extra[key] = dset[()]
                else:
                    value = dset[()]
                    other[key] = value.tolist() if isinstance(value, np.ndarray) else _scalar(value)
    except (*HDF5_ERRORS, MemoryError) as exc:
        raise _hdf5_error(path, exc) from None
    _timeouts_from_episode_terminals(arrays, extra)
    if extra:
        metadata.setdefault("extra_arrays", {}).update(extra)
    if other:
        metadata.setdefault("extra", {}).update(other)
    metadata["source_format"] = "hdf5"
    return _build(arrays, metadata, path, clip_actions, allow_action_free)


def _timeouts_from_episode_terminals(arrays: dict[str, Any], extra: dict[str, np.ndarray]) -> None:
    """d3rlpy 1.x's flat layout marks episode ends in ``episode_terminals`` (terminal or cut);
    a cut is an episode end that is not a terminal, as d3rlpy's ``load_v1`` reads it."""
    ends = extra.get("episode_terminals")
    terminals = arrays.get("terminals")
    if arrays.get("timeouts") is not None or ends is None or terminals is None:
        return
    ends, terminals = np.asarray(ends), np.asarray(terminals)
    numeric = ends.dtype.kind in "biuf" and terminals.dtype.kind in "biuf"
    if not numeric or ends.shape != terminals.shape or not np.isin(ends, (0, 1)).all():
        return  # left as an extra array; the validator judges terminals on its own
    arrays["timeouts"] = (ends != 0) & (terminals == 0)
    del extra["episode_terminals"]


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_hdf5(ds: Dataset, path: str | os.PathLike) -> Path:
    """Write flat D4RL keys plus our metadata (JSON attribute) and any extra per-transition arrays."""
    import h5py

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for name in ARRAY_FIELDS:
                f.create_dataset(name, data=getattr(ds, name))
            for key, value in _extra_arrays(ds).items():
                f.create_dataset(key, data=value)
            f.attrs[METADATA_KEY] = _metadata_to_json(ds.metadata)

    return atomic_write(path, write)


# ----------------------------------------------------------------------------- d3rlpy
def read_d3rlpy(
    path: str | os.PathLike, *, clip_actions: bool = False, allow_action_free: bool = False
) -> Dataset:
    """Read the HDF5 file d3rlpy 2.x's ``MDPDataset.dump`` writes (see :mod:`.d3rlpy_io`)."""
    import h5py

    path = Path(path)
    check_global_heaps(path)
    metadata: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as f:
            if METADATA_KEY in f.attrs:
                metadata = _metadata_from_json(f.attrs[METADATA_KEY], path)
            arrays, found = d3rlpy_io.read_arrays(f, path)
            extra = d3rlpy_io.read_extra_group(f, len(arrays["terminals"]))
    except (*HDF5_ERRORS, MemoryError) as exc:
        raise _hdf5_error(path, exc) from None
    extra.update(found.pop("extra_arrays", {}))
    if extra:
        metadata.setdefault("extra_arrays", {}).update(extra)
    metadata.update({k: v for k, v in found.items() if v is not None})
    metadata["source_format"] = "d3rlpy"
    return _build(arrays, metadata, path, clip_actions, allow_action_free)


def write_d3rlpy(ds: Dataset, path: str | os.PathLike) -> Path:
    """Write d3rlpy's per-episode HDF5 layout (d3rlpy's ``ReplayBuffer.load`` reads it), plus
    the next observations, extra arrays and metadata under keys d3rlpy ignores."""
    import h5py

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            d3rlpy_io.write_file(
                f, ds, _extra_arrays(ds), METADATA_KEY, _metadata_to_json(ds.metadata)
            )

    return atomic_write(path, write)


# ----------------------------------------------------------------------------- npz
def read_npz(
    path: str | os.PathLike, *, clip_actions: bool = False, allow_action_free: bool = False
) -> Dataset:
    """Read an ``.npz`` with the D4RL keys (never unpickles: ``allow_pickle=False``)."""
    path = Path(path)
    arrays: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    extra: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                if key == METADATA_KEY:
                    metadata = _metadata_from_json(z[key], path)
                elif key in ARRAY_FIELDS:
                    arrays[key] = z[key]
                else:
                    extra[key] = z[key]
    except DatasetError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DatasetError(
                "holds Python objects (pickled arrays), which policyfit never loads; store numeric arrays",
                path=str(path),
                field="file",
            ) from None
        raise DatasetError(f"cannot be read as .npz: {exc}", path=str(path), field="file") from None
    except NPZ_ERRORS as exc:
        raise DatasetError(
            f"cannot be read as .npz (truncated or corrupt file?): {type(exc).__name__}: {exc}",
            path=str(path),
            field="file",
        ) from None
    except MemoryError:
        raise DatasetError(
            "an array's header asks for more memory than there is (a damaged header?)",
            path=str(path),
            field="file",
        ) from None
    if extra:
        metadata.setdefault("extra_arrays", {}).update(extra)
    metadata["source_format"] = "npz"
    return _build(arrays, metadata, path, clip_actions, allow_action_free)


def write_npz(ds: Dataset, path: str | os.PathLike) -> Path:
    payload = {name: getattr(ds, name) for name in ARRAY_FIELDS}
    payload.update(_extra_arrays(ds))
    payload[METADATA_KEY] = np.array(_metadata_to_json(ds.metadata))
    return atomic_write_npz(path, payload)


# ----------------------------------------------------------------------------- Minari
def _minari_data_dir(path: Path) -> Path:
    return path / "data" if (path / "data" / "metadata.json").is_file() else path


def read_minari(
    path: str | os.PathLike, *, clip_actions: bool = False, allow_action_free: bool = False
) -> Dataset:
    """Read a Minari dataset directory (the dataset folder or its ``data/`` folder)."""
    path = Path(path)
    for data_file in _minari_data_dir(path).glob("*.hdf5"):
        check_global_heaps(data_file)
    mds, raw_md, episodes = _open_minari(path)
    metadata = _minari_metadata(mds, raw_md, path)
    arrays, extras = _concatenate_minari_episodes(episodes, path)
    if extras:
        metadata["extra_arrays"] = extras
    return _build(arrays, metadata, path, clip_actions, allow_action_free)


def _open_minari(path: Path) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """``(MinariDataset, its stored metadata, every episode)``; DatasetError when unreadable."""
    import minari

    try:
        mds = minari.MinariDataset(_minari_data_dir(path))
        raw_md = dict(mds.storage.metadata)
        episodes = list(mds.storage.get_episodes(range(mds.storage.total_episodes)))
    except DatasetError:
        raise
    except Exception as exc:  # minari raises ValueError/AssertionError/OSError on bad folders
        raise DatasetError(
            f"cannot be read as a Minari dataset: {exc}", path=str(path), field="file"
        ) from None
    if not episodes:
        raise DatasetError("the dataset is empty (0 episodes)", path=str(path), field="episodes")
    return mds, raw_md, episodes


def _minari_metadata(mds: Any, raw_md: dict[str, Any], path: Path) -> dict[str, Any]:
    """Our metadata (written by :func:`write_minari`) completed from Minari's own fields."""
    metadata: dict[str, Any] = {}
    if isinstance(raw_md.get(METADATA_KEY), str):
        metadata = _metadata_from_json(raw_md[METADATA_KEY], path)
    metadata["source_format"] = "minari"
    metadata.setdefault("minari_dataset_id", raw_md.get("dataset_id"))
    for key in ("ref_min_score", "ref_max_score"):
        if raw_md.get(key) is not None:
            metadata.setdefault(key, float(raw_md[key]))
    try:
        metadata.setdefault("observation_space", space_from_gym(mds.observation_space))
        metadata.setdefault("action_space", space_from_gym(mds.action_space))
    except TypeError as exc:
        raise DatasetError(str(exc), path=str(path), field="observation_space") from None
    if is_goal_observation(mds.observation_space):
        metadata.setdefault("goal_observation", _goal_layout(mds.observation_space))
    if "env_id" not in metadata and mds.env_spec is not None:
        metadata["env_id"] = mds.env_spec.id
    return metadata


def _goal_layout(space: Any) -> dict[str, Any]:
    """Where the parts of a flattened goal-conditioned observation sit in the flat vector."""
    layout, start = {}, 0
    for key in GOAL_OBSERVATION_KEYS:
        width = int(np.prod(space.spaces[key].shape))
        layout[key] = [start, start + width]
        start += width
    return {
        "flattened": layout,
        "note": "the file's dict observations, flattened: observation then desired_goal; "
        "achieved_goal is in the extra arrays achieved_goal and next_achieved_goal",
    }


def _minari_step_array(ep: dict[str, Any], key: str, t: int | None, path: Path) -> np.ndarray:
    """``ep[key]`` as a numeric array with one row per step (``t`` rows when given)."""
    where = f"episode_{ep.get('id')}/{key}"
    value = ep.get(key)
    arr = np.asarray(value) if isinstance(value, np.ndarray | list | tuple) else None
    if arr is None or arr.dtype.kind not in "biuf" or arr.ndim == 0:
        shown = type(value).__name__ if arr is None else f"{arr.dtype} of shape {arr.shape}"
        raise DatasetError(
            f"must be a numeric array with one row per step, found {shown} (only flat Box/"
            "Discrete spaces are supported)",
            path=str(path),
            field=where,
        )
    if t is not None and arr.shape[0] != t:
        raise DatasetError(f"has {arr.shape[0]} rows for {t} steps", path=str(path), field=where)
    return arr


def _minari_flags(ep: dict[str, Any], key: str, t: int, path: Path) -> np.ndarray:
    """``terminations``/``truncations`` of an episode as ``[T]`` (a ``[T, 1]`` column is fine)."""
    arr = _minari_step_array(ep, key, t, path)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DatasetError(
            f"has shape {arr.shape}; expected one flag per step ({t},)",
            path=str(path),
            field=f"episode_{ep.get('id')}/{key}",
        )
    return arr


def _minari_goal_observations(
    ep: dict[str, Any], path: Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """A goal-conditioned dict observation (``observation``, ``desired_goal``, optionally
    ``achieved_goal``) as the flat ``observation ++ desired_goal`` rows and the achieved goals."""
    value = ep["observations"]
    parts = []
    for key in (*GOAL_OBSERVATION_KEYS, "achieved_goal"):
        if key not in value:
            parts.append(None)
            continue
        arr = np.asarray(value[key])
        if arr.dtype.kind not in "biuf" or arr.ndim != 2:
            raise DatasetError(
                f"must be a numeric [steps + 1, dim] array, found {arr.dtype} of shape {arr.shape}",
                path=str(path),
                field=f"episode_{ep.get('id')}/observations/{key}",
            )
        parts.append(arr)
    obs, goal, achieved = parts
    assert obs is not None and goal is not None  # is_goal_observation checked the keys
    for key, arr in (("desired_goal", goal), ("achieved_goal", achieved)):
        if arr is not None and arr.shape[0] != obs.shape[0]:
            raise DatasetError(
                f"has {arr.shape[0]} rows but observations/observation has {obs.shape[0]}",
                path=str(path),
                field=f"episode_{ep.get('id')}/observations/{key}",
            )
    if achieved is not None:  # an observation part: float32 as the observations
        achieved = achieved.astype(np.float32)
    return flatten_goal_observation({"observation": obs, "desired_goal": goal}), achieved


def _minari_episode_observations(
    ep: dict[str, Any], path: Path
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """The episode's ``T + 1`` flat observations ``s_0..s_T``, ``T`` and, for a goal-conditioned
    dict observation (flattened, :mod:`policyfit.data.spaces`), its ``T + 1`` achieved goals."""
    achieved = None
    if "observations" in ep and is_goal_observation(ep["observations"]):
        o, achieved = _minari_goal_observations(ep, path)
    else:
        o = np.asarray(ep.get("observations")) if "observations" in ep else None
    if o is None or o.dtype == object or o.ndim == 0:
        raise DatasetError(
            "only flat Box observations and goal-conditioned dicts (keys observation, "
            "desired_goal, achieved_goal) are supported (found another dict/tuple observation "
            "space)",
            path=str(path),
            field="observations",
        )
    t = _minari_step_array(ep, "rewards", None, path).shape[0]
    if t == 0:
        raise DatasetError(
            f"episode {ep.get('id')} has 0 steps; remove it", path=str(path), field="rewards"
        )
    if o.shape[0] != t + 1:
        raise DatasetError(
            f"episode {ep.get('id')} has {o.shape[0]} observations for {t} steps (expected {t + 1})",
            path=str(path),
            field="observations",
        )
    return o, t, achieved


def _minari_episode_transitions(ep: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """One episode as our six arrays (``T`` rows each), plus ``achieved_goal`` and
    ``next_achieved_goal`` for a goal-conditioned dict observation (the goal reached in ``s_t``
    and in ``s'_t``)."""
    o, t, achieved = _minari_episode_observations(ep, path)
    infos = ep.get("infos") if isinstance(ep.get("infos"), dict) else {}
    terminals = _minari_flags(ep, "terminations", t, path)
    timeouts = _minari_flags(ep, "truncations", t, path).astype(bool)
    if not (timeouts[-1] or terminals[-1]):
        timeouts[-1] = True  # Minari episodes end where they are stored; an unflagged end is a cut
    next_obs = o[1:]
    if "next_observations" in infos:
        next_obs = np.asarray(infos["next_observations"])
        if next_obs.ndim == 0 or next_obs.shape[0] < t:
            raise DatasetError(
                f"has shape {next_obs.shape}, fewer than the episode's {t} steps",
                path=str(path),
                field=f"episode_{ep.get('id')}/infos/next_observations",
            )
        next_obs = next_obs[:t]
    out = {
        "observations": o[:-1],
        "actions": _minari_step_array(ep, "actions", t, path),
        "rewards": _minari_step_array(ep, "rewards", t, path),
        "terminals": terminals,
        "timeouts": timeouts,
        "next_observations": next_obs,
    }
    if achieved is not None:
        out["achieved_goal"] = achieved[:-1]
        out["next_achieved_goal"] = achieved[1:]
    return out


def _minari_extras(episodes: list[dict[str, Any]], path: Path) -> dict[str, np.ndarray]:
    """policyfit's per-transition extra arrays (``infos/policyfit_extra``), in every episode."""
    per_episode = []
    for ep in episodes:
        infos = ep.get("infos") if isinstance(ep.get("infos"), dict) else {}
        extra = infos.get("policyfit_extra")
        per_episode.append(_flatten(extra) if isinstance(extra, dict) else {})
    keys = list(dict.fromkeys(k for extra in per_episode for k in extra))
    out = {}
    for key in keys:
        parts = []
        for ep, extra in zip(episodes, per_episode, strict=True):
            t = len(ep["rewards"])
            value = np.asarray(extra[key]) if key in extra else None
            if value is None or value.ndim == 0 or value.shape[0] < t:
                raise DatasetError(
                    "missing or shorter than the episode (other episodes have it); drop it "
                    "from every episode or repair it",
                    path=str(path),
                    field=f"episode_{ep.get('id')}/infos/policyfit_extra/{key}",
                )
            parts.append(value[:t])
        out[str(key)] = _concatenate_parts(parts, f"infos/policyfit_extra/{key}", path)
    return out


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with ``a/b`` keys: Minari stores an extra array named
    ``infos/qpos`` (a D4RL key) as the group ``infos`` holding ``qpos``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _concatenate_parts(parts: list[np.ndarray], field: str, path: Path) -> np.ndarray:
    """One array from per-episode parts; a DatasetError when their row shapes differ."""
    for i, part in enumerate(parts):
        if part.shape[1:] != parts[0].shape[1:]:
            raise DatasetError(
                f"rows of shape {part.shape[1:]} in episode {i} but {parts[0].shape[1:]} in "
                "episode 0; every episode must have the same shapes",
                path=str(path),
                field=field,
            )
    return np.concatenate(parts)


def _concatenate_minari_episodes(
    episodes: list[dict[str, Any]], path: Path
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(the six arrays, extra per-transition arrays)`` of all episodes, in storage order."""
    parts = [_minari_episode_transitions(ep, path) for ep in episodes]
    arrays = {
        name: _concatenate_parts([part[name] for part in parts], name, path)
        for name in ARRAY_FIELDS
    }
    extras = _minari_extras(episodes, path)
    if all("achieved_goal" in part for part in parts):
        for key in ("achieved_goal", "next_achieved_goal"):
            extras.setdefault(
                key, _concatenate_parts([part[key] for part in parts], f"observations/{key}", path)
            )
    return arrays, extras


def goal_layout_of(ds: Dataset) -> dict[str, list[int]] | None:
    """The flat observation's goal layout (``metadata["goal_observation"]["flattened"]``) when the
    dataset can be written back as goal-conditioned dicts: the layout covers the observation and
    the extra arrays ``achieved_goal`` and ``next_achieved_goal`` exist."""
    layout = (ds.metadata.get("goal_observation") or {}).get("flattened")
    extra = ds.metadata.get("extra_arrays") or {}
    if not isinstance(layout, dict) or any(k not in layout for k in GOAL_OBSERVATION_KEYS):
        return None
    if "achieved_goal" not in extra or "next_achieved_goal" not in extra:
        return None
    spans = [layout[k] for k in GOAL_OBSERVATION_KEYS]
    if spans[0][0] != 0 or spans[0][1] != spans[1][0] or spans[1][1] != ds.observation_dim:
        return None
    return {k: [int(a), int(b)] for k, (a, b) in zip(GOAL_OBSERVATION_KEYS, spans, strict=True)}


def _goal_dict(flat: np.ndarray, achieved: np.ndarray, layout: dict[str, list[int]]) -> dict:
    """Flat ``[T + 1, dim]`` observations and their achieved goals as Minari's goal dict."""
    out = {k: flat[:, a:b].astype(np.float64) for k, (a, b) in layout.items()}
    out["achieved_goal"] = np.asarray(achieved, dtype=np.float64)
    return out


def _goal_space(ds: Dataset, layout: dict[str, list[int]]) -> Any:
    import gymnasium as gym

    widths = {k: b - a for k, (a, b) in layout.items()}
    widths["achieved_goal"] = int(np.prod(ds.metadata["extra_arrays"]["achieved_goal"].shape[1:]))
    return gym.spaces.Dict(
        {k: gym.spaces.Box(-np.inf, np.inf, (w,), np.float64) for k, w in sorted(widths.items())}
    )


def _minari_buffers(ds: Dataset) -> list[dict[str, Any]]:
    extra = _extra_arrays(ds)
    layout = goal_layout_of(ds)
    if layout is not None:  # these two travel inside the dict observations
        achieved, next_achieved = extra.pop("achieved_goal"), extra.pop("next_achieved_goal")
    buffers = []
    for ep in ds.episodes():
        t = len(ep)
        observations: Any = np.concatenate([ep.observations, ep.next_observations[-1:]])
        if layout is not None:
            goals = np.concatenate(
                [achieved[ep.start : ep.stop], next_achieved[ep.stop - 1 : ep.stop]]
            )
            observations = _goal_dict(observations, goals, layout)
        ep_buffer: dict[str, Any] = {
            "observations": observations,
            "actions": ep.actions,
            "rewards": ep.rewards,
            "terminations": ep.terminals,
            "truncations": ep.timeouts,
        }
        infos: dict[str, np.ndarray] = {}
        # Minari stores s_0..s_T, so s'_t must equal s_{t+1}; where it does not (corrupted
        # dynamics, subsampled logs) the true next observations travel in infos.
        if t > 1 and not np.array_equal(ep.next_observations[:-1], ep.observations[1:]):
            infos["next_observations"] = np.concatenate(
                [ep.next_observations, ep.next_observations[-1:]]
            )
        if extra:
            infos["policyfit_extra"] = {
                key: np.concatenate([v[ep.start : ep.stop], v[ep.stop - 1 : ep.stop]])
                for key, v in extra.items()
            }
        if infos:
            ep_buffer["infos"] = infos
        buffers.append(ep_buffer)
    return buffers


def write_minari(
    ds: Dataset,
    path: str | os.PathLike,
    *,
    dataset_id: str | None = None,
    env_spec: Any = None,
    eval_env_spec: Any = None,
) -> Path:
    """Write a Minari dataset folder at ``path`` (``path/data/main_data.hdf5`` + ``metadata.json``).

    Uses ``minari.create_dataset_from_buffers`` (so ``minari.load_dataset``/``MinariDataset`` read it),
    built in a temporary root next to ``path`` and renamed into place when complete. A dataset read
    from goal-conditioned dict observations (:func:`goal_layout_of`) is written back as dicts.
    ``env_spec``/``eval_env_spec`` (gymnasium ``EnvSpec``) are recorded as Minari's environment
    and evaluation environment; by default the spec registered for the dataset's ``env_id``.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    # absolute: Minari resolves its files under MINARI_DATASETS_PATH, which must not be relative
    dest = Path(path).absolute()
    _make_parent(dest)
    dataset_id = dataset_id or f"policyfit/{_safe_name(dest.name)}-v0"
    env_id = ds.env_id
    layout = goal_layout_of(ds)
    if layout is not None:
        obs_space = _goal_space(ds, layout)
    else:
        obs_space = space_to_gym(ds.metadata.get("observation_space") or infer_box(ds.observations))
    act_md = ds.metadata.get("action_space")
    if act_md is None:
        act_md = {"type": "discrete", "n": ds.action_dim} if ds.discrete else infer_box(ds.actions)
    act_space = space_to_gym(act_md)
    env_arg = env_spec
    if env_arg is None and env_id:
        import gymnasium as gym

        if env_id in gym.registry:
            env_arg = gym.spec(env_id)
    pair = metadata_reference_scores(ds.metadata, ds.source)
    refs = {} if pair is None else {"ref_min_score": pair[0], "ref_max_score": pair[1]}
    buffers = [
        EpisodeBuffer(
            observations=b["observations"],
            actions=b["actions"],
            rewards=b["rewards"],
            terminations=b["terminations"],
            truncations=b["truncations"],
            infos=b.get("infos"),
        )
        for b in _minari_buffers(ds)
    ]
    try:
        tmp_root = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as exc:
        raise output_error(dest, exc) from None
    old_env = os.environ.get("MINARI_DATASETS_PATH")
    staging = dest.parent / f".{dest.name}.staging-{os.getpid()}"
    try:
        os.environ["MINARI_DATASETS_PATH"] = str(tmp_root)
        card = ds.metadata.get("card") or {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            created = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=env_arg,
                eval_env=eval_env_spec,
                observation_space=obs_space,
                action_space=act_space,
                algorithm_name=str(card.get("behavior", "unknown")),
                author="policyfit",
                description=str(card.get("description", f"Written by policyfit from {ds.source}")),
                **refs,
            )
            created.storage.update_metadata({METADATA_KEY: _metadata_to_json(ds.metadata)})
        built = tmp_root / dataset_id
        if staging.exists():
            shutil.rmtree(staging)
        shutil.move(str(built), staging)
        _replace_dir(staging, dest)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        raise output_error(dest, exc) from None
    finally:
        if old_env is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old_env
        shutil.rmtree(tmp_root, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _replace_dir(src: Path, dest: Path) -> None:
    """Move directory ``src`` onto ``dest``; an existing ``dest`` is removed only after the move is ready."""
    if dest.exists():
        trash = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, trash)
        os.replace(src, dest)
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink(missing_ok=True)
    else:
        os.replace(src, dest)


def _safe_name(name: str) -> str:
    stem = Path(name).stem if Path(name).suffix else name
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-_") or "dataset"
    return cleaned.lower()
