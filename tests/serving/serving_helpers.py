"""Helpers of the serving tests: tiny saved policies (initial parameters, no training) and a real
uvicorn server in a thread."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

OBS_DIM = 3
N_ACTIONS = 4
BOX = (-2.0, 2.0)


def save_initial_policy(directory, algo_name: str, config: dict, discrete: bool, act_dim: int = 2):
    """A policy folder with an algorithm's initial parameters for a small spec."""
    import jax

    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.policy import save_policy
    from policyfit.algos.registry import get_algorithm

    cls = get_algorithm(algo_name)
    algo = cls(cls.Config.from_dict({"hidden_dims": (8,), **config}))
    if discrete:
        spec = DatasetSpec(observation_dim=OBS_DIM, action_dim=N_ACTIONS, discrete=True)
    else:
        spec = DatasetSpec(
            observation_dim=OBS_DIM,
            action_dim=act_dim,
            action_low=(BOX[0],) * act_dim,
            action_high=(BOX[1],) * act_dim,
            max_episode_length=10,
            return_max=5.0,
        )
    state = algo.init(spec, jax.random.PRNGKey(0))
    return save_policy(directory, algo, spec, algo.policy_params(state))


@contextmanager
def running(server):
    """``server`` (a PolicyServer) under uvicorn on a free 127.0.0.1 port; yields the base URL."""
    import uvicorn

    from policyfit.serving.app import build_app

    config = uvicorn.Config(
        build_app(server), host="127.0.0.1", port=0, log_level="warning", access_log=False
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = uv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(10)
        server.close()
