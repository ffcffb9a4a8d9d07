"""Trajectory quality (TQ) and state-action coverage (SACo, lSACo).

Both measures come from Schweighofer et al. 2022, "A Dataset Perspective on Offline Reinforcement
Learning" (Sec. 3): TQ is the dataset's mean episode return, normalized between a random and an
expert policy; SACo is the number of unique (state, action) pairs in the dataset, divided by the
same number for a reference dataset (the paper uses the replay buffer of the online agent that
generated the data; we use the suite's ``*-medium-replay`` or a user-given dataset). To count
"unique" pairs of continuous vectors every dimension is cut into 100 equal bins over the range seen
in either dataset, so the two counts are made on the same grid.

Counting is exact (``np.unique`` over the packed bin codes) up to ``exact_max_rows`` rows and uses
a HyperLogLog sketch beyond (Flajolet et al. 2007). The sketch is a few lines of vectorised numpy
here rather than a dependency: ``datasketch``/``hyperloglog`` hash one Python object at a time
(about a microsecond per row), whereas hashing packed codes as ``uint64`` words in numpy costs a few
nanoseconds per row, which is what keeps a multi-million-row count inside the diagnose budget.

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0], [0.001], [0.5], [1.0]])
    >>> codes = discretize(x, low=np.array([0.0]), high=np.array([1.0]), bins=100)
    >>> codes[:, 0].tolist(), count_unique_rows(codes)
    ([0, 0, 50, 99], 3)
    >>> trajectory_quality(np.array([50.0, 150.0]), ref_min=0.0, ref_max=200.0)
    0.5
"""

from __future__ import annotations

import math

import numpy as np

from policyfit.errors import ConfigError

DEFAULT_BINS = 100  # Schweighofer et al. 2022: 100 bins per dimension
EXACT_MAX_ROWS = 5_000_000
HLL_PRECISION = 14  # 2**14 registers: standard error 1.04 / sqrt(16384) = 0.8 %

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def trajectory_quality(episode_returns: np.ndarray, ref_min: float, ref_max: float) -> float:
    """TQ = (mean episode return - random return) / (expert return - random return).

    Schweighofer et al. 2022, Eq. (1); 0 is the random policy's level, 1 the expert's.

    >>> trajectory_quality(np.array([10.0, 30.0]), ref_min=0.0, ref_max=40.0)
    0.5
    """
    if ref_max == ref_min:
        raise ConfigError(
            f"the random and expert returns must differ, both are {ref_min:g}",
            field="ref_scores",
        )
    mean = float(np.mean(np.asarray(episode_returns, dtype=np.float64)))
    return (mean - float(ref_min)) / (float(ref_max) - float(ref_min))


def discretize(
    x: np.ndarray, low: np.ndarray, high: np.ndarray, bins: int = DEFAULT_BINS
) -> np.ndarray:
    """Bin index of each entry of ``x`` ``[N, D]`` on a grid of ``bins`` equal bins per dimension.

    Values outside ``[low, high]`` go to the first/last bin; a constant dimension is all bin 0.
    Returns ``uint8`` codes when ``bins <= 256`` (else ``uint16``).
    """
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    low = np.asarray(low, dtype=np.float64)
    width = np.asarray(high, dtype=np.float64) - low
    scale = np.where(width > 0, bins / np.where(width > 0, width, 1.0), 0.0)
    dtype = np.uint8 if bins <= 256 else np.uint16
    codes = np.empty(x.shape, dtype=dtype)
    for d in range(x.shape[1]):  # column by column: no [N, D] float64 temporaries
        col = (x[:, d].astype(np.float64) - low[d]) * scale[d]
        np.clip(col, 0, bins - 1, out=col)
        codes[:, d] = col.astype(dtype)
    return codes


