"""A learned policy as an ONNX model: its deterministic action function, runnable without policyfit.

:func:`export_onnx` turns a run directory (or a bare ``policy/`` folder) into an ``.onnx`` file that
onnxruntime, TensorRT, ONNX.js or any other ONNX runtime executes. What is exported is the
algorithm's deterministic action function, ``algo.act(params, obs, carry, key=None)``, with the
trained parameters baked in as initializers:

* a stateless policy (BC, IQL, CQL, DQN, ...): one input ``obs`` ``float32 [B, obs_dim]``, one
  output ``action``: ``float32 [B, action_dim]`` for continuous actions (already scaled into the
  action space), ``int64 [B]`` action indices for discrete ones;
* a policy with a carry (RvS-R keeps the remaining return target and the step count): the *step*
  function. Inputs ``obs`` and one input per carry leaf (``return_to_go``, ``timestep``), outputs
  ``action`` and the next carry (``next_return_to_go``, ``next_timestep``). What a rollout feeds
  back after each environment step (``algo.observe_reward``) is a second, small model written
  next to it, ``<name>.observe_reward.onnx``: inputs the carry leaves and ``reward`` ``float32
  [B]``, outputs ``next_<leaf>``. The carry every episode starts from is in the metadata.

The batch dimension ``B`` is dynamic (``batch="dynamic"``, the default) or fixed (``batch=1``).
The model's ``metadata_props`` hold the policyfit version, the algorithm and its config, the
observation and action sizes, the action space, the carry (names, dtypes, initial values), the
graph's input and output names, and the policy fingerprint, ``sha256`` of ``params.msgpack``,
which ties the file to the run it came from (:func:`read_metadata` reads them back).

The converter is `jax2onnx <https://github.com/enpasos/jax2onnx>`_, the maintained JAX -> ONNX
converter (jaxpr to ONNX nodes directly, without the retired ``jax2tf`` + ``tf2onnx`` detour
through TensorFlow); its 0.8.x line is the one that supports policyfit's jax 0.6.2 (jax2onnx
0.8.1 requires jax < 0.7, 0.9 needs jax >= 0.7.2). How it is used here, and why:

1. the action function is traced *by JAX* (``jax.make_jaxpr``) with a symbolic batch dimension,
   before the converter runs. jax2onnx replaces ``jnp.shape`` while it traces, and flax linen's
   parameter shape check (a ``jax.eval_shape`` of the initializer, which reads ``jnp.shape``)
   fails under that patch for every policyfit network; the converter is then handed a function
   that re-plays the jaxpr primitive by primitive;
2. the re-play inlines nested calls (``pjit``, ``custom_jvp_call``): jax2onnx 0.8.1 turns the
   inside of a ``custom_jvp_call`` such as flax's ``relu`` into extra graph outputs. It also
   rewrites ``broadcast_in_dim`` of a batch-shaped array (``x - x.max(-1, keepdims=True)``,
   ``x[:, None]``) as a ``reshape`` plus a ``concatenate`` of copies: jax2onnx 0.8.1 reshapes
   such an operand to a static shape with 1 for the batch, which fails for any other batch size;
   and it rewrites what 0.8.1 has no handler for: a ``dot_general`` that is not a plain 2-D
   matmul (a Dense layer on ``[B, T, E]`` tokens: one ``[B, E] x [E, F]`` matmul per token,
   concatenated; attention's batched products: elementwise products summed), and ``rsqrt``
   (``1 / sqrt``). Indexing such as ``x[:, 1:]`` under a symbolic batch traces to a ``gather``
   that 0.8.1 converts with the wrong rank: the re-play folds the constant index (computed from
   literals) and emits the gather as ``lax.slice`` + ``squeeze`` (:func:`_gather_as_slice`);
3. on the ONNX side, graph inputs the converter dropped because nothing reads them (RvS-R's
   ``reward`` with ``update_target=False``) are put back, inputs and outputs get their names, and
   the converter's shape annotations (some say ``[1, 1]`` for a ``[B, 1]`` tensor) are replaced
   by ONNX's own shape inference;
4. only jax2onnx's plugins for jax primitives are loaded (a plain ``to_onnx`` also imports its
   flax.nnx, equinox and example plugins, minutes on a busy CPU), and what it changes for the
   whole process (``jnp.shape``, ``jax_enable_x64``, its log level) is put back afterwards;
5. the model is run once with onnxruntime on random inputs against the JAX function
   (``verify=True``): a conversion that runs but computes something else is an error, not a file.

The check against :func:`policyfit.load_policy` on real observations is :func:`check_onnx`
(``policyfit export ... --check``).

Example:
    >>> path = export_onnx("runs/iql-hopper-medium-s0", "iql.onnx")        # doctest: +SKIP
    >>> import onnxruntime as ort                                           # doctest: +SKIP
    >>> session = ort.InferenceSession(str(path))                            # doctest: +SKIP
    >>> session.run(["action"], {"obs": obs[None].astype("float32")})[0]    # doctest: +SKIP

    An episode of a carry-aware policy (RvS-R) from ONNX alone:

    >>> step = ort.InferenceSession("rvs.onnx")                             # doctest: +SKIP
    >>> observe = ort.InferenceSession("rvs.observe_reward.onnx")          # doctest: +SKIP
    >>> carry = {c["name"]: np.full((1, *c["shape"]), c["initial"], c["dtype"])
    ...          for c in read_metadata("rvs.onnx")["carry"]}             # doctest: +SKIP
    >>> action, *nxt = step.run(None, {"obs": obs[None], **carry})         # doctest: +SKIP
    >>> carry = dict(zip(carry, nxt))                                       # doctest: +SKIP
    >>> obs, reward, *_ = env.step(action[0])                               # doctest: +SKIP
    >>> nxt = observe.run(None, {**carry, "reward": np.float32([reward])}) # doctest: +SKIP
    >>> carry = dict(zip(carry, nxt))                                       # doctest: +SKIP

    The observe-reward model's name follows from the step model's:

    >>> observe_reward_path("out/rvs.onnx").name
    'rvs.observe_reward.onnx'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import pkgutil
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policyfit import __version__
from policyfit.algos.policy import PARAMS_FILE, Policy, is_policy_dir
from policyfit.common.files import atomic_write_bytes
from policyfit.common.xla import compiler_options
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.training.rundir import RunDir, load_policy

DEFAULT_OPSET = 21
OBS_INPUT = "obs"
ACTION_OUTPUT = "action"
REWARD_INPUT = "reward"
NEXT_PREFIX = "next_"
OBSERVE_SUFFIX = ".observe_reward"
CONVERTER = "jax2onnx"
INSTALL_HINT = "pip install 'policyfit[export]' (jax2onnx 0.8.x, onnx, onnxruntime)"
# max |onnx - jax| accepted by verify=True and check_onnx for float outputs (the bound)
TOLERANCE = 1e-5
VERIFY_BATCH = 7
# the jaxpr primitives that only wrap another jaxpr, and the parameter that holds it
_INLINE = {
    "pjit": "jaxpr",
    "jit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
    "remat": "jaxpr",
    "checkpoint": "jaxpr",
}


@dataclass(frozen=True)
class CarryLeaf:
    """One array of a policy's carry as the ONNX model sees it (per episode: ``shape``)."""

    name: str  # the step model's input; its output is ``next_<name>``
    dtype: str
    shape: tuple[int, ...]  # per episode (the batch axis excluded)
    initial: Any  # the value every episode starts from (a number or nested lists)


