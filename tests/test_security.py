"""The security rules, each shown on the real app in process (no models loaded, no uvicorn):
keys hashed and compared in constant time, per-key rate limits, CORS closed unless configured,
file ids that cannot reach outside storage, upload types read from the bytes, and no
outbound fetch outside the SSRF-guarded one.

Keys hashed at rest are also shown by tests/test_db.py (the raw database bytes), uploads
sniffed on a real server by tests/test_server_storage.py, the SSRF rules themselves by
tests/test_links.py; these are the quick in-process checks of the same promises.
"""

import ast
import hmac
import http.server
import json
import threading
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from omnicoach import users
from omnicoach.config import load_settings
from omnicoach.db import Database
from omnicoach.errors import ConfigError, NotFoundError
from omnicoach.files import FileStore
from omnicoach.images.decode import ImageInputError
from omnicoach.images.parts import image_from_part
from omnicoach.links import LinkError, SafeFetcher
from omnicoach.server.app import create_app
from omnicoach.server.rate_limit import RateLimiter
from omnicoach.users import create_key, hash_key, register_keys, user_for_key

SRC = Path(__file__).resolve().parents[1] / "src" / "omnicoach"
# The smallest valid PNG (1×1): a real image, to check types come from content, not names.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
ORIGIN = "https://chat.example.org"


@pytest.fixture
def make_client(tmp_path):
    """make_client(**settings) -> a TestClient on create_app with its own data dir. The
    lifespan (which loads every model) is not run: the state the routes under test use (the
    database, the file store) is set up here exactly as the lifespan does it."""
    databases = []

    def make(**overrides) -> TestClient:
        settings = load_settings(data_dir=tmp_path / "data", **overrides)
        app = create_app(settings)
        db = Database(settings.database)
        db.migrate()
        register_keys(db, settings.env_api_keys)
        databases.append(db)
        app.state.db, app.state.files = db, FileStore(settings)
        return TestClient(app)

    yield make
    for db in databases:
        db.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_openai_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["code"] == code
    return error


# Keys: hashed at rest, compared in constant time ----------------------------------------


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    database.migrate()
    yield database
    database.close()


def test_configured_keys_are_stored_only_as_hashes(db, tmp_path):
    key = "configured-key-0123456789"
    register_keys(db, [key])
    assert user_for_key(db, key) is not None
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("keys.db*"))
    assert key.encode() not in raw and hash_key(key).encode() in raw


