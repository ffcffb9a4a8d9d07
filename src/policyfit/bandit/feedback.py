"""Logged bandit feedback: :class:`BanditFeedback`, its ``.npz`` files and OBP-shaped dicts.

One round ``i`` of a contextual bandit log is the context ``x_i`` the logger saw, the action ``a_i``
it chose with probability ``pscore_i = pi_b(a_i | x_i)``, the slot ``position_i`` it was shown in
(0 when there is one slot) and the reward ``r_i`` that came back. :class:`BanditFeedback` holds the
fields of Open Bandit Pipeline's ``bandit_feedback`` dict (obp 0.5.7, ``obp/dataset/synthetic.py``
and ``obp/dataset/real.py``), checked once, when it is built:

====================  ========================  ==============================================
field                 shape / dtype             meaning
====================  ========================  ==============================================
``n_rounds``          int                       number of logged rounds ``n``
``n_actions``         int                       number of actions ``K``
``context``           ``[n, d]`` float64        what the logger saw
``action``            ``[n]`` int64             the logged action, in ``[0, K)``
``reward``            ``[n]`` float64           the reward that came back
``pscore``            ``[n]`` float64           ``pi_b(a_i | x_i)``, in ``(0, 1]``
``position``          ``[n]`` int64             slot of the action (zeros for one slot)
``action_context``    ``[K, d_a]`` float64      features of each action (identity by default)
``expected_reward``   ``[n, K]`` float64        ``q(x_i, a)``; synthetic data only (optional)
``pi_b``              ``[n, K, len_list]``      the logger's probabilities; optional
====================  ========================  ==============================================

Every problem is one :class:`~policyfit.errors.DatasetError` line that names the source and the
field, e.g. ``logs.npz: pscore: 3 values outside (0, 1] (first at round 17: 0.0); ...``.

Files: :func:`save_feedback` writes an uncompressed ``.npz`` with exactly these keys (``n_rounds``
and ``n_actions`` as 0-d int64 arrays) through the one atomic writer; :func:`load_feedback` reads
such a file (never unpickling), an OBP-shaped dict or a :class:`BanditFeedback`. A missing
``position`` (OBP's synthetic data has ``None``) means zeros, a missing ``action_context`` the
``K x K`` identity, missing ``n_rounds``/``n_actions`` are taken from the arrays.

Example:
    >>> import numpy as np
    >>> fb = BanditFeedback(context=np.zeros((3, 2)), action=[0, 2, 1], reward=[1.0, 0.0, 1.0],
    ...                     pscore=[0.5, 0.25, 0.25], n_actions=3)
    >>> fb.n_rounds, fb.len_list, fb.action_context.shape
    (3, 1, (3, 3))
    >>> sorted(fb.to_obp_dict())[:4]
    ['action', 'action_context', 'context', 'n_actions']
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from policyfit.common.files import atomic_write_npz
from policyfit.data.dataset import Dataset
from policyfit.data.spaces import discrete_space, infer_box
from policyfit.errors import DatasetError

#: The keys of an OBP ``bandit_feedback`` dict that a :class:`BanditFeedback` holds, in OBP's order.
OBP_KEYS = (
    "n_rounds",
    "n_actions",
    "context",
    "action_context",
    "action",
    "position",
    "reward",
    "expected_reward",
    "pi_b",
    "pscore",
)
REQUIRED_KEYS = ("context", "action", "reward", "pscore")
PSCORE_NAMES = ("pscore", "propensity", "propensities", "propensity_score")
MAX_INDEX = 2**31  # positions beyond this are not slots of any interface
PI_B_TOLERANCE = 1e-6  # pi_b[i, a_i, pos_i] may differ from pscore_i by this much (relative)


def _fail(source: str, name: str, message: str) -> NoReturn:
    raise DatasetError(message, path=source, field=name)


def _numeric(source: str, name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as a numeric (bool/int/float) array; a DatasetError for anything else."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        _fail(source, name, f"cannot be read as an array ({exc}); store {what}")
    if arr.dtype.kind not in "biuf":
        _fail(source, name, f"has dtype {arr.dtype} but must be {what}; convert it to numbers")
    return arr


def _finite(source: str, name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as float64, rejecting NaN and infinite values (naming the first bad round)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        _fail(
            source,
            name,
            f"contains {int(bad.sum())} NaN or infinite values (first at round {first}); "
            "remove or repair those rounds",
        )
    return out


def _integers(source: str, name: str, value: Any, low: int, high: int | None) -> np.ndarray:
    """A 1-d int64 array of whole numbers in ``[low, high)`` (``high=None``: no upper bound)."""
    arr = _numeric(source, name, value, "integers [n]")
    if arr.ndim != 1:
        _fail(source, name, f"has shape {arr.shape}; expected [n]")
    if arr.dtype.kind == "b":
        _fail(source, name, "holds booleans; store integer indices")
    if arr.size == 0:
        return arr.astype(np.int64)
    whole = arr.dtype.kind != "f" or (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if not whole:
        _fail(source, name, "holds values that are not whole numbers; store integers")
    # Compare as float64 before casting so values beyond int64 never wrap around.
    as_float = arr.astype(np.float64)
    top = MAX_INDEX if high is None else high
    bad = (as_float < low) | (as_float >= top)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        where = f"[{low}, {top})" if high is not None else f"[{low}, 2**31)"
        _fail(
            source,
            name,
            f"{int(bad.sum())} values outside {where} (first at round {first}: {arr[first]})",
        )
    return arr.astype(np.int64)


def _count(source: str, name: str, value: Any, minimum: int) -> int:
    """A whole number ``>= minimum`` given as an int or a 0-d/size-1 array."""
    arr = _numeric(source, name, value, "a whole number")
    if arr.size != 1 or arr.ndim > 1:
        _fail(source, name, f"must be one whole number, got an array of shape {arr.shape}")
    item = arr.reshape(-1)[0]
    if arr.dtype.kind == "b" or not np.isfinite(item) or float(item) != round(float(item)):
        _fail(source, name, f"must be a whole number, got {item.item()!r}")
    if float(item) < minimum or float(item) > 2**62:
        _fail(source, name, f"must be at least {minimum}, got {item}")
    return int(item)


def _vector(source: str, name: str, value: Any, n: int) -> np.ndarray:
    arr = _numeric(source, name, value, "numbers [n]")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        _fail(source, name, f"has shape {arr.shape}; expected [n] (one value per round)")
    if arr.shape[0] != n:
        _fail(source, name, f"has {arr.shape[0]} rows but action has {n}; all need n rows")
    return _finite(source, name, arr)


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class BanditFeedback:
    """Logged contextual-bandit feedback, validated when built (see the module docstring).

    Arguments are keyword-only and take anything ``np.asarray`` reads; the stored arrays are
    read-only views with the dtypes of the table above. ``source`` (a file name or ``"<memory>"``)
    prefixes every error message.
    """

    context: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_rounds: int | None = None
    n_actions: int | None = None
    position: np.ndarray | None = None
    action_context: np.ndarray | None = None
    expected_reward: np.ndarray | None = None
    pi_b: np.ndarray | None = None
    source: str = field(default="<memory>", repr=False)

    def __post_init__(self) -> None:
        checked = _validate(
            {name: getattr(self, name) for name in OBP_KEYS},
            source=str(self.source),
        )
        for name, value in checked.items():
            if isinstance(value, np.ndarray):
                value = _readonly(value)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "source", str(self.source))

    def __repr__(self) -> str:
        extra = [name for name in ("expected_reward", "pi_b") if getattr(self, name) is not None]
        return (
            f"BanditFeedback(n_rounds={self.n_rounds}, n_actions={self.n_actions}, "
            f"dim_context={self.dim_context}, len_list={self.len_list}, "
            f"extra={extra}, source={self.source!r})"
        )

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return int(self.n_rounds)

    @property
    def len_list(self) -> int:
        """Number of slots: ``pi_b``'s last axis when given, else ``max(position) + 1``."""
        if self.pi_b is not None:
            return int(self.pi_b.shape[2])
        return int(self.position.max()) + 1

    @property
    def dim_context(self) -> int:
        return int(self.context.shape[1])

    # ------------------------------------------------------------------ conversions
    def to_obp_dict(self) -> dict[str, Any]:
        """OBP's ``bandit_feedback`` dict (plain numpy arrays, writable copies; ``expected_reward``
        and ``pi_b`` only when present), ready for ``obp.ope.OffPolicyEvaluation``."""
        out: dict[str, Any] = {}
        for name in OBP_KEYS:
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = np.array(value) if isinstance(value, np.ndarray) else int(value)
        return out

    @classmethod
    def from_obp_dict(cls, feedback: Mapping[str, Any], source: str = "<dict>") -> BanditFeedback:
        """Build from an OBP-shaped dict; keys other than OBP's ``bandit_feedback`` keys are
        ignored, ``position=None`` means zeros."""
        if not isinstance(feedback, Mapping):
            _fail(source, "feedback", f"expected a dict of arrays, got {type(feedback).__name__}")
        for name in REQUIRED_KEYS:
            if feedback.get(name) is None:
                _fail(source, name, _missing_message())
        return cls(**{k: feedback.get(k) for k in OBP_KEYS}, source=source)

    def to_dataset(self) -> Dataset:
        """A one-step :class:`~policyfit.data.Dataset`: every round is an episode of one terminal
        transition (observations = context as float32, discrete actions, float32 rewards);
        ``pscore`` and ``position`` (and ``expected_reward``/``pi_b`` when present) travel as
        extra per-transition arrays, ``n_actions`` as the discrete action space and
        ``action_context`` in ``metadata["bandit"]``, so :func:`from_dataset` gets them back."""
        extras: dict[str, np.ndarray] = {
            "pscore": np.array(self.pscore),
            "position": np.array(self.position),
        }
        if self.expected_reward is not None:
            extras["expected_reward"] = np.array(self.expected_reward)
        if self.pi_b is not None:
            extras["pi_b"] = np.array(self.pi_b)
        context = self.context.astype(np.float32)
        metadata = {
            "observation_space": infer_box(context),
            "action_space": discrete_space(self.n_actions),
            "bandit": {"action_context": self.action_context.tolist()},
            "extra_arrays": extras,
        }
        return Dataset(
            observations=context,
            actions=np.array(self.action),
            rewards=np.array(self.reward),
            terminals=np.ones(self.n_rounds, dtype=bool),
            next_observations=context,
            metadata=metadata,
            source=self.source,
        )


