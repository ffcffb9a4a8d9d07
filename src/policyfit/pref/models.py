"""Tiny causal transformers and a local word-level tokenizer, built from configs, never downloaded.

A policy is a ``transformers.GPT2LMHeadModel`` built from a :class:`transformers.GPT2Config`
(a few layers, width 32-128) and a ``PreTrainedTokenizerFast`` wrapping a ``tokenizers``
WordLevel model over the task's symbols. Text is the symbols separated by single spaces
(``"a b c"``); the special tokens ``<pad> <bos> <eos> <unk>`` come first in the vocabulary.
Special tokens are split out before the whitespace pre-tokenizer, so TRL's ``chosen + eos_token``
(``"a b<eos>"``) tokenizes to ``[a, b, <eos>]`` and a prompt is always a token prefix of
prompt + completion (no merges across the boundary).

TRL's ``DPOTrainer`` reloads the reference from ``model.config._name_or_path`` when no
``ref_model`` is given, and the tokenizer from the same path when no ``processing_class`` is
given (``trl/trainer/dpo_trainer.py`` 1.16.0, ``__init__``); :func:`save_policy` writes both with
``save_pretrained`` so a directory path works, and :mod:`policyfit.pref.train` passes both
explicitly anyway.

Example:
    >>> tok = build_tokenizer(["a", "b", "c"])
    >>> tok("<bos> a c<eos>")["input_ids"]
    [1, 4, 6, 2]
    >>> model = build_model(tok, n_layer=1, n_embd=32, n_head=2, n_positions=8, seed=0)
    >>> sum(p.numel() for p in model.parameters()) > 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)


def build_tokenizer(symbols: Sequence[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``symbols`` (ids ``4 ..``) after the four special tokens.

    Symbols must be distinct, non-empty and free of whitespace and ``<``/``>``.
    """
    symbols = list(symbols)
    if len(set(symbols)) != len(symbols) or any(
        not s or any(c.isspace() or c in "<>" for c in s) for s in symbols
    ):
        raise ValueError(f"symbols must be distinct words without spaces or <>: {symbols!r}")
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *symbols])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=512,
    )
    tokenizer.padding_side = "right"
    return tokenizer


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 16,
    seed: int = 0,
) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 causal LM sized for ``tokenizer``; dropout off, float32.

    The weights depend only on the arguments (``torch.manual_seed(seed)`` right before
    construction, on a private generator state that is restored afterwards).
    """
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.float().eval()


def quiet_libraries() -> None:
    """No progress bars or info logs from datasets/transformers (policyfit prints results)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def save_policy(
    model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, path: str | Path
) -> Path:
    """``save_pretrained`` of the model and the tokenizer into directory ``path`` (created)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def load_policy(path: str | Path) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast]:
    """The model and tokenizer :func:`save_policy` wrote (local files only)."""
    quiet_libraries()
    model = GPT2LMHeadModel.from_pretrained(str(path), local_files_only=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    return model.float().eval(), tokenizer


def completion_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence ``sum_t log pi(y_t | x, y_<t)`` over the completion tokens, and their count.

    ``input_ids``/``attention_mask``/``completion_mask``: ``[B, T]`` right-padded, as TRL's
    ``DataCollatorForPreference`` builds them (``completion_mask`` 1 on completion tokens,
    including the appended EOS). A plain forward pass with full logits (TRL fuses the LM head
    instead); gradients flow unless called under ``torch.no_grad()``.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    token_logps = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mask = completion_mask[:, 1:].to(token_logps.dtype)
    return (token_logps * mask).sum(dim=1), mask.sum(dim=1)