def test_key_check_compares_digests_with_compare_digest(db, monkeypatch):
    key = create_key(db, "ana")
    compared, compare = [], hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(users.hmac, "compare_digest", spy)
    assert user_for_key(db, key) is not None
    # The stored digest against the digest of the key sent: never the key itself.
    assert compared == [(hash_key(key).encode(), hash_key(key).encode())]
    assert user_for_key(db, key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_a_wrong_key_is_401_and_the_right_one_passes(make_client):
    client = make_client(api_keys="key-for-ana")
    assert client.get("/v1/files", headers=bearer("key-for-ana")).status_code == 200
    wrong = client.get("/v1/files", headers=bearer("key-for-anb"))
    assert_openai_error(wrong, 401, "invalid_api_key")
    assert wrong.headers["WWW-Authenticate"] == "Bearer"


# Per-key rate limits ----------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills_per_key():
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)  # 3 a minute: one token back every 20 s
    assert [limiter.wait_seconds("ana") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_seconds("ana") == pytest.approx(20)
    assert limiter.wait_seconds("ben") == 0  # each key has its own bucket
    clock.now += 10
    assert limiter.wait_seconds("ana") == pytest.approx(10)  # half a token so far
    clock.now += 10
    assert limiter.wait_seconds("ana") == 0
    assert limiter.wait_seconds("ana") == pytest.approx(20)
    clock.now += 3600  # a long pause refills to the burst size, not beyond
    assert [limiter.wait_seconds("ana") for _ in range(4)][-1] > 0


def test_rate_limit_zero_is_off():
    limiter = RateLimiter(0)
    assert not limiter.enabled
    assert all(limiter.wait_seconds("ana") == 0 for _ in range(10_000))


def test_token_bucket_is_thread_safe():
    limiter = RateLimiter(100, clock=lambda: 0.0)  # time stands still: exactly 100 tokens
    allowed = []

    def hammer():
        allowed.append(sum(limiter.wait_seconds("ana") == 0 for _ in range(50)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100


def test_each_key_over_its_limit_gets_429_with_retry_after(make_client):
    client = make_client(api_keys="key-a,key-b", rate_limit_per_minute=3)
    # Three requests pass: the check runs once per request, not once per use of the user.
    for _ in range(3):
        assert client.get("/v1/files", headers=bearer("key-a")).status_code == 200
    limited = client.get("/conversations", headers=bearer("key-a"))
    error = assert_openai_error(limited, 429, "rate_limit_exceeded")
    assert error["type"] == "requests" and "3 requests a minute" in error["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    # Another key is not affected; a wrong key is still 401, not 429.
    assert client.get("/v1/files", headers=bearer("key-b")).status_code == 200
    assert client.get("/v1/files", headers=bearer("nope")).status_code == 401


def test_without_keys_the_local_user_is_not_limited(make_client):
    client = make_client(rate_limit_per_minute=1)
    assert all(client.get("/v1/files").status_code == 200 for _ in range(5))


def test_rate_limit_settings(monkeypatch):
    assert load_settings().rate_limit_per_minute == 600
    monkeypatch.setenv("OMNICOACH_RATE_LIMIT_PER_MINUTE", "0")
    assert load_settings().rate_limit_per_minute == 0
    monkeypatch.setenv("OMNICOACH_RATE_LIMIT_PER_MINUTE", "-1")
    with pytest.raises(ConfigError, match="rate_limit_per_minute"):
        load_settings()


# CORS: closed unless configured -----------------------------------------------------------


def preflight(client: TestClient, origin: str):
    return client.options(
        "/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def cors_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def test_cors_is_closed_by_default(make_client):
    client = make_client()
    assert load_settings().cors_origins == []
    assert cors_headers(client.get("/v1/files", headers={"Origin": ORIGIN})) == {}
    answer = preflight(client, ORIGIN)
    assert answer.status_code >= 400 and cors_headers(answer) == {}


def test_cors_allows_exactly_the_configured_origins(make_client, monkeypatch):
    monkeypatch.setenv("OMNICOACH_CORS_ORIGINS", json.dumps([ORIGIN]))
    client = make_client(api_keys="key-a")
    allowed = preflight(client, ORIGIN)  # answered before auth: preflights carry no key
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    request = client.get("/v1/files", headers={"Origin": ORIGIN, **bearer("key-a")})
    assert request.headers["access-control-allow-origin"] == ORIGIN

    for other in ("https://evil.example.org", "http://chat.example.org", ORIGIN + ":8443"):
        refused = preflight(client, other)
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        answer = client.get("/v1/files", headers={"Origin": other, **bearer("key-a")})
        assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("origin", [ORIGIN + "/", "chat.example.org", "ftp://x.org", ""])
def test_cors_origins_must_be_origins(origin):
    with pytest.raises(ConfigError, match="cors_origins"):
        load_settings(cors_origins=[origin])


# File ids cannot reach outside storage ----------------------------------------------------


def raw_get(client: TestClient, raw_path: bytes) -> tuple[int, bytes]:
    """GET a path exactly as written: HTTP clients remove '..' segments before sending, an
    attacker's raw socket does not."""
    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    anyio.run(client.app, scope, receive, send)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return messages[0]["status"], body


TRAVERSALS = [
    "..%2F..%2Fsecret.txt",
    "..%2F..%2F..%2Fsecret.txt",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "%2E%2E%2F%2E%2E%2Fsecret.txt",
    "..%252F..%252Fsecret.txt",
    "..%5C..%5Csecret.txt",
    "%2e%2e",
    "..",
    "file-..%2F..%2Fsecret.txt",
    "%2Fetc%2Fpasswd",
    "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
]


@pytest.mark.parametrize("file_id", TRAVERSALS)
def test_file_ids_cannot_traverse_paths(make_client, tmp_path, file_id):
    client = make_client()
    secret = b"outside storage: must never be served"
    (tmp_path / "secret.txt").write_bytes(secret)  # beside the data dir, two levels up
    assert client.post("/v1/files", files={"file": ("a.txt", b"mine")}).status_code == 200

    for path in (f"/v1/files/{file_id}/content", f"/v1/files/{file_id}"):
        response = client.get(path)
        assert response.status_code in (400, 404), (path, response.status_code)
        assert secret not in response.content and b"root:" not in response.content
        assert response.json()["error"]["code"] in ("file_not_found", "not_found")
    assert client.delete(f"/v1/files/{file_id}").status_code in (400, 404, 405)
    assert (tmp_path / "secret.txt").read_bytes() == secret


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/v1/files/../../secret.txt/content",
        b"/v1/files/../../../etc/passwd",
        b"/v1/files/..%2F..%2Fsecret.txt/content",
        b"/v1/files/%2e%2e/content",
    ],
)
def test_raw_dot_segments_never_reach_a_file(make_client, tmp_path, raw_path):
    client = make_client()
    secret = b"outside storage: must never be served"
    (tmp_path / "secret.txt").write_bytes(secret)
    status, body = raw_get(client, raw_path)
    assert status in (400, 404) and secret not in body and b"root:" not in body


def test_stored_paths_come_from_the_content_hash_only(make_client, tmp_path):
    client = make_client()
    uploaded = client.post(
        "/v1/files", files={"file": ("../../../evil.txt", b"hello there\n")}
    ).json()
    assert uploaded["filename"] == "evil.txt"  # a name is shown, never used as a path
    files_dir = tmp_path / "data" / "files"
    stored = [p for p in files_dir.rglob("*") if p.is_file()]
    assert stored == [files_dir / uploaded["sha256"][:2] / uploaded["sha256"]]
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))
    content = client.get(f"/v1/files/{uploaded['id']}/content")
    assert content.status_code == 200 and content.content == b"hello there\n"


def test_file_store_refuses_ids_that_are_not_file_ids(make_client):
    client = make_client()
    store, db = client.app.state.files, client.app.state.db
    for file_id in ("../../etc/passwd", "file-../x", "file-" + "a" * 200, ""):
        with pytest.raises(NotFoundError):
            store.get(db, "local", file_id)


# Upload types come from the bytes ---------------------------------------------------------


def test_upload_types_are_sniffed_from_the_content(make_client, tmp_path):
    client = make_client()
    image = client.post("/v1/files", files={"file": ("notes.txt", PNG)}).json()
    assert image["content_type"] == "image/png"
    text = client.post("/v1/files", files={"file": ("photo.png", b"Mountain pose.\n")}).json()
    assert text["content_type"] == "text/plain"
    # A program named like a picture is refused, and nothing of it stays on disk.
    elf = client.post("/v1/files", files={"file": ("photo.png", b"\x7fELF" + b"\x00" * 100)})
    assert_openai_error(elf, 415, "unsupported_file_type")
    # HTML is text: stored and served as text/plain, so a browser never runs it as a page.
    html = b"<html><script>alert(1)</script></html>"
    page = client.post("/v1/files", files={"file": ("page.html", html)}).json()
    assert page["content_type"] == "text/plain"
    served = client.get(f"/v1/files/{page['id']}/content")
    assert served.headers["content-type"].startswith("text/plain") and served.content == html
    assert list((tmp_path / "data" / "files" / "incoming").iterdir()) == []


# Every outbound fetch goes through the SSRF rules ----------------------------------------

# Modules that may touch the network, and why. Anything else that imports a network client
# is a stray fetch that skips the SSRF rules: route it through links.fetch.SafeFetcher.
NETWORK_MODULES = {
    "links/fetch.py",  # SafeFetcher: the one guarded HTTP client
    "links/addresses.py",  # socket.getaddrinfo: the resolution the SSRF rules check
    # RemoteChatLLM: chat delegated to the operator's llm_url setting, never to an address
    # taken from a request, so the link rules for user-supplied URLs do not apply.
    "models/remote_llm.py",
}
NETWORK_CLIENTS = (
    "requests",
    "urllib.request",
    "urllib3",
    "aiohttp",
    "http.client",
    "httpcore",
    "socket",
    "websocket",
    "websockets",
    "pycurl",
    "ftplib",
    "smtplib",
)
# httpx is imported elsewhere for its URL parser only; these attributes cannot fetch.
HTTPX_PARSING_ONLY = {"URL", "InvalidURL"}


def test_no_outbound_fetch_outside_the_guarded_fetcher():
    strays = []
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        if where in NETWORK_MODULES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] in NETWORK_CLIENTS or name in NETWORK_CLIENTS:
                    strays.append(f"{where}:{node.lineno} imports {name}")
                if name.startswith("httpx.") and name.split(".")[1] not in HTTPX_PARSING_ONLY:
                    strays.append(f"{where}:{node.lineno} imports {name}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "httpx"
                and node.attr not in HTTPX_PARSING_ONLY
            ):
                strays.append(f"{where}:{node.lineno} uses httpx.{node.attr}")
    assert strays == [], "network clients outside links/fetch.py:\n" + "\n".join(strays)


