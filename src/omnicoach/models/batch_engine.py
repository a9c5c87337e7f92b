"""Continuous batching with a prefix cache, on one engine thread.

Every running sequence advances by one token per step, all of them in a single batched
forward (models/llama_decoder.py), so concurrent requests share each read of the weights.
New requests join between steps: their prompt is prefilled, then they decode with the rest.

Each sequence lives in a KV-cache slot. When it ends, the slot keeps its keys and values and
the token ids they belong to. A new prompt takes the free slot that shares its longest
beginning with it and computes only the rest, so the next turn of a conversation (the same
system prompt and history, plus one message) costs the new tokens only. An edited or
regenerated history simply shares a shorter beginning. Slots are a fixed pool — memory is
bounded by slots × context × bytes per token — and the least recently used one is reused.
"""

import atexit
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from omnicoach.models.llama_decoder import LlamaDecoder
from omnicoach.models.sampling import SamplingParams, next_token

log = logging.getLogger(__name__)

# Shorter shared beginnings are not worth keeping a cache for (and are likely chance).
MIN_SHARED_PREFIX = 4
IDLE_POLL_S = 0.5


@dataclass
class _Slot:
    index: int
    tokens: list[int] = field(default_factory=list)  # whose keys/values the slot holds
    # The logits after the last prompt it prefilled, and that prompt's length: the same prompt
    # again (a repeated or regenerated request) reuses them, so its answer is the same as the
    # first time, to the bit (recomputing its last token after a cached prefix rounds
    # differently in bfloat16 and can flip a greedy choice).
    prompt_logits: tuple[int, torch.Tensor] | None = None
    busy: bool = False
    last_used: float = 0.0


@dataclass
class _Done:
    reason: str  # "stop", "length" or "cancelled"


class TokenStream:
    """The tokens of one request as the engine produces them; ``finish_reason`` at the end."""

    def __init__(
        self,
        prompt: list[int],
        params: SamplingParams,
        cancelled: threading.Event,
        embeddings: dict | None = None,
    ):
        self.prompt, self.params, self.cancelled = prompt, params, cancelled
        # An image's input embeddings by (negative) placeholder token: the prompt's image
        # positions. The ids depend on the image, so the prefix cache tells images apart.
        self.embeddings = embeddings
        self.finish_reason: str | None = None
        self._output: queue.SimpleQueue = queue.SimpleQueue()
        seed = params.seed if params.seed is not None else int(time.time_ns())
        self.rng = torch.Generator().manual_seed(seed)
        self.generated: list[int] = []
        self.slot: _Slot | None = None
        self.done = False  # set by the engine thread when it hands over the end

    def __iter__(self) -> Iterator[int]:
        while self.finish_reason is None:
            item = self._output.get()
            if isinstance(item, _Done):
                self.finish_reason = item.reason
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def cancel(self) -> None:
        self.cancelled.set()


