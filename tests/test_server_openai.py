"""The OpenAI-compatible API on a real uvicorn process, driven by the official `openai` client."""

import http.client
import json
import threading
import time

import httpx
import openai
import pytest

from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

CHAT = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "How do I do downward dog safely?"}]
# With the extension ignore_eos, an answer runs to max_tokens whatever the model says: a
# generation that reliably runs until max_tokens, to hold a slot for a long time.
LOOPING = dict(temperature=0, ignore_eos=True, rag=False)  # no sources: a known prompt length


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Two generations at once and one waiting, so the busy path is reachable with 4 requests.
    with ServerProcess(
        tmp_path_factory.mktemp("server") / "server.log",
        max_concurrent_generations=2,
        max_waiting_generations=1,
        max_request_bytes=100_000,
    ) as process:
        yield process


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def wait_until_idle(server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/health").json()["generations"] == {"running": 0, "waiting": 0}:
            return True
        time.sleep(0.2)
    return False


def test_an_idle_connection_is_kept_open_longer_than_clients_keep_theirs(server):
    """httpx (and the openai client) drop an idle connection after 5 s; the server must keep
    it longer, or a request sent as the server closes it is reset (httpx.ReadError)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", "/health")
        first = connection.getresponse()
        assert first.status == 200 and first.read()
        socket_before = connection.sock
        time.sleep(6)  # past uvicorn's default keep-alive (5 s) and httpx's expiry
        connection.request("GET", "/health")  # a closed connection: RemoteDisconnected here
        again = connection.getresponse()
        assert again.status == 200 and again.read()
        assert connection.sock is socket_before  # the same connection, still open
    finally:
        connection.close()


def test_models_lists_the_registered_models(client):
    models = {m.id: m for m in client.models.list()}
    assert CHAT in models and "all-minilm-l6-v2" in models
    assert client.models.retrieve(CHAT).id == CHAT


def test_chat_completion_with_usage(client):
    response = client.chat.completions.create(
        model=CHAT, messages=QUESTION, max_tokens=16, temperature=0
    )
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = response.usage
    assert usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streamed_equals_non_streamed_and_reports_usage(client):
    kwargs = dict(model=CHAT, messages=QUESTION, max_completion_tokens=24, temperature=0, seed=3)
    full = client.chat.completions.create(**kwargs)
    stream = client.chat.completions.create(
        **kwargs, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert (
        chunks[-1].choices == []
        and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[
        0
    ].finish_reason


def test_stop_and_text_content_parts(client):
    parts = [
        {"type": "text", "text": "How do I do"},
        {"type": "text", "text": "downward dog safely?"},
    ]
    response = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": parts}],
        max_tokens=40,
        temperature=0,
        stop=["\n"],
    )
    assert "\n" not in response.choices[0].message.content


def test_embeddings(client):
    result = client.embeddings.create(
        model="all-minilm-l6-v2", input=["warrior two", "virabhadrasana II"]
    )
    assert len(result.data) == 2 and len(result.data[0].embedding) == 384
    assert result.usage.prompt_tokens > 0
    # The openai client asks for base64 by default and decodes it; float works too.
    floats = client.embeddings.create(
        model="all-minilm-l6-v2", input="plank", encoding_format="float"
    )
    assert len(floats.data[0].embedding) == 384


def test_concurrent_streams_interleave(client):
    first_chunk_at, finished_at = {}, {}

    def run(name):
        stream = client.chat.completions.create(
            model=CHAT,
            messages=QUESTION,
            max_tokens=60,
            stream=True,
            temperature=0,
            # Extension fields (see LOOPING): answers the model writes, to max_tokens.
            extra_body={"ignore_eos": True, "rag": False},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first_chunk_at.setdefault(name, time.monotonic())
        finished_at[name] = time.monotonic()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # Both had started streaming before either finished: they ran side by side.
    assert max(first_chunk_at.values()) < min(finished_at.values())


def test_busy_server_answers_503_and_disconnects_free_their_slots(server):
    body = {"model": CHAT, "messages": QUESTION, "max_tokens": 1900, "stream": True, **LOOPING}
    streams = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for _ in range(2):  # fill both slots with long generations
            stream = http.stream("POST", "/v1/chat/completions", json=body)
            lines = stream.__enter__().iter_lines()
            next(lines)
            # Keep the line iterator: dropping it closes the connection, which the server
            # rightly takes as the client leaving, ending the generation.
            streams.append((stream, lines))
        waiting = threading.Thread(
            target=lambda: http.post(
                "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4}
            )
        )
        waiting.start()
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/health").json()["generations"]["waiting"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        busy = http.post("/v1/chat/completions", json=body)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"].isdigit()
        assert busy.json()["error"]["code"] == "server_busy"
        # A refused chat is refused before its spoken question is transcribed: this audio is
        # not audio at all, which transcribing would answer with 400.
        spoken = {"type": "input_audio", "input_audio": {"data": "bm90IGF1ZGlv", "format": "wav"}}
        spoken_body = {**body, "messages": [{"role": "user", "content": [spoken]}]}
        refused_early = http.post("/v1/chat/completions", json=spoken_body)
        assert refused_early.status_code == 503, refused_early.text

        for stream, _lines in streams:  # the clients leave mid-answer
            stream.__exit__(None, None, None)
        waiting.join(60)
    # 1900 tokens would take well over a minute; cancelled generations free their slots at once.
    assert wait_until_idle(server, timeout=30)


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"model": "gpt-9", "messages": QUESTION}, 404, "model", "model_not_found"),
        ({"model": CHAT, "messages": QUESTION, "n": 2}, 400, "n", None),
        ({"model": CHAT, "messages": []}, 422, "messages", "too_short"),
        (
            {"model": CHAT, "messages": QUESTION, "temperature": 9},
            422,
            "temperature",
            "less_than_equal",
        ),
        ({"messages": QUESTION}, 422, "model", "missing"),
        ({"model": CHAT, "messages": QUESTION, "stop": list("abcde")}, 422, "stop", "value_error"),
        (
            {
                "model": CHAT,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:,"}}],
                    }
                ],
            },
            400,
            "messages[0].content[0].image_url.url",
            "invalid_image_url",
        ),
        (
            {
                "model": CHAT,
                "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}],
            },
            400,
            "messages[0].content[0]",
            "unsupported_content_part",
        ),
        (
            {
                "model": CHAT,
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ],
            },
            400,
            "messages[0].content[0].input_audio",
            "invalid_input_audio",
        ),
        (
            {"model": CHAT, "messages": [{"role": "user", "content": "hi " * 3000}]},
            400,
            "messages",
            None,
        ),
    ],
)
def test_chat_errors_use_the_openai_error_body(server, body, status, param, code):
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"]
    assert error["param"] == param
    assert error["code"] == code


def test_invalid_json_oversize_body_and_unknown_route(server):
    bad = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{bad",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "json_invalid"

    big = httpx.post(
        f"{server.url}/v1/embeddings", content=json.dumps({"model": "x", "input": "a" * 200_000})
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    missing = httpx.get(f"{server.url}/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_openai_client_raises_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=QUESTION)
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        client.embeddings.create(model="all-minilm-l6-v2", input="x", dimensions=12)
