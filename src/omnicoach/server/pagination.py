"""OpenAI's cursor lists: ``?after=<id>&limit=N`` → {data, first_id, last_id, has_more}.

Clients (the official ones included) keep asking for the page after ``last_id`` while
``has_more`` is true, so every list route must say when it is done.
"""

from collections.abc import Callable, Sequence
from typing import Any


def cursor_page(items: Sequence[Any], render: Callable[[Any], dict], after: str | None, limit: int):
    ids = [item.id for item in items]
    start = ids.index(after) + 1 if after in ids else 0
    page = [render(item) for item in items[start : start + limit]]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": start + limit < len(items),
    }