@pytest.fixture
def local_server():
    """A page on 127.0.0.1 that counts the requests it gets."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"internal admin page")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()
    server.server_close()


def test_the_guarded_fetcher_never_connects_to_a_local_address(local_server):
    base, hits = local_server
    fetcher = SafeFetcher(max_bytes=65_536, timeout_seconds=5)
    for url in (f"{base}/admin", base.replace("127.0.0.1", "localhost") + "/admin"):
        with pytest.raises(LinkError, match="loopback"):
            fetcher.fetch(url)
    assert hits == []  # refused before any connection, not after reading


def test_image_urls_in_chat_are_never_fetched(local_server):
    base, hits = local_server
    part = {"type": "image_url", "image_url": {"url": f"{base}/picture.png"}}
    with pytest.raises(ImageInputError) as refused:
        image_from_part(part, where="messages[0].content[0]", user="local")
    assert refused.value.code == "unsupported_image_url"
    assert hits == []


def test_text_with_a_nul_character_is_refused_before_it_is_stored(make_client):
    # PostgreSQL cannot store NUL in text; every database gets the same clear 422 instead
    # (the OpenAI error body, as for every invalid request body).
    client = make_client()
    created = client.post("/conversations", json={"title": "a\x00b"})
    assert created.status_code == 422 and "NUL" in created.json()["error"]["message"]
    chat = {"model": "any", "messages": [{"role": "user", "content": "hi\x00"}]}
    answer = client.post("/v1/chat/completions", json=chat)
    assert answer.status_code == 422 and "NUL" in answer.json()["error"]["message"]
    parts = [{"type": "text", "text": "\x00"}]
    chat["messages"][0]["content"] = parts
    assert client.post("/v1/chat/completions", json=chat).status_code == 422
    assert client.post("/conversations", json={"title": "fine"}).status_code in (200, 201)
