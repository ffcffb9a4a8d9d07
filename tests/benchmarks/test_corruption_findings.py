"""The corruption benchmark's check of the RIQL paper's findings (benchmarks/corruption.py)."""

from __future__ import annotations


def cell(mean):
    return {"mean": mean, "std": 0.0, "n": 1}


def row(bc, td3bc, iql, riql):
    return {"bc": cell(bc), "td3bc": cell(td3bc), "iql": cell(iql), "riql": cell(riql)}


def test_iql_most_robust_among_offline_rl_even_when_bc_is_higher(corruption):
    cells = {
        "walker": {
            "clean": row(bc=30, td3bc=20, iql=40, riql=40),
            "random-rewards": row(bc=30, td3bc=10, iql=12, riql=20),
            "random-dynamics": row(bc=30, td3bc=8, iql=20, riql=45),
        }
    }
    avgs = corruption.condition_averages(cells, ["bc", "td3bc", "iql", "riql"])
    found = {f["claim"].split(" (")[0]: f for f in corruption.check_findings(cells, avgs)}
    offline = found["IQL is the most robust offline RL baseline"]
    assert offline["holds"] is True and offline["numbers"] == {"td3bc": 9.0, "iql": 16.0}
    with_bc = found["IQL is also more robust than BC"]
    assert with_bc["holds"] is False and with_bc["numbers"]["bc"] == 30.0
    assert found["RIQL >= IQL on average under random corruption"]["holds"] is True
    assert found["RIQL's largest gain over IQL is under dynamics corruption"]["holds"] is True


def test_averages_use_only_cells_every_compared_algorithm_finished(corruption):
    # td3bc has an extra (bad) cell that iql lacks: it must not drag td3bc's average down.
    cells = {
        "walker": {
            "random-rewards": {"td3bc": cell(10), "iql": cell(9)},
            "random-dynamics": {"td3bc": cell(-50)},
        }
    }
    avgs = corruption.condition_averages(cells, ["td3bc", "iql"])
    offline = corruption.check_findings(cells, avgs)[0]
    assert offline["numbers"] == {"td3bc": 10.0, "iql": 9.0}
    assert offline["holds"] is False


def seeds(*scores):
    return {"mean": sum(scores) / len(scores), "scores": list(scores), "n": len(scores)}


def test_bootstrap_intervals_tell_a_clear_lead_from_seed_noise(corruption):
    clear = {
        "walker": {
            "random-rewards": {"iql": seeds(20, 21, 22), "riql": seeds(40, 41, 42)},
            "random-dynamics": {"iql": seeds(10, 11, 12), "riql": seeds(30, 31, 32)},
        }
    }
    found = corruption.check_findings(clear, corruption.condition_averages(clear, ["iql", "riql"]))
    riql = found[2]
    assert riql["holds"] is True and riql["separated"] is True
    ci = riql["intervals"]["riql"]["mean"]
    assert ci["ci_low"] <= riql["numbers"]["riql"] <= ci["ci_high"]
    assert ci["ci_low"] >= 30.0 and ci["ci_high"] <= 37.0  # within the seeds' range of means

    noisy = {
        "walker": {
            "random-rewards": {"iql": seeds(0, 40), "riql": seeds(15, 28)},
            "random-dynamics": {"iql": seeds(5, 35), "riql": seeds(10, 25)},
        }
    }
    found = corruption.check_findings(noisy, corruption.condition_averages(noisy, ["iql", "riql"]))
    # IQL 20.0 > RIQL 19.5 on the point estimates, but the seeds cannot tell them apart
    assert found[2]["holds"] is False and found[2]["separated"] is False


def test_device_check_compares_cells_run_on_two_devices(corruption):
    def trial(algo, cond, device, score):
        return {"algo": algo, "dataset": "w", "condition": cond, "device": device, "score": score}

    trials = [
        trial("iql", "clean", "cpu", 10.0),
        trial("iql", "clean", "cpu", 14.0),
        trial("iql", "clean", "gpu: H200", 20.0),
        trial("iql", "random-rewards", "cpu", 5.0),
        trial("iql", "random-rewards", "gpu: H200", 3.0),
        trial("cql", "clean", "gpu: H200", 1.0),  # one device only: not compared
        {"algo": "bc", "dataset": "w", "condition": "clean", "error": "boom"},
    ]
    check = corruption.device_check(trials)
    assert set(check) == {"iql"}
    row = check["iql"]
    assert row["devices"] == ["cpu", "gpu: H200"] and row["cells"] == 2
    assert row["mean_diff"] == (12.0 - 20.0 + 5.0 - 3.0) / 2  # -3.0
    assert row["mean_abs_diff"] == (8.0 + 2.0) / 2
    assert row["same_device_seed_gap"] == 4.0
