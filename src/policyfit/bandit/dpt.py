"""Decision-Pretrained Transformer on multi-armed bandits (Lee et al., NeurIPS 2023).

DPT learns in context: a causal transformer reads a history of (action, reward) pairs from a bandit
it has never seen and predicts that bandit's optimal arm. It is pretrained by plain supervised
learning — cross-entropy against the optimal arm, at every prefix length of the history — on many
sampled bandits, and then explores online (sample from its prediction, append the outcome, repeat)
or acts conservatively offline (the argmax given a fixed log), without any gradient step at test
time.

The setting follows the paper's bandit (its code, ``jon--lee/decision-pretrained-transformer``:
``run_bandit.sh``, ``envs/bandit_env.py``, ``collect_data.py``): ``K = 5`` arms with means
``U[0, 1]``, Gaussian reward noise 0.3, histories from a per-history behavior mixture
``p = (1 - c) Dirichlet(1) + c onehot(random arm)``, ``c ~ U{0, 0.1, ..., 1}``; a GPT-2 style trunk
with ``n_embd = 32``, 4 layers, 1 head; each token embeds ``[onehot(a), r]``; the query token comes
first. Scaled to this machine, and said so in :class:`DPTConfig`: horizon 100 (paper 500), fresh
bandits for every batch (the paper: a fixed set of 100,000), Adam with weight decay at a larger
learning rate for fewer steps.

Baselines (the paper's, ``ctrls/ctrl_bandit.py``): online — empirical mean (each arm once first),
UCB (``mean + 1/sqrt(n)``), Gaussian Thompson sampling (prior N(0.5, 1/12), known noise);
offline — empirical mean, LCB (``mean - 0.8/sqrt(n)``), Thompson sampling (the most frequent
argmax of 100 posterior draws).

Example:
    >>> cfg = DPTConfig(horizon=8, steps=2, n_layer=1, batch_size=4)
    >>> params, losses = train_dpt(cfg, progress=False, chunk=1)
    >>> len(losses)
    2
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.nn.transformer import CausalTransformer

ONLINE_BASELINES = ("emp-mean", "ucb", "ts")
OFFLINE_BASELINES = ("emp-mean", "lcb", "ts")


@dataclass(frozen=True)
class DPTConfig:
    """The bandit, the model and the pretraining schedule (module docstring for the paper's)."""

    n_arms: int = 5
    horizon: int = 100
    noise: float = 0.3
    n_embd: int = 32
    n_layer: int = 4
    n_head: int = 1
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    steps: int = 20_000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DPTModel(nn.Module):
    """``(actions [B, H], rewards [B, H]) -> logits [B, H + 1, K]``: position ``j`` has seen the
    first ``j`` pulls (position 0: the query token alone)."""

    cfg: DPTConfig

    @nn.compact
    def __call__(self, actions: jnp.ndarray, rewards: jnp.ndarray) -> jnp.ndarray:
        k = self.cfg.n_arms
        items = jnp.concatenate(
            [
                jax.nn.one_hot(actions, k),
                rewards[..., None],
                jnp.ones_like(rewards)[..., None],
                jnp.zeros_like(rewards)[..., None],
            ],
            axis=-1,
        )
        query = jnp.zeros((*actions.shape[:-1], 1, k + 3)).at[..., -1].set(1.0)
        tokens = jnp.concatenate([query, items], axis=-2)
        h = nn.Dense(self.cfg.n_embd)(tokens)
        h = CausalTransformer(
            self.cfg.n_embd, self.cfg.n_layer, self.cfg.n_head, max_len=self.cfg.horizon + 1
        )(h)
        return nn.Dense(k)(h)


# --------------------------------------------------------------------------- data
def sample_bandits(key: jax.Array, n: int, cfg: DPTConfig) -> jnp.ndarray:
    """Arm means ``[n, K]`` ~ U[0, 1]."""
    return jax.random.uniform(key, (n, cfg.n_arms))


def behavior_histories(key: jax.Array, means: jnp.ndarray, cfg: DPTConfig):
    """Logged histories ``(actions [n, H], rewards [n, H])`` from the paper's behavior mixture."""
    n, k = means.shape
    k_dir, k_c, k_arm, k_act, k_noise = jax.random.split(key, 5)
    dirichlet = jax.random.dirichlet(k_dir, jnp.ones(k), (n,))
    c = jax.random.randint(k_c, (n, 1), 0, 11) / 10.0
    onehot = jax.nn.one_hot(jax.random.randint(k_arm, (n,), 0, k), k)
    probs = (1.0 - c) * dirichlet + c * onehot
    actions = jax.random.categorical(
        k_act, jnp.log(probs + 1e-12)[:, None, :], shape=(n, cfg.horizon)
    )
    noise = cfg.noise * jax.random.normal(k_noise, (n, cfg.horizon))
    rewards = jnp.take_along_axis(means, actions, axis=1) + noise
    return actions, rewards


# --------------------------------------------------------------------------- pretraining
def _loss(params, model, means, actions, rewards):
    logits = model.apply(params, actions, rewards)
    best = jnp.argmax(means, axis=-1)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, best[:, None, None], axis=-1))


