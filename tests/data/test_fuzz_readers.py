"""Property-based tests of the dataset readers: damaged files end in a one-line DatasetError.

From small valid files of every format (D4RL-style HDF5, ``.npz``, Minari, d3rlpy as d3rlpy writes
it and as policyfit writes it) hypothesis derives damaged ones: truncations, byte flips and
inserted bytes; a field's dtype or shape changed, NaN/inf/out-of-range values put in it, keys
deleted or added, the metadata replaced by other JSON. For every one, :func:`load_dataset` either
returns a valid :class:`Dataset` (which can be summarized and written again) or raises a
:class:`DatasetError` with a one-line message — never another exception, never a hang — and
``policyfit data convert`` leaves its output either absent or complete.

The examples are fixed (``derandomize``) so the suite is repeatable; to hunt for new failures::

    POLICYFIT_FUZZ_EXAMPLES=2000 python -m pytest tests/data/test_fuzz_readers.py

which also lets hypothesis choose new examples on every run.
"""

from __future__ import annotations

import contextlib
import faulthandler
import itertools
import json
import os
import shutil
import signal
import warnings
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from policyfit.cli.main import cli
from policyfit.data import ARRAY_FIELDS, Dataset
from policyfit.data.io import METADATA_KEY, load_dataset, save_dataset
from policyfit.errors import DatasetError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HANG_SECONDS = 30  # one example is a few milliseconds; a reader stuck this long has hung
_HUNT = int(os.environ.get("POLICYFIT_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int):
    """Bounded, repeatable hypothesis settings (see the module docstring to hunt for more)."""
    return settings(
        max_examples=_HUNT or examples,
        deadline=timedelta(seconds=10),
        derandomize=not _HUNT,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# ----------------------------------------------------------------------------- the valid files
def _base_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    n = 24
    obs = rng.normal(size=(n + 1, 3)).astype(np.float32)
    terminals = np.zeros(n, bool)
    timeouts = (np.arange(n) % 8) == 7
    terminals[4] = True
    return Dataset(
        observations=obs[:-1],
        actions=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=terminals,
        timeouts=timeouts,
        next_observations=obs[1:],
        metadata={
            "env_id": "Pendulum-v1",
            "action_space": {"type": "box", "low": [-1.0, -1.0], "high": [1.0, 1.0]},
            "card": {"behavior": "random"},
            "extra_arrays": {"corrupted": np.arange(n) % 5 == 0},
        },
        source="base",
    )


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    ds = _base_dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = {
            "hdf5": save_dataset(ds, root / "base.hdf5"),
            "npz": save_dataset(ds, root / "base.npz"),
            "minari": save_dataset(ds, root / "base_minari"),
            "d3rlpy_policyfit": save_dataset(ds, root / "base_d3rlpy.h5", "d3rlpy"),
        }
    paths["d3rlpy"] = root / "d3rlpy_continuous.h5"  # written by d3rlpy 2.8.1 itself
    shutil.copy(FIXTURES / "d3rlpy_continuous.h5", paths["d3rlpy"])
    return paths


_counter = itertools.count()


def _fresh_copy(base: Path, scratch: Path) -> Path:
    """A copy of ``base`` (file or Minari folder) in a new folder of ``scratch``."""
    folder = scratch / f"ex{next(_counter)}"
    folder.mkdir()
    dest = folder / base.name
    if base.is_dir():
        shutil.copytree(base, dest)
    else:
        shutil.copy(base, dest)
    return dest


# ----------------------------------------------------------------------------- the property
class Hung(BaseException):
    """Raised by the alarm: a BaseException, so no reader's ``except Exception`` swallows it."""


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_SECONDS):
    """Fail a reader that runs for ``seconds``: the alarm interrupts Python code; a loop inside a
    C library (libhdf5 has had some) ignores it, so faulthandler then prints every thread's stack
    and ends the test process rather than letting it hang."""

    def alarm(signum, frame):
        raise Hung(f"the reader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    faulthandler.dump_traceback_later(2 * seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_valid(ds: Dataset) -> None:
    n = len(ds)
    assert n >= 1 and ds.num_episodes >= 1
    assert ds.observations.dtype == np.float32 and ds.observations.ndim == 2
    assert ds.observations.shape[1] >= 1
    assert ds.next_observations.shape == ds.observations.shape
    assert ds.rewards.shape == (n,) and ds.rewards.dtype == np.float32
    assert ds.terminals.dtype == bool and ds.timeouts.dtype == bool
    assert ds.terminals[-1] or ds.timeouts[-1]
    for name in ("observations", "next_observations", "rewards"):
        assert np.isfinite(getattr(ds, name)).all(), name
    if ds.discrete:
        assert ds.actions.dtype == np.int64 and ds.actions.shape == (n,)
        assert ds.actions.min() >= 0 and ds.action_dim > ds.actions.max()
    else:
        assert ds.actions.dtype == np.float32 and ds.actions.shape[0] == n
        assert ds.actions.shape[1] >= 1 and np.isfinite(ds.actions).all()
    json.dumps(ds.summary(), default=str)
    for value in (ds.metadata.get("extra_arrays") or {}).values():
        assert np.asarray(value).shape[0] == n


def load_or_error(path: Path) -> Dataset | None:
    """The dataset, or None after checking the DatasetError; any other exception fails the test."""
    with hang_guard(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = load_dataset(path)
        except DatasetError as exc:
            assert exc.message.strip(), repr(exc)
            assert "\n" not in str(exc), repr(str(exc))
            event(f"DatasetError on {exc.field}")  # --hypothesis-show-statistics lists them
            return None
        assert_valid(ds)
    event("loaded")
    return ds


def assert_rewritable(ds: Dataset, scratch: Path) -> None:
    """What loaded can be written in every file format and read back unchanged."""
    folder = scratch / f"out{next(_counter)}"
    with hang_guard(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fmt in (("o.npz", None), ("o.hdf5", None), ("o.h5", "d3rlpy")):
            back = load_dataset(save_dataset(ds, folder / name, fmt))
            for field in ARRAY_FIELDS:
                np.testing.assert_array_equal(getattr(back, field), getattr(ds, field), field)


# ----------------------------------------------------------------------------- strategies
H5_DTYPES = ["int8", "uint8", "int64", "uint64", "float16", "float64", "bool", "complex64", "S4"]
NPZ_DTYPES = [*H5_DTYPES, "U3"]
ODD_VALUES = [np.nan, np.inf, -np.inf, 1e300, -1.0, 2.0, 0.5, 2.0**40, -(2.0**63), 3.0]
# names that mean something to one reader or another, for keys added to a file
ODD_KEYS = [
    "observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
    "next_observations",
    "episode_terminals",
    "num_episodes",
    "columns",
    "version",
    "observations_0",
    "observations_3",
    "observations_0_0",
    "actions_1",
    "terminated_2",
    "policyfit_next_observations_0",
    "policyfit_extra_arrays/corrupted",
    "infos/qpos",
    "episode_9/observations",
    "corrupted",
    "junk",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
spaces = st.fixed_dictionaries(
    {"type": st.sampled_from(["box", "discrete", "Box", 3])},
    optional={"low": json_values, "high": json_values, "n": json_values, "shape": json_values},
)
METADATA_FIELDS = [
    "env_id",
    "action_space",
    "observation_space",
    "ref_min_score",
    "ref_max_score",
    "card",
    "extra_arrays",
    "extra",
    "source_format",
]


@st.composite
def changed_array(draw, arr: np.ndarray, dtypes: list[str]) -> np.ndarray:
    """``arr`` with its dtype, shape or some values changed, or a random small array."""
    arr = np.asarray(arr)
    how = draw(st.sampled_from(["dtype", "shape", "values", "random"]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how == "dtype":
            dtype = np.dtype(draw(st.sampled_from(dtypes)))
            try:
                return arr.astype(dtype)
            except (TypeError, ValueError):
                return np.zeros(arr.shape, dtype)
        if how == "shape":
            return _reshaped(arr, draw(st.sampled_from(list(_RESHAPES))))
        if how == "values" and arr.size and arr.dtype.kind in "biuf":
            out = arr.astype(np.float64).reshape(-1)
            idx = draw(st.lists(st.integers(0, out.size - 1), min_size=1, max_size=3))
            out[idx] = draw(st.sampled_from(ODD_VALUES))
            keep = arr.dtype if draw(st.booleans()) and arr.dtype.kind == "f" else np.float64
            return out.astype(keep).reshape(arr.shape)
    return draw(
        hnp.arrays(
            dtype=st.sampled_from(["float32", "int64", "bool", "float64", "uint8"]),
            shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
        )
    )


_RESHAPES = {
    "drop_row": lambda a: a[:-1],
    "add_row": lambda a: np.concatenate([a, a[-1:]]),
    "add_axis": lambda a: a[..., None],
    "flatten": lambda a: a.reshape(-1),
    "scalar": lambda a: a.reshape(-1)[0] if a.size else np.zeros((), a.dtype),
    "empty": lambda a: a[:0],
    "transpose": lambda a: a.T,
    "zero_width": lambda a: np.zeros((a.shape[0], 0), a.dtype),
    "wide": lambda a: np.concatenate([a.reshape(len(a), -1)] * 2, axis=1),
}


def _reshaped(arr: np.ndarray, how: str) -> np.ndarray:
    return np.asarray(_RESHAPES[how](arr.reshape(1) if arr.ndim == 0 else arr))


@st.composite
def metadata_text(draw, current: dict) -> str:
    """JSON text of the metadata with one field replaced, or other JSON, or broken text."""
    how = draw(st.sampled_from(["field", "field", "space", "other", "broken"]))
    md = dict(current)
    if how == "field":
        md[draw(st.sampled_from(METADATA_FIELDS))] = draw(json_values)
    elif how == "space":
        md["action_space"] = draw(spaces)
    elif how == "other":
        return json.dumps(draw(json_values))
    else:
        return json.dumps(md)[: draw(st.integers(0, 40))]
    return json.dumps(md)


@st.composite
def byte_damage(draw, data: bytes) -> bytes:
    """Truncated, flipped, zeroed or inserted bytes; positions favour the first 4 KiB (headers)."""
    n = len(data)
    position = st.one_of(st.integers(0, min(n, 4096) - 1), st.integers(0, n - 1))
    how = draw(st.sampled_from(["truncate", "flip", "flip", "zero", "insert"]))
    if how == "truncate":
        return data[: draw(st.integers(0, n - 1))]
    buf = bytearray(data)
    if how == "flip":
        for pos in draw(st.lists(position, min_size=1, max_size=8)):
            buf[pos] ^= draw(st.integers(1, 255))
    elif how == "zero":
        start = draw(position)
        length = draw(st.integers(1, 512))
        buf[start : start + length] = bytes(len(buf[start : start + length]))
    else:
        pos = draw(position)
        buf[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    return bytes(buf)


# ----------------------------------------------------------------------------- structural damage
def _h5_nodes(path: Path) -> tuple[list[str], list[str]]:
    """``(dataset paths, group paths)`` of an HDF5 file."""
    datasets: list[str] = []
    groups: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (datasets if isinstance(obj, h5py.Dataset) else groups).append(name)
        )
    return datasets, groups


def _storable(value: np.ndarray) -> np.ndarray:
    """h5py stores no numpy unicode strings: as bytes instead."""
    return value.astype("S") if value.dtype.kind == "U" else value


@st.composite
def h5_edits(draw, path: Path) -> list[tuple]:
    datasets, groups = _h5_nodes(path)
    with h5py.File(path, "r") as f:
        values = {k: f[k][()] for k in datasets}
        raw_md = f.attrs.get(METADATA_KEY)
    current = json.loads(raw_md) if isinstance(raw_md, str) else {}
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "meta"]))
        if how == "replace":
            key = draw(st.sampled_from(datasets))
            edits.append(("set", key, draw(changed_array(values[key], H5_DTYPES))))
        elif how == "delete":
            edits.append(("delete", draw(st.sampled_from(datasets + groups))))
        elif how == "add":
            key = draw(st.sampled_from(ODD_KEYS))
            base = values.get(key, np.zeros((24, 3), np.float32))
            edits.append(("set", key, draw(changed_array(base, H5_DTYPES))))
        elif draw(st.booleans()):
            edits.append(("attr", draw(metadata_text(current))))
        else:
            edits.append(("attr", draw(changed_array(np.zeros(3), H5_DTYPES))))
    return edits


def apply_h5_edits(path: Path, edits: list[tuple]) -> None:
    with h5py.File(path, "r+") as f:
        for edit in edits:
            if edit[0] == "delete":
                if edit[1] in f:
                    del f[edit[1]]
            elif edit[0] == "set":
                key, value = edit[1], _storable(np.asarray(edit[2]))
                if key in f:
                    del f[key]
                with contextlib.suppress(ValueError, TypeError):  # e.g. a group on the way
                    f[key] = value
            else:
                value = edit[1]
                f.attrs[METADATA_KEY] = value if isinstance(value, str) else _storable(value)


@st.composite
def npz_contents(draw, path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    current = json.loads(str(arrays[METADATA_KEY]))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "meta"]))
        if how == "replace":
            key = draw(st.sampled_from(sorted(arrays)))
            arrays[key] = draw(changed_array(arrays[key], NPZ_DTYPES))
        elif how == "delete" and arrays:
            arrays.pop(draw(st.sampled_from(sorted(arrays))))
        elif how == "add":
            key = draw(st.sampled_from(ODD_KEYS)).replace("/", "_")
            base = arrays.get(key, np.zeros((24, 3), np.float32))
            arrays[key] = draw(changed_array(base, NPZ_DTYPES))
        else:
            arrays[METADATA_KEY] = np.array(draw(metadata_text(current)))
    return arrays


@st.composite
def minari_metadata(draw, text: str) -> str:
    md = json.loads(text)
    how = draw(st.sampled_from(["field", "policyfit", "drop", "broken"]))
    if how == "field":
        md[draw(st.sampled_from(sorted(md)))] = draw(json_values)
    elif how == "policyfit":
        md[METADATA_KEY] = draw(metadata_text(json.loads(md[METADATA_KEY])))
    elif how == "drop":
        md.pop(draw(st.sampled_from(sorted(md))))
    else:
        return text[: draw(st.integers(0, len(text) - 1))]
    return json.dumps(md)


# ----------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("fmt", ["hdf5", "d3rlpy", "d3rlpy_policyfit"])
@fuzz(examples=120)
@given(data=st.data())
def test_hdf5_with_changed_fields(bases, tmp_path, fmt, data):
    path = _fresh_copy(bases[fmt], tmp_path)
    apply_h5_edits(path, data.draw(h5_edits(path)))
    ds = load_or_error(path)
    if ds is not None and data.draw(st.integers(0, 9)) == 0:
        assert_rewritable(ds, tmp_path)


@fuzz(examples=120)
@given(data=st.data())
def test_npz_with_changed_fields(bases, tmp_path, data):
    path = _fresh_copy(bases["npz"], tmp_path)
    arrays = data.draw(npz_contents(path))
    with open(path, "wb") as fh:
        (np.savez_compressed if data.draw(st.booleans()) else np.savez)(fh, **arrays)
    ds = load_or_error(path)
    if ds is not None and data.draw(st.integers(0, 9)) == 0:
        assert_rewritable(ds, tmp_path)


@fuzz(examples=80)
@given(data=st.data())
def test_minari_with_changed_fields(bases, tmp_path, data):
    path = _fresh_copy(bases["minari"], tmp_path)
    if data.draw(st.booleans()):
        apply_h5_edits(
            path / "data" / "main_data.hdf5", data.draw(h5_edits(path / "data" / "main_data.hdf5"))
        )
    else:
        meta = path / "data" / "metadata.json"
        meta.write_text(data.draw(minari_metadata(meta.read_text())))
    load_or_error(path)


@pytest.mark.parametrize("fmt", ["hdf5", "npz", "d3rlpy", "d3rlpy_policyfit", "minari"])
@fuzz(examples=80)
@given(data=st.data())
def test_damaged_bytes(bases, tmp_path, fmt, data):
    path = _fresh_copy(bases[fmt], tmp_path)
    target = (
        path / "data" / data.draw(st.sampled_from(["main_data.hdf5", "metadata.json"]))
        if fmt == "minari"
        else path
    )
    target.write_bytes(data.draw(byte_damage(target.read_bytes())))
    load_or_error(path)


@fuzz(examples=25)
@given(data=st.data())
def test_cli_inspect_and_convert_damaged_files(bases, tmp_path, data):
    """Through the CLI: exit 0, or exit 2 with one ``error:`` line; ``convert``'s output is there
    (and complete: it loads with the fingerprint ``inspect`` printed) exactly when it succeeded."""
    fmt = data.draw(st.sampled_from(["hdf5", "npz", "d3rlpy"]))
    path = _fresh_copy(bases[fmt], tmp_path)
    if fmt == "npz" or data.draw(st.booleans()):
        path.write_bytes(data.draw(byte_damage(path.read_bytes())))
    else:
        apply_h5_edits(path, data.draw(h5_edits(path)))
    runner = CliRunner()
    with hang_guard():
        inspected = runner.invoke(cli, ["data", "inspect", str(path), "--json"])
    assert inspected.exit_code in (0, 2), inspected.exception
    out = path.parent / data.draw(st.sampled_from(["out.npz", "out.hdf5", "out_minari"]))
    with hang_guard():
        converted = runner.invoke(cli, ["data", "convert", str(path), str(out)])
    assert converted.exit_code == inspected.exit_code, converted.output
    event(f"exit code {converted.exit_code}, {out.name}")
    lines = [ln for ln in converted.stderr.splitlines() if not ln.startswith("warning: ")]
    if converted.exit_code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), converted.output
        assert not out.exists()
        assert [p.name for p in out.parent.iterdir()] == [path.name]  # no temporary left over
        return
    fingerprint = json.loads(inspected.stdout)["fingerprint"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_dataset(out).fingerprint() == fingerprint


# ----------------------------------------------------------------------------- what the fuzzer found
# Each of these ended in another exception (or a hang) before the fix it names.
def _expect_error(path: Path, fragment: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError) as info:
            load_dataset(path)
    assert fragment in str(info.value), str(info.value)


def test_metadata_attribute_that_is_not_text(bases, tmp_path):
    path = _fresh_copy(bases["hdf5"], tmp_path)  # was: TypeError from json.loads
    apply_h5_edits(path, [("attr", np.zeros(3, np.int8))])
    _expect_error(path, "policyfit_metadata: metadata must be JSON text, found ndarray")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("rewards", np.float32(0.0), "rewards: has shape (); expected [N]"),  # was: IndexError
        ("next_observations", np.float32(0.0), "next_observations: has shape (); expected"),
        ("actions", np.zeros((24, 0), np.float32), "actions: has shape (24, 0): actions with no"),
        ("observations", np.zeros((24, 0), np.float32), "observations: has shape (24, 0)"),
    ],
)
def test_arrays_of_impossible_shapes(bases, tmp_path, key, value, fragment):
    path = _fresh_copy(bases["hdf5"], tmp_path)
    apply_h5_edits(path, [("set", key, value)])
    _expect_error(path, fragment)


def test_negative_discrete_actions(bases, tmp_path):
    path = _fresh_copy(bases["hdf5"], tmp_path)
    actions = np.arange(24) % 3
    actions[5] = -1
    apply_h5_edits(path, [("set", "actions", actions), ("attr", "{}")])
    _expect_error(
        path, "actions: discrete actions are indices >= 0, found -1 (first at transition 5)"
    )


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("action_space", 5, "metadata.action_space: must be a mapping (JSON object), got 5"),
        ("action_space", {"type": "Box"}, "metadata.action_space.type: must be 'box' or 'disc"),
        ("env_id", ["Hopper-v5"], "metadata.env_id: must be an environment id (text)"),
        ("card", "text", "metadata.card: must be a mapping (JSON object), got 'text'"),
        ("extra", 3, "policyfit_metadata.extra: metadata field 'extra' must be a JSON object"),
    ],
)
def test_metadata_fields_of_the_wrong_type(bases, tmp_path, field, value, fragment):
    path = _fresh_copy(bases["npz"], tmp_path)  # was: AttributeError in the validator or the CLI
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    metadata = json.loads(str(arrays[METADATA_KEY]))
    metadata[field] = value
    arrays[METADATA_KEY] = np.array(json.dumps(metadata))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    _expect_error(path, fragment)


