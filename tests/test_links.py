"""Link reading: a real HTTP(S) server on 127.0.0.1 serves the pages; nothing public is
fetched. The SSRF rules are proved on the address classifier, on the system resolver, and on
whole fetches, redirects included."""

import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from omnicoach.config import load_settings
from omnicoach.errors import ConfigError, InvalidRequestError
from omnicoach.links import (
    Allowlist,
    LinkError,
    LinkReader,
    SafeFetcher,
    address_kind,
    checked_addresses,
    chunk_text,
    find_urls,
)

ARTICLE_SENTENCES = [
    "Downward-facing dog (Adho Mukha Svanasana) stretches the hamstrings and calves.",
    "It also strengthens the shoulders, arms and upper back.",
    "Start on your hands and knees with your wrists under your shoulders.",
    "Tuck your toes, lift your hips up and back, and press the floor away.",
    "Keep your spine long; bend your knees if your hamstrings are tight.",
    "A common mistake is rounding the back to get the heels down.",
    "Another is letting the shoulders creep up towards the ears.",
    "Beginners can rest their knees on the floor between breaths.",
    "Avoid the pose late in pregnancy or with an unhealed wrist injury.",
    "Hold it for five slow breaths, then lower the knees and rest in child's pose.",
]
# Six paragraphs of the sentences above: long enough for several chunks.
PARAGRAPHS = [" ".join(ARTICLE_SENTENCES[i : i + 5]) for i in (0, 5, 0, 5, 0, 5)]
PARAGRAPHS = [f"Part {n}. {p}" for n, p in enumerate(PARAGRAPHS, 1)]
ARTICLE_HTML = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Downward Dog | Example Yoga</title></head><body>
<nav><a href="/">Home</a> <a href="/poses">All poses</a> Subscribe to our newsletter</nav>
<main><article><h1>Downward-Facing Dog</h1>
{"".join(f"<p>{p}</p>" for p in PARAGRAPHS)}
</article></main>
<footer>Copyright 2024 Example Yoga. Privacy policy. Cookie settings.</footer>
</body></html>""".encode()
PLAIN_TEXT = (
    "Warrior II\n\nStand with your feet wide apart and\nturn the right foot out.\n\n"
    "Bend the right knee over the ankle\nand reach the arms out to the sides.\n"
)
MB = 2**20


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.0 (the default): a body without Content-Length ends when the server closes."""

    def log_message(self, *args):  # quiet test output
        pass

    def do_GET(self):
        self.server.paths.append(self.path)
        route = urlsplit(self.path)
        try:
            getattr(self, "route_" + route.path.strip("/").split("/")[0].replace("-", "_"))(route)
        except AttributeError:
            self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            pass

    def reply(self, body: bytes, content_type: str | None, **headers):
        self.send_response(200)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_article(self, route):
        self.reply(ARTICLE_HTML, "text/html; charset=utf-8")

    def route_plain(self, route):
        self.reply(PLAIN_TEXT.encode(), "text/plain; charset=utf-8")

    def route_host(self, route):  # echoes the Host header it was sent
        self.reply(f"Host header: {self.headers['Host']}".encode(), "text/plain")

    def route_pdf(self, route):
        self.reply(b"%PDF-1.4\n", "application/pdf")

    def route_untyped(self, route):
        self.reply(b"<p>hello</p>", None)

    def route_big(self, route):  # says how big it is
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(int(5.3 * MB)))
        self.end_headers()
        self.wfile.write(b"<p>" + b"a" * 1000)

    def route_endless(self, route):  # never says, never ends: only a streaming cap stops it
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        block = b"namaste " * 8192
        while self.server.sent < 500 * MB:  # a bound in case the client never stops
            self.wfile.write(block)
            self.server.sent += len(block)

    def route_gzip_bomb(self, route):  # 30 kB on the wire, 30 MB decompressed
        body = gzip.compress(b"a" * (30 * MB))
        self.reply(body, "text/plain", Content_Encoding="gzip")

    def route_slow(self, route):  # answers after 3 s
        time.sleep(3)
        self.reply(b"late", "text/plain")

    def route_drip(self, route):  # a byte every 0.1 s: each read is quick, the whole is not
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "40")
        self.end_headers()
        for _ in range(40):
            self.wfile.write(b"a")
            time.sleep(0.1)

    def route_redirect(self, route):  # /redirect/N: N redirects, the last to the article
        n = int(route.path.split("/")[2])
        self.redirect(f"/redirect/{n - 1}" if n > 1 else "/article")

    def route_to(self, route):  # /to?url=X: a redirect to anywhere
        self.redirect(parse_qs(route.query)["url"][0])


