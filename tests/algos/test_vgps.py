"""V-GPS (``vgps``, ``policyfit steer``): a tiny Gaussian BC policy steered by a tiny IQL critic,
both trained on the Pendulum fixture. The steered action is checked against the argmax of the
critic's min-over-heads Q, recomputed in numpy from the critic run's checkpoint, over the K
actions the base policy samples with the split keys; K = 1 is the base policy's own sample."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from click.testing import CliRunner
from flax import serialization

import policyfit
from algos.handnets import critics
from pendulum_data import pendulum_dataset
from policyfit.cli.main import cli
from policyfit.data.io import save_dataset
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.training.checkpoint import list_checkpoints
from policyfit.training.rundir import load_policy
from policyfit.training.steer import steer

SMALL = {"hidden_dims": (32, 32), "batch_size": 64}
TRAIN = dict(steps=40, eval_every=0, eval_episodes=1, progress=False, fast_compile=True, fuse=20)
K = 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vgps")
    data = save_dataset(pendulum_dataset(episodes=3), root / "pendulum.npz")
    bc = policyfit.train(
        "bc", str(data), out=root / "bc", config={**SMALL, "policy": "gaussian"}, **TRAIN
    )
    iql = policyfit.train("iql", str(data), out=root / "iql", config=SMALL, **TRAIN)
    steered = steer(bc.run_dir, iql.run_dir, root / "steered", k=K)
    obs = np.load(data)["observations"][:7].astype(np.float32)
    return {
        "root": root,
        "data": data,
        "bc": bc.run_dir,
        "iql": iql.run_dir,
        "steered": steered,
        "obs": obs,
    }


def q_by_hand(iql_run, obs, actions):
    """min over the target critic's heads, in float64, from the latest checkpoint's raw state."""
    _, folder = list_checkpoints(iql_run)[-1]
    state = serialization.msgpack_restore((folder / "state.msgpack").read_bytes())
    norm, scale = state["obs_norm"], state["action_scale"]
    x = (obs.astype(np.float64) - norm["mean"]) / norm["std"]
    u = (actions.astype(np.float64) - scale["center"]) / scale["half_range"]
    return critics(state["critic_target"], x, u).min(0)


def test_steered_action_is_the_argmax_of_the_critic_over_k_base_samples(runs):
    base = load_policy(runs["bc"])
    steered = load_policy(runs["steered"])
    assert steered.name == "vgps" and not steered.stateful
    key = jax.random.PRNGKey(3)
    got, _ = steered.act(runs["obs"], (), key)
    k_samples, _ = jax.random.split(key)
    cands = np.stack([base.act(runs["obs"], (), k)[0] for k in jax.random.split(k_samples, K)])
    q = np.stack([q_by_hand(runs["iql"], runs["obs"], c) for c in cands])  # [K, B]
    best = q.argmax(0)
    want = cands[best, np.arange(len(best))]
    np.testing.assert_allclose(got, want, atol=1e-6)
    # steering made a choice: the candidates differ and the pick is not always the first
    assert np.ptp(cands, axis=0).min() > 1e-3 and (best != 0).any()
    # deterministic call: the same action twice, and another one for other observations
    a1, a2 = steered(runs["obs"]), steered(runs["obs"])
    np.testing.assert_array_equal(a1, a2)
    assert np.all((a1 >= -2.0) & (a1 <= 2.0))


def test_k1_is_the_base_policys_sample_and_the_round_trip_keeps_the_config(runs, tmp_path):
    one = steer(runs["bc"], runs["iql"], tmp_path / "k1", k=1, temperature=0.5, seed=4)
    policy = load_policy(one)
    key = jax.random.PRNGKey(11)
    got, _ = policy.act(runs["obs"], (), key)
    k_samples, _ = jax.random.split(key)
    want, _ = load_policy(runs["bc"]).act(runs["obs"], (), jax.random.split(k_samples, 1)[0])
    np.testing.assert_allclose(got, want, atol=1e-6)
    cfg = policy.algo.config
    assert (cfg.k, cfg.temperature, cfg.seed, cfg.base_algorithm) == (1, 0.5, 4, "bc")
    assert cfg.base_config["policy"] == "gaussian" and cfg.critic_algorithm == "iql"
    run_cfg = json.loads((one / "config.json").read_text())
    assert run_cfg["algorithm"] == "vgps"
    assert run_cfg["steered"]["critic_step"] == 40 and run_cfg["steered"]["same_dataset"]
    assert run_cfg["dataset"]["env_id"] == "Pendulum-v1"


def test_softmax_temperature_picks_by_q_and_is_argmax_when_cold(runs, tmp_path):
    hot = load_policy(steer(runs["bc"], runs["iql"], tmp_path / "hot", k=K, temperature=1e-6))
    cold = load_policy(runs["steered"])
    key = jax.random.PRNGKey(5)
    # a temperature near 0 puts all the softmax mass on the argmax
    np.testing.assert_allclose(hot.act(runs["obs"], (), key)[0], cold.act(runs["obs"], (), key)[0])


def test_eval_cli_evaluates_the_steered_run(runs):
    result = CliRunner().invoke(cli, ["eval", str(runs["steered"]), "--episodes", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["env_id"] == "Pendulum-v1" and out["episodes"] == 1
    assert -2000.0 < out["return_mean"] < 0.0


def test_cli_steer_and_its_errors(runs, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["steer", str(runs["bc"]), "--critic", str(runs["iql"]), "--k", "3", "--out", str(out)]
    ok = runner.invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"wrote {out} (policy of {runs['bc']} steered by")
    assert "K=3, argmax of Q" in ok.output and "note:" not in ok.output
    assert load_policy(out).algo.config.k == 3

    def error(*argv):
        result = runner.invoke(cli, list(argv))
        assert result.exit_code == 2, result.output
        return result.output

    taken = error(*args)
    assert taken.startswith(f"error: {out}: out: already holds a run")
    not_iql = error(
        "steer", str(runs["bc"]), "--critic", str(runs["bc"]), "--out", str(tmp_path / "x")
    )
    assert not_iql.startswith(f"error: {runs['bc']}: critic: is a 'bc' run; V-GPS re-ranks")
    missing = error("steer", str(tmp_path / "nope"), "--critic", str(runs["iql"]), "-o", "y")
    assert missing.startswith(f"error: {tmp_path / 'nope'}: policy: no policy found")
    again = error("steer", str(runs["steered"]), "--critic", str(runs["iql"]), "-o", "z")
    assert "is already a steered (vgps) policy" in again
    assert "--k" in error(
        "steer", str(runs["bc"]), "--critic", str(runs["iql"]), "--k", "0", "-o", "z"
    )
    help_text = runner.invoke(cli, ["steer", "--help"]).output
    assert "policyfit steer runs/bc --critic runs/iql --k 10 --out runs/bc-steered" in help_text


def test_critic_without_checkpoint_and_other_sizes_are_errors(runs, tmp_path):
    import shutil

    bare = tmp_path / "iql_nockpt"
    shutil.copytree(runs["iql"], bare)
    shutil.rmtree(bare / "checkpoints")
    with pytest.raises(PolicyfitError, match="has no checkpoint") as info:
        steer(runs["bc"], bare, tmp_path / "a")
    assert info.value.field == "critic"
    other = tmp_path / "iql_other"
    shutil.copytree(runs["iql"], other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["spec"]["observation_dim"] = 5
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PolicyfitError, match="the critic's observation_dim is 5, the policy's 3"):
        steer(runs["bc"], other, tmp_path / "b")
    cfg["spec"]["observation_dim"] = 3
    cfg["dataset"]["fingerprint"] = "sha256:other"
    (other / "config.json").write_text(json.dumps(cfg))
    args = ["steer", str(runs["bc"]), "--critic", str(other), "--out", str(tmp_path / "c")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "note: the policy and the critic were trained on different data" in result.output


def test_vgps_is_not_trained(runs):
    with pytest.raises(ConfigError, match="vgps steers trained policies; it is not trained"):
        load_policy(runs["steered"]).algo.update({}, {}, None)
    with pytest.raises(ConfigError, match="names no base policy algorithm"):
        policyfit.train("vgps", str(runs["data"]), out=runs["root"] / "t", **TRAIN)


def test_fresh_vgps_saves_and_loads_and_rejects_bases_it_cannot_steer(runs, tmp_path):
    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.policy import build_algorithm, save_policy
    from policyfit.data.io import load_dataset

    spec = DatasetSpec.from_dataset(load_dataset(runs["data"]))
    small = {"hidden_dims": (32, 32)}
    cfg = {
        "base_algorithm": "bc",
        "base_config": {"policy": "gaussian", **small},
        "critic_config": small,
        "k": 3,
    }
    algo = build_algorithm("vgps", cfg, spec)
    state = algo.init(spec, jax.random.PRNGKey(0))
    saved = save_policy(tmp_path / "fresh", algo, spec, algo.policy_params(state))
    policy = load_policy(saved)
    obs = runs["obs"]
    np.testing.assert_allclose(policy(obs), algo.act(state, obs, ())[0], atol=1e-6)
    with pytest.raises(ConfigError, match="rvs_r keeps a carry between steps"):
        build_algorithm("vgps", {**cfg, "base_algorithm": "rvs_r", "base_config": {}}, spec)
    with pytest.raises(ConfigError, match="'td3bc' has no critic V-GPS can read"):
        build_algorithm("vgps", {**cfg, "critic_algorithm": "td3bc"}, spec)
    with pytest.raises(ConfigError, match="must be >= 1"):
        build_algorithm("vgps", {**cfg, "k": 0}, spec)
