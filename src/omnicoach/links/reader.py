"""Reading the links in a chat message: fetch safely, extract the main text, cut passages."""

from dataclasses import dataclass

from omnicoach.config import Settings
from omnicoach.links.addresses import Allowlist
from omnicoach.links.errors import LinkError
from omnicoach.links.fetch import SafeFetcher
from omnicoach.links.text import MAX_LINKS, Chunk, chunk_text, extract_text, find_urls


@dataclass(frozen=True)
class Page:
    url: str  # as written in the message
    final_url: str  # after redirects; the chunks cite this one
    title: str | None
    text: str
    chunks: list[Chunk]


class LinkReader:
    """Reads links under the settings' limits and SSRF rules. Blocking (DNS, sockets):
    async code calls it in a worker thread. Build it once at start-up, so a bad
    `link_allowlist` is reported (ConfigError) before the first message."""

    def __init__(self, settings: Settings):
        self.enabled = settings.link_fetching
        self.fetcher = SafeFetcher(
            max_bytes=settings.max_link_bytes,
            timeout_seconds=settings.link_timeout_seconds,
            allowlist=Allowlist.parse(settings.link_allowlist),
        )

    def read(self, url: str) -> Page:
        """One page; LinkError saying why when it cannot or may not be read."""
        if not self.enabled:
            raise LinkError(f"{url} was not read: link reading is off (link_fetching)")
        download = self.fetcher.fetch(url)
        title, text = extract_text(download)
        if not text:
            raise LinkError(f"{download.final_url} has no readable text")
        return Page(url, download.final_url, title, text, chunk_text(text, download.final_url))

    def read_message(
        self, message: str, limit: int = MAX_LINKS
    ) -> tuple[list[Page], list[LinkError]]:
        """The links in a chat message, read: the pages, and an error for each link that
        could not be, so one bad link neither stops the answer nor goes unmentioned.
        Nothing is fetched when link reading is off."""
        if not self.enabled:
            return [], []
        pages, errors = [], []
        for url in find_urls(message, limit):
            try:
                pages.append(self.read(url))
            except LinkError as exc:
                errors.append(exc)
        return pages, errors