def start_server(tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # the slow handlers must not hold up the end of the tests
    server.paths, server.sent = [], 0
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server():
    server = start_server()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def base(server):
    server.paths.clear()
    return f"http://127.0.0.1:{server.server_port}"


def reader(**settings) -> LinkReader:
    return LinkReader(load_settings(**settings))


def local_reader(**settings) -> LinkReader:
    return reader(link_allowlist=["127.0.0.1"], **settings)


# --- the address rules ------------------------------------------------------------------

ADDRESS_KINDS = [
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),  # IPv4-mapped public
    ("2002:808:808::", None),  # 6to4 of a public address
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),  # deprecated site-local
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "private"),  # documentation range: Python counts it private
    ("2001:db8::1", "private"),  # likewise
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped cloud metadata"),
    ("2002:7f00:1::", "6to4 loopback"),
    ("64:ff9b::a00:1", "NAT64 private"),
]


@pytest.mark.parametrize(("address", "kind"), ADDRESS_KINDS)
def test_address_kind(address, kind):
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("localhost", "resolves to 127.0.0.1, a loopback address"),
        ("2130706433", "resolves to 127.0.0.1, a loopback address"),  # 127.0.0.1 as a number
        ("0177.0.0.1", "resolves to 127.0.0.1, a loopback address"),  # ... in octal
        ("127.0.0.1", "is a loopback address"),
        ("::1", "is a loopback address"),
        ("::ffff:127.0.0.1", "is an IPv4-mapped loopback address"),
        ("10.0.0.1", "is a private address"),
        ("169.254.10.10", "is a link-local address"),
    ],
)
def test_resolver_refuses_local_hosts(host, shown):
    with pytest.raises(LinkError) as refused:
        checked_addresses("http://x/", host, 80, Allowlist())
    assert f"http://x/ {shown}: omnicoach does not fetch local or private addresses" in str(
        refused.value
    )
    assert f"add {host} to link_allowlist" in str(refused.value)


def test_allowlist_permits_hosts_and_networks():
    assert checked_addresses("u", "localhost", 80, Allowlist.parse(["LOCALHOST."])) == [
        ipaddress.ip_address("127.0.0.1")
    ]
    assert checked_addresses("u", "10.9.8.7", 80, Allowlist.parse(["10.0.0.0/8"]))
    with pytest.raises(LinkError, match="private"):  # a network covers only itself
        checked_addresses("u", "192.168.0.1", 80, Allowlist.parse(["10.0.0.0/8"]))


def test_cloud_metadata_is_never_read_even_when_allowlisted():
    allow_all = Allowlist.parse(["169.254.0.0/16", "::/0", "metadata.google.internal"])
    with pytest.raises(LinkError, match="is a cloud metadata address: omnicoach never reads it"):
        checked_addresses("http://h/", "169.254.169.254", 80, allow_all)
    with pytest.raises(LinkError, match="metadata.google.internal, a cloud metadata service"):
        checked_addresses("http://h/", "metadata.google.internal", 80, allow_all)
    with pytest.raises(LinkError, match="IPv4-mapped cloud metadata"):
        checked_addresses("http://h/", "::ffff:169.254.169.254", 80, allow_all)


def test_unknown_host():
    with pytest.raises(LinkError, match="the host no-such-host.invalid was not found"):
        checked_addresses("http://no-such-host.invalid/", "no-such-host.invalid", 80, Allowlist())


def test_bad_allowlist_entry_is_a_config_error():
    with pytest.raises(ConfigError, match="'http://10.0.0.1/' is neither a host name nor"):
        reader(link_allowlist=["http://10.0.0.1/"])


# --- whole fetches: the SSRF rules on every hop --------------------------------------------


def test_settings_defaults():
    settings = load_settings()
    assert settings.link_fetching is True
    assert settings.link_allowlist == []
    assert settings.max_link_bytes == 2 * MB
    assert settings.link_timeout_seconds == 10


def test_local_url_is_refused_by_default(server, base):
    with pytest.raises(LinkError) as refused:
        reader().read(f"{base}/article")
    assert str(refused.value) == (
        f"{base}/article is a loopback address: omnicoach does not fetch local or private "
        "addresses (add 127.0.0.1 to link_allowlist to allow it)"
    )
    assert isinstance(refused.value, InvalidRequestError)  # the API answers 400
    assert server.paths == []  # refused before connecting


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/article",
        "http://[::1]:{port}/article",
        "http://[::ffff:127.0.0.1]:{port}/article",
        "http://2130706433:{port}/article",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
    ],
)
def test_local_private_and_metadata_urls_are_refused(server, base, url):
    with pytest.raises(LinkError, match="omnicoach (does not fetch|never reads)"):
        reader().read(url.format(port=server.server_port))
    assert server.paths == []


