"""``policyfit export --format onnx``: every registered algorithm's policy, run by onnxruntime on
10,000 real observations, acts as :func:`policyfit.load_policy` does (max abs difference <= 1e-5;
discrete actions identical), carry-aware policies step and observe rewards from ONNX alone, and
the CLI exports and checks a trained run.

Policies are freshly initialized networks (hidden layers of 32), saved with ``save_policy``:
conversion does not depend on how the parameters were learned, and initialization is seconds where
training is minutes. Observations are real: Pendulum-v1 (continuous) and CartPole-v1 (discrete)
data collected here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from pendulum_data import pendulum_dataset
from policyfit.algos.base import DatasetSpec
from policyfit.algos.policy import build_algorithm, save_policy
from policyfit.algos.registry import ALGORITHMS
from policyfit.cli.main import cli
from policyfit.envs.datasets import make_dataset
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.export.onnx import check_onnx, export_onnx, observe_reward_path, read_metadata
from policyfit.training.rundir import load_policy

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
# not importorskip: importing jax2onnx turns on jax_dynamic_shapes for the whole process (the
# export puts it back; an import here at collection would break later tests in this worker)
if importlib.util.find_spec("jax2onnx") is None:
    pytest.skip(
        "jax2onnx is not installed (pip install 'policyfit[export]')", allow_module_level=True
    )

N = 10_000
SMALL = {"hidden_dims": (32, 32)}
# algorithms whose networks are not MLPs take their own small sizes
SMALL_FOR = {
    "dt": {"embed_dim": 16, "n_layer": 1, "context_length": 4},
    "doc": {
        "embed_dim": 16,
        "n_layer": 1,
        "context_length": 4,
        "latent_dim": 4,
        "mlp_hidden": (16, 16),
        "num_latent_samples": 4,
    },
    "vgps": {
        "base_algorithm": "bc",
        "base_config": {"policy": "gaussian", **SMALL},
        "critic_config": SMALL,
    },
}
# algorithms the converter cannot export yet, and why (checked: the export fails with this)
NOT_EXPORTABLE = {
    "vgps": (
        "bitcast_convert_type",
        "V-GPS samples K actions with JAX's random generator inside the policy; jax2onnx 0.8.1 "
        "converts neither the key derivation nor threefry",
    ),
}
# (registry name, config overrides): every registered algorithm, plus the act paths a config
# switches (IQL's deterministic actor, RvS-R's fixed target)
CASES = [(name, {}) for name in sorted(ALGORITHMS)] + [
    ("iql", {"deterministic_actor": True}),
    ("rvs_r", {"update_target": False}),
]


@pytest.fixture(scope="module")
def pendulum():
    ds = pendulum_dataset(episodes=N // 200)  # 200 steps per episode
    assert len(ds) == N
    return ds


@pytest.fixture(scope="module")
def cartpole():
    return make_dataset("cartpole-medium", size=N, seed=0)


def saved_policy(name, overrides, dataset, directory, seed=0):
    spec = DatasetSpec.from_dataset(dataset)
    algo = build_algorithm(name, {**SMALL_FOR.get(name, SMALL), **overrides}, spec)
    # jitted as the trainer does: one compiled program instead of hundreds of eager ops
    state = jax.jit(algo.init, static_argnums=0)(spec, jax.random.PRNGKey(seed))
    return save_policy(directory, algo, spec, algo.policy_params(state))


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("name", "overrides"), CASES, ids=[n + "".join(f"-{k}" for k in o) for n, o in CASES]
)
def test_every_algorithm_matches_load_policy_on_10000_dataset_observations(
    name, overrides, pendulum, cartpole, tmp_path
):
    discrete = not ALGORITHMS[name].supports_continuous
    data = cartpole if discrete else pendulum
    policy_dir = saved_policy(name, overrides, data, tmp_path / "policy")
    if name in NOT_EXPORTABLE:
        primitive, reason = NOT_EXPORTABLE[name]
        with pytest.raises(PolicyfitError, match=f"cannot convert this policy.*{primitive}"):
            export_onnx(policy_dir, tmp_path / f"{name}.onnx")
        pytest.skip(f"{name}: {reason}")
    out = export_onnx(policy_dir, tmp_path / f"{name}.onnx")
    policy = load_policy(policy_dir)
    obs = data.observations.astype(np.float32)
    step = session(out)
    assert step.get_inputs()[0].name == "obs" and step.get_outputs()[0].name == "action"
    assert step.get_inputs()[0].shape == ["B", obs.shape[1]]  # dynamic batch

    if not policy.stateful:
        (got,) = step.run(["action"], {"obs": obs})
        want, _ = policy.act(obs, ())
        if discrete:
            assert got.dtype == np.int64 and got.shape == (N,)
            np.testing.assert_array_equal(got, want)
            assert len(np.unique(want)) > 1  # a policy that always picks one action proves little
        else:
            assert got.dtype == np.float32 and got.shape == (N, 1)
            assert np.max(np.abs(got - want)) <= 1e-5
            assert np.std(want) > 1e-3
        return

    if name != "rvs_r":  # a sequence model (DT): its context filled from consecutive steps
        _check_sequence_model(policy, step, observe_reward_path(out), data)
        return

    # RvS-R: the step function on every observation with carries spread over an episode
    rng = np.random.default_rng(0)
    start = np.asarray(policy.initial_carry(N)["return_to_go"])
    carry = {
        "return_to_go": (start + rng.uniform(0, 1500, N)).astype(np.float32),
        "timestep": rng.integers(0, 200, N).astype(np.int32),
    }
    assert [i.name for i in step.get_inputs()] == ["obs", "return_to_go", "timestep"]
    action, next_rtg, next_t = step.run(None, {"obs": obs, **carry})
    want, want_carry = policy.act(obs, carry)
    assert np.max(np.abs(action - want)) <= 1e-5 and np.std(want) > 1e-3
    np.testing.assert_array_equal(next_t, want_carry["timestep"])
    np.testing.assert_array_equal(next_rtg, want_carry["return_to_go"])
    assert next_t.dtype == np.int32

    observe = session(observe_reward_path(out))
    assert [i.name for i in observe.get_inputs()] == ["return_to_go", "timestep", "reward"]
    reward = data.rewards.astype(np.float32)
    got = observe.run(None, {**want_carry, "reward": reward})
    expected = policy.observe_reward(want_carry, reward)
    np.testing.assert_allclose(got[0], expected["return_to_go"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got[1], expected["timestep"])
    if overrides.get("update_target") is False:  # the fixed target ignores rewards
        np.testing.assert_array_equal(got[0], want_carry["return_to_go"])
    else:
        np.testing.assert_allclose(got[0], want_carry["return_to_go"] - reward, atol=1e-3)


def _check_sequence_model(policy, step, observe_path, data, steps=6, rows=N // 5):
    """Fill the context past its length (the window shifts) with ``steps`` consecutive dataset
    transitions per row, then one ``act`` and one ``observe_reward`` in ONNX and in policyfit:
    the action and every next-carry leaf agree. ``rows`` parallel rows (a fifth of the data: the
    ``steps`` context-filling calls of a transformer on all 10,000 cost most of this test), so
    ``rows + steps`` consecutive observations."""
    obs = data.observations[: rows + steps].astype(np.float32)
    reward = data.rewards[: rows + steps].astype(np.float32)
    carry = policy.initial_carry(rows)
    for t in range(steps):
        _, carry = policy.act(obs[t : t + rows], carry)
        carry = policy.observe_reward(carry, reward[t : t + rows])
    names = [i.name for i in step.get_inputs()]
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(carry)]
    assert names[0] == "obs" and len(names) == 1 + len(leaves)
    now = obs[steps : steps + rows]
    got = step.run(None, {"obs": now, **dict(zip(names[1:], leaves, strict=True))})
    want, want_carry = policy.act(now, carry)
    assert np.max(np.abs(got[0] - np.asarray(want))) <= 1e-5 and np.std(want) > 1e-3
    for have, leaf in zip(got[1:], jax.tree_util.tree_leaves(want_carry), strict=True):
        np.testing.assert_allclose(have, np.asarray(leaf), rtol=0, atol=1e-5)
    observe = session(observe_path)
    paid = reward[steps : steps + rows]
    out = observe.run(None, {**dict(zip(names[1:], got[1:], strict=True)), "reward": paid})
    expected = jax.tree_util.tree_leaves(policy.observe_reward(want_carry, paid))
    for have, leaf in zip(out, expected, strict=True):
        np.testing.assert_allclose(have, np.asarray(leaf), rtol=0, atol=1e-4)


def test_an_episode_runs_from_onnx_alone_as_it_does_in_policyfit(pendulum, tmp_path):
    """Ten steps of 3 parallel RvS-R episodes driven only by the two models and the metadata."""
    policy_dir = saved_policy("rvs_r", {}, pendulum, tmp_path / "policy", seed=3)
    out = export_onnx(policy_dir, tmp_path / "rvs.onnx", target_return=-300.0)
    meta = read_metadata(out)
    assert meta["carry"] == [
        {"name": "return_to_go", "dtype": "float32", "shape": [], "initial": -300.0},
        {"name": "timestep", "dtype": "int32", "shape": [], "initial": 0},
    ]
    step, observe = session(out), session(observe_reward_path(out))
    carry = {c["name"]: np.full((3, *c["shape"]), c["initial"], c["dtype"]) for c in meta["carry"]}
    policy = load_policy(policy_dir, target_return=-300.0)
    ref = policy.initial_carry(3)
    for t in range(10):
        obs = pendulum.observations[t * 3 : t * 3 + 3].astype(np.float32)
        action, *nxt = step.run(None, {"obs": obs, **carry})
        carry = dict(zip(carry, nxt, strict=True))
        want, ref = policy.act(obs, ref)
        reward = np.float32([-1.0, -2.5, -0.25])
        carry = dict(zip(carry, observe.run(None, {**carry, "reward": reward}), strict=True))
        ref = policy.observe_reward(ref, reward)
        assert np.max(np.abs(action - want)) <= 1e-5
    assert carry["timestep"].tolist() == [10, 10, 10]
    np.testing.assert_allclose(carry["return_to_go"], [-290.0, -275.0, -297.5], rtol=1e-6)


def test_metadata_fingerprint_int64_actions_and_a_fixed_batch(cartpole, tmp_path):
    policy_dir = saved_policy("dqn", {}, cartpole, tmp_path / "policy")
    out = export_onnx(policy_dir, tmp_path / "nested" / "dqn.onnx", batch=1)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    digest = hashlib.sha256((policy_dir / "params.msgpack").read_bytes()).hexdigest()
    assert props["policy_fingerprint"] == f"sha256:{digest}"
    assert props["algorithm"] == "dqn" and props["action_space"] == "discrete"
    assert json.loads(props["obs_dim"]) == 4 and json.loads(props["num_actions"]) == 2
    assert json.loads(props["carry"]) == [] and json.loads(props["batch"]) == 1
    assert props["converter"].startswith("jax2onnx 0.8.")
    assert props["policyfit_version"] == read_metadata(out)["policyfit_version"]
    (action,) = model.graph.output
    assert action.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 4]
    assert not observe_reward_path(out).exists()  # stateless: one model
    # check_onnx feeds a fixed-batch model one row at a time and finds no difference
    obs = cartpole.observations[:300]
    result = check_onnx(out, load_policy(policy_dir), obs)
    assert result.ok and result.observations == 300 and result.action_mismatches == 0


def test_export_leaves_jax_as_it_found_it(cartpole, tmp_path):
    """jax2onnx replaces jnp.shape when its plugins load (flax linen under jit then fails),
    turns jax_enable_x64 off and jax_dynamic_shapes on; all are put back."""
    shape = jnp.shape
    policy_dir = saved_policy("discrete_bc", {}, cartpole, tmp_path / "policy")
    export_onnx(policy_dir, tmp_path / "a.onnx", verify=False)
    assert jnp.shape is shape
    assert jax.config.jax_enable_x64 is False
    assert jax.config.jax_dynamic_shapes is False  # jax2onnx turns it on when imported
    # ahead-of-time compiled calls raise NotImplementedError under dynamic shapes
    compiled = jax.jit(lambda x: x * 2).lower(jnp.ones(3)).compile()
    assert compiled(jnp.ones(3)).tolist() == [2.0, 2.0, 2.0]
    # a fresh flax network still compiles under jit after an export
    fresh = saved_policy("crr", {"hidden_dims": (8,)}, cartpole, tmp_path / "crr")
    actions = load_policy(fresh)(cartpole.observations[:4])
    assert actions.shape == (4,)


def test_check_onnx_sees_a_model_of_other_parameters(pendulum, tmp_path):
    """The check can fail: the model of one initialization against the policy of another."""
    out = export_onnx(saved_policy("bc", {}, pendulum, tmp_path / "a", seed=0), tmp_path / "a.onnx")
    other = load_policy(saved_policy("bc", {}, pendulum, tmp_path / "b", seed=1))
    result = check_onnx(out, other, pendulum.observations[:500])
    assert not result.ok and result.max_abs_diff > 1e-2 and result.action_mismatches > 0


def test_errors_name_the_thing_and_what_to_do(pendulum, tmp_path):
    policy_dir = saved_policy("bc", {}, pendulum, tmp_path / "policy")
    with pytest.raises(PolicyfitError, match="no policy found"):
        export_onnx(tmp_path / "missing", tmp_path / "x.onnx")
    with pytest.raises(PolicyfitError, match="out: is a directory"):
        export_onnx(policy_dir, tmp_path)
    with pytest.raises(ConfigError, match="batch: expected 'dynamic' or a positive batch size"):
        export_onnx(policy_dir, tmp_path / "x.onnx", batch=0)
    with pytest.raises(ConfigError, match="target_return: this policy has no return target"):
        export_onnx(policy_dir, tmp_path / "x.onnx", target_return=10.0)
    with pytest.raises(PolicyfitError, match="no policyfit metadata"):
        bare = tmp_path / "bare.onnx"
        bare.write_bytes(
            onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])).SerializeToString()
        )
        read_metadata(bare)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_exports_a_trained_run_and_checks_it_on_its_dataset(tmp_path):
    import policyfit
    from policyfit.data.io import save_dataset

    data = save_dataset(pendulum_dataset(episodes=3), tmp_path / "pendulum.npz")
    run = policyfit.train(
        "rvs_r",
        str(data),
        steps=40,
        out=tmp_path / "run",
        config={**SMALL, "batch_size": 64},
        eval_every=0,
        eval_episodes=1,
        progress=False,
        fast_compile=True,
        fuse=20,
    )
    runner = CliRunner()
    out = tmp_path / "export" / "rvs.onnx"
    args = ["export", str(run.run_dir), "--format", "onnx", "--out", str(out), "--check", "2000"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (rvs_r, continuous actions, batch dynamic" in result.output
    assert "carry: return_to_go, timestep" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("check:"))
    assert f"2000 observations from {data}" in line
    assert float(line.split("max abs difference ")[1].split()[0]) <= 1e-5
    assert read_metadata(out)["policy_fingerprint"].startswith("sha256:")

    bad = runner.invoke(cli, ["export", str(tmp_path / "nope"), "--out", str(out)])
    assert bad.exit_code == 2
    assert bad.output.startswith(f"error: {tmp_path / 'nope'}: policy: no policy found")
    denied = runner.invoke(cli, ["export", str(run.run_dir), "--out", "/proc/forbidden/p.onnx"])
    assert denied.exit_code == 2
    assert denied.output.startswith("error: /proc/forbidden/p.onnx: out: cannot create its folder")
    help_text = runner.invoke(cli, ["export", "--help"]).output
    assert "policyfit export runs/iql-hopper-medium-s0 --format onnx --out iql.onnx" in help_text


@pytest.mark.parametrize(
    "index",
    [
        lambda x: x[:, 1:],
        lambda x: x[:, :, 1],
        lambda x: x[..., 0],
        lambda x: x[:, -1],
        lambda x: x[:, 1:3],
    ],
    ids=["[:, 1:]", "[:, :, 1]", "[..., 0]", "[:, -1]", "[:, 1:3]"],
)
def test_static_gathers_are_replayed_as_slices_with_the_same_values(index):
    """Under a symbolic batch, static indexing traces to a ``gather`` (which jax2onnx 0.8.1
    converts with the wrong rank); the exporter's re-play emits it as a slice instead."""
    from jax import export

    from policyfit.export.onnx import _inline_eval

    (b,) = export.symbolic_shape("B")
    closed = jax.make_jaxpr(index)(jax.ShapeDtypeStruct((b, 5, 3), jnp.float32))
    assert "gather" in str(closed.jaxpr)
    x = jnp.arange(4 * 5 * 3, dtype=jnp.float32).reshape(4, 5, 3)
    replay = jax.make_jaxpr(lambda x: _inline_eval(closed.jaxpr, closed.consts, [x]))(x)
    assert "gather" not in str(replay.jaxpr)
    (got,) = _inline_eval(closed.jaxpr, closed.consts, [x])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(index(x)))
