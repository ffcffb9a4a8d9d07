"""Decision Transformer: offline RL as sequence modelling of (return-to-go, state, action) tokens.

Chen, Lu, Rajeswaran, Lee, Grover, Laskin, Abbeel, Srinivas & Mordatch (NeurIPS 2021), "Decision
Transformer: Reinforcement Learning via Sequence Modeling". A causal transformer reads the last
``K`` steps of a trajectory as ``3K`` tokens ``(R_1, s_1, a_1, ..., R_K, s_K, a_K)`` and predicts
each action from its state token; training is plain regression on the logged actions,

    L(theta) = E_(window ~ D) [ mean over valid t of || a_hat_t - a_t ||^2 ],
    R_t      = (sum_{t' >= t} r_t') / scale        (undiscounted return-to-go, scale = 1000).

Checked against the official code, github.com/kzl/decision-transformer, ``gym/`` folder:

* ``gym/decision_transformer/models/decision_transformer.py``: one linear embedding per modality
  (return, state, action) plus a learned *timestep* embedding added to every token of the step,
  a LayerNorm over the stacked tokens, GPT-2 without position embeddings, the action read from
  the state token through ``Linear -> tanh``.
* ``gym/experiment.py``: ``K = 20``, ``embed_dim = 128``, ``n_layer = 3``, ``n_head = 1``,
  dropout 0.1, AdamW lr 1e-4, weight decay 1e-4, linear warm-up over 10k steps
  (``min((step + 1) / warmup, 1)``), batch 64, 10 x 10k = 100k updates; returns-to-go divided
  by ``scale = 1000`` for the MuJoCo tasks; states normalized with the data's mean and std;
  timesteps past ``max_ep_len`` clipped to ``max_ep_len - 1``; evaluation targets
  :data:`PAPER_TARGET_RETURNS`. ``gym/decision_transformer/training/seq_trainer.py``: the loss
  over unmasked positions and the gradient clip at norm 0.25.
* ``gym/decision_transformer/evaluation/evaluate_episodes.py::evaluate_episode_rtg``: at test
  time the context holds the states, actions, returns-to-go and timesteps seen so far (the last
  ``K``); the action at the newest state is predicted; after the environment pays ``r`` the next
  return-to-go is ``R - r / scale``.

Where policyfit differs, and why:

* The trunk is :class:`policyfit.nn.transformer.CausalTransformer` (pre-LayerNorm GPT-2 blocks,
  shared with DPT and Dichotomy of Control), which adds its own learned position embedding over
  the ``3K`` token slots and uses GELU where the paper's config says ReLU. The timestep embedding
  is still added to every token, as in the paper.
* Windows come from :class:`~policyfit.data.sampler.TrajectorySampler`: a window starts at a
  uniform transition and is padded at its *end* when the episode ends first (the official code
  pads at the start). With causal attention no valid token then attends to padding, so no
  attention mask is needed; padded positions are left out of the loss.
* Actions are regressed in the unit box (the dataset's action box mapped to ``[-1, 1]``, where the
  tanh head lives) and mapped back when acting.
* ``target_return`` defaults to the best episode return in the training data (no environment
  name is known to the algorithm); the paper's per-task targets are in
  :data:`PAPER_TARGET_RETURNS` for ``--set target_return=``.

Acting keeps the context in the *carry* (fixed-size buffers, so ``act`` is pure and jit-able):
``observations [B, K, obs_dim]``, ``actions [B, K, act_dim]`` (unit box), ``returns_to_go [B, K]``
(scaled), ``timesteps [B, K]``, ``length [B]`` (valid positions), plus ``return_to_go [B]`` (the
remaining return in reward units) and ``timestep [B]`` (steps taken). :meth:`act` appends the
observation with the remaining return ``/ scale`` and the timestep (shifting the window left once
it is full), predicts the action at the newest position and writes it into the window;
:meth:`observe_reward` subtracts the reward from the remaining return, which the next ``act``
appends: the official loop's ``R_(t+1) = R_t - r_t / scale``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=3, action_dim=1, return_max=-150.0,
    ...                    max_episode_length=200)
    >>> algo = DecisionTransformer(DTConfig(context_length=4, embed_dim=16, n_layer=1))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> carry = algo.initial_carry(2)
    >>> float(carry["return_to_go"][0]), carry["returns_to_go"].shape
    (-150.0, (2, 4))
    >>> action, carry = algo.act(algo.policy_params(state), jnp.zeros((2, 3)), carry)
    >>> carry = algo.observe_reward(carry, jnp.array([-1.0, -2.0]))
    >>> carry["return_to_go"].tolist(), carry["length"].tolist()
    ([-149.0, -148.0], [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from policyfit.algos.base import AlgoConfig, Algorithm, Carry, DatasetSpec, register
from policyfit.algos.losses import supervised_actor_step
from policyfit.data.sampler import TrajectorySampler
from policyfit.errors import ConfigError
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)
from policyfit.nn.transformer import CausalTransformer

#: Evaluation targets (in reward units) of ``gym/experiment.py`` (``env_targets``); the paper
#: reports the first of each pair. Pass one with ``--set target_return=``.
PAPER_TARGET_RETURNS: dict[str, tuple[float, ...]] = {
    "hopper": (3600.0, 1800.0),
    "halfcheetah": (12000.0, 6000.0),
    "walker2d": (5000.0, 2500.0),
    "reacher2d": (76.0, 40.0),  # with scale = 10
}


@dataclass(frozen=True)
class DTConfig(AlgoConfig):
    # defaults: gym/experiment.py of kzl/decision-transformer
    batch_size: int = 64  # windows per gradient step
    context_length: int = 20  # K: steps in the context (3K tokens)
    embed_dim: int = 128  # width of every token and of the transformer
    n_layer: int = 3
    n_head: int = 1
    dropout: float = 0.1  # GPT-2's embedding, attention and residual dropout
    learning_rate: float = 1e-4  # AdamW
    weight_decay: float = 1e-4  # AdamW, on every parameter (as torch's model.parameters())
    warmup_steps: int = 10_000  # linear warm-up: lr * min((step + 1) / warmup, 1)
    grad_clip: float = 0.25  # global gradient norm (seq_trainer.py)
    return_scale: float = 1000.0  # returns-to-go are divided by this (1000 for MuJoCo, 10 reacher)
    # the return asked of the policy at evaluation, in reward units; None = the best episode
    # return in the data (the paper's per-task targets: PAPER_TARGET_RETURNS)
    target_return: float | None = None
    normalize_observations: bool = True  # states standardized with the data's mean and std


class DTNetwork(nn.Module):
    """``(R [B,K], s [B,K,S], a [B,K,A], t [B,K]) -> a_hat [B,K,A]`` in ``[-1, 1]``."""

    action_dim: int
    context_length: int
    embed_dim: int
    n_layer: int
    n_head: int
    max_timestep: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, returns_to_go, observations, actions, timesteps, train: bool = False):
        batch, k = timesteps.shape
        time = nn.Embed(self.max_timestep, self.embed_dim, name="embed_timestep")(timesteps)
        ret = nn.Dense(self.embed_dim, name="embed_return")(returns_to_go[..., None]) + time
        obs = nn.Dense(self.embed_dim, name="embed_state")(observations) + time
        act = nn.Dense(self.embed_dim, name="embed_action")(actions) + time
        # (R_1, s_1, a_1, R_2, s_2, a_2, ...): token 3t + 1 is s_t
        tokens = jnp.stack([ret, obs, act], axis=2).reshape(batch, 3 * k, self.embed_dim)
        tokens = nn.LayerNorm(name="embed_ln")(tokens)
        tokens = nn.Dropout(self.dropout, deterministic=not train)(tokens)
        h = CausalTransformer(
            n_embd=self.embed_dim,
            n_layer=self.n_layer,
            n_head=self.n_head,
            max_len=3 * self.context_length,
            dropout=self.dropout,
            name="trunk",
        )(tokens, train=train)
        state_tokens = h.reshape(batch, k, 3, self.embed_dim)[:, :, 1]
        return jnp.tanh(nn.Dense(self.action_dim, name="predict_action")(state_tokens))


def warmup_adamw(cfg: AlgoConfig) -> optax.GradientTransformation:
    """The official DT optimizer: AdamW with a linear warm-up over ``cfg.warmup_steps`` and the
    gradient clipped to global norm ``cfg.grad_clip`` (DT and DoC share it; ``cfg`` has those
    fields and ``learning_rate``, ``weight_decay``)."""
    warmup = max(cfg.warmup_steps, 1)
    schedule = lambda step: cfg.learning_rate * jnp.minimum((step + 1) / warmup, 1.0)  # noqa: E731
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.adamw(schedule, weight_decay=cfg.weight_decay),
    )


@register("dt")
class DecisionTransformer(Algorithm):
    """Decision Transformer (see the module docstring): continuous actions, a context carry."""

    Config = DTConfig
    supports_discrete = False

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        for field, value in (
            ("context_length", cfg.context_length),
            ("embed_dim", cfg.embed_dim),
            ("n_layer", cfg.n_layer),
            ("n_head", cfg.n_head),
        ):
            if value < 1:
                raise ConfigError(f"must be >= 1, got {value}", path=self.name, field=field)
        if cfg.embed_dim % cfg.n_head:
            raise ConfigError(
                f"embed_dim {cfg.embed_dim} is not divisible by n_head {cfg.n_head}",
                path=self.name,
                field="n_head",
            )
        if not cfg.return_scale > 0:
            raise ConfigError(
                f"must be > 0, got {cfg.return_scale}", path=self.name, field="return_scale"
            )
        if spec.max_episode_length < 1:
            raise ConfigError("the data has no episodes", path=self.name, field="dataset")
        super().setup(spec)
        # the timestep table covers the data's longest episode (the paper: max_ep_len = 1000);
        # later steps use the last row, as the official get_batch clips them
        self.max_timestep = int(spec.max_episode_length)
        self.network = DTNetwork(
            action_dim=spec.action_dim,
            context_length=cfg.context_length,
            embed_dim=cfg.embed_dim,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            max_timestep=self.max_timestep,
            dropout=cfg.dropout,
        )
        self.optimizer = warmup_adamw(cfg)

    @property
    def target_return(self) -> float:
        """The configured target, else the best episode return in the training data."""
        if self.config.target_return is not None:
            return float(self.config.target_return)
        return float(self.spec.return_max)

    def make_sampler(self, dataset, spec: DatasetSpec) -> TrajectorySampler:
        """Windows of ``K`` steps with undiscounted returns-to-go, timesteps and a padding mask."""
        return TrajectorySampler(dataset, length=self.config.context_length, discount=1.0)

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        k = self.config.context_length
        actor = self.network.init(
            key,
            jnp.zeros((1, k)),
            jnp.zeros((1, k, spec.observation_dim)),
            jnp.zeros((1, k, spec.action_dim)),
            jnp.zeros((1, k), jnp.int32),
        )
        return {
            "actor": actor,
            "actor_opt": self.optimizer.init(actor),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def predict(self, actor_params, params, returns_to_go, observations, actions, timesteps, **kw):
        """Unit-box actions for every position of raw windows (returns-to-go already scaled)."""
        return self.network.apply(
            actor_params,
            returns_to_go,
            normalize_observations(observations, params["obs_norm"]),
            actions,
            jnp.clip(timesteps, 0, self.max_timestep - 1),
            **kw,
        )

    def loss(self, actor_params, state, batch, actions, key):
        """Mean squared error of the predicted actions over the valid (unpadded) positions."""
        pred = self.predict(
            actor_params,
            state,
            batch["returns_to_go"] / self.config.return_scale,
            batch["observations"],
            actions,
            batch["timesteps"],
            train=True,
            rngs={"dropout": key},
        )
        mask = batch["mask"]
        per_step = jnp.mean((pred - actions) ** 2, axis=-1)
        return jnp.sum(per_step * mask) / jnp.maximum(jnp.sum(mask), 1.0)

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        actions = actions * batch["mask"][..., None]  # padding stays zero after the affine map
        new_state, loss, _ = supervised_actor_step(
            self.optimizer, state, self.loss, state, batch, actions, key
        )
        return new_state, {"actor_loss": loss}

    # ------------------------------------------------------------------ acting with a carry
    def initial_carry(self, batch_size: int) -> Carry:
        """An empty context (``length = 0``) and the full target return still to earn."""
        k, spec = self.config.context_length, self.spec
        return {
            "observations": jnp.zeros((batch_size, k, spec.observation_dim), jnp.float32),
            "actions": jnp.zeros((batch_size, k, spec.action_dim), jnp.float32),
            "returns_to_go": jnp.zeros((batch_size, k), jnp.float32),
            "timesteps": jnp.zeros((batch_size, k), jnp.int32),
            "length": jnp.zeros((batch_size,), jnp.int32),
            "return_to_go": jnp.full((batch_size,), self.target_return, jnp.float32),
            "timestep": jnp.zeros((batch_size,), jnp.int32),
        }

    def _append(self, window: jnp.ndarray, new: jnp.ndarray, slot: jnp.ndarray, full: jnp.ndarray):
        """``window [B, K, ...]`` with ``new [B, ...]`` written at ``slot``, after a left shift
        by one where the window is ``full``."""
        shifted = jnp.concatenate([window[:, 1:], window[:, :1]], axis=1)
        extra = (1,) * (window.ndim - 2)
        window = jnp.where(full.reshape((-1, 1, *extra)), shifted, window)
        here = (jnp.arange(window.shape[1])[None, :] == slot[:, None]).reshape(
            (*slot.shape, window.shape[1], *extra)
        )
        return jnp.where(here, new[:, None], window)

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        """Append ``obs`` to the context, predict the action at the newest position.

        Deterministic: Decision Transformer has no action distribution, so ``key`` is ignored.
        """
        k = self.config.context_length
        full = carry["length"] >= k
        slot = jnp.minimum(carry["length"], k - 1)
        zeros_a = jnp.zeros((obs.shape[0], self.spec.action_dim), jnp.float32)
        window = {
            "observations": self._append(carry["observations"], obs, slot, full),
            "actions": self._append(carry["actions"], zeros_a, slot, full),
            "returns_to_go": self._append(
                carry["returns_to_go"],
                carry["return_to_go"] / self.config.return_scale,
                slot,
                full,
            ),
            "timesteps": self._append(carry["timesteps"], carry["timestep"], slot, full),
        }
        pred = self.predict(
            params["actor"],
            params,
            window["returns_to_go"],
            window["observations"],
            window["actions"],
            window["timesteps"],
        )
        here = (jnp.arange(k)[None, :] == slot[:, None])[..., None]
        unit = jnp.sum(jnp.where(here, pred, 0.0), axis=1)  # the action at the newest state
        window["actions"] = self._append(window["actions"], unit, slot, jnp.zeros_like(full))
        carry = {
            **window,
            "length": slot + 1,
            "return_to_go": carry["return_to_go"],
            "timestep": carry["timestep"] + 1,
        }
        return from_unit_actions(unit, params["action_scale"]), carry

    def observe_reward(self, carry: Carry, reward: jnp.ndarray) -> Carry:
        """The remaining return less ``reward``; the next :meth:`act` appends it (``/ scale``)."""
        return {**carry, "return_to_go": carry["return_to_go"] - reward}