def test_local_url_is_read_through_the_allowlist(server, base):
    page = local_reader().read(f"{base}/article")
    assert page.url == page.final_url == f"{base}/article"
    assert server.paths == ["/article"]


def test_every_redirect_hop_is_checked(server, base):
    # From an allowlisted host to a private address: refused at that hop, before connecting.
    with pytest.raises(LinkError) as refused:
        local_reader().read(f"{base}/to?url=http://10.1.2.3:8080/admin")
    assert str(refused.value).startswith(
        f"http://10.1.2.3:8080/admin (redirected from {base}/to?url=http://10.1.2.3:8080/admin)"
        " is a private address: omnicoach does not fetch"
    )
    # Allowlisted by name; the redirect goes to the same server by address, which is not
    # allowlisted: refused, so the server never sees the second request.
    server.paths.clear()
    port = server.server_port
    target = f"http://127.0.0.1:{port}/article"
    with pytest.raises(LinkError, match="is a loopback address"):
        reader(link_allowlist=["localhost"]).read(f"http://localhost:{port}/to?url={target}")
    assert server.paths == [f"/to?url={target}"]


def test_redirects_are_followed_up_to_three(server, base):
    page = local_reader().read(f"{base}/redirect/2")
    assert page.final_url == f"{base}/article"
    assert "Adho Mukha Svanasana" in page.text
    assert local_reader().read(f"{base}/redirect/3").final_url == f"{base}/article"
    with pytest.raises(LinkError, match=r"/redirect/4: too many redirects \(more than 3\)"):
        local_reader().read(f"{base}/redirect/4")
    with pytest.raises(LinkError, match="not an http or https link"):
        local_reader().read(f"{base}/to?url=file:///etc/passwd")


def test_connection_is_pinned_to_the_checked_address(server, monkeypatch):
    """The name is resolved once per hop, by the check; the connection goes to the checked
    address (the resolver sees only it), with the name in the Host header."""
    real_getaddrinfo = socket.getaddrinfo
    looked_up = []

    def recording_getaddrinfo(host, *args, **kwargs):
        looked_up.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    port = server.server_port
    page = reader(link_allowlist=["localhost"]).read(f"http://localhost:{port}/host")
    assert page.text == f"Host header: localhost:{port}"
    assert looked_up.count("localhost") == 1
    assert set(looked_up) <= {"localhost", "127.0.0.1"}


# --- limits --------------------------------------------------------------------------------


def test_declared_size_over_the_cap_is_refused(base):
    with pytest.raises(LinkError, match=r"/big is 5.3 MB; at most 2 MB are read"):
        local_reader().read(f"{base}/big")


def test_size_cap_is_enforced_while_streaming(server, base):
    server.sent = 0
    with pytest.raises(LinkError, match=r"/endless is larger than 2 MB; at most 2 MB are read"):
        local_reader().read(f"{base}/endless")
    assert server.sent < 100 * MB  # stopped long before the server's own bound


def test_size_cap_counts_decompressed_bytes(base):
    with pytest.raises(LinkError, match="larger than 2 MB"):
        local_reader().read(f"{base}/gzip-bomb")


def test_content_type_is_checked(base):
    with pytest.raises(LinkError) as refused:
        local_reader().read(f"{base}/pdf")
    assert str(refused.value) == (
        f"{base}/pdf is application/pdf; only HTML and plain-text pages are read"
    )
    with pytest.raises(LinkError, match="is of no stated type; only HTML"):
        local_reader().read(f"{base}/untyped")


def test_timeouts(base):
    with pytest.raises(LinkError, match=r"/slow timed out after 0.5 s"):
        local_reader(link_timeout_seconds=0.5).read(f"{base}/slow")
    # Each byte arrives well within any read timeout; the deadline still ends the read.
    with pytest.raises(LinkError, match=r"/drip timed out after 0.5 s"):
        local_reader(link_timeout_seconds=0.5).read(f"{base}/drip")


def test_errors_name_the_problem(base):
    with pytest.raises(LinkError, match=r"/missing answered 404 Not Found"):
        local_reader().read(f"{base}/missing")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nobody listens on
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(LinkError, match=f"could not connect to http://127.0.0.1:{port}/"):
        local_reader().read(f"http://127.0.0.1:{port}/")
    with pytest.raises(LinkError, match="not an http or https link"):
        local_reader().read("ftp://127.0.0.1/file.txt")


# --- HTTPS: pinned to the address, verified against the name ---------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = start_server(tls=context)
    yield server, ssl.create_default_context(cafile=str(cert))
    server.shutdown()
    server.server_close()