@dataclass(frozen=True)
class CheckResult:
    """How the ONNX model and :func:`policyfit.load_policy` compare (see :func:`check_onnx`)."""

    observations: int
    max_abs_diff: float  # over actions and, for carry-aware policies, every carry output
    action_mismatches: int  # discrete: actions that differ; continuous: |diff| > TOLERANCE
    discrete: bool

    @property
    def ok(self) -> bool:
        return self.action_mismatches == 0 and self.max_abs_diff <= TOLERANCE


# --------------------------------------------------------------------------- public API
def observe_reward_path(out: str | Path) -> Path:
    """Where :func:`export_onnx` writes the observe-reward model of a carry-aware policy."""
    out = Path(out)
    suffix = out.suffix or ".onnx"
    stem = out.stem if out.suffix else out.name
    return out.with_name(f"{stem}{OBSERVE_SUFFIX}{suffix}")


def export_onnx(
    run_or_policy_dir: str | Path,
    out: str | Path,
    *,
    batch: int | str = "dynamic",
    target_return: float | None = None,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
) -> Path:
    """Write the deterministic policy of a run as an ONNX model to ``out``; return ``out``.

    Args:
        run_or_policy_dir: a run directory of ``policyfit train`` or a ``policy/`` folder.
        out: the ``.onnx`` file to write (atomically; parent folders are created). A carry-aware
            policy also gets :func:`observe_reward_path` of it.
        batch: ``"dynamic"`` (any batch size) or a fixed positive batch size.
        target_return: RvS-R's return target ``G`` baked into the initial carry recorded in the
            metadata (default: the run's; the carry is an input, so any ``G`` can be fed).
        opset: the ONNX opset.
        verify: run the model once with onnxruntime on random observations and compare it with
            JAX; a disagreement raises instead of leaving a wrong file.

    Raises:
        PolicyfitError: no policy at ``run_or_policy_dir``; ``out`` not writable; jax2onnx or
            onnxruntime missing; a conversion that fails or disagrees with JAX.
        ConfigError: a bad ``batch``; ``target_return`` for a policy without one.

    Example:
        >>> export_onnx("runs/rvs_r-hopper-medium-s0", "rvs.onnx", target_return=3000)  # doctest: +SKIP
        PosixPath('rvs.onnx')
    """
    import jax

    out = Path(out)
    batch_dim = _batch_dim(batch)
    _check_writable(out)
    policy_dir = _policy_dir(run_or_policy_dir)
    policy = _load(run_or_policy_dir, target_return)
    converter = _Converter.load()
    fingerprint = policy_fingerprint(policy_dir)
    carry = carry_leaves(policy)
    spec = policy.spec
    sym = _batch_symbol(batch_dim)
    obs_spec = jax.ShapeDtypeStruct((sym, spec.observation_dim), np.float32)
    carry_specs = [jax.ShapeDtypeStruct((sym, *c.shape), np.dtype(c.dtype)) for c in carry]
    _, treedef = jax.tree_util.tree_flatten(policy.initial_carry(1))

    def step(obs, *leaves):
        actions, nxt = policy.algo.act(
            policy.params, obs, jax.tree_util.tree_unflatten(treedef, leaves), None
        )
        return (actions, *jax.tree_util.tree_leaves(nxt))

    names = [c.name for c in carry]
    base_meta = _metadata(policy, carry, fingerprint, batch_dim, converter.version)
    models = {
        out: converter.build(
            step,
            [obs_spec, *carry_specs],
            inputs=[OBS_INPUT, *names],
            outputs=[ACTION_OUTPUT, *(NEXT_PREFIX + n for n in names)],
            int64_outputs={ACTION_OUTPUT} if spec.discrete else set(),
            name=f"policyfit_{policy.name}_step" if carry else f"policyfit_{policy.name}",
            opset=opset,
        )
    }
    if carry:

        def observe(*args):
            *leaves, reward = args
            nxt = policy.algo.observe_reward(jax.tree_util.tree_unflatten(treedef, leaves), reward)
            return tuple(jax.tree_util.tree_leaves(nxt))

        reward_spec = jax.ShapeDtypeStruct((sym,), np.float32)
        models[observe_reward_path(out)] = converter.build(
            observe,
            [*carry_specs, reward_spec],
            inputs=[*names, REWARD_INPUT],
            outputs=[NEXT_PREFIX + n for n in names],
            int64_outputs=set(),
            name=f"policyfit_{policy.name}_observe_reward",
            opset=opset,
        )
    for path, (model, reference) in models.items():
        graph = "observe_reward" if path != out else "step"
        meta = {
            **base_meta,
            "graph": graph,
            "inputs": [v.name for v in model.graph.input],
            "outputs": [v.name for v in model.graph.output],
        }
        if carry:
            meta["observe_reward_model"] = observe_reward_path(out).name
            meta["step_model"] = out.name
        _set_metadata(model, meta)
        if verify:
            _verify(model, reference, policy, carry, batch_dim, path)
    for path, (model, _) in models.items():
        _write(path, model.SerializeToString())
    return out


