import json

import numpy as np
import pytest

from policyfit.data import Dataset


def small_dataset(n_episodes: int = 20, length: int = 50, seed: int = 0) -> Dataset:
    """Smooth random-walk episodes with a reward outlier planted at transition 123."""
    rng = np.random.default_rng(seed)
    n = n_episodes * length
    steps = rng.normal(size=(n, 3)) * 0.05
    obs = np.cumsum(steps, axis=0)
    nxt = obs + rng.normal(size=(n, 3)) * 0.0 + steps
    obs[1:] = nxt[:-1]
    obs[::length] = nxt[::length] - steps[::length]
    act = np.tanh(obs[:, :2])
    rewards = obs[:, 0].copy()
    rewards[123] += 100.0
    timeouts = np.zeros(n, bool)
    timeouts[length - 1 :: length] = True
    return Dataset(
        observations=obs,
        actions=act,
        rewards=rewards,
        terminals=np.zeros(n),
        timeouts=timeouts,
        next_observations=nxt,
        metadata={"env_id": "Toy-v0", "ref_min_score": -50.0, "ref_max_score": 50.0},
        source="toy-dataset",
    )


def write_run(path, algorithm: str, slope: float, summary: bool = True, torn: bool = False):
    path.mkdir(parents=True)
    (path / "config.json").write_text(
        json.dumps({"algorithm": algorithm, "dataset": {"name": "toy-dataset"}, "steps": 4000})
    )
    lines = []
    for step in range(500, 4500, 500):
        lines.append(
            json.dumps(
                {"step": step, "train/critic_loss": 1000.0 / step, "train/actor_loss": -step / 1e3}
            )
        )
        if step % 1000 == 0:
            lines.append(json.dumps({"step": step, "eval/normalized_score": slope * step / 100}))
    if torn:
        lines.append('{"step": 4500, "train/cri')
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if summary:
        (path / "summary.json").write_text(
            json.dumps(
                {
                    "algorithm": algorithm,
                    "steps": 4000,
                    "final_normalized_score": slope * 40,
                    "best_normalized_score": slope * 40,
                    "wall_seconds": 3.5,
                }
            )
        )
    return path


@pytest.fixture(scope="session")
def toy_dataset() -> Dataset:
    return small_dataset()


@pytest.fixture(scope="session")
def report_html(tmp_path_factory, toy_dataset):
    """One report with a dataset and two runs (one still running, with a torn last line)."""
    from policyfit.report import write_report

    root = tmp_path_factory.mktemp("report")
    iql = write_run(root / "iql-toy-s0", "iql", 1.5)
    bc = write_run(root / "bc-toy-s0", "bc", 0.75, summary=False, torn=True)
    out = write_report([toy_dataset, iql, bc], root / "out" / "report.html", reference=toy_dataset)
    return out


@pytest.fixture(scope="session")
def make_run():
    """The run-directory factory: ``make_run(path, algorithm, slope, summary=True, torn=False)``."""
    return write_run
