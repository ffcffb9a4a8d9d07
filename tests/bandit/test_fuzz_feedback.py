"""Property-based: a damaged bandit-feedback ``.npz`` always ends in a DatasetError (or loads as
valid feedback when the change keeps it valid, e.g. int32 actions) — never another exception.

Damage: truncation at any byte, byte flips anywhere, one field rewritten with another dtype or
shape, a field removed.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyfit.bandit.feedback import OBP_KEYS, BanditFeedback, load_feedback, save_feedback
from policyfit.errors import DatasetError

SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def valid_feedback() -> BanditFeedback:
    rng = np.random.default_rng(0)
    n, k = 12, 3
    pi = rng.dirichlet(np.ones(k), size=n)
    action = np.array([rng.choice(k, p=p) for p in pi])
    return BanditFeedback(
        context=rng.normal(size=(n, 2)),
        action=action,
        reward=rng.binomial(1, 0.5, size=n).astype(float),
        pscore=pi[np.arange(n), action],
        n_actions=k,
        expected_reward=rng.uniform(size=(n, k)),
        pi_b=pi[:, :, None],
    )


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    path = save_feedback(valid_feedback(), tmp_path_factory.mktemp("fuzz") / "valid.npz")
    return path.read_bytes()


def arrays_of(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def check_outcome(path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casts of odd dtypes may warn; only the outcome matters
        try:
            fb = load_feedback(path)
        except DatasetError as exc:
            text = str(exc)
            assert text.startswith(str(path)) and exc.field and exc.message, text
            assert "\n" not in text
            return
    # it loaded: then it is valid feedback
    assert isinstance(fb, BanditFeedback)
    assert np.all((fb.pscore > 0) & (fb.pscore <= 1))
    assert fb.action.min() >= 0 and fb.action.max() < fb.n_actions
    assert fb.context.shape[0] == fb.n_rounds == fb.reward.shape[0]


@SETTINGS
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(tmp_path, valid_bytes, cut):
    path = tmp_path / "cut.npz"
    path.write_bytes(valid_bytes[: int(cut * len(valid_bytes))])
    with pytest.raises(DatasetError):
        load_feedback(path)


@SETTINGS
@given(
    flips=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=6
    )
)
def test_byte_flips(tmp_path, valid_bytes, flips):
    data = bytearray(valid_bytes)
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    check_outcome(path)


DTYPES = [
    "int8",
    "uint8",
    "int32",
    "uint64",
    "float16",
    "float32",
    "bool",
    "complex64",
    "U3",
    "S2",
    "datetime64[s]",
]


def reshaped(arr: np.ndarray, how: str) -> np.ndarray:
    if how == "flatten":
        return arr.reshape(-1)
    if how == "add_axis":
        return arr[..., None]
    if how == "drop_rows":
        return arr[: max(arr.shape[0] - 1, 0)] if arr.ndim else arr
    if how == "empty":
        return arr.reshape(-1)[:0]
    if how == "scalar":
        return arr.reshape(-1)[0] if arr.size else arr
    return np.stack([arr, arr])


@SETTINGS
@given(
    key=st.sampled_from(OBP_KEYS),
    change=st.one_of(
        st.tuples(st.just("dtype"), st.sampled_from(DTYPES)),
        st.tuples(
            st.just("shape"),
            st.sampled_from(["flatten", "add_axis", "drop_rows", "empty", "scalar", "stack"]),
        ),
        st.tuples(st.just("value"), st.sampled_from([np.nan, np.inf, -1.0, 0.0, 1e300, 2.0**63])),
        st.tuples(st.just("drop"), st.just("")),
    ),
)
def test_field_changes(tmp_path, valid_bytes, key, change):
    arrays = arrays_of(valid_bytes)
    kind, arg = change
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "dtype":
            arrays[key] = arrays[key].astype(arg)
        elif kind == "shape":
            arrays[key] = reshaped(arrays[key], arg)
        elif kind == "value":
            arr = arrays[key].astype(np.float64)
            arr.reshape(-1)[0] = arg
            arrays[key] = arr
        else:
            del arrays[key]
    path = tmp_path / "changed.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    check_outcome(path)


def test_a_zip_that_is_not_an_npz_is_a_dataset_error(tmp_path):
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("action.npy", b"not an array")
    with pytest.raises(
        DatasetError, match=r"other.npz: action: cannot be read as .npz: not a .npy array"
    ):
        load_feedback(path)