def read_metadata(onnx_path: str | Path) -> dict[str, Any]:
    """The policyfit metadata of an exported model (``metadata_props``, JSON values decoded).

    Raises:
        PolicyfitError: not a readable ONNX file, or one without policyfit metadata.
    """
    onnx = _onnx()
    path = Path(onnx_path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a bad file
        raise PolicyfitError(f"cannot read ONNX model: {_one_line(exc)}", path=str(path)) from None
    meta = {p.key: _decode(p.value) for p in model.metadata_props}
    if "policy_fingerprint" not in meta:
        raise PolicyfitError(
            "no policyfit metadata; export it with `policyfit export`",
            path=str(path),
            field="metadata_props",
        )
    return meta


def policy_fingerprint(policy_dir: str | Path) -> str:
    """``sha256:<hex>`` of the policy's ``params.msgpack`` (what the model's parameters came from)."""
    data = (Path(policy_dir) / PARAMS_FILE).read_bytes()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def carry_leaves(policy: Policy) -> list[CarryLeaf]:
    """The carry of ``policy`` as named arrays (empty for a stateless policy)."""
    import jax

    flat, _ = jax.tree_util.tree_flatten_with_path(policy.initial_carry(1))
    leaves = []
    for path, value in flat:
        value = np.asarray(value)
        leaves.append(
            CarryLeaf(
                name=_leaf_name(path, len(leaves)),
                dtype=str(value.dtype),
                shape=tuple(value.shape[1:]),
                initial=value[0].tolist(),
            )
        )
    if len({c.name for c in leaves}) != len(leaves):  # e.g. two nested "x" keys
        leaves = [dataclasses.replace(c, name=f"carry_{i}") for i, c in enumerate(leaves)]
    return leaves


def check_onnx(
    onnx_path: str | Path,
    policy: Policy,
    observations: np.ndarray,
    *,
    seed: int = 0,
    episode_steps: int = 50,
) -> CheckResult:
    """Run the exported model with onnxruntime on ``observations`` and compare it with ``policy``.

    A stateless policy is compared on all observations at once (in chunks of the model's fixed
    batch size, if it has one). A carry-aware one is stepped like a rollout: the observations are
    ``episode_steps`` consecutive steps of ``len(observations) // episode_steps`` parallel
    episodes; at each step the action and the next carry of the step model, and then the carry
    after a random reward from the observe-reward model, are compared with ``policy.act`` and
    ``policy.observe_reward``, and both continue from policyfit's carry.
    """
    meta = read_metadata(onnx_path)
    obs = np.asarray(observations, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[1] != policy.observation_dim or len(obs) == 0:
        raise PolicyfitError(
            f"observations of shape {obs.shape}; the policy expects [N, {policy.observation_dim}]",
            field="observations",
        )
    step = _session(Path(onnx_path))
    fixed = meta.get("batch") if isinstance(meta.get("batch"), int) else None
    tally = _Tally(policy.discrete)
    carry = meta.get("carry") or []
    if not carry:
        size = fixed or len(obs)
        for start in range(0, len(obs), size):
            chunk = _pad(obs[start : start + size], size)
            got = step.run([ACTION_OUTPUT], {OBS_INPUT: chunk})[0]
            want, _ = policy.act(chunk, ())
            n = min(size, len(obs) - start)
            tally.actions(got[:n], want[:n])
        return tally.result(len(obs))
    observe = _session(Path(onnx_path).with_name(meta["observe_reward_model"]))
    names = [c["name"] for c in carry]
    episodes = fixed or max(1, len(obs) // episode_steps)
    steps = max(1, len(obs) // episodes)
    rng = np.random.default_rng(seed)
    scale = policy.spec.reward_abs_mean or 1.0
    state = policy.initial_carry(episodes)
    for t in range(steps):
        chunk = _pad(obs[t * episodes : (t + 1) * episodes], episodes)
        leaves = _leaves(state)
        got = step.run(None, {OBS_INPUT: chunk, **dict(zip(names, leaves, strict=True))})
        want, state = policy.act(chunk, state)
        tally.actions(got[0], want)
        tally.arrays(got[1:], _leaves(state))
        reward = (rng.normal(size=episodes) * scale).astype(np.float32)
        feeds = {**dict(zip(names, _leaves(state), strict=True)), REWARD_INPUT: reward}
        got = observe.run(None, feeds)
        state = policy.observe_reward(state, reward)
        tally.arrays(got, _leaves(state))
    return tally.result(steps * episodes)


def check_observations(
    run_or_policy_dir: str | Path, n: int, *, seed: int = 0
) -> tuple[np.ndarray, str]:
    """``n`` observations to check an export on, and where they came from.

    The run's dataset when it can be read without building anything (a file, or a built-in
    dataset already in the cache), sampled without replacement (with, if it is smaller);
    otherwise Gaussian observations with the data's per-dimension mean and std (the policy's
    ``spec``).
    """
    from policyfit.algos.policy import read_policy

    rng = np.random.default_rng(seed)
    path = Path(run_or_policy_dir)
    data = _run_dataset(path)
    if data is not None:
        ds, source = data
        obs = ds.observations
        idx = rng.choice(len(obs), size=n, replace=n > len(obs))
        return np.asarray(obs[idx], dtype=np.float32), f"{n} observations from {source}"
    spec = read_policy(_policy_dir(path)).spec
    mean = np.asarray(spec.obs_mean or [0.0] * spec.observation_dim, dtype=np.float64)
    std = np.asarray(spec.obs_std or [1.0] * spec.observation_dim, dtype=np.float64)
    obs = rng.normal(mean, np.maximum(std, 1e-3), size=(n, spec.observation_dim))
    return obs.astype(np.float32), f"{n} random observations (the run's dataset is not available)"


# --------------------------------------------------------------------------- loading
def _policy_dir(path: str | Path) -> Path:
    path = Path(path)
    run = RunDir(path)
    if is_policy_dir(run.policy_dir):
        return run.policy_dir
    if is_policy_dir(path):
        return path
    load_policy(path)  # raises the one error message for "no policy here"
    raise AssertionError("unreachable")


def _load(path: str | Path, target_return: float | None) -> Policy:
    overrides = {} if target_return is None else {"target_return": float(target_return)}
    try:
        return load_policy(path, **overrides)
    except ConfigError as exc:
        if exc.field != "target_return":
            raise
        raise ConfigError(
            "this policy has no return target; only return-conditioned policies (rvs_r, dt) take one",
            path=str(path),
            field="target_return",
        ) from None


def _run_dataset(path: Path) -> tuple[Any, str] | None:
    """The run's training dataset when it can be loaded without building it, else None."""
    from policyfit.envs import datasets, suite

    config = RunDir(path).read_config() if path.is_dir() else {}
    source = (config.get("dataset") or {}).get("source")
    if not source:
        return None
    try:
        if Path(source).expanduser().exists():
            return datasets.load_dataset(source), str(source)
        if suite.is_suite_name(source):
            cached = {r["name"]: r["cached"] for r in suite.list_datasets()}
            if not cached.get(source):
                return None
        if datasets.is_builtin_name(source):
            return datasets.load_dataset(source), str(source)
    except PolicyfitError:
        return None
    return None


def _batch_dim(batch: int | str) -> int | None:
    if isinstance(batch, str) and batch.strip().lower() == "dynamic":
        return None
    try:
        value = int(batch)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or (isinstance(batch, float) and batch != value):
        raise ConfigError(
            f"expected 'dynamic' or a positive batch size, got {batch!r}", field="batch"
        )
    return value


def _batch_symbol(batch: int | None) -> Any:
    if batch is not None:
        return batch
    import jax.export

    (symbol,) = jax.export.symbolic_shape("B")
    return symbol


def _leaf_name(path: tuple, index: int) -> str:
    parts = []
    for key in path:
        part = getattr(key, "key", getattr(key, "name", getattr(key, "idx", None)))
        parts.append(str(part if part is not None else key))
    name = "_".join(parts) or f"carry_{index}"
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"carry_{cleaned}"


# --------------------------------------------------------------------------- conversion
class _Converter:
    """jax2onnx, loaded lean, with its global side effects undone after each conversion."""

    def __init__(self, to_onnx: Callable, onnx: Any, version: str):
        self.to_onnx, self.onnx, self.version = to_onnx, onnx, version

    @classmethod
    def load(cls) -> _Converter:
        import importlib.metadata

        onnx = _onnx()
        with _restored_globals():
            try:
                import jax2onnx
            except ImportError:
                raise _missing("jax2onnx") from None
            _import_jax_plugins()
            to_onnx = jax2onnx.to_onnx
        version = importlib.metadata.version("jax2onnx")
        return cls(to_onnx, onnx, f"{CONVERTER} {version}")

    def build(
        self,
        fn: Callable,
        specs: list,
        *,
        inputs: list[str],
        outputs: list[str],
        int64_outputs: set[str],
        name: str,
        opset: int,
    ) -> tuple[Any, Callable]:
        """``(model, fn)``: the ONNX model of ``fn`` (traced on ``specs``) and ``fn``."""
        import jax

        closed = jax.make_jaxpr(fn)(*specs)
        # jax2onnx drops some graph inputs nothing reads (RvS-R's reward when
        # update_target=False; not DoC's value); they are put back below, so every model of a
        # kind has the same inputs
        read = {id(v) for eqn in closed.jaxpr.eqns for v in eqn.invars}
        read |= {id(v) for v in closed.jaxpr.outvars}
        used = [id(v) in read for v in closed.jaxpr.invars]

        def flat(*args):
            return tuple(_inline_eval(closed.jaxpr, closed.consts, args))

        try:
            with _restored_globals():
                model = self.to_onnx(flat, list(specs), model_name=name, opset=opset)
        except Exception as exc:  # the converter raises anything from NotImplementedError up
            raise PolicyfitError(
                f"{self.version} cannot convert this policy: {_one_line(exc)}; re-run with "
                "--debug for the traceback",
                path=name,
                field="format",
            ) from exc
        _name_graph(self.onnx, model, specs, used, inputs, outputs, int64_outputs)
        model.producer_name = "policyfit"
        model.producer_version = __version__
        model.doc_string = f"policyfit {__version__} policy exported with {self.version}"
        return model, fn


def _missing(package: str) -> PolicyfitError:
    return PolicyfitError(f"{package} is not installed; {INSTALL_HINT}", field="format")


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise _missing("onnx") from None
    return onnx


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise _missing("onnxruntime") from None
    return onnxruntime


def _import_jax_plugins() -> None:
    """Register jax2onnx's plugins for jax primitives only (seconds instead of minutes)."""
    import jax2onnx.plugins.jax as package
    from jax2onnx import plugin_system

    if getattr(plugin_system, "_already_imported_plugins", True):
        return  # already done (or a jax2onnx without the flag: it imports everything itself)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its scan plugin asks for float64 at import time
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            # jax2onnx's own plugin modules, by name: the one dynamic import in policyfit
            # outside the CLI registry, and it never names a policyfit module
            importlib.import_module(info.name)
    plugin_system._already_imported_plugins = True


@contextlib.contextmanager
def _restored_globals() -> Iterator[None]:
    """Undo what jax2onnx changes for the whole process: ``jnp.shape`` (its shape plugin
    replaces it when imported, which breaks flax linen under ``jit`` afterwards), the
    ``jax_enable_x64`` flag (``to_onnx`` sets it), ``jax_dynamic_shapes`` (set when it is imported)
    and its logging (warnings on symbolic dims)."""
    import jax
    import jax.numpy as jnp

    shape = jnp.shape
    x64 = jax.config.jax_enable_x64
    # jax2onnx turns on jax_dynamic_shapes when imported (converter/user_interface.py) and
    # needs it while converting; left on, every later compiled call in the process raises
    # NotImplementedError (found by the online DQN tests running after the export tests)
    dynamic = jax.config.jax_dynamic_shapes
    jax.config.update("jax_dynamic_shapes", True)
    logger = logging.getLogger(CONVERTER)
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # failures are raised as one PolicyfitError, not logged
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        plugin = sys.modules.get("jax2onnx.plugins.jax.numpy.shape")
        jnp.shape = getattr(plugin, "_original_jnp_shape", shape)
        jax.config.update("jax_enable_x64", x64)
        jax.config.update("jax_dynamic_shapes", dynamic)
        logger.setLevel(level)


def _inline_eval(jaxpr: Any, consts: Any, args: Any) -> list:
    """Evaluate ``jaxpr`` primitive by primitive, inlining nested calls (see the module
    docstring, point 2); under the converter's trace this records a flat graph."""
    import jax
    from jax.extend.core import Literal

    env: dict = {}
    known: dict = {}  # vars whose values are compile-time constants (numpy), for static gathers

    def read(var):
        return var.val if isinstance(var, Literal) else env[var]

    def constant(var):
        if isinstance(var, Literal):
            return np.asarray(var.val)
        return known.get(var)

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        inputs = [constant(v) for v in eqn.invars]
        if (
            name in _FOLDABLE
            and all(c is not None for c in inputs)
            and not any(_batch_shaped(v.aval.shape) for v in eqn.outvars)
        ):
            # an index computed from literals (``x[:, 1]`` broadcasts its 1): fold it here, so a
            # gather that reads it can be recognized as a static slice
            with jax.ensure_compile_time_eval():
                subfuns, params = eqn.primitive.get_bind_params(eqn.params)
                folded = eqn.primitive.bind(*subfuns, *inputs, **params)
            outs = list(folded) if eqn.primitive.multiple_results else [folded]
            known.update((v, np.asarray(o)) for v, o in zip(eqn.outvars, outs, strict=True))
        elif (
            name == "gather"
            and constant(eqn.invars[1]) is not None
            and _static_gather(eqn, constant(eqn.invars[1]))
        ):
            outs = [_gather_as_slice(values[0], constant(eqn.invars[1]), eqn.params)]
        elif name in _INLINE and _INLINE[name] in eqn.params:
            inner = eqn.params[_INLINE[name]]
            inner_consts = getattr(inner, "consts", ())
            outs = _inline_eval(getattr(inner, "jaxpr", inner), inner_consts, values)
        elif name == "broadcast_in_dim" and _batch_shaped(eqn.invars[0].aval.shape):
            outs = [_broadcast(values[0], eqn.params)]
        elif name == "dot_general" and not _plain_matmul(eqn):
            outs = [_dot_as_matmuls(*values, eqn.params)]
        elif name == "rsqrt":  # no jax2onnx 0.8.1 handler (LayerNorm)
            root = jax.lax.sqrt(values[0])
            outs = [jax.lax.div(jax.lax.exp(root * 0.0), root)]  # exp(0 x): ones of its shape
        else:
            subfuns, params = eqn.primitive.get_bind_params(eqn.params)
            outs = eqn.primitive.bind(*subfuns, *values, **params)
            if not eqn.primitive.multiple_results:
                outs = [outs]
        env.update(zip(eqn.outvars, outs, strict=True))
    return [read(v) for v in jaxpr.outvars]


#: primitives folded to constants when all their inputs are constants (index arithmetic)
_FOLDABLE = frozenset(
    {
        "broadcast_in_dim",
        "convert_element_type",
        "reshape",
        "concatenate",
        "squeeze",
        "expand_dims",
        "add",
        "sub",
        "mul",
        "neg",
        "select_n",
        "lt",
        "ge",
        "iota",
    }
)


def _static_gather(eqn: Any, indices: np.ndarray) -> bool:
    """A ``gather`` that is a static slice: one constant index vector (``x[:, 1:]``,
    ``x[..., 0]`` under a symbolic batch), its output axes the slice's in order, no batching."""
    dn = eqn.params["dimension_numbers"]
    operand = eqn.invars[0].aval
    kept = operand.ndim - len(dn.collapsed_slice_dims)
    return (
        indices.ndim == 1
        and not dn.operand_batching_dims
        and tuple(dn.offset_dims) == tuple(range(kept))
        and len(dn.start_index_map) == indices.shape[0]
        and all(isinstance(operand.shape[d], int) for d in dn.start_index_map)
    )


def _gather_as_slice(operand: Any, indices: np.ndarray, params: dict) -> Any:
    """A static-slice ``gather`` (:func:`_static_gather`) as ``lax.slice`` + ``squeeze``, which
    jax2onnx 0.8.1 converts (it converts such gathers with the wrong rank). Starts are clamped
    into range, as ``gather`` does for every mode once the indices are in bounds."""
    from jax import lax

    dn = params["dimension_numbers"]
    sizes = tuple(params["slice_sizes"])
    start = [0] * operand.ndim
    for position, dim in enumerate(dn.start_index_map):
        start[dim] = int(min(max(int(indices[position]), 0), operand.shape[dim] - sizes[dim]))
    # a symbolic size is the whole (batch) axis; the operand's own shape names it as traced now
    limit = [
        s + n if isinstance(n, int) else operand.shape[d]
        for d, (s, n) in enumerate(zip(start, sizes, strict=True))
    ]
    out = lax.slice(operand, tuple(start), tuple(limit))
    return lax.squeeze(out, tuple(dn.collapsed_slice_dims)) if dn.collapsed_slice_dims else out


def _plain_matmul(eqn: Any) -> bool:
    """A 2-D ``[M, K] x [K, N]`` product without batch dimensions (what jax2onnx 0.8.1 converts)."""
    (lc, rc), (lb, _) = eqn.params["dimension_numbers"]
    lhs, rhs = (v.aval.ndim for v in eqn.invars)
    return lhs == 2 and rhs == 2 and not lb and tuple(lc) == (1,) and tuple(rc) == (0,)


def _dot_as_matmuls(lhs: Any, rhs: Any, params: dict) -> Any:
    """Any ``dot_general`` as primitives jax2onnx 0.8.1 converts, the operands first transposed to
    ``[batch, free, contracting]`` and ``[batch, contracting, free]``:

    * without batch dimensions (a Dense layer on ``[B, T, E]`` tokens): one 2-D
      ``[B, K] x [K, N]`` matmul per index of the left free axes past the first (the tokens),
      concatenated; the symbolic ``B`` stays an axis of its own, as jax2onnx cannot reshape it
      into the rows;
    * with batch dimensions (attention's ``[B, H, T, D]`` products, ensembles): the elementwise
      product of the operands grown to ``[batch, M, K, N]`` (static sizes), summed over ``K``;
      the sizes there are small.

    A symbolic size past either operand's first axis is left to the converter."""
    import math

    from jax import lax

    (lc, rc), (lb, rb) = params["dimension_numbers"]
    extra = {k: params[k] for k in ("precision", "preferred_element_type") if k in params}
    if _batch_shaped(lhs.shape[1:]) or _batch_shaped(rhs.shape[1:]):
        # a symbolic size past the first axis: left to the converter (which may refuse it)
        return lax.dot_general(lhs, rhs, params["dimension_numbers"], **extra)
    lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
    # [batch..., free..., contracting...] and [batch..., contracting..., free...]
    lhs = lax.transpose(lhs, (*lb, *lf, *lc))
    rhs = lax.transpose(rhs, (*rb, *rc, *rf))
    nb = len(lb)
    batch = lhs.shape[:nb]
    lfree, rfree = lhs.shape[nb : nb + len(lf)], rhs.shape[nb + len(rc) :]
    k = math.prod(lhs.shape[nb + len(lf) :])
    if not nb:
        # [B, S, K] x [K, N], B the (symbolic) first free axis kept apart: one [B, K] x [K, N]
        # matmul per index of S, concatenated (jax2onnx cannot reshape B into M)
        lead, rest = lfree[:1], lfree[1:]
        s_size, n = math.prod(rest), math.prod(rfree)
        lhs3 = lax.reshape(lhs, (*lead, s_size, k))
        rhs2 = lax.reshape(rhs, (k, n))
        rows = []
        for i in range(s_size):
            row = lax.reshape(lax.slice_in_dim(lhs3, i, i + 1, axis=1), (*lead, k))
            row = lax.dot_general(row, rhs2, (((1,), (0,)), ((), ())), **extra)
            rows.append(lax.reshape(row, (*lead, 1, n)))
        out = rows[0] if s_size == 1 else lax.concatenate(rows, 1)
        return lax.reshape(out, (*lfree, *rfree))
    # batched: elementwise products summed over the contraction
    left = lax.reshape(lhs, (*batch, math.prod(lfree), k, 1))
    right = lax.reshape(rhs, (*batch, 1, k, math.prod(rfree)))
    shape = (*batch, math.prod(lfree), k, math.prod(rfree))
    prod = lax.mul(_grow(left, shape), _grow(right, shape))
    out = prod.sum(nb + 1)
    return lax.reshape(out, (*batch, *lfree, *rfree))


def _grow(x: Any, shape: tuple) -> Any:
    """``x`` with its size-1 axes repeated to ``shape`` (static sizes), by concatenation."""
    from jax import lax

    for i, (have, want) in enumerate(zip(x.shape, shape, strict=True)):
        if have != want:
            x = lax.concatenate([x] * want, i)
    return x


def _batch_shaped(shape: tuple) -> bool:
    return any(not isinstance(d, int) for d in shape)


def _broadcast(x: Any, params: dict) -> Any:
    """``broadcast_in_dim`` of an array with a symbolic (batch) dimension, as primitives that
    jax2onnx 0.8.1 converts correctly: a ``reshape`` that inserts the new size-1 axes, then one
    ``concatenate`` of copies per axis that grows from 1 to a static size (exact for any dtype).
    Anything else (a size-1 axis growing to the batch size) is bound unchanged."""
    from jax import lax

    shape = tuple(params["shape"])
    dims = tuple(params["broadcast_dimensions"])
    unit = [1] * len(shape)
    for i, d in enumerate(dims):
        unit[d] = x.shape[i]
    growing = [i for i, (u, o) in enumerate(zip(unit, shape, strict=True)) if u != o]
    if any(unit[i] != 1 or not isinstance(shape[i], int) for i in growing):
        return lax.broadcast_in_dim(x, shape, dims, **_extra(params))
    if tuple(unit) != tuple(x.shape):
        x = lax.reshape(x, tuple(unit))
    for i in growing:
        x = lax.concatenate([x] * shape[i], i)
    return x


def _extra(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("shape", "broadcast_dimensions")}


def _name_graph(
    onnx: Any,
    model: Any,
    specs: list,
    used: list[bool],
    inputs: list[str],
    outputs: list[str],
    int64_outputs: set[str],
) -> None:
    """Name the graph's inputs and outputs, put back the inputs the converter dropped, and
    replace its shape annotations with ONNX's own inference.

    Outputs get their names through Identity / Cast nodes, so that an output that is also an
    input (an unchanged carry) gets a name of its own.
    """
    graph = model.graph
    kept = [name for name, is_used in zip(inputs, used, strict=True) if is_used]
    if len(graph.input) == len(inputs):  # the converter kept the unread inputs too (DoC's value)
        kept = list(inputs)
    if len(graph.input) != len(kept) or len(graph.output) != len(outputs):
        raise PolicyfitError(
            f"the converter made {len(graph.input)} inputs and {len(graph.output)} outputs; "
            f"expected {len(kept)} and {len(outputs)}",
            field="format",
        )
    new_outputs = []
    for value, name in zip(list(graph.output), outputs, strict=True):
        elem_type = value.type.tensor_type.elem_type
        if name in int64_outputs:
            elem_type = onnx.TensorProto.INT64
            node = onnx.helper.make_node(
                "Cast", [value.name], [name], to=elem_type, name=f"{name}_int64"
            )
        else:
            node = onnx.helper.make_node("Identity", [value.name], [name], name=f"{name}_output")
        graph.node.append(node)
        new_outputs.append(onnx.helper.make_tensor_value_info(name, elem_type, _dims(value)))
    del graph.output[:]
    graph.output.extend(new_outputs)

    renames = dict(zip([v.name for v in graph.input], kept, strict=True))
    _rename_uses(graph, renames)
    new_inputs = []
    for spec, name in zip(specs, inputs, strict=True):
        elem_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
        dims = [d if isinstance(d, int) else str(d) for d in spec.shape]
        new_inputs.append(onnx.helper.make_tensor_value_info(name, elem_type, dims))
    del graph.input[:]
    graph.input.extend(new_inputs)
    # the converter's value_info holds stale entries ([1, 1] for a [B, 1] tensor); re-infer them
    del graph.value_info[:]
    with contextlib.suppress(Exception):  # inference is an annotation; the model runs without it
        model.CopyFrom(onnx.shape_inference.infer_shapes(model))


def _dims(value: Any) -> list:
    shape = value.type.tensor_type.shape
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in shape.dim]


def _rename_uses(graph: Any, renames: dict[str, str]) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for attr in node.attribute:  # subgraphs (If / Loop / Scan bodies) see outer names
            if attr.HasField("g"):
                _rename_uses(attr.g, renames)
            for sub in attr.graphs:
                _rename_uses(sub, renames)


def _metadata(
    policy: Policy, carry: list[CarryLeaf], fingerprint: str, batch: int | None, converter: str
) -> dict[str, Any]:
    spec = policy.spec
    meta: dict[str, Any] = {
        "format": "policyfit-onnx/1",
        "policyfit_version": __version__,
        "algorithm": policy.name,
        "config": policy.algo.config.to_dict(),
        "obs_dim": spec.observation_dim,
        "action_dim": spec.action_dim,
        "action_space": "discrete" if spec.discrete else "continuous",
        "action_dtype": "int64" if spec.discrete else "float32",
        "deterministic": True,
        "batch": "dynamic" if batch is None else batch,
        "carry": [dataclasses.asdict(c) for c in carry],
        "policy_fingerprint": fingerprint,
        "converter": converter,
    }
    if spec.discrete:
        meta["num_actions"] = spec.action_dim
    else:
        meta["action_low"] = list(spec.action_low)
        meta["action_high"] = list(spec.action_high)
    return meta


def _set_metadata(model: Any, meta: dict[str, Any]) -> None:
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- checking
def _session(path: Path) -> Any:
    ort = _onnxruntime()
    if not path.is_file():
        raise PolicyfitError("no such ONNX model", path=str(path), field="model")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; runtime failures are raised, not logged
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise PolicyfitError(
            f"onnxruntime cannot load it: {_one_line(exc)}", path=str(path)
        ) from None


def _verify(
    model: Any,
    reference: Callable,
    policy: Policy,
    carry: list[CarryLeaf],
    batch: int | None,
    path: Path,
) -> None:
    """Run ``model`` with onnxruntime on random inputs and compare with ``reference`` (JAX)."""
    import jax

    ort = _onnxruntime()
    rows = batch or VERIFY_BATCH
    rng = np.random.default_rng(0)
    spec = policy.spec
    feeds: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        if value.name == OBS_INPUT:
            mean = np.asarray(spec.obs_mean or 0.0, dtype=np.float64)
            std = np.maximum(np.asarray(spec.obs_std or 1.0, dtype=np.float64), 1e-3)
            obs = rng.normal(mean, std, size=(rows, spec.observation_dim))
            feeds[value.name] = obs.astype(np.float32)
        elif value.name == REWARD_INPUT:
            feeds[value.name] = rng.normal(size=rows).astype(np.float32)
        else:
            leaf = next(c for c in carry if c.name == value.name)
            feeds[value.name] = np.broadcast_to(
                np.asarray(leaf.initial, dtype=leaf.dtype), (rows, *leaf.shape)
            ).copy()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        got = session.run(None, feeds)
    except Exception as exc:  # onnxruntime's own exception types
        raise PolicyfitError(
            f"the converted model does not run in onnxruntime: {_one_line(exc)}; this is a "
            "converter limitation, please report it (--debug shows the traceback)",
            path=str(path),
            field="format",
        ) from exc
    want = jax.jit(reference, compiler_options=compiler_options(True))(
        *(feeds[v.name] for v in model.graph.input)
    )
    for value, a, b in zip(model.graph.output, got, want, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
        if a.shape != b.shape or not np.isfinite(diff) or diff > TOLERANCE:
            raise PolicyfitError(
                f"the converted model's {value.name!r} differs from JAX (shape {a.shape} vs "
                f"{b.shape}, max abs difference {diff:.3g}); this is a converter limitation, "
                "please report it",
                path=str(path),
                field="format",
            )


class _Tally:
    def __init__(self, discrete: bool):
        self.discrete = discrete
        self.max_diff = 0.0
        self.mismatches = 0

    def actions(self, got: np.ndarray, want: np.ndarray) -> None:
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            raise PolicyfitError(
                f"the model's actions have shape {got.shape}, the policy's {want.shape}",
                field="action",
            )
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        diff = diff.reshape(len(diff), -1).max(axis=1) if diff.size else diff
        self.max_diff = max(self.max_diff, float(np.max(diff, initial=0.0)))
        self.mismatches += int(np.sum(diff > (0 if self.discrete else TOLERANCE)))

    def arrays(self, got: list, want: list) -> None:
        for a, b in zip(got, want, strict=True):
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            self.max_diff = max(self.max_diff, float(np.max(np.abs(a - b), initial=0.0)))

    def result(self, n: int) -> CheckResult:
        return CheckResult(n, self.max_diff, self.mismatches, self.discrete)


def _leaves(carry: Any) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(carry)]


def _pad(chunk: np.ndarray, size: int) -> np.ndarray:
    """``chunk`` with its last row repeated up to ``size`` rows (a fixed-batch model's input)."""
    if len(chunk) == size:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])


# --------------------------------------------------------------------------- writing
def _check_writable(out: Path) -> None:
    """Fail before the conversion, not after it, when ``out`` cannot be written."""
    if out.is_dir():
        raise PolicyfitError(
            "is a directory; give the .onnx file to write", path=str(out), field="out"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolicyfitError(
            f"cannot create its folder ({exc.strerror or type(exc).__name__}); choose a "
            "writable --out",
            path=str(out),
            field="out",
        ) from None
    if not os.access(out.parent, os.W_OK):
        raise PolicyfitError(
            "its folder is not writable; choose a writable --out", path=str(out), field="out"
        )


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyfitError(
            f"cannot write the model ({reason}); choose a writable --out",
            path=str(path),
            field="out",
        ) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


__all__ = [
    "CarryLeaf",
    "CheckResult",
    "carry_leaves",
    "check_observations",
    "check_onnx",
    "export_onnx",
    "observe_reward_path",
    "policy_fingerprint",
    "read_metadata",
]
