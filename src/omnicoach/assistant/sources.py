"""Sources for a generated answer: knowledge-base passages and the passages of the pages a
question links to, numbered in the prompt so the answer can cite them (knowledge/grounding.py).

When the question names a knowledge-base exercise, its sources are that entry's passages for
the aspects asked — never a neighbour's that MiniLM finds close (a push-up question once got
the pull-up's passage). Otherwise the passages closest to the question are retrieved (MiniLM,
knowledge/retrieval.py). Links in the question (omnicoach.links, SSRF-safe) add up to
LINK_PASSAGES passages of their pages; a link that cannot be read becomes a warning, not an
error.
"""

from omnicoach.knowledge.base import Passage
from omnicoach.knowledge.grounding import retrieve, within_budget
from omnicoach.knowledge.retrieval import PassageIndex
from omnicoach.links import find_urls

LINK_PASSAGES = 2  # of the passages, at most this many from links


def link_passages(question: str, link_reader, embedder) -> tuple[list[Passage], list[str]]:
    """The best passages of the pages QUESTION links to, and a warning per unread link."""
    if link_reader is None or not find_urls(question):
        return [], []
    pages, errors = link_reader.read_message(question)
    chunks = [
        Passage(f"{c.url}#{c.index}", page.title or c.url, c.text, "", c.url)
        for page in pages
        for c in page.chunks
    ]
    if not chunks:
        return [], [str(e) for e in errors]
    hits = PassageIndex(embedder, chunks).search(question, LINK_PASSAGES, -1.0)
    return [h.passage for h in hits], [str(e) for e in errors]


def sources_for(
    messages: list[dict],
    knowledge,
    settings,
    count_tokens,
    chosen: list[Passage] | None = None,
    links: list[Passage] = (),
) -> list[Passage]:
    """The passages a generated answer to MESSAGES' last question gets: LINKS first, then
    CHOSEN (the named exercise's) or else the retrieved ones, within the settings' count and
    token budget (COUNT_TOKENS is the chat model's)."""
    passages = list(links)
    found = (
        chosen if chosen is not None else retrieve(knowledge.index, messages, settings.rag_passages)
    )
    passages += found[: max(settings.rag_passages - len(passages), 0)]
    return within_budget(passages, count_tokens, settings.rag_max_tokens)