def test_npz_key_of_another_length_is_kept_as_metadata(bases, tmp_path):
    """An unrelated array was kept as a per-transition extra array; writing it to Minari failed."""
    path = _fresh_copy(bases["npz"], tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["episode_starts"] = np.array([0, 5, 8])
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    ds = load_dataset(path)
    assert ds.metadata["extra"]["episode_starts"] == [0, 5, 8]
    assert sorted(ds.metadata["extra_arrays"]) == ["corrupted"]
    back = load_dataset(save_dataset(ds, tmp_path / "m"))
    assert back.metadata["extra"]["episode_starts"] == [0, 5, 8]


def test_minari_episode_without_an_extra_array(bases, tmp_path):
    path = _fresh_copy(bases["minari"], tmp_path)  # was: an array of 19 rows for 24 transitions
    apply_h5_edits(
        path / "data" / "main_data.hdf5", [("delete", "episode_0/infos/policyfit_extra/corrupted")]
    )
    _expect_error(path, "episode_0/infos/policyfit_extra/corrupted: missing or shorter than")


def test_minari_flags_of_the_wrong_shape(bases, tmp_path):
    path = _fresh_copy(bases["minari"], tmp_path)  # was: ValueError (truth value of an array)
    edit = ("set", "episode_1/truncations", np.zeros((3, 0), np.float32))
    apply_h5_edits(path / "data" / "main_data.hdf5", [edit])
    _expect_error(path, "episode_1/truncations: has shape (3, 0); expected one flag per step (3,)")


def test_d4rl_infos_survive_minari(tmp_path):
    """D4RL's ``infos/qpos`` became a nested Minari group and could not be read back."""
    path = tmp_path / "d4rl.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.arange(12, dtype=np.float32).reshape(6, 2)
        f["actions"] = np.zeros((6, 1), np.float32)
        f["rewards"] = np.ones(6, np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 0, 1], bool)
        f["infos/qpos"] = np.arange(18, dtype=np.float64).reshape(6, 3)
    back = load_dataset(save_dataset(load_dataset(path), tmp_path / "m"))
    np.testing.assert_array_equal(
        back.metadata["extra_arrays"]["infos/qpos"][5], [15.0, 16.0, 17.0]
    )


