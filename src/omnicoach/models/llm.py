"""The chat engine: a causal LM with its chat template, streamed generation and a
context-length guard.

Generation is a plain decode loop over the model's KV cache, written out rather than hidden
in ``model.generate`` because the server needs what generate makes awkward: text deltas as
they appear, stop strings, and cancellation both when the consumer stops reading (closing
the iterator) and from another thread (``cancel``).

Context-length rule (when prompt + max_tokens exceed the context window): the oldest turns
are dropped first — a user message together with the assistant replies that follow it —
until the prompt fits. System messages and the latest message are never dropped; if they
alone do not fit, the request fails with ContextLengthError.
"""

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from omnicoach.errors import ContextLengthError, InvalidRequestError, ModelFileError
from omnicoach.models.batch_engine import BatchEngine
from omnicoach.models.sampling import SamplingParams, next_token
from omnicoach.models.text_stream import TextStream
from omnicoach.models.vision_language import tokenize_with_image

ROLES = ("system", "user", "assistant")


@dataclass
class ImageInput:
    """An image as the LLM reads it: input embeddings [tokens, hidden] (projected image
    features, models/vision_language.py) and a KEY naming the image's content."""

    embeddings: torch.Tensor
    key: str

    def placeholders(self) -> list[int]:
        """Negative token ids for the image positions: the engine reads their embeddings
        instead of the vocabulary's, and the same image gives the same ids, so a follow-up
        question about it reuses the cached prefix while another image does not."""
        base = int(self.key[:12], 16) * 1024  # < 2**58: fits a torch int64 with room
        return [-(base + i) - 1 for i in range(len(self.embeddings))]

    def by_placeholder(self) -> dict[int, torch.Tensor]:
        return dict(zip(self.placeholders(), self.embeddings, strict=True))


@dataclass
class Prompt:
    """The tokenised prompt after the context-length guard has run."""

    messages: list[dict]  # the messages actually used, system prompt included
    token_ids: list[int]
    dropped_messages: int  # how many old messages the guard removed
    image: ImageInput | None = None  # read where a message holds IMAGE_MARKER


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class Generation:
    """An iterator of text deltas; the counters and finish_reason are final once it ends.

    finish_reason: "stop" (end-of-turn token or a stop string), "length" (max_tokens reached),
    "cancelled" (cancel() was called), or None while running / when the consumer stopped
    reading early.
    """

    def __init__(self, prompt: Prompt, decode: Callable[["Generation"], Iterator[str]]):
        self.prompt = prompt
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self.cancel_requested = threading.Event()
        self._deltas = decode(self)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt.token_ids)

    def __iter__(self) -> Iterator[str]:
        return self._deltas

    def cancel(self) -> None:
        """Stop generating at the next token; safe to call from another thread."""
        self.cancel_requested.set()

    def close(self) -> None:
        """Stop now and release the KV cache (what a consumer that stops reading does)."""
        self._deltas.close()


