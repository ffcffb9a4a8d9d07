"""Sampling from a policy (or a mixture) on a task, and the task's reward of what was sampled.

The online objectives (SuperHF, HyPO, online DPO, Nash-MD, DR-PO's roll-in) need the policy's
own completions and their rewards. A :class:`Sampler` knows how a task's completions look:

* ``enumerable``/``unseen-response``: after the prompt (``<bos>``) the model samples from its
  full vocabulary until EOS, at most ``max_len + 1`` tokens; a completion that is not
  ``symbols{min_len..max_len} + EOS`` is the task's ``OTHER`` outcome (reward ``other_reward``),
  exactly as :mod:`policyfit.pref.exact` counts it;
* token bandit: 9 tokens from the model's distribution restricted to the 100 content tokens
  (the task's own sampler), then EOS, scored by Tajwar et al.'s reward of prompt + response.

Generation runs the model on the whole right-padded batch at every step (no KV cache: the
sequences are at most 11 tokens). ``prefixes`` (DR-PO's roll-in) are teacher-forced after the
prompt and excluded from the completion mask, so a loss on the mask touches generated tokens
only.

Example:
    >>> from policyfit.pref.tasks import get_task                       # doctest: +SKIP
    >>> task = get_task("enumerable"); ref = task.reference(0)          # doctest: +SKIP
    >>> s = Sampler(task, ref.tokenizer)                                # doctest: +SKIP
    >>> batch = s.generate(s.logits_of(ref.model), s.prompt_ids(["<bos>"] * 4), gen)  # doctest: +SKIP
    >>> s.rewards(batch).shape                                          # doctest: +SKIP
    torch.Size([4])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from policyfit.pref.tasks import BANDIT_RESPONSE_LEN, EnumerableTask, Task, TokenBanditTask

LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Rollout:
    """Sampled sequences: ``input_ids``/``attention_mask`` ``[B, T]`` right-padded,
    ``completion_mask`` 1 on generated tokens (EOS included, roll-in prefix excluded),
    ``prompt_len [B]`` and ``response`` (the token ids after the prompt, prefix included)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    prompt_len: torch.Tensor
    responses: list[list[int]]


class Sampler:
    """Generation and reward of ``task``'s completions with ``tokenizer`` (module docstring)."""

    def __init__(self, task: Task, tokenizer):
        self.task = task
        self.tokenizer = tokenizer
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id
        if isinstance(task, TokenBanditTask):
            self.restrict = task.content_ids(tokenizer)
            self.max_new = BANDIT_RESPONSE_LEN
        elif isinstance(task, EnumerableTask):
            self.restrict = None
            self.max_new = task.max_len + 1
            ids = tokenizer.convert_tokens_to_ids(list(task.symbols))
            self._symbol = dict(zip(ids, task.symbols, strict=True))
        else:  # pragma: no cover - every task is one of the two
            raise TypeError(f"no sampler for {type(task).__name__}")

    # ------------------------------------------------------------------ text <-> ids
    def prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]

    def completion_ids(self, completions: Sequence[str]) -> list[list[int]]:
        """Token ids of completion texts (without EOS)."""
        return [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions]

    @staticmethod
    def logits_of(model) -> LogitsFn:
        return lambda ids, attn: model(input_ids=ids, attention_mask=attn, use_cache=False).logits

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        logits_fn: LogitsFn,
        prompts: list[list[int]],
        gen: torch.Generator,
        prefixes: list[list[int]] | None = None,
    ) -> Rollout:
        """Sample one completion per prompt from ``softmax(logits_fn(...))`` (restricted to the
        content tokens on the bandit), after the teacher-forced ``prefixes`` if given."""
        n = len(prompts)
        prefixes = prefixes if prefixes is not None else [[] for _ in range(n)]
        starts = [list(p) + list(q) for p, q in zip(prompts, prefixes, strict=True)]
        width = max(len(p) for p in prompts) + self.max_new + 1
        ids = torch.full((n, width), self.pad, dtype=torch.long)
        for i, s in enumerate(starts):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        length = torch.tensor([len(s) for s in starts])
        budget = torch.tensor([self.max_new - len(q) for q in prefixes])
        done = budget <= 0
        rows = torch.arange(n)
        generated = torch.zeros(n, dtype=torch.long)
        while not bool(done.all()):
            t = int(length.max())
            attn = (torch.arange(t).unsqueeze(0) < length.unsqueeze(1)).long()
            logits = logits_fn(ids[:, :t], attn)[rows, length - 1].double()
            if self.restrict is not None:
                probs = torch.softmax(logits[:, self.restrict], dim=-1)
                nxt = self.restrict[torch.multinomial(probs, 1, generator=gen).squeeze(1)]
            else:
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(1)
            live = ~done
            ids[rows[live], length[live]] = nxt[live]
            length = length + live.long()
            generated = generated + live.long()
            done = done | (generated >= budget)
            if self.restrict is None:
                done = done | (live & (nxt == self.eos))
        if self.restrict is not None:  # the bandit's response is 9 tokens, then EOS
            ids[rows, length] = self.eos
            length = length + 1
        prompt_len = torch.tensor([len(p) for p in prompts])
        start = torch.tensor([len(s) for s in starts])
        pos = torch.arange(width).unsqueeze(0)
        attn = (pos < length.unsqueeze(1)).long()
        comp = ((pos >= start.unsqueeze(1)) & (pos < length.unsqueeze(1))).long()
        t = int(length.max())
        responses = [ids[i, int(prompt_len[i]) : int(length[i])].tolist() for i in range(n)]
        return Rollout(ids[:, :t], attn[:, :t], comp[:, :t], prompt_len, responses)

    # ------------------------------------------------------------------ reward
    def reward(self, prompt: list[int], response: list[int]) -> float:
        """The task's reward of ``response`` (token ids after the prompt, EOS included or not)."""
        task = self.task
        if isinstance(task, TokenBanditTask):
            content = self.restrict.tolist()
            index = {tok: v for v, tok in enumerate(content)}
            body = [t for t in response if t != self.eos][:BANDIT_RESPONSE_LEN]
            # R = mean over prompt + 9 response tokens; a special token is a term of 0
            values = [index.get(t) for t in [prompt[-1], *body]]
            terms = [0.0 if v is None else _term(v, task.centre) for v in values]
            return sum(terms) / (BANDIT_RESPONSE_LEN + 1)
        body = list(response)
        ok = bool(body) and body[-1] == self.eos
        body = body[:-1] if ok else body
        if not ok or not task.min_len <= len(body) <= task.max_len:
            return float(task.other_reward)
        if any(t not in self._symbol for t in body):
            return float(task.other_reward)
        return float(task.reward_fn(tuple(self._symbol[t] for t in body)))

    def rewards(self, rollout: Rollout) -> torch.Tensor:
        prompts = [
            rollout.input_ids[i, : int(rollout.prompt_len[i])].tolist()
            for i in range(len(rollout.responses))
        ]
        return torch.tensor(
            [self.reward(p, r) for p, r in zip(prompts, rollout.responses, strict=True)],
            dtype=torch.float64,
        )


def _term(value: int, centre: float) -> float:
    """One token's term of the bandit reward (``tasks.bandit_token_reward`` for a float)."""
    return math.exp(-(((value - centre) / 10.0) ** 2))
