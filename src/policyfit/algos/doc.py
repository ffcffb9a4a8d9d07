"""Dichotomy of Control (DoC): return-conditioned learning that does not imitate luck.

Yang, Schuurmans, Abbeel & Nachum (ICLR 2023), "Dichotomy of Control: Separating What You Can
Control from What You Cannot". Decision Transformer conditions the policy on the return it should
reach; in a stochastic environment a high return in the data is partly luck, so DT imitates the
actions of lucky episodes and over-promises. DoC conditions the policy on a latent ``z`` of the
future instead and removes from ``z`` what the environment decided (rewards and next states beyond
what history and action explain), so a latent can only promise what the agent controls; at test
time it picks, among latents sampled from a learned prior, the one with the best predicted value.

Objective as implemented in the official TensorFlow code (the neural variant),

    L = MSE(pi(tau_<=t, z), a_t) + MSE(V(tau_<=t, z), R_t)
        + beta_prior * KL(q(z | future) || p(z | past))
        + beta_E * L_NCE,
    L_NCE = mean_i [ -E_ii + log sum_j exp E_ij ],    E = g(positives) g(negatives)^T,

with ``z ~ q`` by the reparameterization trick, ``R_t`` the undiscounted return-to-go divided by
``scale`` and ``g`` an MLP on ``[history feature, z, next-state embedding, ...]``; the negatives
take shuffled next states. Test time: sample ``M = 100`` latents from the prior, keep the one with
the highest ``V``, act with ``pi(.|z*)``, a fresh choice at every step.

Checked against ``github.com/google-research/google-research``, folder ``dichotomy_of_control/``:

* ``dichotomy_of_control/models/stochastic_decision_transformer.py``: one embedding per modality
  plus a timestep embedding, a LayerNorm over the stacked tokens and three GPT-2 trunks (history,
  prior, future); ``q`` and ``p`` are ``Dense(2 * latent)`` heads (mean, log-variance); the action
  and value heads are MLPs (256, 256, ReLU, tanh output) on ``[state token, z]``; the energy MLP
  ``g`` reads ``[last history token, z, next-state embedding, next-state embedding]`` and the
  negatives are two independent ``tf.random.shuffle`` of the next-state embeddings; at inference
  ``future_samples = 100`` latents from the prior, ``argmax`` of the predicted value,
  ``sample_per_step = True``.
* ``dichotomy_of_control/scripts/stochastic_decision_transformer_training.py``: the loss above;
  ``prior_loss = reduce_mean(dense_gaussian_kl(...))`` (``utils.py``: the elementwise Gaussian KL,
  averaged over batch *and* latent dimensions); **the quirk**: ``if energy_weight:`` the prior's
  mean and log-variance are wrapped in ``tf.stop_gradient``, so with ``beta_E != 0`` the prior
  network gets no gradient at all (it stays at its initialization, and the KL only pulls ``q``
  toward it). Every parameter, ``q`` included, *descends* ``L_NCE``.
* ``dichotomy_of_control/scripts/run_neural_dt.py`` (FrozenLake): ``K = 20``, ``embed_dim = 128``,
  3 layers, 1 head, ReLU, dropout 0.1, AdamW lr 1e-4, weight decay 1e-4, linear warm-up over 1000
  steps, ``clipnorm = 0.25``, batch 64, ``scale = 1``, latent 32 (the model's default),
  ``prior_weight = energy_weight = 1``, 10 x 1000 updates.
* ``dichotomy_of_control/models/tabular_sdt.py`` (the Bernoulli-bandit variant): ``q(z | s, a, R)``
  categorical with a straight-through gradient, cross-entropy value and action heads, and the
  energy ``-f(s,a,R,z) + logsumexp_R' rho(R') f(s,a,R',z)`` (``rho``: the data's return prior).

Where policyfit differs, and why (each a deliberate choice):

* **Latent per position.** The official loader puts ``z`` on the ``K`` steps *after* the context
  window and shares it across the window, so on a one-step task (the Bernoulli bandit) the future
  is empty and ``z`` can carry nothing. Here every position ``t`` of a window has its own
  ``z_t ~ q(z | (s, a, r)_t..end of window)``: the future trunk is the shared
  :class:`~policyfit.nn.transformer.CausalTransformer` run on the time-*reversed* token sequence,
  so one pass gives every position its future (the paper's ``q(z | tau_t:)``, as the tabular
  ``q(z | s, a, R)``). ``p(z | past)`` is read at each state token of the prior trunk (the code
  reads the last state token).
* **Reward tokens.** The code feeds rewards (not returns-to-go) into the return slot, with
  ``r_t`` *before* ``a_t`` at training time and zero at test time, which leaks the outcome into
  the action prediction during training. Here the slot of step ``t`` holds ``r_(t-1)`` (zero at
  a window's first position), the same during training and acting.
* **The critic (default leaves the code).** In the code both sides of ``E = g(pos) g(neg)^T``
  carry the row's own history and ``z``, so the diagonal can be told from the other entries by
  ``(history, z)`` alone, without the outcome: the term then measures how distinguishable the
  latents of a batch are, not what they know about ``(r, s')``. Descending it makes ``z``
  distinctive, ascending it (min-max) collapses ``z``; measured on the bandit, either way DoC does
  not beat DT. ``critic = "separable"`` (default) is the standard InfoNCE critic:
  ``E_ij = u([history at a_t, z]_i) . w([e(s'), e_r(r)]_j)`` at each window position, each row's
  own outcome on the diagonal and the batch's other outcomes (the shuffled ones) as negatives; so
  the term estimates what ``z`` (with the history and action) says about the outcome, as the
  paper's constraint and the tabular code's ``-f(s,a,R,z) + logsumexp_R' rho(R') f(s,a,R',z)``.
  ``critic = "code"`` is the code's energy, with the input described next.
* **Energy input (``critic = "code"``).** ``g`` reads
  ``[history feature at a_t, z_t, e(s_(t+1)), e_r(r_t)]``: the code
  repeats the next-state embedding where the paper's mutual information is about ``(r_t, s_(t+1))``;
  on a bandit all randomness is in ``r_t``, so the reward embedding takes the second slot. The
  negatives are two independent draws among the batch's valid positions (the code's two
  independent shuffles), and the InfoNCE is computed per window position over the batch, padded
  rows and columns left out.
* ``prior_stop_gradient = True`` follows the code's quirk (set False for a trained prior).
* **The sign of the mutual-information term for q (default leaves the code).** In
  the code every parameter, ``q`` included, *descends* ``L_NCE``; since a lower ``L_NCE`` means a
  *higher* mutual-information estimate, that pushes ``z`` to carry more of the outcome, not less.
  ``mi_minmax = True`` (default) is the paper's ``min_(pi, q) max_g``: ``g`` descends ``L_NCE``
  and the gradient reaching ``z`` through ``g`` is reversed, so ``q`` removes what the critic can
  find. ``mi_minmax = False`` is the code's sign. On the Bernoulli bandit
  (``benchmarks/stochastic.py``) the separable critic with the min-max sign is the variant that
  picks the arm with the best expected reward and predicts the value it achieves.
* The gradient clip is global (optax), the code's Keras ``clipnorm`` clips each tensor alone;
  AdamW's decay is multiplied by the learning rate (optax), ``tfa.AdamW``'s is not.
* ``key=None`` in :meth:`act` (deterministic acting) uses fixed standard-normal draws for the
  prior samples: a table of ``FIXED_DRAW_ROWS`` sets of ``M`` drawn once by NumPy (seed 0), row
  ``i`` of a batch taking set ``i mod FIXED_DRAW_ROWS``; with a key they are fresh. The table is a
  constant, not a draw in the graph, so the deterministic policy exports to ONNX.

Acting keeps the context in the carry as Decision Transformer does (``observations``, ``actions``,
``rewards`` per position, ``timesteps``, ``length``, ``timestep``), plus ``value [B]``: the
predicted value (reward units) of the latent chosen at the last step; :meth:`observe_reward` writes
the paid reward at the newest position.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.algos.base import DatasetSpec
    >>> spec = DatasetSpec(observation_dim=1, action_dim=2, action_low=(0.0, 0.0),
    ...                    action_high=(1.0, 1.0), return_max=1.0, max_episode_length=1)
    >>> algo = DichotomyOfControl(DoCConfig(context_length=2, embed_dim=8, n_layer=1,
    ...                                     latent_dim=4, mlp_hidden=(8,), num_latent_samples=5))
    >>> state = algo.init(spec, jax.random.PRNGKey(0))
    >>> action, carry = algo.act(algo.policy_params(state), jnp.ones((3, 1)),
    ...                          algo.initial_carry(3))
    >>> action.shape, carry["length"].tolist(), carry["value"].shape
    ((3, 2), [1, 1, 1], (3,))
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import AlgoConfig, Carry, DatasetSpec, register
from policyfit.algos.dt import DecisionTransformer, warmup_adamw
from policyfit.algos.losses import supervised_actor_step
from policyfit.errors import ConfigError
from policyfit.nn.normalization import (
    action_scale_from_spec,
    from_unit_actions,
    normalize_observations,
    stats_from_spec,
    to_unit_actions,
)
from policyfit.nn.transformer import CausalTransformer

#: deterministic acting (``key=None``): this many fixed sets of prior draws, one per batch row
#: (cycling); different rows need different sets (one shared set made every row of the lucky
#: bandit take the lucky arm)
FIXED_DRAW_ROWS = 64


@dataclass(frozen=True)
class DoCConfig(AlgoConfig):
    # defaults: scripts/run_neural_dt.py and models/stochastic_decision_transformer.py
    batch_size: int = 64  # windows per gradient step
    context_length: int = 20  # K: steps in a window (3K tokens)
    embed_dim: int = 128  # width of every token and of the three transformers
    n_layer: int = 3
    n_head: int = 1
    dropout: float = 0.1
    latent_dim: int = 32  # size of z
    mlp_hidden: tuple[int, ...] = (256, 256)  # action, value and energy MLPs (utils.create_mlp)
    learning_rate: float = 1e-4  # AdamW
    weight_decay: float = 1e-4
    warmup_steps: int = 1000  # linear warm-up (PolynomialDecay from lr / warmup to lr)
    grad_clip: float = 0.25  # clipnorm (global norm here, see the module docstring)
    return_scale: float = 1.0  # returns-to-go are divided by this (FrozenLake: scale = 1)
    prior_weight: float = 1.0  # beta_prior, the KL(q || p) weight
    energy_weight: float = 1.0  # beta_E, the InfoNCE weight
    num_latent_samples: int = 100  # M: prior samples scored by the value head at test time
    prior_stop_gradient: bool = True  # the code's quirk: no gradient to p when energy_weight != 0
    # True: q ascends L_NCE through z (the paper's min-max); False: q descends it (the code).
    # Default True: with False the Bernoulli-bandit claim does not reproduce (benchmarks/stochastic)
    mi_minmax: bool = True
    # "separable": E_ij = u(history_i, a_i, z_i) . w(outcome_j), the standard InfoNCE critic over
    # the batch's outcomes (r, s'); "code": E_ij = g(pos_i) . g(neg_j) as the official code.
    critic: str = "separable"
    normalize_observations: bool = True


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):
    """Elementwise ``KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p))`` (``utils.dense_gaussian_kl``).

    Example:
        >>> float(gaussian_kl(jnp.array(1.0), jnp.array(0.0), jnp.array(0.0), jnp.array(0.0)))
        0.5
    """
    return 0.5 * (
        logvar_p
        - logvar_q
        + jnp.exp(logvar_q - logvar_p)
        + (mu_q - mu_p) ** 2 / jnp.exp(logvar_p)
        - 1.0
    )


def info_nce(energies, valid=None):
    """Per-row InfoNCE loss ``-E_ii + log sum_j exp E_ij`` of an ``[..., N, N]`` energy matrix.

    ``valid [..., N]`` (optional) leaves columns out of the sum (padded positions).

    Example:
        >>> e = jnp.array([[2.0, 0.0], [0.0, 2.0]])
        >>> [round(float(v), 4) for v in info_nce(e)]  # log(1 + e^-2)
        [0.1269, 0.1269]
    """
    diag = jnp.diagonal(energies, axis1=-2, axis2=-1)
    if valid is not None:
        energies = jnp.where(valid[..., None, :] > 0, energies, -jnp.inf)
    return -diag + jax.nn.logsumexp(energies, axis=-1)


def select_latent(values, latents):
    """The latent with the highest predicted value: ``values [B, M]``, ``latents [B, M, L]`` ->
    ``(z* [B, L], V* [B])`` (ties: the first, as ``tf.argmax``).

    Example:
        >>> z, v = select_latent(jnp.array([[0.1, 0.7, 0.3]]), jnp.arange(3.0).reshape(1, 3, 1))
        >>> z.tolist(), v.tolist()
        ([[1.0]], [0.699999988079071])
    """
    # a one-hot sum, not take_along_axis (a gather that jax2onnx 0.8.1 converts wrongly); exact
    pick = jnp.arange(values.shape[-1]) == jnp.argmax(values, axis=-1)[:, None]  # [B, M]
    z = jnp.sum(jnp.where(pick[..., None], latents, 0.0), axis=1)
    v = jnp.sum(jnp.where(pick, values, 0.0), axis=1)
    return z, v


@jax.custom_vjp
def _reverse_gradient(x):
    return x


def _reverse_fwd(x):
    return x, None


def _reverse_bwd(_, g):
    return (-g,)


_reverse_gradient.defvjp(_reverse_fwd, _reverse_bwd)


class _MLP(nn.Module):
    hidden: tuple[int, ...]
    out: int

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.out)(x)


class DoCNetwork(nn.Module):
    """Embeddings, three causal trunks (history, prior, future) and the heads of DoC."""

    action_dim: int
    context_length: int
    embed_dim: int
    n_layer: int
    n_head: int
    max_timestep: int
    latent_dim: int
    mlp_hidden: tuple[int, ...]
    dropout: float = 0.0

    def setup(self):
        e = self.embed_dim
        # one more row than the data's longest episode: next states sit at time t + 1
        self.embed_timestep = nn.Embed(self.max_timestep + 1, e)
        self.embed_return = nn.Dense(e)
        self.embed_state = nn.Dense(e)
        self.embed_action = nn.Dense(e)
        self.embed_ln = nn.LayerNorm()
        self.drop = nn.Dropout(self.dropout)
        trunk = dict(
            n_embd=e,
            n_layer=self.n_layer,
            n_head=self.n_head,
            max_len=3 * self.context_length,
            dropout=self.dropout,
        )
        self.trunk = CausalTransformer(**trunk)
        self.prior_trunk = CausalTransformer(**trunk)
        self.future_trunk = CausalTransformer(**trunk)
        self.predict_prior = nn.Dense(2 * self.latent_dim)
        self.predict_future = nn.Dense(2 * self.latent_dim)
        self.predict_action = _MLP(self.mlp_hidden, self.action_dim)
        self.predict_value = _MLP(self.mlp_hidden, 1)
        self.embed_energy = _MLP(self.mlp_hidden, e)
        self.embed_outcome = _MLP(self.mlp_hidden, e)

    def _tokens(self, first, second, third, train):
        b, k, e = first.shape
        x = jnp.stack([first, second, third], axis=2).reshape(b, 3 * k, e)
        return self.drop(self.embed_ln(x), deterministic=not train)

    def history(self, rewards, obs, actions, timesteps, train: bool = False):
        """History features ``[B, K, 3, E]`` (tokens ``r_(t-1), s_t, a_t``) and the prior's
        ``(mean, logvar)`` ``[B, K, L]`` at every state token."""
        b, k = timesteps.shape
        time = self.embed_timestep(timesteps)
        prev_r = jnp.concatenate([jnp.zeros_like(rewards[:, :1]), rewards[:, :-1]], axis=1)
        tokens = self._tokens(
            self.embed_return(prev_r[..., None]) + time,
            self.embed_state(obs) + time,
            self.embed_action(actions) + time,
            train,
        )
        x = self.trunk(tokens, train=train).reshape(b, k, 3, self.embed_dim)
        prior = self.prior_trunk(tokens, train=train).reshape(b, k, 3, self.embed_dim)
        prior = prior[:, :, 1]
        mean, logvar = jnp.split(self.predict_prior(prior), 2, axis=-1)
        return x, mean, logvar

    def posterior(self, rewards, obs, actions, timesteps, mask, train: bool = False):
        """``q(z_t | (s, a, r)_t..)`` ``(mean, logvar)`` ``[B, K, L]``: the causal trunk on the
        time-reversed tokens, read at ``s_t`` (which then has seen step ``t`` and all later).

        Reversed, a window's end padding comes first and is seen by every position: its tokens
        are zeroed (``mask [B, K]``), so only *where* the episode ends is visible, not what the
        padded arrays hold."""
        b, k = timesteps.shape
        time = self.embed_timestep(timesteps)
        tokens = self._tokens(
            self.embed_state(obs) + time,
            self.embed_action(actions) + time,
            self.embed_return(rewards[..., None]) + time,
            train,
        )
        tokens = tokens * jnp.repeat(mask, 3, axis=1)[..., None]
        f = self.future_trunk(tokens[:, ::-1], train=train)[:, ::-1]
        f = f.reshape(b, k, 3, self.embed_dim)[:, :, 0]
        mean, logvar = jnp.split(self.predict_future(f), 2, axis=-1)
        return mean, logvar

    def heads(self, state_feature, z):
        """Action in ``[-1, 1]`` and value (tanh, scaled return units) from ``[s_t feature, z]``."""
        h = jnp.concatenate([state_feature, z], axis=-1)
        action = jnp.tanh(self.predict_action(h))
        value = jnp.tanh(self.predict_value(h))
        return action, value[..., 0]

    def energy_features(self, next_obs, next_timesteps, rewards, timesteps):
        """The two embedded outcomes of step ``t``: ``e(s_(t+1))`` and ``e_r(r_t)``."""
        e_next = self.embed_state(next_obs) + self.embed_timestep(next_timesteps)
        e_rew = self.embed_return(rewards[..., None]) + self.embed_timestep(timesteps)
        return e_next, e_rew

    def energy(self, action_feature, z, e_next, e_rew):
        """``g([history feature at a_t, z_t, e(s_(t+1)), e_r(r_t)])`` ``[..., E]``."""
        return self.embed_energy(jnp.concatenate([action_feature, z, e_next, e_rew], axis=-1))

    def separable(self, action_feature, z, e_next, e_rew):
        """``u([history at a_t, z_t])`` and ``w([e(s_(t+1)), e_r(r_t)])``, both ``[..., E]``."""
        zeros = jnp.zeros_like(e_next)
        u = self.embed_energy(jnp.concatenate([action_feature, z, zeros, zeros], axis=-1))
        w = self.embed_outcome(jnp.concatenate([e_next, e_rew], axis=-1))
        return u, w

    def __call__(self, rewards, obs, actions, timesteps, next_obs, train: bool = False):
        """Every head once (for initialization); training uses the other methods."""
        x, p_mean, _ = self.history(rewards, obs, actions, timesteps, train)
        q_mean, _ = self.posterior(
            rewards, obs, actions, timesteps, jnp.ones(timesteps.shape), train
        )
        action, value = self.heads(x[:, :, 1], q_mean)
        e_next, e_rew = self.energy_features(next_obs, timesteps + 1, rewards, timesteps)
        u, w = self.separable(x[:, :, 2], q_mean, e_next, e_rew)
        return action, value, p_mean, self.energy(x[:, :, 2], q_mean, e_next, e_rew), u, w


@register("doc")
class DichotomyOfControl(DecisionTransformer):
    """Dichotomy of Control (see the module docstring): continuous actions, a context carry."""

    Config = DoCConfig
    supports_discrete = False

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if cfg.critic not in ("separable", "code"):
            raise ConfigError(
                f"must be 'separable' or 'code', got {cfg.critic!r}", path=self.name, field="critic"
            )
        for field, value in (
            ("latent_dim", cfg.latent_dim),
            ("num_latent_samples", cfg.num_latent_samples),
        ):
            if value < 1:
                raise ConfigError(f"must be >= 1, got {value}", path=self.name, field=field)
        super().setup(spec)  # DT's checks, the timestep table size, the DT network (unused)
        self.network = DoCNetwork(
            action_dim=spec.action_dim,
            context_length=cfg.context_length,
            embed_dim=cfg.embed_dim,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            max_timestep=self.max_timestep,
            latent_dim=cfg.latent_dim,
            mlp_hidden=tuple(cfg.mlp_hidden),
            dropout=cfg.dropout,
        )
        self.optimizer = warmup_adamw(cfg)
        shape = (FIXED_DRAW_ROWS, cfg.num_latent_samples, cfg.latent_dim)
        self.fixed_draws = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

    @property
    def target_return(self) -> float:  # DoC asks for no return; the value head picks z
        return 0.0

    def init(self, spec: DatasetSpec, key: jax.Array) -> dict:
        self.setup(spec)
        k = self.config.context_length
        actor = self.network.init(
            key,
            jnp.zeros((1, k)),
            jnp.zeros((1, k, spec.observation_dim)),
            jnp.zeros((1, k, spec.action_dim)),
            jnp.zeros((1, k), jnp.int32),
            jnp.zeros((1, k, spec.observation_dim)),
        )
        return {
            "actor": actor,
            "actor_opt": self.optimizer.init(actor),
            "obs_norm": stats_from_spec(spec, enabled=self.config.normalize_observations),
            "action_scale": action_scale_from_spec(spec),
            "step": jnp.zeros((), jnp.int32),
        }

    def _times(self, timesteps):
        return jnp.clip(timesteps, 0, self.max_timestep - 1)

    def loss(self, actor_params, state, batch, actions, key):
        """The four terms of the module docstring on a batch of windows; ``(loss, metrics)``."""
        cfg = self.config
        k_drop, k_z, k_neg1, k_neg2 = jax.random.split(key, 4)
        norm = state["obs_norm"]
        obs = normalize_observations(batch["observations"], norm)
        next_obs = normalize_observations(batch["next_observations"], norm)
        rewards, mask, steps = batch["rewards"], batch["mask"], self._times(batch["timesteps"])
        net, rngs = self.network, {"dropout": k_drop}
        x, p_mean, p_logvar = net.apply(
            actor_params, rewards, obs, actions, steps, True, method=net.history, rngs=rngs
        )
        q_mean, q_logvar = net.apply(
            actor_params,
            rewards,
            obs,
            actions,
            steps,
            mask,
            True,
            method=net.posterior,
            rngs=rngs,
        )
        z = q_mean + jax.random.normal(k_z, q_mean.shape) * jnp.exp(0.5 * q_logvar)
        pred_a, pred_v = net.apply(actor_params, x[:, :, 1], z, method=net.heads)
        total = jnp.maximum(jnp.sum(mask), 1.0)
        action_loss = jnp.sum(jnp.mean((pred_a - actions) ** 2, axis=-1) * mask) / total
        target_v = batch["returns_to_go"] / cfg.return_scale
        value_loss = jnp.sum((pred_v - target_v) ** 2 * mask) / total
        if cfg.prior_stop_gradient and cfg.energy_weight:
            p_mean, p_logvar = jax.lax.stop_gradient((p_mean, p_logvar))
        kl = jnp.mean(gaussian_kl(q_mean, q_logvar, p_mean, p_logvar), axis=-1)
        prior_loss = jnp.sum(kl * mask) / total
        # InfoNCE: positives (s_(t+1), r_t) of the same row, negatives drawn among valid positions
        e_next, e_rew = net.apply(
            actor_params,
            next_obs,
            jnp.clip(batch["timesteps"] + 1, 0, self.max_timestep),
            rewards,
            steps,
            method=net.energy_features,
        )
        z_g = _reverse_gradient(z) if cfg.mi_minmax else z
        if cfg.critic == "separable":
            # row i: context i against the outcomes of every window at the same position
            pos, neg = net.apply(actor_params, x[:, :, 2], z_g, e_next, e_rew, method=net.separable)
        else:
            b, k = mask.shape
            logits = jnp.log(jnp.maximum(mask.reshape(-1), 1e-30))
            flat_next, flat_rew = e_next.reshape(b * k, -1), e_rew.reshape(b * k, -1)
            neg_next = flat_next[jax.random.categorical(k_neg1, logits, shape=(b * k,))]
            neg_rew = flat_rew[jax.random.categorical(k_neg2, logits, shape=(b * k,))]
            pos = net.apply(actor_params, x[:, :, 2], z_g, e_next, e_rew, method=net.energy)
            neg = net.apply(
                actor_params,
                x[:, :, 2],
                z_g,
                neg_next.reshape(e_next.shape),
                neg_rew.reshape(e_rew.shape),
                method=net.energy,
            )
        energies = jnp.einsum("bte,cte->tbc", pos, neg)  # [K, B, B]
        nce = info_nce(energies, mask.T)  # [K, B]
        energy_loss = jnp.sum(nce.T * mask) / total
        loss = (
            action_loss
            + value_loss
            + cfg.prior_weight * prior_loss
            + cfg.energy_weight * energy_loss
        )
        metrics = {
            "action_loss": action_loss,
            "value_loss": value_loss,
            "prior_loss": prior_loss,
            "energy_loss": energy_loss,
        }
        return loss, metrics

    def update(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        actions = to_unit_actions(batch["actions"], state["action_scale"])
        actions = actions * batch["mask"][..., None]
        new_state, loss, aux = supervised_actor_step(
            self.optimizer, state, self.loss, state, batch, actions, key, has_aux=True
        )
        return new_state, {"actor_loss": loss, **aux}

    # ------------------------------------------------------------------ acting with a carry
    def initial_carry(self, batch_size: int) -> Carry:
        """An empty context (``length = 0``); ``value`` is the last chosen latent's value."""
        k, spec = self.config.context_length, self.spec
        return {
            "observations": jnp.zeros((batch_size, k, spec.observation_dim), jnp.float32),
            "actions": jnp.zeros((batch_size, k, spec.action_dim), jnp.float32),
            "rewards": jnp.zeros((batch_size, k), jnp.float32),
            "timesteps": jnp.zeros((batch_size, k), jnp.int32),
            "length": jnp.zeros((batch_size,), jnp.int32),
            "timestep": jnp.zeros((batch_size,), jnp.int32),
            "value": jnp.zeros((batch_size,), jnp.float32),
        }

    def choose(self, params: dict, window: dict, slot, key: jax.Array | None = None):
        """Value-guided latent selection at ``slot``: ``(unit action [B, A], z* [B, L],
        V* [B] in scaled return units, candidate values [B, M])``."""
        cfg, net = self.config, self.network
        x, p_mean, p_logvar = net.apply(
            params["actor"],
            window["rewards"],
            normalize_observations(window["observations"], params["obs_norm"]),
            window["actions"],
            self._times(window["timesteps"]),
            method=net.history,
        )
        b = slot.shape[0]
        pick = jnp.arange(x.shape[1])[None, :] == slot[:, None]  # [B, K]
        state_x = x[:, :, 1]
        feat = jnp.sum(jnp.where(pick[..., None], state_x, 0.0), axis=1)
        mean = jnp.sum(jnp.where(pick[..., None], p_mean, 0.0), axis=1)
        logvar = jnp.sum(jnp.where(pick[..., None], p_logvar, 0.0), axis=1)
        m = cfg.num_latent_samples
        if key is None:  # the fixed table, a different set per row (FIXED_DRAW_ROWS)
            # row numbers by a cumulative sum: jax2onnx 0.8.1 cannot convert an iota of a
            # symbolic batch size
            rows = (jnp.cumsum(jnp.ones_like(slot)) - 1) % FIXED_DRAW_ROWS
            eps = jnp.take(jnp.asarray(self.fixed_draws), rows, axis=0)
        else:
            eps = jax.random.normal(key, (b, m, cfg.latent_dim))
        latents = mean[:, None] + eps * jnp.exp(0.5 * logvar)[:, None]
        feats = jnp.broadcast_to(feat[:, None], (b, m, feat.shape[-1]))
        _, values = net.apply(params["actor"], feats, latents, method=net.heads)
        z, v = select_latent(values, latents)
        unit, _ = net.apply(params["actor"], feat, z, method=net.heads)
        return unit, z, v, values

    def act(
        self, params: dict, obs: jnp.ndarray, carry: Carry, key: jax.Array | None = None
    ) -> tuple[jnp.ndarray, Carry]:
        """Append ``obs``, pick the best of ``M`` prior latents, act with it (new each step)."""
        k = self.config.context_length
        full = carry["length"] >= k
        slot = jnp.minimum(carry["length"], k - 1)
        n = obs.shape[0]
        window = {
            "observations": self._append(carry["observations"], obs, slot, full),
            "actions": self._append(
                carry["actions"], jnp.zeros((n, self.spec.action_dim)), slot, full
            ),
            "rewards": self._append(carry["rewards"], jnp.zeros((n,)), slot, full),
            "timesteps": self._append(carry["timesteps"], carry["timestep"], slot, full),
        }
        unit, _, value, _ = self.choose(params, window, slot, key)
        window["actions"] = self._append(window["actions"], unit, slot, jnp.zeros_like(full))
        carry = {
            **window,
            "length": slot + 1,
            "timestep": carry["timestep"] + 1,
            "value": value * self.config.return_scale,
        }
        return from_unit_actions(unit, params["action_scale"]), carry

    def observe_reward(self, carry: Carry, reward: jnp.ndarray) -> Carry:
        """Write ``reward`` at the newest position (the next step's ``r_(t-1)`` token)."""
        slot = jnp.maximum(carry["length"] - 1, 0)
        here = jnp.arange(carry["rewards"].shape[1])[None, :] == slot[:, None]
        rewards = jnp.where(here, jnp.asarray(reward, jnp.float32)[:, None], carry["rewards"])
        return {**carry, "rewards": rewards}
