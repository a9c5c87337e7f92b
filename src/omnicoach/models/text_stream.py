"""Turn a stream of token ids into a stream of text deltas, honouring stop strings.

Two things make this more than ``tokenizer.decode`` per token:
- a byte-level BPE token can end in the middle of a UTF-8 character; such text is held back
  until the character is complete (it decodes to U+FFFD until then);
- a stop string can span several tokens, so text that could be the start of a stop string is
  held back until it is clear it is not one. The stop string itself is never emitted.
"""

from collections.abc import Sequence

REPLACEMENT_CHAR = "\ufffd"


class TextStream:
    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.token_ids: list[int] = []
        self.text = ""  # everything decoded so far
        self.emitted = 0  # how many characters of self.text were handed out
        self.stopped = False  # a stop string was found

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now safe to show (maybe "")."""
        self.token_ids.append(token_id)
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        if text.endswith(REPLACEMENT_CHAR):
            return ""  # incomplete UTF-8 sequence: wait for the next token
        self.text = text
        stop_at = self._find_stop()
        if stop_at is not None:
            self.stopped = True
            return self._emit_until(stop_at)
        return self._emit_until(len(self.text) - self._held_back())

    def flush(self) -> str:
        """At the end of generation: whatever is still held back is final text."""
        return "" if self.stopped else self._emit_until(len(self.text))

    def _find_stop(self) -> int | None:
        # A new match can only start in text not yet emitted (held-back text included).
        positions = [p for s in self.stop if (p := self.text.find(s, self.emitted)) != -1]
        return min(positions) if positions else None

    def _held_back(self) -> int:
        """Length of the longest tail of the unsent text that begins some stop string."""
        tail = self.text[self.emitted :]
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(tail)), longest, -1):
                if s.startswith(tail[-n:]):
                    longest = n
                    break
        return longest

    def _emit_until(self, end: int) -> str:
        delta = self.text[self.emitted : end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return delta
