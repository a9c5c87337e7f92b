"""Retrieval over the knowledge base and chat answers grounded in it and in a message's link
(real MiniLM, real server, a real local page reached through the link allowlist)."""

import importlib.util

import httpx
import pytest

from omnicoach.knowledge.base import Passage, knowledge_passages
from omnicoach.knowledge.grounding import grounded_messages, retrieve, within_budget
from omnicoach.knowledge.library import Knowledge
from tests.conftest import REPO
from tests.server_process import ServerProcess
from tests.test_links import start_server

CHAT = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def knowledge(settings, embedder):
    """The passage index the assistant searches (knowledge/library.py)."""
    return Knowledge(embedder, settings.model_cache_dir).index


def test_the_knowledge_base_passes_its_validator():
    spec = importlib.util.spec_from_file_location("kb_validate", REPO / "data/kb/validate.py")
    validator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(validator)
    assert validator.validate(REPO / "data" / "kb" / "exercises") == []


def test_every_exercise_has_a_passage_per_aspect_in_each_language():
    passages = knowledge_passages()
    ids = {p.id for p in passages}
    assert len(passages) >= 80 * 2 * 6
    for p in passages:
        assert p.id.replace(":en:", ":bn:") in ids and p.id.replace(":bn:", ":en:") in ids
        assert p.text and p.names and p.source == "knowledge base"
    aspects = {p.id.rsplit(":", 1)[1] for p in passages}
    assert aspects == {"about", "steps", "mistakes", "cautions", "beginner", "benefits"}
    steps = next(p for p in passages if p.id == "kb:boat-pose:en:steps")
    assert steps.title == "Boat Pose (Paripurna Navasana) — How to do it" and "1. " in steps.text


@pytest.mark.parametrize(
    ("question", "lang", "expected"),
    [
        ("How do I do boat pose?", "en", "kb:boat-pose:en:steps"),
        ("My wrists hurt in plank, what can I change?", "en", "kb:plank-pose:en:"),
        ("Is navasana hard for beginners?", "en", "kb:boat-pose:en:beginner"),
        ("What are common mistakes in the deadlift?", "en", "kb:barbell-deadlift:en:mistakes"),
        ("নৌকাসন কীভাবে করব?", "bn", "kb:boat-pose:bn:"),
    ],
)
def test_a_question_finds_its_exercise_and_aspect_first(knowledge, question, lang, expected):
    assert knowledge.search(question, 3, lang=lang)[0].passage.id.startswith(expected)


def test_a_follow_up_is_searched_with_the_question_before_it(knowledge):
    messages = [
        {"role": "user", "content": "What is a box jump?"},
        {"role": "assistant", "content": "An explosive jump onto a box."},
        {"role": "user", "content": "Who should avoid it?"},
    ]
    found = retrieve(knowledge, messages, 3)
    assert found[0].id == "kb:box-jump:en:cautions"


def test_sources_beyond_the_token_budget_are_left_out():
    long, short, medium = (Passage(f"p{n}", "", "x" * n, "en", "test") for n in (50, 10, 30))
    assert within_budget([long, short, medium], len, 60) == [long, short]
    # The long one is skipped whole (not cut mid-sentence); the ones after it may still fit.
    assert within_budget([long, short, medium], len, 45) == [short, medium]
    assert within_budget([long], len, 49) == []


def test_an_off_topic_question_finds_nothing(knowledge):
    assert knowledge.search("What is the capital of France?", 3, lang="en") == []
    assert knowledge.search("hello!", 3, lang="en") == []


def test_sources_go_before_the_question_in_the_last_turn(knowledge):
    hits = knowledge.search("How do I do boat pose?", 2, lang="en")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I do boat pose?"},
    ]
    grounded = grounded_messages(messages, [h.passage for h in hits])
    assert grounded[0] == messages[0]  # the system prompt stays: the prefix cache reuses it
    assert grounded[1]["content"].startswith("Use these numbered sources")
    assert "[1] Boat Pose" in grounded[1]["content"]
    assert grounded[1]["content"].endswith("Question: How do I do boat pose?")


@pytest.fixture(scope="module")
def page_server():
    server = start_server()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("knowledge")
    with ServerProcess(
        directory / "server.log", data_dir=directory, link_allowlist='["127.0.0.1"]'
    ) as process:
        yield process


def ask(server, content: str, **extra) -> dict:
    body = {"model": CHAT, "messages": [{"role": "user", "content": content}], "max_tokens": 16}
    response = httpx.post(f"{server.url}/v1/chat/completions", json={**body, **extra}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_chat_answers_with_numbered_knowledge_sources(server):
    body = ask(server, "How do I do boat pose?")
    assert body["sources"][0]["id"] == "kb:boat-pose:en:steps"
    assert body["sources"][0]["index"] == 1 and body["sources"][0]["source"] == "knowledge base"
    assert body["choices"][0]["message"]["content"]
    assert "sources" not in ask(server, "How do I do boat pose?", rag=False)
    conversation = httpx.post(f"{server.url}/conversations", json={}).json()["id"]
    body = ask(server, "How do I do boat pose?", conversation_id=conversation)
    stored = httpx.get(f"{server.url}/conversations/{conversation}/messages").json()["data"]
    assert stored[0]["sources"] == [] and stored[1]["sources"] == body["sources"]
    assert "sources" not in ask(server, "What is the capital of France?")


def test_a_link_in_the_message_is_read_and_cited(server, page_server):
    body = ask(server, f"Summarise {page_server}/article please")
    assert any(s["source"] == f"{page_server}/article" for s in body["sources"])


def test_a_link_that_cannot_be_read_is_a_warning_not_an_error(server, page_server):
    body = ask(server, f"What does {page_server}/pdf say?")
    assert any("application/pdf" in w for w in body["warnings"])
    assert body["choices"][0]["message"]["content"]