def _save_checkpoint(path, carry, key, losses, done) -> None:
    from flax import serialization

    from policyfit.common.files import atomic_write_bytes

    state = {"carry": carry, "key": key, "losses": np.asarray(losses), "done": done}
    host = jax.tree_util.tree_map(np.asarray, jax.device_get(state))
    atomic_write_bytes(path, serialization.msgpack_serialize(serialization.to_state_dict(host)))


def _load_checkpoint(path, carry, key):
    from flax import serialization

    raw = serialization.msgpack_restore(path.read_bytes())
    carry = serialization.from_state_dict(carry, raw["carry"])
    return carry, jnp.asarray(raw["key"]), list(np.asarray(raw["losses"])), int(raw["done"])


@functools.cache
def _trainer(cfg: DPTConfig):
    """Model, optimizer and the jitted chunk of updates: compiled once per shape and settings."""
    model = DPTModel(cfg)
    tx = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)

    def step(carry, k):
        params, opt_state = carry
        k_means, k_hist = jax.random.split(k)
        means = sample_bandits(k_means, cfg.batch_size, cfg)
        actions, rewards = behavior_histories(k_hist, means, cfg)
        loss, grads = jax.value_and_grad(_loss)(params, model, means, actions, rewards)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @partial(jax.jit, static_argnums=2)
    def run(carry, key, n):
        carry, losses = jax.lax.scan(step, carry, jax.random.split(key, n))
        return carry, losses.mean()

    return model, tx, run


def train_dpt(
    cfg: DPTConfig = DPTConfig(),
    *,
    progress: bool = True,
    chunk: int = 100,
    checkpoint: str | None = None,
    save_every: int = 500,
) -> tuple[Any, list[float]]:
    """Pretrain DPT; returns the parameters and the mean loss of each ``chunk`` of steps.

    ``checkpoint``: a file to save the training state to every ``save_every`` steps and to resume
    from when it exists (the continuation is exact).
    """
    from pathlib import Path

    from policyfit.common.progress import ProgressBar

    model, tx, run = _trainer(dataclasses.replace(cfg, steps=0, seed=0))
    key = jax.random.PRNGKey(cfg.seed)
    init_key, key = jax.random.split(key)
    dummy = jnp.zeros((1, cfg.horizon), jnp.int32)
    params = model.init(init_key, dummy, dummy.astype(jnp.float32))
    opt_state = tx.init(params)

    carry, losses, done = (params, opt_state), [], 0
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None and ckpt.exists():
        carry, key, losses, done = _load_checkpoint(ckpt, carry, key)
    with ProgressBar("DPT pretraining", total=cfg.steps, completed=done, enabled=progress) as bar:
        while done < cfg.steps:
            n = min(chunk, cfg.steps - done)
            key, k = jax.random.split(key)
            carry, loss = run(carry, k, n)
            losses.append(float(loss))
            done += n
            bar.update(done)
            if ckpt is not None and (done % save_every == 0 or done == cfg.steps):
                _save_checkpoint(ckpt, carry, key, losses, done)
    return carry[0], losses