def test_https_sends_the_name_and_verifies_the_certificate_against_it(tls_server):
    server, trusts_the_cert = tls_server
    port = server.server_port

    def fetcher(allow: str) -> SafeFetcher:
        return SafeFetcher(
            max_bytes=MB, timeout_seconds=5, allowlist=Allowlist.parse([allow]),
            verify=trusts_the_cert,
        )  # fmt: skip

    # Connected to 127.0.0.1, yet TLS verified the certificate for "localhost".
    download = fetcher("localhost").fetch(f"https://localhost:{port}/host")
    assert download.body == f"Host header: localhost:{port}".encode()
    # The certificate names localhost only: reached by address, verification fails.
    with pytest.raises(LinkError, match="could not connect to .*CERTIFICATE_VERIFY_FAILED"):
        fetcher("127.0.0.1").fetch(f"https://127.0.0.1:{port}/host")


# --- text -----------------------------------------------------------------------------------


def test_html_main_text_without_boilerplate(base):
    page = local_reader().read(f"{base}/article")
    assert "Downward" in page.title
    for sentence in ARTICLE_SENTENCES:
        assert sentence in page.text
    for boilerplate in ("Subscribe to our newsletter", "All poses", "Cookie settings"):
        assert boilerplate not in page.text


def test_chunks_cover_the_page_and_cite_it(base):
    page = local_reader().read(f"{base}/article")
    chunks = page.chunks
    assert len(chunks) >= 3
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.url == page.final_url and len(c.text) <= 800 for c in chunks)
    for paragraph in PARAGRAPHS:  # every sentence of every paragraph is in some chunk
        for sentence in paragraph.split(". "):
            assert any(sentence in c.text for c in chunks), sentence
    for before, after in zip(chunks, chunks[1:], strict=False):  # neighbours overlap
        assert after.text.split(". ")[0] in before.text


def test_plain_text_is_read_with_paragraphs_unwrapped(base):
    page = local_reader().read(f"{base}/plain")
    assert page.title is None
    assert page.text == (
        "Warrior II\nStand with your feet wide apart and turn the right foot out.\n"
        "Bend the right knee over the ankle and reach the arms out to the sides."
    )
    assert [c.text for c in page.chunks] == [page.text]


def test_chunking_splits_sentences_and_words_when_it_must():
    bengali = "অধোমুখ শ্বানাসন কাঁধ শক্ত করে। " * 40  # sentences end with the danda
    chunks = chunk_text(bengali.strip(), "https://example.org/bn", size=200, overlap=60)
    assert all(len(c.text) <= 200 and c.text.endswith("।") for c in chunks)
    one_long_word_run = "stretch " * 300  # no sentence ends at all
    chunks = chunk_text(one_long_word_run.strip(), "u", size=100, overlap=0)
    assert all(len(c.text) <= 100 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == one_long_word_run.split()
    assert chunk_text("", "u") == []


# --- reading a message ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "urls"),
    [
        ("See https://example.org/dog.", ["https://example.org/dog"]),
        ("(https://example.org/a), https://example.org/b!", ["https://example.org/a", "https://example.org/b"]),
        ("Is https://example.org/dog?lang=bn&x=1 right?", ["https://example.org/dog?lang=bn&x=1"]),
        ("https://en.wikipedia.org/wiki/Bow_(yoga)", ["https://en.wikipedia.org/wiki/Bow_(yoga)"]),
        ("[dog](https://example.org/dog)", ["https://example.org/dog"]),
        ("<https://example.org/a> 'http://example.org/b'", ["https://example.org/a", "http://example.org/b"]),
        ("HTTPS://EXAMPLE.ORG/X?", ["HTTPS://EXAMPLE.ORG/X"]),
        ("http://[::1]:8080/x", ["http://[::1]:8080/x"]),
        ("ftp://example.org/a file:///etc/passwd http:// www.example.org", []),
        ("a https://a.org/1 b https://a.org/1, https://a.org/2 https://a.org/3 https://a.org/4",
         ["https://a.org/1", "https://a.org/2", "https://a.org/3"]),
    ],
)  # fmt: skip
def test_find_urls(message, urls):
    assert find_urls(message) == urls


def test_read_message_reports_each_link(server, base):
    message = f"Compare {base}/article with {base}/pdf, please."
    pages, errors = local_reader().read_message(message)
    assert [p.final_url for p in pages] == [f"{base}/article"]
    assert [str(e) for e in errors] == [
        f"{base}/pdf is application/pdf; only HTML and plain-text pages are read"
    ]


def test_link_fetching_off_reads_nothing(server, base):
    off = local_reader(link_fetching=False)
    assert off.read_message(f"read {base}/article") == ([], [])
    with pytest.raises(LinkError, match="link reading is off"):
        off.read(f"{base}/article")
    assert server.paths == []