class BatchEngine:
    def __init__(
        self,
        decoder: LlamaDecoder,
        end_token_ids: set[int],
        max_batch: int,
        control_token_ids: set[int] | None = None,
    ):
        if decoder.slots < max_batch:
            raise ValueError("the decoder needs at least one KV slot per batched sequence")
        self.decoder = decoder
        self.end_token_ids = end_token_ids
        # Never chosen with ignore_eos: the end of turn and the tokenizer's other specials.
        self.control_token_ids = control_token_ids or end_token_ids
        self.max_batch = max_batch
        self._slots = [_Slot(i) for i in range(decoder.slots)]
        self._incoming: queue.SimpleQueue[TokenStream] = queue.SimpleQueue()
        self._waiting: list[TokenStream] = []
        self._running: list[TokenStream] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.steps = 0  # decode steps taken
        self.prefilled_tokens = 0  # prompt tokens computed
        self.reused_tokens = 0  # prompt tokens whose keys/values came from the prefix cache

    def submit(
        self,
        prompt: list[int],
        params: SamplingParams,
        cancelled: threading.Event,
        embeddings: dict | None = None,
    ) -> TokenStream:
        stream = TokenStream(list(prompt), params, cancelled, embeddings)
        self._ensure_thread()
        self._incoming.put(stream)
        return stream

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError("the batch engine is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="batch-engine", daemon=True)
                self._thread.start()
                # Stop it before the interpreter tears torch down under a running step.
                atexit.register(self.close)

    def close(self) -> None:
        """Finish the current step, end every stream as cancelled, stop the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    # --- the engine thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._take_incoming(block=not self._running and not self._waiting)
            try:
                self._admit()
                if self._running:
                    self._step()
            except Exception as exc:  # a bug or out of memory: fail these, keep serving
                log.exception("batch engine step failed")
                for stream in self._waiting + self._running:
                    self._finish(stream, exc)
                self._waiting, self._running = [], []
        self._take_incoming(block=False)
        for stream in self._waiting + self._running:
            self._finish(stream, _Done("cancelled"))

    def _take_incoming(self, block: bool) -> None:
        try:
            if block:
                self._waiting.append(self._incoming.get(timeout=IDLE_POLL_S))
            while True:
                self._waiting.append(self._incoming.get_nowait())
        except queue.Empty:
            pass

    def _admit(self) -> None:
        """Prefill waiting prompts while there is room in the batch, first come first."""
        while self._waiting and len(self._running) < self.max_batch:
            stream = self._waiting.pop(0)
            if stream.cancelled.is_set():
                self._finish(stream, _Done("cancelled"))
                continue
            try:
                self._prefill(stream)
            except Exception as exc:  # e.g. its first token could not be drawn: it alone ends
                # It is off the waiting list and not yet running, where the loop's own error
                # handling looks: without this its client would wait forever, slot held.
                log.exception("a request failed as it was admitted")
                self._finish(stream, exc)
                continue
            if not stream.done:
                self._running.append(stream)

    def _prefill(self, stream: TokenStream) -> None:
        """Give STREAM a slot, compute its prompt (or what the slot does not hold of it) and
        emit its first token."""
        slot, shared = self._claim_slot(stream.prompt)
        stream.slot = slot
        n = len(stream.prompt)
        if shared == n - 1 and slot.prompt_logits and slot.prompt_logits[0] == n:
            logits = slot.prompt_logits[1]  # the whole prompt is cached, with its logits
            shared = n
        else:
            logits = self.decoder.prefill(
                slot.index, stream.prompt[shared:], shared, embeddings=stream.embeddings
            )
        self.reused_tokens += shared
        self.prefilled_tokens += n - shared
        slot.tokens, slot.prompt_logits = list(stream.prompt), (n, logits)
        self._emit(stream, logits)

    def _claim_slot(self, prompt: list[int]) -> tuple[_Slot, int]:
        """The free slot sharing the longest beginning with PROMPT, else the least recently
        used; and how many prompt tokens it already holds (at least the last is recomputed,
        because its logits are needed)."""
        free = [slot for slot in self._slots if not slot.busy]
        best, shared = max(
            ((slot, _shared_prefix(slot.tokens, prompt)) for slot in free),
            key=lambda pair: (pair[1], -pair[0].last_used),
        )
        if shared < MIN_SHARED_PREFIX:
            best, shared = min(free, key=lambda slot: slot.last_used), 0
        best.busy = True
        return best, min(shared, len(prompt) - 1)

    def _step(self) -> None:
        running = [s for s in self._running if not self._cancelled(s)]
        self._running = running
        if not running:
            return
        slots = [s.slot.index for s in running]
        tokens = [s.generated[-1] for s in running]
        positions = [len(s.slot.tokens) for s in running]
        logits = self.decoder.decode(slots, tokens, positions)
        self.steps += 1
        for stream, row, token in zip(running, logits, tokens, strict=True):
            stream.slot.tokens.append(token)
            self._emit(stream, row)
        self._running = [s for s in running if not s.done]

    def _emit(self, stream: TokenStream, logits: torch.Tensor) -> None:
        """Choose the next token of STREAM and hand it over, or end the stream."""
        params = stream.params
        token = next_token(logits, stream.generated, params, stream.rng, self.control_token_ids)
        if token in self.end_token_ids:
            self._finish(stream, _Done("stop"))
            return
        stream.generated.append(token)
        stream._output.put(token)
        if len(stream.generated) >= params.max_tokens:
            self._finish(stream, _Done("length"))

    def _cancelled(self, stream: TokenStream) -> bool:
        if stream.cancelled.is_set():
            self._finish(stream, _Done("cancelled"))
            return True
        return False

    def _finish(self, stream: TokenStream, outcome: _Done | BaseException) -> None:
        slot = stream.slot
        if slot is not None:
            if isinstance(outcome, BaseException):
                slot.tokens, slot.prompt_logits = [], None  # its cache may be half-written
            slot.busy, slot.last_used = False, time.monotonic()
            stream.slot = None
        stream.done = True
        stream._output.put(outcome)

    def clear_prefix_cache(self) -> None:
        """Forget what idle slots hold (benchmarks: every run starts cold). Call when idle."""
        for slot in self._slots:
            if not slot.busy:
                slot.tokens, slot.prompt_logits = [], None

    def stats(self) -> dict:
        return {
            "slots": len(self._slots),
            # The bound on the cache's memory (touched only as slots fill up).
            "kv_cache_max_bytes": self.decoder.kv_bytes_per_token()
            * self.decoder.max_len
            * len(self._slots),
            "busy_slots": sum(slot.busy for slot in self._slots),
            "running": len(self._running),
            "waiting": len(self._waiting),
            "decode_steps": self.steps,
            "prefilled_tokens": self.prefilled_tokens,
            "reused_tokens": self.reused_tokens,
        }


def _shared_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
