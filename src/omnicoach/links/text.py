"""Text around links: finding URLs in a message, a page's main text, and passages of it."""

import re
import textwrap
from dataclasses import dataclass

import httpx
import trafilatura

from omnicoach.links.fetch import Download

MAX_LINKS = 3  # per message: each link costs a fetch and prompt space
CHUNK_CHARS = 800  # a passage: a few paragraphs, small enough to rank and to quote
OVERLAP_CHARS = 200  # trailing sentences repeated at the start of the next passage

_URL = re.compile(r"https?://[^\s<>\"`{}|\\^]+", re.IGNORECASE)
# Punctuation that ends a sentence or encloses a link rather than belonging to it.
_TRAILING = ".,;:!?'*_~)]"
_CLOSERS = {")": "(", "]": "["}
# After a full stop, question or exclamation mark, or the Bengali danda.
_SENTENCE_END = re.compile(r"(?<=[.!?।])\s+")


@dataclass(frozen=True)
class Chunk:
    text: str
    url: str  # the page it came from, for source markers
    index: int  # its place in the page


def find_urls(text: str, limit: int = MAX_LINKS) -> list[str]:
    """The http(s) links in a chat message, in order, each once, at most `limit`."""
    found: list[str] = []
    for match in _URL.finditer(text):
        url = _trim(match.group())
        if url not in found and _has_host(url):
            found.append(url)
            if len(found) == limit:
                break
    return found


def _trim(url: str) -> str:
    while url and url[-1] in _TRAILING:
        opener = _CLOSERS.get(url[-1])
        # A closing bracket with its opener inside the link belongs to it:
        # https://en.wikipedia.org/wiki/Bow_(yoga), http://[::1]/
        if opener and url.count(opener) >= url.count(url[-1]):
            break
        url = url[:-1]
    return url


def _has_host(url: str) -> bool:
    try:
        return bool(httpx.URL(url).host)
    except httpx.InvalidURL:
        return False


def extract_text(download: Download) -> tuple[str | None, str]:
    """(title, main text) of a page: for HTML the article text without navigation, footers
    and comments (trafilatura); plain text as it is, its paragraphs unwrapped. Paragraphs are
    separated by one newline."""
    if download.content_type == "text/plain":
        text = _decode(download.body, download.charset)
        paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
        return None, "\n".join(p for p in paragraphs if p)
    # Decode by the header's charset when it gives one; otherwise trafilatura reads the
    # page's own <meta charset> or guesses.
    html = _decode(download.body, download.charset) if download.charset else download.body
    document = trafilatura.bare_extraction(
        html, url=download.final_url, with_metadata=True, include_comments=False
    )
    if document is None:
        return None, ""
    return document.title or None, (document.text or "").strip()


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def chunk_text(
    text: str, url: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS
) -> list[Chunk]:
    """Passages of at most `size` characters, cut between sentences (between words only
    inside a sentence longer than `size`), keeping the page's paragraph breaks. Each passage
    after the first begins with the last sentences (up to `overlap` characters) of the one
    before, so a thought cut at a border is whole in one of them."""
    passages: list[str] = []
    current: list[tuple[str, bool]] = []
    for piece in _pieces(text, size):
        if current and _length(current + [piece]) > size:
            passages.append(_join(current))
            current = _tail(current, overlap)
            while current and _length(current + [piece]) > size:
                current.pop(0)
        current.append(piece)
    if current:
        passages.append(_join(current))
    return [Chunk(passage, url, i) for i, passage in enumerate(passages)]


def _pieces(text: str, size: int):
    """(piece, starts a paragraph) pairs: the sentences of each paragraph, a sentence longer
    than `size` cut between words."""
    for paragraph in text.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        first = True
        for sentence in _SENTENCE_END.split(paragraph):
            for piece in textwrap.wrap(sentence, size) if len(sentence) > size else [sentence]:
                yield piece, first
                first = False


def _join(pieces: list[tuple[str, bool]]) -> str:
    text = pieces[0][0]
    for piece, starts_paragraph in pieces[1:]:
        text += ("\n" if starts_paragraph else " ") + piece
    return text


def _length(pieces: list[tuple[str, bool]]) -> int:
    return len(_join(pieces))


def _tail(pieces: list[tuple[str, bool]], overlap: int) -> list[tuple[str, bool]]:
    tail: list[tuple[str, bool]] = []
    for piece in reversed(pieces):
        if _length([piece, *tail]) > overlap:
            break
        tail.insert(0, piece)
    return tail
