"""GET a URL under the SSRF rules, within a deadline and a size cap.

Reusable by anything that fetches a URL a user gave (issue 12 applies the same rules to every
fetch): only the content types and limits differ between callers.

How a hop is pinned to the address that was checked: the request goes to a URL whose host is
that IP address, with the original `Host` header, and for https with the original name as
`sni_hostname` (an httpcore request extension), so TLS sends that name and the certificate is
verified against it. httpx's own redirect following is off: it would resolve the next host
itself, unchecked; redirects are followed here, each hop checked the same way.
"""

import ssl
import time
from dataclasses import dataclass, replace

import httpx

from omnicoach import __version__
from omnicoach.links.addresses import Allowlist, IPAddress, checked_addresses
from omnicoach.links.errors import LinkError

USER_AGENT = f"omnicoach/{__version__} (reads links in chat messages)"
# Pages whose text omnicoach can read; any other type is refused before its body is read.
TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
REDIRECTS = {301, 302, 303, 307, 308}
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Download:
    url: str  # as given
    final_url: str  # after redirects
    content_type: str  # media type, lower case, without parameters
    charset: str | None  # from the Content-Type header
    body: bytes  # decompressed


class SafeFetcher:
    """Fetches http(s) URLs: every hop's host resolved, checked (see addresses.py) and pinned;
    at most `max_redirects` redirects; one deadline for the whole fetch; the body refused as
    soon as it passes `max_bytes`; only `content_types` accepted."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_seconds: float,
        allowlist: Allowlist | None = None,
        content_types: tuple[str, ...] = TEXT_TYPES,
        type_description: str = "HTML and plain-text pages",
        max_redirects: int = 3,
        verify: ssl.SSLContext | bool = True,
    ):
        self.max_bytes = max_bytes
        self.timeout = timeout_seconds
        self.allowlist = allowlist or Allowlist()
        self.content_types = content_types
        self.type_description = type_description
        self.max_redirects = max_redirects
        self.verify = verify  # certificates: the system's CAs, or a context (tests)

    def fetch(self, url: str) -> Download:
        deadline = time.monotonic() + self.timeout
        hop = _parse(url)
        for redirects in range(self.max_redirects + 1):
            name = str(hop) if redirects == 0 else f"{hop} (redirected from {url})"
            try:
                result = self._get(hop, name, deadline)
            except httpx.TimeoutException:
                raise LinkError(f"{name} timed out after {self.timeout:g} s") from None
            except httpx.ConnectError as exc:
                raise LinkError(f"could not connect to {name}: {exc}") from None
            except httpx.HTTPError as exc:  # a broken response: protocol or decoding errors
                raise LinkError(f"could not read {name}: {exc}") from None
            if isinstance(result, Download):
                return replace(result, url=url)
            hop = result
        raise LinkError(f"{url}: too many redirects (more than {self.max_redirects})")

    def _get(self, url: httpx.URL, name: str, deadline: float) -> Download | httpx.URL:
        """One hop: the page, or the URL its redirect points to."""
        if url.scheme not in DEFAULT_PORTS:
            raise LinkError(f"{name} is not an http or https link; only those are read")
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS want it
        port = url.port or DEFAULT_PORTS[url.scheme]
        addresses = checked_addresses(name, host, port, self.allowlist)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.TimeoutException("deadline passed")
        # A new client per hop: a pooled TLS connection made for one name must not carry
        # another hop's request. trust_env=False: a proxy from the environment would connect
        # on our behalf to whatever it resolves, undoing the pinning.
        with httpx.Client(
            timeout=httpx.Timeout(remaining),
            follow_redirects=False,
            trust_env=False,
            verify=self.verify,
        ) as client:
            for ip in addresses:
                try:
                    with client.stream(**self._pinned(url, host, ip)) as response:
                        return self._handle(response, url, name, deadline)
                except httpx.ConnectError as exc:
                    refused = exc  # try the host's next checked address
            raise refused  # every one of them refused the connection

    def _pinned(self, url: httpx.URL, host: str, ip: IPAddress) -> dict:
        headers = {
            "Host": url.netloc.decode("ascii"),  # the name, and the port when not the default
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1",
        }
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        target = url.copy_with(host=str(ip), fragment=None)
        return {"method": "GET", "url": target, "headers": headers, "extensions": extensions}

    def _handle(
        self, response: httpx.Response, url: httpx.URL, name: str, deadline: float
    ) -> Download | httpx.URL:
        if response.status_code in REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise LinkError(f"{name} redirects without saying where to")
            return url.join(location)  # relative to the name, never to the pinned address
        if response.status_code != 200:
            raise LinkError(f"{name} answered {response.status_code} {response.reason_phrase}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in self.content_types:
            what = media_type or "of no stated type"
            raise LinkError(f"{name} is {what}; only {self.type_description} are read")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise LinkError(
                f"{name} is {_megabytes(int(declared))}; at most {_megabytes(self.max_bytes)} "
                "are read"
            )
        body = self._read_capped(response, name, deadline)
        return Download(str(url), str(url), media_type, response.charset_encoding, body)

    def _read_capped(self, response: httpx.Response, name: str, deadline: float) -> bytes:
        """The body, stopped as soon as it passes the cap. Counted after decompression, so a
        small gzip bomb is stopped too; the deadline is checked per chunk, because a server
        that sends a byte just inside every read timeout would otherwise never time out."""
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise LinkError(
                    f"{name} is larger than {_megabytes(self.max_bytes)}; at most "
                    f"{_megabytes(self.max_bytes)} are read"
                )
            if time.monotonic() > deadline:
                raise httpx.TimeoutException("deadline passed")
        return bytes(body)


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise LinkError(f"{url} is not a valid link: {exc}") from None
    if parsed.scheme not in DEFAULT_PORTS:
        raise LinkError(f"{url} is not an http or https link; only those are read")
    if not parsed.host:
        raise LinkError(f"{url} is not a valid link: it names no host")
    return parsed


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f}".removesuffix(".0") + " MB"