class ChatLLM:
    def __init__(
        self,
        tokenizer,
        model,
        name: str,
        context_length: int = 2048,
        default_system_prompt: str = "",
        engine: BatchEngine | None = None,
    ):
        self.tokenizer = tokenizer
        self.model = model
        self.name = name
        model_limit = getattr(model.config, "max_position_embeddings", None) or context_length
        self.context_length = min(context_length, model_limit)
        self.default_system_prompt = default_system_prompt
        if not getattr(tokenizer, "chat_template", None):
            raise ModelFileError(
                f"model {name} has no chat template, so it cannot be used for chat"
            )
        self.end_token_ids = _end_token_ids(tokenizer, model)
        # Tokens that are never text (ruled out with ignore_eos): end of turn, turn markers…
        self.control_token_ids = self.end_token_ids | set(tokenizer.all_special_ids)
        # The fast path (quantised weights, batching, prefix cache) when the architecture has
        # one; else transformers' own forward, token by token.
        self.engine = engine

    # --- prompt -------------------------------------------------------------------------

    def render(self, messages: Sequence[dict]) -> str:
        """The prompt text the model sees, with the assistant turn opened."""
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def build_prompt(
        self, messages: Sequence[dict], max_tokens: int, image: ImageInput | None = None
    ) -> Prompt:
        """Validate, add the default system prompt, apply the context-length rule, tokenise.
        With IMAGE, the message holding IMAGE_MARKER gets the image there."""
        messages = _validated(messages)
        if self.default_system_prompt and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.default_system_prompt})

        budget = self.context_length - max_tokens
        if budget <= 0:
            raise ContextLengthError(
                f"max_tokens={max_tokens} leaves no room for the prompt in the "
                f"{self.context_length}-token context window"
            )
        dropped = 0
        token_ids = self._tokenize(messages, image)
        while len(token_ids) > budget:
            removed = _drop_oldest_turn(messages)
            if not removed:
                raise ContextLengthError(
                    f"the system prompt and the last message need {len(token_ids)} tokens, but "
                    f"only {budget} fit in the {self.context_length}-token context window with "
                    f"max_tokens={max_tokens}; shorten the message or lower max_tokens"
                )
            dropped += removed
            token_ids = self._tokenize(messages, image)
        return Prompt(messages, token_ids, dropped, image)

    def _tokenize(self, messages: list[dict], image: ImageInput | None = None) -> list[int]:
        if image is None:
            # The template already contains the special tokens; do not add a BOS twice.
            return self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
        row = tokenize_with_image(
            self.tokenizer, messages, len(image.embeddings), generation_prompt=True
        )
        ids, start = row["input_ids"], row["image_start"]
        if start is None:  # the image's message was dropped to fit the context
            return ids
        return ids[:start] + image.placeholders() + ids[start + len(image.embeddings) :]

    # --- generation ---------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[dict],
        params: SamplingParams | None = None,
        image: ImageInput | None = None,
    ) -> Generation:
        """Start a generation; iterate the result for text deltas."""
        params = params or SamplingParams()
        params.validate()
        prompt = self.build_prompt(messages, params.max_tokens, image)
        return Generation(prompt, lambda generation: self._decode(generation, params))

    def complete(
        self,
        messages: Sequence[dict],
        params: SamplingParams | None = None,
        image: ImageInput | None = None,
    ) -> Completion:
        generation = self.stream(messages, params, image)
        text = "".join(generation)
        return Completion(
            text,
            generation.finish_reason or "stop",
            generation.prompt_tokens,
            generation.completion_tokens,
        )

    def _decode(self, gen: Generation, params: SamplingParams) -> Iterator[str]:
        """Text deltas from the token ids of whichever engine runs the model."""
        text = TextStream(self.tokenizer, params.stop)
        prompt = gen.prompt.token_ids
        image = gen.prompt.image.by_placeholder() if gen.prompt.image else None
        if self.engine is not None:
            tokens = self.engine.submit(prompt, params, gen.cancel_requested, image)
        else:
            tokens = _TransformersTokens(self, prompt, params, gen.cancel_requested, image)
        try:
            for token in tokens:
                gen.completion_tokens += 1
                delta = text.push(token)
                if delta:
                    yield delta  # a consumer that stops reading closes us right here
                if text.stopped:
                    gen.finish_reason = "stop"
                    return
            gen.finish_reason = tokens.finish_reason
        finally:
            tokens.cancel()  # the fast engine frees the sequence's place in the batch at once
        if tail := text.flush():
            yield tail


class _TransformersTokens:
    """Token ids from transformers' own forward for one sequence (any causal LM): the
    engine when the fast one does not support the architecture, and the fp32 reference."""

    def __init__(
        self, llm: ChatLLM, prompt: list[int], params: SamplingParams, cancelled, image=None
    ):
        self.llm, self.prompt, self.params, self.cancelled = llm, prompt, params, cancelled
        self.image = image  # embeddings by placeholder token (ImageInput.by_placeholder)
        self.finish_reason: str | None = None

    def cancel(self) -> None:
        self.cancelled.set()

    @torch.inference_mode()
    def __iter__(self) -> Iterator[int]:
        params, model = self.params, self.llm.model
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        rng = torch.Generator().manual_seed(seed)
        generated: list[int] = []
        cache = DynamicCache()
        ids = torch.tensor([self.prompt])
        embeds = model.get_input_embeddings()(ids.clamp(min=0))
        for position, token in enumerate(self.prompt):
            if token < 0:  # an image position
                embeds[0, position] = self.image[token].to(embeds.dtype)
        inputs = {"inputs_embeds": embeds}
        for _ in range(params.max_tokens):
            if self.cancelled.is_set():
                self.finish_reason = "cancelled"
                return
            logits = model(**inputs, past_key_values=cache, use_cache=True).logits
            control = self.llm.control_token_ids
            token = next_token(logits[0, -1], generated, params, rng, control)
            if token in self.llm.end_token_ids:
                self.finish_reason = "stop"
                return
            generated.append(token)
            yield token
            inputs = {"input_ids": torch.tensor([[token]])}
        self.finish_reason = "length"


def _end_token_ids(tokenizer, model) -> set[int]:
    ids = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return ids


def _validated(messages: Sequence[dict]) -> list[dict]:
    if not messages:
        raise InvalidRequestError("messages must contain at least one message")
    checked = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role must be one of {', '.join(ROLES)}, got {role!r}"
            )
        if not isinstance(content, str):
            raise InvalidRequestError(f"messages[{i}].content must be a string")
        checked.append({"role": role, "content": content})
    return checked


def _drop_oldest_turn(messages: list[dict]) -> int:
    """Remove the oldest user turn and the assistant replies after it, in place.

    Never touches system messages or the last message. Returns how many were removed.
    """
    droppable = [i for i, m in enumerate(messages[:-1]) if m["role"] != "system"]
    if not droppable:
        return 0
    to_drop = [droppable[0]]
    # Replies that belonged to the dropped turn go with it, so history starts with a user turn.
    for i in droppable[1:]:
        if messages[i]["role"] != "assistant":
            break
        to_drop.append(i)
    for i in reversed(to_drop):
        del messages[i]
    return len(to_drop)