def _pack_rows(codes: np.ndarray) -> np.ndarray:
    """Rows of small ints packed into ``[N, W]`` uint64 words (bytes, zero padded)."""
    codes = np.ascontiguousarray(codes)
    row_bytes = codes.shape[1] * codes.dtype.itemsize
    pad = (-row_bytes) % 8
    raw = codes.view(np.uint8).reshape(len(codes), row_bytes)
    if pad:
        raw = np.concatenate([raw, np.zeros((len(codes), pad), np.uint8)], axis=1)
    return np.ascontiguousarray(raw).view(np.uint64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer: a fast 64-bit mixing function (Steele et al. 2014)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_rows(codes: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 64-bit hash of every row of ``codes`` ``[N, D]`` (vectorised, deterministic)."""
    words = _pack_rows(codes)
    h = np.full(len(words), np.uint64(seed) ^ np.uint64(words.shape[1]), dtype=np.uint64)
    for w in range(words.shape[1]):
        h = _splitmix64(h ^ words[:, w])
    return h


class HyperLogLog:
    """Cardinality sketch over 64-bit hashes (Flajolet et al. 2007, with linear counting for small n).

    >>> rng = np.random.default_rng(0)
    >>> hll = HyperLogLog()
    >>> hll.add_hashes(hash_rows(rng.integers(0, 1000, size=(50_000, 1))))
    >>> abs(hll.count() - 1000) < 30
    True
    """

    def __init__(self, precision: int = HLL_PRECISION):
        if not 4 <= precision <= 18:
            raise ConfigError(
                f"must be an integer in [4, 18], got {precision!r}", field="precision"
            )
        self.precision = precision
        self.registers = np.zeros(1 << precision, dtype=np.uint8)

    def add_hashes(self, hashes: np.ndarray) -> None:
        p = self.precision
        hashes = np.asarray(hashes, dtype=np.uint64)
        index = (hashes >> np.uint64(64 - p)).astype(np.intp)
        rest = hashes & np.uint64((1 << (64 - p)) - 1)
        # rank = position of the first 1-bit in the remaining (64 - p) bits; frexp's exponent is the
        # bit length, exact because rest < 2**50 < 2**53.
        bit_length = np.frexp(rest.astype(np.float64))[1]
        rank = (64 - p - bit_length + 1).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)

    def merge(self, other: HyperLogLog) -> None:
        np.maximum(self.registers, other.registers, out=self.registers)

    def count(self) -> float:
        m = float(len(self.registers))
        alpha = 0.7213 / (1.0 + 1.079 / m)
        estimate = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if estimate <= 2.5 * m and zeros:
            return m * math.log(m / zeros)  # linear counting, better for small cardinalities
        return estimate


def count_unique_rows(
    codes: np.ndarray, exact_max_rows: int = EXACT_MAX_ROWS, chunk: int = 1_000_000
) -> int:
    """Number of distinct rows of ``codes``: exact up to ``exact_max_rows`` rows, HyperLogLog beyond."""
    n = len(codes)
    if n <= exact_max_rows:
        packed = np.ascontiguousarray(codes)
        row = np.dtype((np.void, packed.shape[1] * packed.dtype.itemsize))
        return int(np.unique(packed.view(row).ravel()).size)
    hll = HyperLogLog()
    for start in range(0, n, chunk):
        hll.add_hashes(hash_rows(codes[start : start + chunk]))
    return round(hll.count())


def state_action_codes(
    observations: np.ndarray,
    actions: np.ndarray,
    obs_low: np.ndarray,
    obs_high: np.ndarray,
    act_low: np.ndarray | None,
    act_high: np.ndarray | None,
    bins: int = DEFAULT_BINS,
) -> np.ndarray:
    """Bin codes of (state, action) pairs; discrete actions are used as their own code."""
    obs_codes = discretize(observations, obs_low, obs_high, bins)
    if actions.ndim == 1:
        act = np.asarray(actions, dtype=np.int64)[:, None]
        dtype = np.uint8 if act.max(initial=0) < 256 and bins <= 256 else np.uint16
        act_codes = act.astype(dtype)
        obs_codes = obs_codes.astype(dtype, copy=False)
    else:
        act_codes = discretize(actions, act_low, act_high, bins).astype(obs_codes.dtype)
    return np.concatenate([obs_codes, act_codes], axis=1)


def state_action_coverage(
    observations: np.ndarray,
    actions: np.ndarray,
    ref_observations: np.ndarray,
    ref_actions: np.ndarray,
    bins: int = DEFAULT_BINS,
    exact_max_rows: int = EXACT_MAX_ROWS,
) -> dict[str, float | int | bool]:
    """SACo and lSACo of a dataset relative to a reference dataset.

    SACo = u(D) / u(D_ref) and lSACo = log u(D) / log u(D_ref), where ``u`` counts unique
    discretized (state, action) pairs (Schweighofer et al. 2022, Sec. 3 and App. A). The grid spans
    the union of both datasets' per-dimension ranges so that both are counted in the same bins.

    >>> obs = np.arange(10.0)[:, None]; act = np.zeros((10, 1))
    >>> out = state_action_coverage(obs[:5], act[:5], obs, act, bins=10)
    >>> out["saco"], out["unique_pairs"], out["reference_unique_pairs"]
    (0.5, 5, 10)
    """
    obs_low = np.minimum(observations.min(axis=0), ref_observations.min(axis=0))
    obs_high = np.maximum(observations.max(axis=0), ref_observations.max(axis=0))
    act_low = act_high = None
    if actions.ndim > 1:
        act_low = np.minimum(actions.min(axis=0), ref_actions.min(axis=0))
        act_high = np.maximum(actions.max(axis=0), ref_actions.max(axis=0))
    u = count_unique_rows(
        state_action_codes(observations, actions, obs_low, obs_high, act_low, act_high, bins),
        exact_max_rows,
    )
    u_ref = count_unique_rows(
        state_action_codes(
            ref_observations, ref_actions, obs_low, obs_high, act_low, act_high, bins
        ),
        exact_max_rows,
    )
    exact = max(len(observations), len(ref_observations)) <= exact_max_rows
    return {
        "saco": u / u_ref,
        "lsaco": math.log(u) / math.log(u_ref) if u_ref > 1 and u > 0 else float("nan"),
        "unique_pairs": int(u),
        "reference_unique_pairs": int(u_ref),
        "unique_fraction": u / len(observations),
        "bins": int(bins),
        "exact": bool(exact),
    }
