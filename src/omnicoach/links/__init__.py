"""Links in chat messages, read safely: found, fetched under the SSRF rules, their main text
extracted and cut into passages that know their source.

    reader = LinkReader(settings)
    pages, errors = reader.read_message("How is this pose done? https://example.org/dog")
"""

from omnicoach.links.addresses import Allowlist, address_kind, checked_addresses
from omnicoach.links.errors import LinkError
from omnicoach.links.fetch import Download, SafeFetcher
from omnicoach.links.reader import LinkReader, Page
from omnicoach.links.text import Chunk, chunk_text, extract_text, find_urls

__all__ = [
    "Allowlist",
    "Chunk",
    "Download",
    "LinkError",
    "LinkReader",
    "Page",
    "SafeFetcher",
    "address_kind",
    "checked_addresses",
    "chunk_text",
    "extract_text",
    "find_urls",
]
