"""Sampling parameters and the choice of the next token from logits."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from omnicoach.errors import InvalidRequestError


@dataclass
class SamplingParams:
    max_tokens: int = 512
    # Defaults follow the SmolLM2 model card (temperature 0.2, top_p 0.9).
    temperature: float = 0.2  # 0 means greedy
    top_p: float = 0.9
    seed: int | None = None  # fixed seed => the same output for the same input
    stop: Sequence[str] = ()
    # Penalties on tokens already generated (not the prompt), so a small model stops looping.
    # frequency/presence follow OpenAI (additive, -2..2); repetition follows HF/vLLM (>1 divides).
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # 1.1 by default: without it the bundled 135M model loops ("Downward Dog: Downward Dog: ..."),
    # with it the same prompts give numbered steps (measured by hand, README).
    repetition_penalty: float = 1.1
    # Never choose an end-of-turn (or other control) token, so the answer runs to max_tokens
    # (benchmarks, tests). As llama.cpp's ignore_eos: the answer stays plain text that the
    # next turn's prompt holds token for token. Emitting the end token and going on past it
    # (vLLM's) makes the model write a new turn, whose control tokens the text then drops.
    ignore_eos: bool = False

    def validate(self) -> None:
        if self.max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise InvalidRequestError(
                f"temperature must be between 0 and 2, got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise InvalidRequestError(f"top_p must be in (0, 1], got {self.top_p}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2 <= getattr(self, name) <= 2:
                raise InvalidRequestError(
                    f"{name} must be between -2 and 2, got {getattr(self, name)}"
                )
        if not 0 < self.repetition_penalty <= 2:
            raise InvalidRequestError(
                f"repetition_penalty must be in (0, 2], got {self.repetition_penalty}"
            )
        if len(self.stop) > 4:
            raise InvalidRequestError(f"at most 4 stop strings are allowed, got {len(self.stop)}")


def penalised(logits: torch.Tensor, generated: list[int], params: SamplingParams) -> torch.Tensor:
    if not generated or (
        params.frequency_penalty == params.presence_penalty == 0 and params.repetition_penalty == 1
    ):
        return logits
    tokens, counts = torch.unique(torch.tensor(generated), return_counts=True)
    logits = logits.clone()
    seen = logits[tokens]
    if params.repetition_penalty != 1:
        p = params.repetition_penalty
        seen = torch.where(seen > 0, seen / p, seen * p)
    seen = seen - params.frequency_penalty * counts - params.presence_penalty
    logits[tokens] = seen
    return logits


def next_token(
    logits: torch.Tensor,
    generated: list[int],
    params: SamplingParams,
    rng: torch.Generator,
    control_token_ids: set[int],
) -> int:
    """The token after GENERATED: penalties, then (with ignore_eos) the control tokens ruled
    out, then sampling."""
    logits = penalised(logits, generated, params)
    if params.ignore_eos and control_token_ids:
        logits = logits.clone()
        logits[list(control_token_ids)] = float("-inf")
    return sample(logits, params.temperature, params.top_p, rng)


def sample(logits: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator) -> int:
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest set of tokens whose mass reaches top_p (always at least one).
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=rng))
