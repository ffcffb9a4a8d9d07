"""policyfit serve's HTTP API against a real uvicorn server and a real HTTP client."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
import numpy as np
import pytest
from scipy.stats import truncnorm
from serving_helpers import BOX, N_ACTIONS, OBS_DIM, running

import policyfit
from policyfit.errors import ConfigError
from policyfit.serving.app import PolicyServer
from policyfit.serving.decision_log import read_log_file


@pytest.fixture(scope="module")
def greedy_url(discrete_policy, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("greedy-log")
    server = PolicyServer.from_path(discrete_policy, "greedy", log_dir=log_dir, max_batch=8)
    with running(server) as url:
        yield url, server


def test_single_and_batch_act_match_the_policy_and_are_logged(greedy_url, discrete_policy):
    url, server = greedy_url
    policy = policyfit.load_policy(discrete_policy)
    obs = np.array([[0.5, -1.0, 2.0], [3.0, 0.25, -0.5]], np.float32)
    with httpx.Client(base_url=url) as client:
        one = client.post("/act", json={"obs": obs[0].tolist(), "request_id": "one"})
        batch = client.post(
            "/act", json={"obs": obs.tolist(), "episode_id": ["e1", "e2"], "step": [0, 4]}
        )
    assert one.status_code == 200 and batch.status_code == 200
    one, batch = one.json(), batch.json()
    assert one == {
        "request_id": "one",
        "action": int(policy(obs[0])),
        "propensity": 1.0,
        "policy": hashlib.sha256((discrete_policy / "params.msgpack").read_bytes()).hexdigest(),
    }
    assert batch["action"] == policy(obs).tolist() and batch["propensity"] == [1.0, 1.0]
    assert uuid.UUID(batch["request_id"]).version == 4

    records = read_log_file(server.log.path).records
    mine = [r for r in records if r["request_id"] in ("one", batch["request_id"])]
    assert [(r["request_id"], r["index"]) for r in mine] == [
        ("one", 0),
        (batch["request_id"], 0),
        (batch["request_id"], 1),
    ]
    first, _, last = mine
    for field in ("time", "time_iso", "obs", "action", "propensity", "policy", "explore"):
        assert field in first
    assert "episode_id" not in first and "step" not in first
    assert (last["episode_id"], last["step"]) == ("e2", 4)
    np.testing.assert_array_equal(np.asarray(last["obs"], np.float32), obs[1])  # exact float32
    assert (last["action"], last["propensity"], last["explore"]) == (
        batch["action"][1],
        1.0,
        "greedy",
    )
    assert first["policy"] == one["policy"] and first["time_iso"].endswith("Z")


BAD_REQUESTS = [
    (b"", 400, "empty body"),
    (b'{"obs": [1, 2', 400, "invalid JSON"),
    (b"[1, 2, 3]", 422, "the body is a list"),
    (b'{"observation": [1, 2, 3]}', 422, "unknown field 'observation'"),
    (b'{"request_id": "x"}', 422, "obs: missing"),
    (b'{"obs": []}', 422, "obs: empty"),
    (b'{"obs": [[]]}', 422, "0 numbers per observation; the policy expects 3"),
    (b'{"obs": [1, 2]}', 422, "obs: 2 numbers per observation; the policy expects 3"),
    (b'{"obs": [[1, 2, 3], [1, 2]]}', 422, "rows of different lengths [2, 3]"),
    (b'{"obs": [1, "2", 3]}', 422, "obs[1] is a string ('2')"),
    (b'{"obs": [[1, 2, 3], [1, 2, null]]}', 422, "obs[1][2] is null"),
    (b'{"obs": [1, true, 3]}', 422, "obs[1] is true/false"),
    (b'{"obs": [1, NaN, 3]}', 422, "obs[1] is not a finite number"),
    (b'{"obs": [[1, 2, 3], [1, 2, -Infinity]]}', 422, "obs[1][2] is not a finite number"),
    (b'{"obs": [1, 2, 1e39]}', 422, "obs[2] is not a finite number"),
    (b'{"obs": [[[1, 2, 3]]]}', 422, "nested 3 deep"),
    (b'{"obs": ' + json.dumps([[0, 0, 0]] * 9).encode() + b"}", 422, "at most 8 per request"),
    (b'{"obs": [1, 2, 3], "request_id": 7}', 422, "request_id: is int"),
    (b'{"obs": [[1, 2, 3]], "step": 1}', 422, "step: a batch of 1 observation(s) needs a list"),
    (b'{"obs": [1, 2, 3], "step": -1}', 422, "step: is int -1"),
    (b'{"obs": [1, 2, 3], "reward": 1.0}', 422, "discrete_bc keeps no carry"),
]


@pytest.mark.parametrize("body,status,message", BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_with_a_one_line_message(greedy_url, body, status, message):
    url, server = greedy_url
    before = server.log.records
    response = httpx.post(f"{url}/act", content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert server.log.records == before  # nothing was decided, nothing logged


def test_health_metadata_and_unknown_routes_answer_json(greedy_url, discrete_policy):
    url, _ = greedy_url
    with httpx.Client(base_url=url) as client:
        health = client.get("/health")
        meta = client.get("/metadata").json()
        missing = client.get("/nope")
        wrong_method = client.get("/act")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert (
        meta["fingerprint"]
        == hashlib.sha256((discrete_policy / "params.msgpack").read_bytes()).hexdigest()
    )
    assert meta["algorithm"] == "discrete_bc" and meta["observation_dim"] == OBS_DIM
    assert meta["action_space"] == {"type": "discrete", "n": N_ACTIONS}
    assert meta["explore"] == "greedy" and meta["policyfit_version"] == policyfit.__version__
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert "Not Found" in missing.json()["error"]


def test_epsilon_greedy_propensities_are_exact(discrete_policy):
    eps = 0.3
    server = PolicyServer.from_path(discrete_policy, f"epsilon:{eps}", seed=3)
    policy = policyfit.load_policy(discrete_policy)
    obs = np.random.default_rng(0).normal(size=(1000, OBS_DIM)).astype(np.float32)
    with running(server) as url:
        out = httpx.post(f"{url}/act", json={"obs": obs.tolist()}).json()
    actions, props = np.array(out["action"]), np.array(out["propensity"])
    greedy = policy(obs)
    on_greedy = actions == greedy
    assert np.all(props[on_greedy] == 0.7 + 0.3 / 4)  # (1 - E) + E / K
    assert np.all(props[~on_greedy] == 0.3 / 4)  # E / K
    # a non-greedy action is taken with probability E (K - 1) / K = 0.225
    assert abs((~on_greedy).mean() - 0.225) < 4 * np.sqrt(0.225 * 0.775 / 1000)


def test_sampled_discrete_actions_follow_the_reported_probabilities(discrete_policy):
    server = PolicyServer.from_path(discrete_policy, "sample", seed=0)
    obs = [[0.3, -0.2, 0.9]] * 1000  # one state, many draws
    with running(server) as url, httpx.Client(base_url=url) as client:
        outs = [client.post("/act", json={"obs": obs}).json() for _ in range(4)]
    actions = np.concatenate([o["action"] for o in outs])
    props = np.concatenate([o["propensity"] for o in outs])
    probability = {a: props[actions == a][0] for a in range(N_ACTIONS)}
    for a in range(N_ACTIONS):
        assert np.allclose(props[actions == a], probability[a])  # same state, same probability
        p = probability[a]
        assert abs((actions == a).mean() - p) < 4 * np.sqrt(p * (1 - p) / actions.size)
    assert abs(sum(probability.values()) - 1.0) < 1e-6


def test_gaussian_exploration_reports_the_truncated_normal_density(continuous_policy):
    sigma = 0.25
    server = PolicyServer.from_path(continuous_policy, f"gaussian:{sigma}", seed=1)
    policy = policyfit.load_policy(continuous_policy)
    obs = np.random.default_rng(1).normal(size=(64, OBS_DIM)).astype(np.float32)
    with running(server) as url:
        out = httpx.post(f"{url}/act", json={"obs": obs.tolist()}).json()
    actions = np.array(out["action"])
    mean = policy(obs).astype(np.float64)
    scale = sigma * (BOX[1] - BOX[0]) / 2  # sigma is a fraction of the half-width
    a, b = (BOX[0] - mean) / scale, (BOX[1] - mean) / scale
    expected = np.exp(truncnorm.logpdf(actions, a, b, loc=mean, scale=scale).sum(axis=1))
    np.testing.assert_allclose(out["propensity"], expected, rtol=1e-9)
    assert np.all((actions >= BOX[0]) & (actions <= BOX[1]))
    assert np.std(actions - mean) == pytest.approx(scale, rel=0.25)


def test_modes_that_do_not_fit_the_policy_are_refused(discrete_policy, continuous_policy, tmp_path):
    from serving_helpers import save_initial_policy

    dqn = save_initial_policy(tmp_path / "dqn", "dqn", {}, True)
    with pytest.raises(ConfigError, match="dqn has no action distribution to sample from"):
        PolicyServer.from_path(dqn, "sample")
    with pytest.raises(ConfigError, match="epsilon-greedy needs discrete actions"):
        PolicyServer.from_path(continuous_policy, "epsilon:0.1")
    with pytest.raises(ConfigError, match="gaussian noise needs continuous actions"):
        PolicyServer.from_path(discrete_policy, "gaussian:0.1")
    with pytest.raises(ConfigError, match="epsilon must lie in"):
        PolicyServer.from_path(discrete_policy, "epsilon:1.5")


def test_a_stateful_policy_keeps_each_episodes_carry(tmp_path):
    from serving_helpers import save_initial_policy

    path = save_initial_policy(tmp_path / "rvs", "rvs_r", {}, False)
    policy = policyfit.load_policy(path)
    server = PolicyServer.from_path(path, "greedy")
    o1, o2 = [0.1, 0.2, 0.3], [1.0, -1.0, 0.5]
    with running(server) as url, httpx.Client(base_url=url) as client:
        client.post("/act", json={"obs": o1, "episode_id": "a", "step": 0})
        second = client.post("/act", json={"obs": o2, "episode_id": "a", "reward": 3.0}).json()
        fresh = client.post("/act", json={"obs": o2}).json()
        orphan = client.post("/act", json={"obs": o2, "reward": 1.0})
    carry = policy.initial_carry(1)
    _, carry = policy.act(np.array([o1]), carry)
    carry = policy.observe_reward(carry, np.array([3.0]))
    expected, _ = policy.act(np.array([o2]), carry)
    np.testing.assert_allclose(second["action"], expected[0], rtol=1e-6)
    start, _ = policy.act(np.array([o2]), policy.initial_carry(1))
    np.testing.assert_allclose(fresh["action"], start[0], rtol=1e-6)
    assert not np.allclose(expected, start)  # the carry made a difference
    assert orphan.status_code == 422 and "reward: needs an episode_id" in orphan.json()["error"]


def test_truncated_noise_near_a_bound_follows_the_truncated_normal(continuous_policy):
    from scipy.stats import kstest

    from policyfit.serving.decide import Decider, parse_explore

    policy = policyfit.load_policy(continuous_policy)
    decider = Decider(policy, parse_explore("gaussian:0.5"), seed=0)
    mean = np.tile([[1.9, -2.0]], (4000, 1))  # at and near the bounds: half the mass cut off
    actions, props = decider._gaussian(mean)
    scale = 0.5 * 2.0
    a, b = (BOX[0] - mean) / scale, (BOX[1] - mean) / scale
    expected = np.exp(truncnorm.logpdf(actions, a, b, loc=mean, scale=scale).sum(axis=1))
    np.testing.assert_allclose(props, expected, rtol=1e-9)
    for d in range(2):
        dist = truncnorm(a[0, d], b[0, d], loc=mean[0, d], scale=scale)
        assert kstest(actions[:, d], dist.cdf).pvalue > 1e-3
