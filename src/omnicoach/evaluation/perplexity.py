"""Perplexity of a causal language model on a text, with a sliding window.

The method of the Hugging Face guide "Perplexity of fixed-length models": the text is cut into
windows of ``window`` tokens that start ``stride`` tokens apart, and each window scores only
the tokens the previous one did not reach, so every token is predicted once, with up to
``window - stride`` tokens of context before it. A smaller stride gives each token more context
(a lower, more faithful perplexity) at the cost of more forward passes. The stride must be
smaller than the window: each window needs at least one token of context for its first target.

The text is tokenised without special tokens, so the very first token has no context and is
not scored: a text of N tokens scores N - 1.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from omnicoach.errors import InvalidRequestError


@dataclass(frozen=True)
class WindowDone:
    """Reported after each window, for progress bars and metric series."""

    index: int  # 0-based
    windows: int  # how many there are in all
    tokens_scored: int  # so far
    perplexity: float  # over the tokens scored so far


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    mean_nll: float  # nats per token; perplexity = exp(mean_nll)
    tokens_scored: int
    windows: int


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Where each window begins; the last one reaches the end of the text."""
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + stride)
    return starts


@torch.inference_mode()
def perplexity(
    model,
    tokenizer,
    text: str,
    window: int = 512,
    stride: int = 256,
    on_progress: Callable[[WindowDone], None] | None = None,
) -> PerplexityResult:
    """Score TEXT with MODEL (a transformers causal LM); ON_PROGRESS runs after every window and
    may raise to stop the computation (that is how a cancelled job stops)."""
    if window < 2:
        raise InvalidRequestError(f"window must be at least 2 tokens, got {window}")
    if not 1 <= stride < window:
        raise InvalidRequestError(
            f"stride must be at least 1 and below window={window}, got {stride}"
        )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    n_tokens = ids.shape[1]
    if n_tokens < 2:
        raise InvalidRequestError("the text is too short: perplexity needs at least 2 tokens")

    starts = window_starts(n_tokens, window, stride)
    nll_sum = 0.0
    scored = 0
    scored_until = 1  # tokens before this index are scored (or, for token 0, never can be)
    for index, begin in enumerate(starts):
        end = min(begin + window, n_tokens)
        logits = model(input_ids=ids[:, begin:end]).logits[0]
        # Position p predicts token p + 1; score only the targets no earlier window scored.
        first_target = scored_until - begin
        targets = ids[0, begin + first_target : end]
        predictions = logits[first_target - 1 : end - begin - 1]
        nll_sum += F.cross_entropy(predictions.double(), targets, reduction="sum").item()
        scored += len(targets)
        scored_until = end
        if on_progress is not None:
            on_progress(WindowDone(index, len(starts), scored, math.exp(nll_sum / scored)))

    mean_nll = nll_sum / scored
    return PerplexityResult(math.exp(mean_nll), mean_nll, scored, len(starts))
