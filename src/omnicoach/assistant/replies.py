"""Answers that are not (only) generated, shaped like a generation (models/llm.Generation):
an iterator of text deltas with finish_reason and token counts, cancel() and close().

A fixed answer — written from the knowledge base, a safety notice, "which one do you mean?" —
streams a word at a time, as a generated one does, and keeps to the client's max_tokens the
same way (finish_reason "length" when cut). Without a limit from the client it is given
whole: the server's default max_tokens bounds what a model generates, not checked text (a
Bengali entry's steps are ~800 of the chat model's tokens). A prefixed answer is a fixed
opening followed by the chat model's own words ("I don't have a checked entry for …
General answer: …").
"""

import re
import threading
from collections.abc import Iterator

WORD = re.compile(r"\s*\S+|\s+$")


class FixedReply:
    """TEXT as an answer: cut at the first of the STOP strings (as a generation stops there),
    then at MAX_TOKENS of TOKENIZER's tokens."""

    def __init__(
        self, text: str, tokenizer, max_tokens: int | None, prompt_tokens: int = 0, stop=()
    ):
        ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
        text = text[: min(ends)] if ends else text
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        cut = max_tokens is not None and len(ids) > max_tokens
        self.text = tokenizer.decode(ids[:max_tokens]) if cut else text
        self.completion_tokens = min(len(ids), max_tokens) if cut else len(ids)
        self.prompt_tokens = prompt_tokens
        self.finish_reason: str | None = "length" if cut else "stop"
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[str]:
        for word in WORD.findall(self.text):
            if self._cancelled.is_set():
                self.finish_reason = "cancelled"
                return
            yield word

    def cancel(self) -> None:
        self._cancelled.set()

    def close(self) -> None:
        self._cancelled.set()


class PrefixedReply:
    """PREFIX (a FixedReply), then GENERATION's deltas; the counts are both together."""

    def __init__(self, prefix: FixedReply, generation):
        self.prefix, self.generation = prefix, generation
        self.connect = getattr(generation, "connect", None)  # a remote model's answer

    @property
    def prompt_tokens(self) -> int:
        return self.generation.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.prefix.completion_tokens + self.generation.completion_tokens

    @property
    def finish_reason(self) -> str | None:
        return self.generation.finish_reason

    def __iter__(self) -> Iterator[str]:
        yield from self.prefix
        yield from self.generation

    def cancel(self) -> None:
        self.prefix.cancel()
        self.generation.cancel()

    def close(self) -> None:
        self.generation.close()
