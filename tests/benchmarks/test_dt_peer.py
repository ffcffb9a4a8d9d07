"""benchmarks/dt_peer.py's pure helpers: the episode cut both libraries make, the einsum FLOP count,
the throughput summary (hand-made rows), the mapping onto d3rlpy's config (a recording stand-in);
and, with the d3rlpy venv present, d3rlpy's episodes of a hand-made ``.npz`` against hand values.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench_modules import BENCH, benchmark

D3RLPY_PYTHON = BENCH / ".venv-d3rlpy" / "bin" / "python"


@pytest.fixture(scope="module")
def peer():
    with benchmark("dt_peer") as module:
        yield module


# 7 transitions: an episode ending in a terminal (0-2), one cut by a timeout (3-4), one more
# terminal (5-6, flagged both ways at its end)
TERMINALS = np.array([0, 0, 1, 0, 0, 0, 1], np.float32)
TIMEOUTS = np.array([0, 0, 0, 0, 1, 0, 1], np.float32)
REWARDS = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 0.5, 0.25], np.float32)


def test_episode_bounds_cut_at_terminals_and_timeouts(peer):
    starts, ends = peer.episode_bounds(TERMINALS, TIMEOUTS)
    assert starts.tolist() == [0, 3, 5]
    assert ends.tolist() == [2, 4, 6]


def test_episode_bounds_reject_an_unfinished_tail(peer):
    with pytest.raises(ValueError, match="the last transition ends no episode"):
        peer.episode_bounds(np.array([1, 0, 0]), np.array([0, 0, 0]))


def test_episode_summary_by_hand(peer):
    summary = peer.episode_summary(REWARDS, TERMINALS, TIMEOUTS)
    assert summary == {
        "episodes": 3,
        "lengths": [3, 2, 2],
        "returns": [6.0, 30.0, 0.75],
        "terminated": [True, False, True],
    }


def test_d3rlpy_flags_let_the_terminal_win(peer):
    terminals, timeouts = peer.d3rlpy_flags(TERMINALS, TIMEOUTS)
    assert terminals.dtype == timeouts.dtype == np.float32
    assert terminals.tolist() == [0, 0, 1, 0, 0, 0, 1]
    assert timeouts.tolist() == [0, 0, 0, 0, 1, 0, 0]  # the last step: terminal, not timeout


def test_gemm_flops_counts_every_index_once(peer):
    assert peer.gemm_flops("mk,kn->mn", (3840, 128), (128, 512)) == 2 * 3840 * 128 * 512
    # a weight gradient: batch and tokens contracted
    assert peer.gemm_flops("btk,btn->kn", (64, 60, 512), (64, 60, 128)) == 2 * 64 * 60 * 512 * 128
    assert peer.gemm_flops("btk,bsk->bts", (2, 3, 4), (2, 5, 4)) == 2 * 2 * 3 * 4 * 5


def test_summarize_throughput_best_rounds_ratios_and_gflops(peer):
    pf = {"rounds": [3.0, 4.0], "flops_per_update_xla": 2e9}
    d3 = [
        {"torch_threads": 1, "updates_per_second": 2.0, "flops_per_update_torch_matmul": 1.9e9},
        {"torch_threads": 2, "updates_per_second": 0.5},
        {"torch_threads": 1, "updates_per_second": 1.0},
        {"torch_threads": 2, "updates_per_second": float("nan")},  # no timed update: left out
        {"error": "worker failed"},
    ]
    t = peer.summarize_throughput(pf, d3, peak=100.0)
    assert t["policyfit_updates_per_second"] == 4.0
    assert t["d3rlpy_updates_per_second"] == 2.0
    assert t["d3rlpy_best_threads"] == "1"
    assert t["d3rlpy_updates_per_second_by_threads"] == {"1": 2.0, "2": 0.5}
    assert t["ratio"] == 2.0
    assert t["ratio_by_threads"] == {"1": 2.0, "2": 8.0}
    assert t["policyfit_gflops_per_second"] == pytest.approx(8.0)
    assert t["d3rlpy_gflops_per_second"] == pytest.approx(4.0)
    assert t["flops_per_update_torch_matmul"] == 1.9e9


def test_summarize_throughput_without_d3rlpy(peer):
    t = peer.summarize_throughput({"rounds": [3.0], "flops_per_update_xla": 1e9}, [], peak=10.0)
    assert t["ratio"] is None and t["d3rlpy_gflops_per_second"] is None
    assert t["policyfit_gflops_per_second"] == pytest.approx(3.0)


def test_d3rlpy_config_is_the_papers_network(peer):
    """A stand-in records what the d3rlpy config is built with."""

    def record(kind):
        return lambda *args, **kw: {"kind": kind, "args": args, **kw}

    fake = SimpleNamespace(
        algos=SimpleNamespace(DecisionTransformerConfig=record("dt")),
        models=SimpleNamespace(VectorEncoderFactory=record("encoder")),
        optimizers=SimpleNamespace(
            AdamWFactory=record("adamw"), WarmupSchedulerFactory=record("warmup")
        ),
        preprocessing=SimpleNamespace(
            StandardObservationScaler=record("standard"), MultiplyRewardScaler=record("multiply")
        ),
        PositionEncodingType=SimpleNamespace(SIMPLE="simple"),
    )
    cfg = peer.d3rlpy_config(fake, activation="relu")
    assert (cfg["batch_size"], cfg["learning_rate"], cfg["context_size"]) == (64, 1e-4, 20)
    assert (cfg["num_layers"], cfg["num_heads"], cfg["max_timestep"]) == (3, 1, 1000)
    assert cfg["attn_dropout"] == cfg["resid_dropout"] == cfg["embed_dropout"] == 0.1
    assert cfg["activation_type"] == "relu"
    assert cfg["encoder_factory"]["hidden_units"] == [128]
    assert cfg["encoder_factory"]["exclude_last_activation"] is True
    optim = cfg["optim_factory"]
    assert (optim["kind"], optim["weight_decay"], optim["clip_grad_norm"]) == ("adamw", 1e-4, 0.25)
    assert optim["lr_scheduler_factory"]["warmup_steps"] == 10_000
    assert cfg["observation_scaler"]["kind"] == "standard"
    assert cfg["reward_scaler"]["args"] == (0.001,)
    assert cfg["position_encoding_type"] == "simple"


@pytest.mark.skipif(not D3RLPY_PYTHON.exists(), reason="no d3rlpy venv (make bench-venv)")
def test_d3rlpy_reads_the_same_episodes(peer, tmp_path, monkeypatch):
    monkeypatch.setattr(peer, "WORK", tmp_path)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        observations=np.arange(7 * 2, dtype=np.float32).reshape(7, 2),
        actions=np.zeros((7, 1), np.float32),
        rewards=REWARDS,
        terminals=TERMINALS,
        timeouts=TIMEOUTS,
    )
    got = peer.run_d3rlpy(str(D3RLPY_PYTHON), {"mode": "episodes", "data": str(path)})
    assert got == {
        "episodes": 3,
        "lengths": [3, 2, 2],
        "returns": [6.0, 30.0, 0.75],
        "terminated": [True, False, True],
    }


def test_weight_grad_ms_by_hand(peer):
    # 12 of 2*3840*128*128 FLOPs and 6 of 2*3840*128*512: 4,529,848,320 FLOPs in all
    rates = {name: 100.0 for name in peer.GEMMS}
    assert peer.weight_grad_ms(rates) == pytest.approx(45.2984832)
    rates["dW mlp down [64,60,512]^T[64,60,128]"] = 50.0  # 3 x 503,316,480 FLOPs at half speed
    assert peer.weight_grad_ms(rates) == pytest.approx(45.2984832 + 15.0994944)