def _missing_message() -> str:
    return "is missing; bandit feedback needs context, action, reward and pscore"


# ----------------------------------------------------------------------------- validation
def _validate(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The checked, normalized fields of :class:`BanditFeedback` (see its table)."""
    for name in REQUIRED_KEYS:
        if raw.get(name) is None:
            _fail(source, name, _missing_message())
    action_raw = _action_rows(raw, source)
    n = int(action_raw.shape[0])
    context = _context(raw["context"], n, source)
    action_context = (
        None
        if raw.get("action_context") is None
        else _matrix(source, "action_context", raw["action_context"])
    )
    n_actions = _n_actions(raw, action_raw, action_context, source)
    action = _integers(source, "action", action_raw, 0, n_actions)
    if action_context is None:
        action_context = np.eye(n_actions)
    elif action_context.shape[0] != n_actions:
        _fail(
            source,
            "action_context",
            f"has {action_context.shape[0]} rows but n_actions is {n_actions}; one row per action",
        )
    pscore = _pscore(raw["pscore"], n, source)
    position = _position(raw.get("position"), n, source)
    expected_reward = _expected_reward(raw.get("expected_reward"), n, n_actions, source)
    pi_b = None
    if raw.get("pi_b") is not None:
        pi_b = _pi_b(raw["pi_b"], n, n_actions, action, position, pscore, source)
    return {
        "n_rounds": n,
        "n_actions": n_actions,
        "context": context,
        "action_context": action_context,
        "action": action,
        "position": position,
        "reward": _vector(source, "reward", raw["reward"], n),
        "expected_reward": expected_reward,
        "pi_b": pi_b,
        "pscore": pscore,
    }


def _action_rows(raw: Mapping[str, Any], source: str) -> np.ndarray:
    """The raw ``[n]`` action array (range checked later), ``n >= 1`` agreeing with ``n_rounds``."""
    action = _numeric(source, "action", raw["action"], "integers [n]")
    if action.ndim != 1:
        _fail(source, "action", f"has shape {action.shape}; expected [n]")
    n = int(action.shape[0])
    if n == 0:
        _fail(source, "action", "the feedback is empty (0 rounds)")
    if raw.get("n_rounds") is not None:
        n_rounds = _count(source, "n_rounds", raw["n_rounds"], 1)
        if n_rounds != n:
            _fail(source, "n_rounds", f"is {n_rounds} but action has {n} rows; they must agree")
    return action


def _pscore(value: Any, n: int, source: str) -> np.ndarray:
    pscore = _vector(source, "pscore", value, n)
    bad = ~((pscore > 0) & (pscore <= 1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        _fail(
            source,
            "pscore",
            f"{int(bad.sum())} values outside (0, 1] (first at round {first}: {pscore[first]:g}); "
            "pscore is the logger's probability of the logged action",
        )
    return pscore


def _position(value: Any, n: int, source: str) -> np.ndarray:
    if value is None:
        return np.zeros(n, dtype=np.int64)
    position = _integers(source, "position", value, 0, None)
    if position.shape[0] != n:
        _fail(source, "position", f"has {position.shape[0]} rows but action has {n}")
    return position


def _expected_reward(value: Any, n: int, n_actions: int, source: str) -> np.ndarray | None:
    if value is None:
        return None
    expected = _matrix(source, "expected_reward", value)
    if expected.shape != (n, n_actions):
        _fail(
            source,
            "expected_reward",
            f"has shape {expected.shape}; expected [n, n_actions] = [{n}, {n_actions}]",
        )
    return expected


def _context(value: Any, n: int, source: str) -> np.ndarray:
    arr = _numeric(source, "context", value, "a float array [n, dim_context]")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        _fail(source, "context", f"has shape {arr.shape}; expected [n, dim_context]")
    if arr.shape[0] != n:
        _fail(source, "context", f"has {arr.shape[0]} rows but action has {n}; all need n rows")
    return _finite(source, "context", arr)


def _matrix(source: str, name: str, value: Any) -> np.ndarray:
    arr = _numeric(source, name, value, "a float array")
    if arr.ndim != 2:
        _fail(source, name, f"has shape {arr.shape}; expected a 2-d array")
    return _finite(source, name, arr)


def _n_actions(
    raw: Mapping[str, Any],
    action: np.ndarray,
    action_context: np.ndarray | None,
    source: str,
) -> int:
    """``n_actions`` as given, else from ``action_context``, ``expected_reward``, ``pi_b`` or the
    largest logged action."""
    if raw.get("n_actions") is not None:
        return _count(source, "n_actions", raw["n_actions"], 1)
    if action_context is not None:
        return int(action_context.shape[0])
    for name in ("expected_reward", "pi_b"):
        value = raw.get(name)
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 2 and shape[1] >= 1:
            return int(shape[1])
    checked = _integers(source, "action", action, 0, None)
    return int(checked.max()) + 1


def _pi_b(
    value: Any,
    n: int,
    n_actions: int,
    action: np.ndarray,
    position: np.ndarray,
    pscore: np.ndarray,
    source: str,
) -> np.ndarray:
    arr = _numeric(source, "pi_b", value, "a float array [n, n_actions, len_list]")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[:2] != (n, n_actions) or arr.shape[2] < 1:
        _fail(
            source,
            "pi_b",
            f"has shape {arr.shape}; expected [n, n_actions, len_list] = [{n}, {n_actions}, L]",
        )
    arr = _finite(source, "pi_b", arr)
    if arr.min() < 0 or arr.max() > 1 + PI_B_TOLERANCE:
        _fail(source, "pi_b", "holds values outside [0, 1]; it must hold probabilities")
    sums = arr.sum(axis=1)
    bad = np.abs(sums - 1.0) > 1e-5
    if bad.any():
        first, slot = (int(i) for i in np.argwhere(bad)[0])
        _fail(
            source,
            "pi_b",
            f"must sum to 1 over the actions in every round and slot (first bad at round "
            f"{first}, slot {slot}: the sum is {sums[first, slot]:g})",
        )
    if position.max() >= arr.shape[2]:
        _fail(
            source,
            "position",
            f"holds {int(position.max())} but pi_b has {arr.shape[2]} slots (len_list)",
        )
    logged = arr[np.arange(n), action, position]
    off = np.abs(logged - pscore) > PI_B_TOLERANCE * np.maximum(1.0, pscore)
    if off.any():
        first = int(np.flatnonzero(off)[0])
        _fail(
            source,
            "pi_b",
            f"disagrees with pscore at {int(off.sum())} rounds (first at round {first}: "
            f"pi_b[{first}, {action[first]}, {position[first]}] = {logged[first]:g}, "
            f"pscore = {pscore[first]:g}); pi_b[i, action_i, position_i] must equal pscore_i",
        )
    return arr


# ----------------------------------------------------------------------------- files
def save_feedback(feedback: BanditFeedback, path: str | os.PathLike) -> Path:
    """Write ``feedback`` as an uncompressed ``.npz`` with OBP's keys, atomically; returns the path
    (no ``.npz`` is appended to the name)."""
    payload = feedback.to_obp_dict()
    payload["n_rounds"] = np.array(feedback.n_rounds, dtype=np.int64)
    payload["n_actions"] = np.array(feedback.n_actions, dtype=np.int64)
    return atomic_write_npz(Path(path).expanduser(), payload)


def load_feedback(
    feedback: BanditFeedback | Mapping[str, Any] | str | os.PathLike,
) -> BanditFeedback:
    """A :class:`BanditFeedback` from itself, an OBP-shaped dict or an ``.npz`` path.

    Raises:
        DatasetError: one line naming the file (or ``<dict>``), the field and the problem; never
            another exception for a bad file.
    """
    if isinstance(feedback, BanditFeedback):
        return feedback
    if isinstance(feedback, Mapping):
        return BanditFeedback.from_obp_dict(feedback)
    if not isinstance(feedback, str | os.PathLike):
        raise DatasetError(
            f"expected a BanditFeedback, an OBP bandit_feedback dict or an .npz path, got "
            f"{type(feedback).__name__}",
            path="<feedback>",
            field="feedback",
        )
    path = Path(feedback).expanduser()
    if not path.is_file():
        _fail(str(path), "path", "no such file; expected an .npz of bandit feedback")
    arrays = _read_npz(path)
    return BanditFeedback.from_obp_dict(arrays, source=str(path))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``; a DatasetError whatever is wrong with the file."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":
        _fail(str(path), "file", "not an .npz file (no zip header); expected bandit feedback .npz")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                if key in OBP_KEYS:
                    value = z[key]
                    if not isinstance(value, np.ndarray):  # a zip member that is not a .npy
                        _fail(str(path), key, "cannot be read as .npz: not a .npy array")
                    arrays[key] = value
    except DatasetError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            _fail(
                str(path),
                "file",
                "holds Python objects (pickled arrays), which policyfit never loads; "
                "store numeric arrays",
            )
        _fail(str(path), "file", f"cannot be read as .npz (truncated or corrupt?): {exc}")
    except Exception as exc:  # zipfile, zlib, struct, memory: a broken file in any way
        _fail(
            str(path),
            "file",
            f"cannot be read as .npz (truncated or corrupt?): {type(exc).__name__}: {exc}",
        )
    return arrays


# ----------------------------------------------------------------------------- Dataset
def from_dataset(
    dataset: Dataset,
    pscore: Any = None,
    *,
    n_actions: int | None = None,
) -> BanditFeedback:
    """Bandit feedback from a one-step :class:`~policyfit.data.Dataset` (discrete actions, every
    transition ends its episode).

    Args:
        dataset: the logged decisions; observations become the context.
        pscore: the logger's probability of each logged action: an array ``[N]``, the name of an
            extra per-transition array of the dataset, or None to use the dataset's extra array
            named ``pscore`` (or ``propensity``/``propensities``/``propensity_score``).
        n_actions: the number of actions; default: the dataset's discrete action space.
    """
    source = dataset.source
    if not dataset.discrete:
        _fail(source, "actions", "bandit feedback needs discrete actions (integer [N])")
    ends = dataset.terminals | dataset.timeouts
    if not np.all(ends):
        first = int(np.flatnonzero(~ends)[0])
        _fail(
            source,
            "terminals",
            f"not a one-step dataset: transition {first} does not end its episode; bandit "
            "feedback needs every transition to be its own episode",
        )
    extras = dataset.metadata.get("extra_arrays") or {}
    if pscore is None:
        found = [name for name in PSCORE_NAMES if name in extras]
        if not found:
            _fail(
                source,
                "pscore",
                "not given and the dataset has no extra array named pscore or propensity; "
                "pass the logger's probabilities of the logged actions",
            )
        pscore = extras[found[0]]
    elif isinstance(pscore, str):
        if pscore not in extras:
            _fail(source, "pscore", f"the dataset has no extra array named {pscore!r}")
        pscore = extras[pscore]
    bandit = dataset.metadata.get("bandit") or {}
    return BanditFeedback(
        context=dataset.observations,
        action=dataset.actions,
        reward=dataset.rewards,
        pscore=pscore,
        n_actions=dataset.action_dim if n_actions is None else n_actions,
        position=extras.get("position"),
        action_context=bandit.get("action_context"),
        expected_reward=extras.get("expected_reward"),
        pi_b=extras.get("pi_b"),
        source=source,
    )