# --------------------------------------------------------------------------- evaluation
@partial(jax.jit, static_argnums=(1,))
def dpt_online(params: Any, cfg: DPTConfig, means: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """Online: DPT samples from its prediction given its own history so far. Regret per step
    ``[n, H]`` (best mean minus the pulled arm's mean)."""
    model = DPTModel(cfg)
    n = means.shape[0]

    def step(carry, t):
        actions, rewards, key = carry
        key, k_act, k_noise = jax.random.split(key, 3)
        logits = model.apply(params, actions, rewards)[:, t]
        a = jax.random.categorical(k_act, logits)
        mu = jnp.take_along_axis(means, a[:, None], axis=1)[:, 0]
        r = mu + cfg.noise * jax.random.normal(k_noise, (n,))
        actions = actions.at[:, t].set(a)
        rewards = rewards.at[:, t].set(r)
        return (actions, rewards, key), means.max(axis=1) - mu

    init = (jnp.zeros((n, cfg.horizon), jnp.int32), jnp.zeros((n, cfg.horizon)), key)
    _, regret = jax.lax.scan(step, init, jnp.arange(cfg.horizon))
    return regret.T


@partial(jax.jit, static_argnums=(0, 1))
def baseline_online(name: str, cfg: DPTConfig, means: jnp.ndarray, key: jax.Array) -> jnp.ndarray:
    """Online regret per step ``[n, H]`` of ``emp-mean``, ``ucb`` or ``ts``."""
    n, k = means.shape
    prior_mean, prior_var, noise_var = 0.5, 1.0 / 12.0, cfg.noise**2

    def choose(counts, sums, t, key):
        safe = jnp.maximum(counts, 1.0)
        mean = sums / safe
        if name == "emp-mean":
            score = jnp.where(counts > 0, mean, jnp.inf)
        elif name == "ucb":
            score = jnp.where(counts > 0, mean + 1.0 / jnp.sqrt(safe), jnp.inf)
        else:  # Gaussian Thompson sampling with a known noise variance
            post_var = 1.0 / (1.0 / prior_var + counts / noise_var)
            post_mean = post_var * (prior_mean / prior_var + sums / noise_var)
            score = post_mean + jnp.sqrt(post_var) * jax.random.normal(key, counts.shape)
        return jnp.argmax(score, axis=1)

    def step(carry, t):
        counts, sums, key = carry
        key, k_choice, k_noise = jax.random.split(key, 3)
        a = choose(counts, sums, t, k_choice)
        mu = jnp.take_along_axis(means, a[:, None], axis=1)[:, 0]
        r = mu + cfg.noise * jax.random.normal(k_noise, (n,))
        onehot = jax.nn.one_hot(a, k)
        return (counts + onehot, sums + onehot * r[:, None], key), means.max(axis=1) - mu

    init = (jnp.zeros((n, k)), jnp.zeros((n, k)), key)
    _, regret = jax.lax.scan(step, init, jnp.arange(cfg.horizon))
    return regret.T


@partial(jax.jit, static_argnums=(1,))
def dpt_offline(params: Any, cfg: DPTConfig, means, actions, rewards) -> jnp.ndarray:
    """Offline: suboptimality ``[n, H + 1]`` of DPT's argmax after each prefix of a fixed log."""
    logits = DPTModel(cfg).apply(params, actions, rewards)
    chosen = jnp.argmax(logits, axis=-1)
    return means.max(axis=1)[:, None] - jnp.take_along_axis(means, chosen, axis=1)


@partial(jax.jit, static_argnums=(0, 1))
def baseline_offline(name: str, cfg: DPTConfig, means, actions, rewards, key) -> jnp.ndarray:
    """Offline suboptimality ``[n, H + 1]`` of ``emp-mean``, ``lcb`` or ``ts`` after each prefix."""
    n, k = means.shape
    onehot = jax.nn.one_hot(actions, k)
    zero = jnp.zeros((n, 1, k))
    counts = jnp.concatenate([zero, jnp.cumsum(onehot, axis=1)], axis=1)  # [n, H + 1, K]
    sums = jnp.concatenate([zero, jnp.cumsum(onehot * rewards[..., None], axis=1)], axis=1)
    safe = jnp.maximum(counts, 1.0)
    if name == "emp-mean":
        score = jnp.where(counts > 0, sums / safe, -jnp.inf)
    elif name == "lcb":
        score = jnp.where(counts > 0, sums / safe - 0.8 / jnp.sqrt(safe), -jnp.inf)
    else:  # the most frequent argmax of 100 posterior draws
        prior_mean, prior_var, noise_var = 0.5, 1.0 / 12.0, cfg.noise**2
        post_var = 1.0 / (1.0 / prior_var + counts / noise_var)
        post_mean = post_var * (prior_mean / prior_var + sums / noise_var)
        draws = post_mean + jnp.sqrt(post_var) * jax.random.normal(key, (100, *counts.shape))
        votes = jax.nn.one_hot(jnp.argmax(draws, axis=-1), k).sum(axis=0)
        score = votes
    # rounds with no data yet: every rule is a guess; take arm 0 like an argmax of ties
    chosen = jnp.argmax(jnp.where(jnp.isfinite(score), score, -1e9), axis=-1)
    return means.max(axis=1)[:, None] - jnp.take_along_axis(means, chosen, axis=1)


def evaluate(params: Any, cfg: DPTConfig, n_tasks: int = 200, seed: int = 1) -> dict[str, Any]:
    """Cumulative online regret and offline suboptimality curves (mean and 95% half-width over
    ``n_tasks`` held-out bandits) for DPT and the baselines."""
    key = jax.random.PRNGKey(10_000 + seed)
    k_means, k_online, k_hist, k_ts = jax.random.split(key, 4)
    means = sample_bandits(k_means, n_tasks, cfg)

    def summary(curves: jnp.ndarray) -> dict[str, list[float]]:
        c = np.asarray(curves, dtype=np.float64)
        half = 1.96 * c.std(axis=0, ddof=1) / np.sqrt(len(c))
        return {"mean": c.mean(axis=0).tolist(), "ci95": half.tolist()}

    online = {"dpt": summary(jnp.cumsum(dpt_online(params, cfg, means, k_online), axis=1))}
    for name in ONLINE_BASELINES:
        regret = baseline_online(name, cfg, means, k_online)
        online[name] = summary(jnp.cumsum(regret, axis=1))
    actions, rewards = behavior_histories(k_hist, means, cfg)
    offline = {"dpt": summary(dpt_offline(params, cfg, means, actions, rewards))}
    for name in OFFLINE_BASELINES:
        offline[name] = summary(baseline_offline(name, cfg, means, actions, rewards, k_ts))
    return {
        "n_tasks": n_tasks,
        "online_cumulative_regret": online,
        "offline_suboptimality": offline,
    }
