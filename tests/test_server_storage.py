"""Conversations, files and API keys on a real server process with its own data dir, once
with the database in it (SQLite) and once on PostgreSQL."""

import hashlib
import time

import httpx
import openai
import pytest

from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

CHAT = "smollm2-135m-instruct"
# The smallest valid PNG (1×1): a real image, to check types come from content, not names.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request):
    """The server's database: "" (SQLite in its data dir) or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield ""
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield url


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, database_url):
    return tmp_path_factory.mktemp("data")


def start(data_dir, log_name, **settings) -> ServerProcess:
    return ServerProcess(data_dir / log_name, data_dir=data_dir, **settings)


@pytest.fixture(scope="module")
def server(data_dir, database_url):
    with start(
        data_dir, "server.log", max_upload_bytes=100_000, database_url=database_url
    ) as process:
        yield process


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def chat(http, conversation_id, text, **extra):
    body = {
        "model": CHAT,
        "conversation_id": conversation_id,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 12,
        "temperature": 0,
        **extra,
    }
    return http.post("/v1/chat/completions", json=body)


def test_conversation_lifecycle_and_chat_appends_both_turns(http, server):
    created = http.post("/conversations", json={}).json()
    cid = created["id"]
    assert created["object"] == "conversation" and created["title"] == ""

    first = chat(http, cid, "My name is Rina. Name one standing yoga pose.")
    assert first.status_code == 200 and first.json()["conversation_id"] == cid
    # The second turn is streamed, through the official client, and sees the first.
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "What is my name?"}],
        max_tokens=12,
        temperature=0,
        stream=True,
        extra_body={"conversation_id": cid},
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    messages = http.get(f"/conversations/{cid}/messages").json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"] == first.json()["choices"][0]["message"]["content"]
    assert messages[3]["content"] == streamed and messages[3]["status"] == "complete"
    assert messages[3]["model"] == CHAT
    # Untitled conversations are named after their first question.
    assert http.get(f"/conversations/{cid}").json()["title"].startswith("My name is Rina")

    # Regenerate: delete the last answer, then chat with no new message.
    last = messages[3]["id"]
    assert http.delete(f"/conversations/{cid}/messages/{last}").json()["deleted"] == 1
    again = http.post(
        "/v1/chat/completions",
        json={"model": CHAT, "conversation_id": cid, "max_tokens": 12, "temperature": 0},
    )
    assert again.status_code == 200
    regenerated = http.get(f"/conversations/{cid}/messages").json()["data"]
    assert [m["role"] for m in regenerated] == ["user", "assistant", "user", "assistant"]
    assert regenerated[3]["content"] == again.json()["choices"][0]["message"]["content"]
    # Nothing to answer now: the conversation ends with an answer.
    nothing = http.post("/v1/chat/completions", json={"model": CHAT, "conversation_id": cid})
    assert nothing.status_code == 400 and nothing.json()["error"]["param"] == "messages"
    assert http.post("/v1/chat/completions", json={"model": CHAT}).status_code == 422

    renamed = http.patch(f"/conversations/{cid}", json={"title": "Standing poses"})
    assert renamed.json()["title"] == "Standing poses"
    listed = http.get("/conversations").json()["data"]
    assert listed[0]["id"] == cid  # most recently active first

    other = http.post("/conversations", json={"title": "To delete"}).json()["id"]
    assert http.delete(f"/conversations/{other}").json()["deleted"] is True
    gone = http.get(f"/conversations/{other}/messages")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "conversation_not_found"


def test_an_answer_cut_short_is_kept_and_marked_incomplete(http):
    cid = http.post("/conversations", json={}).json()["id"]
    body = {
        "model": CHAT,
        "conversation_id": cid,
        "messages": [{"role": "user", "content": "Tell me about sun salutations."}],
        "max_tokens": 1500,
        "stream": True,
        "temperature": 0,
        "ignore_eos": True,  # runs to max_tokens: long enough to leave mid-way
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(12)]
    assert any("content" in line for line in received)

    deadline = time.monotonic() + 30
    while len(messages := http.get(f"/conversations/{cid}/messages").json()["data"]) < 2:
        assert time.monotonic() < deadline, "the partial answer was not stored"
        time.sleep(0.2)
    assert messages[0]["content"] == "Tell me about sun salutations."
    assert messages[1]["status"] == "incomplete" and messages[1]["content"]


def test_chat_into_missing_conversation_is_404(http):
    response = chat(http, "conv_nope", "hi")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "conversation_not_found"


def test_files_upload_fetch_and_sniffed_types(server, data_dir):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    text = b"Mountain pose: stand tall, feet together.\n"
    uploaded = client.files.create(file=("notes.png", text), purpose="user_data")
    # Named .png, but the bytes are text; and a PNG named .txt is an image.
    assert uploaded.model_extra["content_type"] == "text/plain" and uploaded.bytes == len(text)
    image = client.files.create(file=("photo.txt", PNG), purpose="vision")
    assert image.model_extra["content_type"] == "image/png"

    assert client.files.retrieve(uploaded.id).filename == "notes.png"
    assert client.files.content(uploaded.id).read() == text
    assert {f.id for f in client.files.list()} >= {uploaded.id, image.id}

    # The same bytes twice are stored once on disk; deleting the last copy frees them.
    again = client.files.create(file=("copy.txt", text), purpose="user_data")
    blob = (
        data_dir / "files" / hashlib.sha256(text).hexdigest()[:2] / hashlib.sha256(text).hexdigest()
    )
    assert blob.read_bytes() == text
    client.files.delete(uploaded.id)
    assert blob.exists()
    client.files.delete(again.id)
    assert not blob.exists()
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(again.id)


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"%PDF-1.7\n" + b"x" * 100, 415, "unsupported_file_type"),
        (b"\x7fELF" + b"\x00" * 100, 415, "unsupported_file_type"),
        (b"", 415, "unsupported_file_type"),
        (b"a" * 100_001, 413, "file_too_large"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(http, data_dir, content, status, code):
    response = http.post("/v1/files", files={"file": ("x.txt", content)}, data={"purpose": "x"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["param"] == "file"
    assert list((data_dir / "files" / "incoming").iterdir()) == []


def test_conversations_survive_a_restart(server, data_dir, database_url):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        cid = http.post("/conversations", json={"title": "Kept"}).json()["id"]
        assert chat(http, cid, "Name a hip opener.").status_code == 200
        before = http.get(f"/conversations/{cid}/messages").json()["data"]
    server.stop()
    with (
        start(
            data_dir, "restarted.log", max_upload_bytes=100_000, database_url=database_url
        ) as restarted,
        httpx.Client(base_url=restarted.url, timeout=60) as http,
    ):
        assert http.get(f"/conversations/{cid}").json()["title"] == "Kept"
        assert http.get(f"/conversations/{cid}/messages").json()["data"] == before


def test_api_keys_isolate_users(tmp_path):
    with start(tmp_path, "auth.log", api_keys="key-for-ana, key-for-ben") as server:
        missing = httpx.get(f"{server.url}/v1/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        wrong = httpx.get(f"{server.url}/conversations", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        assert httpx.get(f"{server.url}/health").status_code == 200  # open for probes

        ana = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer key-for-ana"})
        ben = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer key-for-ben"})
        cid = ana.post("/conversations", json={"title": "Ana's"}).json()["id"]
        file_id = ana.post("/v1/files", files={"file": ("a.txt", b"ana's notes")}).json()["id"]

        assert [c["id"] for c in ana.get("/conversations").json()["data"]] == [cid]
        assert ben.get("/conversations").json()["data"] == []
        assert ben.get(f"/conversations/{cid}").status_code == 404
        assert ben.delete(f"/conversations/{cid}").status_code == 404
        assert chat(ben, cid, "hello").status_code == 404
        assert ben.get(f"/v1/files/{file_id}/content").status_code == 404
        assert ben.get("/v1/files").json()["data"] == []

        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="key-for-ben", max_retries=0)
        reply = client.chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert reply.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server.url}/v1", api_key="bad", max_retries=0).models.list()
