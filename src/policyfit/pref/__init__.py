"""Preference fine-tuning of tiny sequence policies (the optional ``policyfit[pref]`` extra).

PyTorch and Hugging Face (transformers, TRL 1.16, datasets, tokenizers), independent of the JAX
core: nothing here imports jax, and no core package imports this one (only ``policyfit.cli``;
both are import-linter contracts in ``pyproject.toml``). Install with ``make install-pref``
(``pip install -e .[pref]``).

* :mod:`.models` — tiny causal transformers (GPT-2 architecture, built from a config) and a
  locally built word-level tokenizer, saved with ``save_pretrained`` so TRL loads them by path;
* :mod:`.tasks` — the four tasks (``token-bandit-aligned``, ``token-bandit-unaligned``,
  ``enumerable``, ``unseen-response``): reference policy, reward program, preference data;
* :mod:`.exact` — exact expected reward, KLs, total variation and distance to
  ``pi* ∝ pi_ref exp(R / beta)`` by enumerating a finite response space through the model;
* :mod:`.losses` — the objectives as pure functions of per-sequence log-probabilities;
* :mod:`.rollouts` — sampling from a policy (or a mixture) on a task, and the task's reward;
* :mod:`.trainers` — TRL-style trainers (one base) for the objectives TRL 1.16 lacks: CoPG,
  C-RLFT, SuperHF, HyPO, Nash-MD, DR-PO's roll-in;
* :mod:`.train` — ``train(objective, task, steps, seed, beta)``: TRL's trainers for DPO, IPO,
  RPO and online DPO, :mod:`.trainers` for the rest.

Nothing is downloaded: importing this package sets ``HF_HUB_OFFLINE=1`` and
``HF_DATASETS_OFFLINE=1`` (unless already set) before transformers or datasets load.
"""

from __future__ import annotations

import os

for _key, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("HF_DATASETS_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("TRL_EXPERIMENTAL_SILENCE", "1"),
):
    os.environ.setdefault(_key, _value)

#: The distributions that make up the extra; ``policyfit pref`` checks them before importing.
REQUIRED_DISTRIBUTIONS = ("torch", "transformers", "trl", "datasets", "tokenizers")
