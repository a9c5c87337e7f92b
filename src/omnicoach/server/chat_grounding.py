"""Chat answers grounded in the knowledge base and in the links of the question.

The last user message is the question: the knowledge base passages closest to it (MiniLM,
knowledge/retrieval.py) and the best passages of the pages it links to (omnicoach.links,
SSRF-safe) go into the prompt before the question, numbered (knowledge/grounding.py); the
response lists them as `sources` so the client can show what [1], [2]… refer to. A link
that cannot be read becomes a warning, not an error.
"""

from starlette.concurrency import run_in_threadpool

from omnicoach.knowledge.base import Passage
from omnicoach.knowledge.grounding import (
    grounded_messages,
    retrieve,
    source_list,
    within_budget,
)
from omnicoach.knowledge.retrieval import PassageIndex
from omnicoach.links import find_urls

LINK_PASSAGES = 2  # of the passages, at most this many from links


def wants_grounding(body, settings) -> bool:
    return settings.rag if body.rag is None else body.rag


async def ground(request, messages: list[dict], count_tokens):
    """(messages with sources, the sources for the response, warnings). COUNT_TOKENS is the
    chat model's, for the sources' token budget."""
    if not messages or messages[-1]["role"] != "user":
        return messages, [], []
    question = messages[-1]["content"]
    state, settings = request.app.state, request.app.state.settings
    passages, warnings = [], []
    if settings.link_fetching and find_urls(question):
        pages, errors = await run_in_threadpool(state.link_reader.read_message, question)
        warnings += [str(e) for e in errors]
        chunks = [
            Passage(f"{c.url}#{c.index}", page.title or c.url, c.text, "", c.url)
            for page in pages
            for c in page.chunks
        ]
        if chunks:
            index = await run_in_threadpool(PassageIndex, state.registry.embedder(), chunks)
            hits = await run_in_threadpool(index.search, question, LINK_PASSAGES, -1.0)
            passages += [h.passage for h in hits]
    knowledge = await run_in_threadpool(state.registry.knowledge)
    found = await run_in_threadpool(retrieve, knowledge, messages, settings.rag_passages)
    passages += found[: settings.rag_passages - len(passages)]
    passages = within_budget(passages, count_tokens, settings.rag_max_tokens)
    return grounded_messages(messages, passages), source_list(passages), warnings
