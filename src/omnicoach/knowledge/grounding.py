"""Grounded prompts: retrieved passages go into the prompt with numbers the answer cites.

The sources go into the last user turn, not the system prompt: the system prompt and the
earlier turns then stay the same from turn to turn, so the engine's prefix cache still reuses
them (models/batch_engine.py). Stored conversations keep the question as asked.
"""

from omnicoach.knowledge.base import Passage
from omnicoach.models.romanise import has_bengali

INSTRUCTION = (
    "Use these numbered sources to answer. Cite the source of each fact by its number in "
    "brackets, like [1]. If they do not cover the question, say so briefly."
)


def retrieve(index, messages: list[dict], k: int) -> list[Passage]:
    """The knowledge-base passages for the last question of MESSAGES, in its language. The
    question before it is searched with it: a follow-up ("What muscles does it work?")
    rarely names what "it" is, and the earlier question usually does."""
    *before, question = [m["content"] for m in messages if m["role"] == "user"][-2:]
    lang = "bn" if has_bengali(question) else "en"
    hits = index.search(question, k, lang=lang, context=before[0] if before else "")
    return [hit.passage for hit in hits]


def within_budget(passages: list[Passage], count_tokens, budget: int) -> list[Passage]:
    """The passages, best first, while their tokens together stay within BUDGET: a long one
    is left out rather than cut mid-sentence, and shorter ones after it may still fit."""
    chosen, used = [], 0
    for passage in passages:
        tokens = count_tokens(passage.text)
        if used + tokens <= budget:
            chosen.append(passage)
            used += tokens
    return chosen


def grounded_messages(messages: list[dict], passages: list[Passage]) -> list[dict]:
    """MESSAGES with the sources put before the question in the last (user) turn."""
    if not passages or not messages or messages[-1]["role"] != "user":
        return messages
    sources = "\n\n".join(f"[{i}] {p.text}" for i, p in enumerate(passages, 1))
    question = messages[-1]
    content = f"{INSTRUCTION}\n\n{sources}\n\nQuestion: {question['content']}"
    return [*messages[:-1], {**question, "content": content}]


def source_list(passages: list[Passage]) -> list[dict]:
    """What a response tells the client about its sources, by the numbers the answer cites."""
    return [
        {"index": i, "id": p.id, "title": p.title, "source": p.source}
        for i, p in enumerate(passages, 1)
    ]
