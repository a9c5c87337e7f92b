"""Chat delegated to another OpenAI-compatible server (OMNICOACH_LLM_URL): a second real
omnicoach, on its own port, is the remote. Answers through the delegating server must be the
remote's own answers to the same messages; the remote's failures must come back as clear
OpenAI-shaped errors."""

import socket
import threading
import time

import httpx
import openai
import pytest

from omnicoach.config import load_settings
from omnicoach.errors import ConfigError
from omnicoach.models import registry as registry_module
from omnicoach.models.registry import ModelRegistry
from omnicoach.models.remote_llm import RemoteLLMError, refused
from tests.conftest import REPO
from tests.server_process import ServerProcess

pytestmark = pytest.mark.slow

CHAT = "smollm2-135m-yoga"  # the remote's default chat model: its first in /v1/models
QUESTION = [{"role": "user", "content": "How do I do downward dog safely?"}]
GREEDY = dict(max_tokens=32, temperature=0, extra_body={"rag": False})


def test_llm_url_must_be_an_http_url():
    assert load_settings(llm_url="http://gpu:8000/v1/").llm_url == "http://gpu:8000/v1"
    with pytest.raises(ConfigError, match="llm_url: .*not an http"):
        load_settings(llm_url="gpu:8000/v1")


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "said"),
    [
        # The request's fault: the remote's status and message (OpenAI's shape, Ollama's).
        (400, {"error": {"message": "too long"}}, {}, 400, "answered 400: too long"),
        (400, {"error": "model 'x' not found"}, {}, 400, "answered 400: model 'x' not found"),
        (429, {"error": {"message": "slow down"}}, {"Retry-After": "7"}, 429, "slow down"),
        # omnicoach's configuration, or the remote itself: a bad gateway.
        (401, {"error": {"message": "bad key"}}, {}, 502, "bad key (check llm_api_key)"),
        (404, {"detail": "Not Found"}, {}, 502, "Not Found (check llm_url"),
        (500, "oops", {}, 502, "answered 500: oops"),
    ],
)
def test_remote_refusals_become_clear_errors(status, body, headers, expected, said):
    kind = "json" if isinstance(body, dict) else "text"
    error = refused("http://gpu:8000/v1", httpx.Response(status, headers=headers, **{kind: body}))
    assert error.status == expected and said in str(error)
    assert str(error).startswith("the remote LLM at http://gpu:8000/v1 answered")
    assert error.headers == ({"Retry-After": "7"} if headers else None)


def test_an_unreachable_remote_is_asked_again_only_after_a_while(monkeypatch):
    """A remote that closes every connection: listing models and chatting raise its error
    without asking it again until REMOTE_RETRY_SECONDS have passed."""
    connections = []
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            connections.append(connection)
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        registry = ModelRegistry(load_settings(data_dir=REPO / "var", llm_url=url))
        for _ in range(3):  # the local models are listed; the remote's name is not known
            assert CHAT in [spec.name for spec in registry.specs()]
        with pytest.raises(RemoteLLMError, match=f"the remote LLM at {url} is unreachable"):
            registry.chat()
        assert len(connections) == 1
        monkeypatch.setattr(registry_module, "REMOTE_RETRY_SECONDS", 0.0)
        registry.specs()
        assert len(connections) == 2
    finally:
        listener.close()