def test_minari_destination_relative_to_the_working_directory(bases, tmp_path, monkeypatch):
    """``policyfit data convert x.npz out`` in the current folder failed (FileNotFoundError)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["data", "convert", str(bases["npz"]), "rel_minari"])
    assert result.exit_code == 0, result.output
    assert load_dataset(tmp_path / "rel_minari").fingerprint() == _base_dataset().fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel_minari"]


def _zero_second_heap_object(path: Path) -> None:
    """Zero the header of the second object of the file's global heap (a vlen string)."""
    data = bytearray(path.read_bytes())
    start = data.find(b"GCOL")
    first = start + 16
    size = int.from_bytes(data[first + 8 : first + 16], "little")
    second = first + 16 + (size + 7) // 8 * 8
    data[second : second + 16] = bytes(16)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["hdf5", "d3rlpy", "d3rlpy_policyfit"])
def test_zeroed_global_heap_is_an_error_not_a_hang(bases, tmp_path, fmt):
    """libhdf5 looped forever on this (found by test_damaged_bytes, out of reach of signals);
    :mod:`policyfit.data.hdf5_guard` refuses the file first."""
    path = _fresh_copy(bases[fmt], tmp_path)
    _zero_second_heap_object(path)
    with hang_guard(60):
        _expect_error(path, "damaged HDF5 file: the global heap at byte")


def test_npz_needing_an_unknown_zip_version(bases, tmp_path):
    path = _fresh_copy(bases["npz"], tmp_path)  # was: NotImplementedError from zipfile
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 6] = 109  # "version needed to extract": 10.9
    path.write_bytes(bytes(data))
    _expect_error(path, "cannot be read as .npz (truncated or corrupt file?): NotImplementedError")