def test_a_server_whose_remote_is_down_starts_and_its_chat_is_503(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as placeholder:  # a port nobody listens on
        url = f"http://127.0.0.1:{placeholder.getsockname()[1]}/v1"
    with ServerProcess(
        tmp_path / "server.log", data_dir=tmp_path, llm_url=url, chat_routing=False, rag=False
    ) as server:
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "ok"
        assert health["chat_error"].startswith(f"the remote LLM at {url} is unreachable")
        with pytest.raises(openai.APIStatusError) as failed:
            answer(server, QUESTION, max_tokens=4)
        assert failed.value.status_code == 503
        assert failed.value.response.json()["error"]["code"] == "remote_llm_unavailable"
        # What does not need the remote still works: the local models are listed and embed.
        local = [m.id for m in client_of(server).models.list()]
        assert "all-minilm-l6-v2" in local
        vectors = client_of(server).embeddings.create(model="all-minilm-l6-v2", input="plank")
        assert len(vectors.data[0].embedding) == 384


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """The remote: a plain omnicoach (no routing, no retrieval unless a request asks)."""
    directory = tmp_path_factory.mktemp("remote")
    with ServerProcess(
        directory / "server.log", data_dir=directory, chat_routing=False, rag=False
    ) as process:
        yield process


@pytest.fixture(scope="module")
def delegating(remote, tmp_path_factory):
    """An omnicoach whose chat is the remote's. Its context_length is larger than the remote's,
    so a request it accepts can still be refused by the remote (the 4xx test)."""
    directory = tmp_path_factory.mktemp("delegating")
    with ServerProcess(
        directory / "server.log",
        data_dir=directory,
        llm_url=f"{remote.url}/v1",
        chat_routing=False,
        rag=False,
        context_length=4096,
    ) as process:
        yield process


def client_of(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def answer(server, messages, **kwargs):
    return client_of(server).chat.completions.create(model=CHAT, messages=messages, **kwargs)


def streamed(server, messages, **kwargs) -> tuple[str, list]:
    chunks = list(answer(server, messages, stream=True, **kwargs))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def test_the_remote_model_is_listed_and_no_local_chat_model_is_loaded(delegating):
    models = httpx.get(f"{delegating.url}/v1/models").json()["data"]
    assert models[0]["id"] == CHAT and models[0]["role"] == "chat" and models[0]["loaded"]
    # The same name's local weights were never loaded, nor the base model's.
    assert not any(m["loaded"] for m in models[1:] if m["role"] == "chat")
    health = httpx.get(f"{delegating.url}/health").json()
    assert health["status"] == "ok" and health["engine"] is None  # no local chat engine


def test_greedy_answers_are_the_remotes_streamed_or_not(remote, delegating):
    direct = answer(remote, QUESTION, **GREEDY)
    via = answer(delegating, QUESTION, **GREEDY)
    text = direct.choices[0].message.content
    assert text.strip() and via.choices[0].message.content == text
    assert via.model == CHAT and via.choices[0].finish_reason == direct.choices[0].finish_reason
    assert via.usage.model_dump() == direct.usage.model_dump()  # the remote's own counts

    stream_text, chunks = streamed(
        delegating, QUESTION, stream_options={"include_usage": True}, **GREEDY
    )
    assert stream_text == text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert chunks[-1].usage.completion_tokens == direct.usage.completion_tokens


def test_sampling_parameters_reach_the_remote(remote, delegating):
    # Sampled with a seed, a stop string and penalties: equal only if each is passed on.
    sampled = dict(
        max_tokens=40,
        temperature=0.9,
        top_p=0.8,
        seed=11,
        stop=["."],
        frequency_penalty=0.5,
        extra_body={"rag": False, "repetition_penalty": 1.3},
    )
    direct = answer(remote, QUESTION, **sampled).choices[0]
    via = answer(delegating, QUESTION, **sampled).choices[0]
    assert via.message.content == direct.message.content and "." not in via.message.content
    assert via.finish_reason == direct.finish_reason
    short = answer(delegating, QUESTION, max_tokens=3, temperature=0, extra_body={"rag": False})
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3


def test_grounding_stays_local_with_the_remotes_answer(remote, delegating):
    # The delegating server retrieves and budgets the sources (its own knowledge base, the
    # bundled tokenizer), the remote answers: as the remote answers the same request itself.
    grounded = dict(max_tokens=32, temperature=0, extra_body={"rag": True})
    direct = answer(remote, QUESTION, **grounded)
    via = answer(delegating, QUESTION, **grounded)
    assert (
        via.model_extra["sources"] and via.model_extra["sources"] == direct.model_extra["sources"]
    )
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.usage.prompt_tokens == direct.usage.prompt_tokens


def test_a_conversation_is_stored_by_the_delegating_server(remote, delegating):
    http = httpx.Client(base_url=delegating.url, timeout=120)
    cid = http.post("/conversations", json={}).json()["id"]
    first = "My name is Rina. Name one standing yoga pose."
    one = answer(
        delegating,
        [{"role": "user", "content": first}],
        max_tokens=24,
        temperature=0,
        extra_body={"rag": False, "conversation_id": cid},
    )
    second, _ = streamed(
        delegating,
        [{"role": "user", "content": "What is my name?"}],
        max_tokens=16,
        temperature=0,
        extra_body={"rag": False, "conversation_id": cid},
    )
    stored = http.get(f"/conversations/{cid}/messages").json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[1]["content"] == one.choices[0].message.content
    assert stored[3]["content"] == second and stored[3]["status"] == "complete"
    assert stored[3]["model"] == CHAT
    # The history went to the remote: its answer to the whole conversation is the same.
    history = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": stored[1]["content"]},
        {"role": "user", "content": "What is my name?"},
    ]
    direct = answer(remote, history, max_tokens=16, temperature=0, extra_body={"rag": False})
    assert direct.choices[0].message.content == second
    # The remote stored nothing: it was asked plain chat completions.
    assert httpx.get(f"{remote.url}/conversations").json()["data"] == []


def test_a_client_that_leaves_stops_the_remote_generation(remote, delegating):
    # Without the cancellation passed on, the remote would write 1800 tokens (tens of seconds).
    stream = answer(
        delegating,
        QUESTION,
        stream=True,
        max_tokens=1800,
        temperature=0,
        extra_body={"rag": False, "ignore_eos": True},
    )
    chunks = iter(stream)
    for _ in range(4):
        next(chunks)
    assert httpx.get(f"{remote.url}/health").json()["generations"]["running"] == 1
    stream.close()
    deadline = time.monotonic() + 20
    while httpx.get(f"{remote.url}/health").json()["generations"]["running"]:
        assert time.monotonic() < deadline, "the remote kept generating after the client left"
        time.sleep(0.2)


def test_a_request_the_remote_refuses_keeps_its_status_and_message(remote, delegating):
    # 3000 tokens fit the delegating server's 4096-token window, not the remote's 2048.
    with pytest.raises(openai.BadRequestError) as refused:
        answer(delegating, QUESTION, max_tokens=3000, temperature=0, extra_body={"rag": False})
    error = refused.value.response.json()["error"]
    assert error["message"].startswith(f"the remote LLM at {remote.url}/v1 answered 400: ")
    assert "2048-token context window" in error["message"]
    assert error["code"] == "remote_llm_refused"


def test_a_stopped_remote_is_a_503_naming_it(remote, delegating):
    """Last: it stops the remote."""
    http = httpx.Client(base_url=delegating.url, timeout=60)
    cid = http.post("/conversations", json={}).json()["id"]
    remote.stop()
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as failed:
            answer(
                delegating,
                QUESTION,
                stream=stream,
                max_tokens=8,
                extra_body={"rag": False, "conversation_id": cid},
            )
        assert failed.value.status_code == 503
        error = failed.value.response.json()["error"]
        assert error["message"].startswith(f"the remote LLM at {remote.url}/v1 is unreachable")
        assert error["type"] == "server_error" and error["code"] == "remote_llm_unavailable"
    # A question that got no answer is not stored; the delegating server itself stays up.
    assert http.get(f"/conversations/{cid}/messages").json()["data"] == []
    assert http.get("/health").json()["status"] == "ok"
