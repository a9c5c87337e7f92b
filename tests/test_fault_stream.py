"""A streamed answer survives its server: stored while it streams, never silently lost.

In process: the answer row's life (inserted "generating", its text saved at a bounded rate,
finished once) and the start-up recovery. Then a real server killed with SIGKILL mid-stream,
and a new one on the same data dir.
"""

import json
import sqlite3
import time

import httpx
import pytest

from omnicoach import conversations
from omnicoach.assistant import conversation
from omnicoach.assistant.conversation import StoredConversation
from omnicoach.db import Database
from omnicoach.db.schema import LOCAL_USER_ID, Message
from omnicoach.errors import ConflictError
from omnicoach.process_owner import this_process
from tests.conftest import dead_process
from tests.server_process import ServerProcess

CHAT = "smollm2-135m-instruct"
QUESTION = "Tell me about sun salutations."
WORDS = [f"w{i} " for i in range(30)]


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'omnicoach.db'}")
    database.migrate()
    yield database
    database.close()


def asked(db) -> str:
    """A conversation whose question is stored, as the chat route leaves it."""
    cid = conversations.create(db, LOCAL_USER_ID).id
    conversations.append(db, LOCAL_USER_ID, cid, "user", QUESTION)
    return cid


def words(pause: float = 0.0):
    for word in WORDS:
        time.sleep(pause)
        yield word


def saved_by_now() -> None:
    """Wait for the progress saves submitted so far (one writer thread, in order)."""
    conversation._answer_writer.submit(lambda: None).result(timeout=30)


def stored(db, cid) -> list:
    return conversations.messages(db, LOCAL_USER_ID, cid)


def test_the_answer_is_stored_as_it_streams_at_a_bounded_rate(db):
    cid = asked(db)
    turns = StoredConversation(db, LOCAL_USER_ID, cid)
    turns.progress_interval = 3600  # after the first delta, nothing until the end

    def scenario():
        answer = turns.recorded(words(), CHAT, [])
        received = [next(answer) for _ in range(10)]
        saved_by_now()
        question, live = stored(db, cid)
        # One row from the start, "generating", with the first delta (saved at once) only.
        assert question.content == QUESTION
        assert (live.role, live.status, live.model) == ("assistant", "generating", CHAT)
        assert live.content == WORDS[0]

        # A concurrent request does not see the half-written answer as an answer...
        other = StoredConversation(db, LOCAL_USER_ID, cid)
        prompt = other.with_history([{"role": "user", "content": "And a follow-up?"}])
        assert [m["content"] for m in prompt] == [QUESTION, "And a follow-up?"]
        # ...and cannot start a second answer to the same question while this one streams.
        with pytest.raises(ConflictError) as refused:
            other.with_history([])
        assert refused.value.code == "answer_in_progress"

        received += list(answer)
        return received

    received = scenario()
    assert received == WORDS
    messages = stored(db, cid)
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[1].content == "".join(WORDS)
    # Regenerate works as before once it ended: delete the answer, ask again.
    conversations.truncate(db, LOCAL_USER_ID, cid, messages[1].id)
    assert StoredConversation(db, LOCAL_USER_ID, cid).with_history([])[-1]["content"] == QUESTION


def test_each_save_holds_what_was_handed_on_before_it(db):
    cid = asked(db)
    turns = StoredConversation(db, LOCAL_USER_ID, cid)
    turns.progress_interval = 0  # a save at every delta the writer is free for

    answer = turns.recorded(words(), CHAT, [])
    for k in range(1, 8):
        next(answer)  # delta k-1 out; the save before it holds deltas 0..k-2
        saved_by_now()
        assert stored(db, cid)[1].content == "".join(WORDS[: k - 1])
        assert stored(db, cid)[1].status == "generating"
    answer.close()


def test_an_answer_cut_short_ends_incomplete_and_stays_so(db):
    cid = asked(db)
    turns = StoredConversation(db, LOCAL_USER_ID, cid)
    turns.progress_interval = 0

    answer = turns.recorded(words(pause=0.001), CHAT, [])
    received = [next(answer) for _ in range(5)]
    answer.close()  # what a client that leaves does to it
    messages = stored(db, cid)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].status == "incomplete" and messages[1].content == "".join(received)
    # A progress save that comes late cannot undo the end.
    assert conversations.update_generating(db, messages[1].id, "late") is False
    assert stored(db, cid)[1].content == "".join(received)


def test_an_answer_deleted_while_it_streams_stays_deleted(db):
    cid = asked(db)
    turns = StoredConversation(db, LOCAL_USER_ID, cid)

    answer = turns.recorded(words(), CHAT, [])
    next(answer)
    saved_by_now()
    live = stored(db, cid)[1]
    conversations.truncate(db, LOCAL_USER_ID, cid, live.id)  # edit / regenerate
    assert list(answer)  # the stream goes on for its client
    assert [m.role for m in stored(db, cid)] == ["user"]


def test_answers_whose_server_is_gone_are_marked_incomplete_and_live_ones_kept(db):
    cid = asked(db)
    done = conversations.append(db, LOCAL_USER_ID, cid, "assistant", "Done.")
    now = time.time()
    other_host = "elsewhere/1:4242:1700000000.00"
    writers = {  # the answer's writer and its last save → whether that server is gone
        "this process": (this_process(), now - 3600, False),  # alive, however old its save
        "a dead process of this host": (dead_process(), now, True),
        "another host, saved 10 s ago": (other_host, now - 10, False),
        "another host, silent for 10 min": (other_host, now - 600, True),
        "no writer (stored before writers were)": (None, None, True),
    }
    answers = {}
    for name, (writer, saved_at, _) in writers.items():
        conversations.append(db, LOCAL_USER_ID, cid, "user", f"About {name}?")
        answer = conversations.append(
            db, LOCAL_USER_ID, cid, "assistant", f"Half of {name}", status="generating"
        )
        assert answer.writer == this_process()  # recorded by append; replaced below
        with db.write() as session:
            row = session.get(Message, answer.id)
            row.writer, row.saved_at = writer, saved_at
        answers[name] = answer.id

    assert conversations.recover_interrupted(db, now) == 3
    by_id = {m.id: m for m in stored(db, cid)}
    for name, (_, _, gone) in writers.items():
        answer = by_id[answers[name]]
        assert answer.content == f"Half of {name}", name
        assert answer.status == ("incomplete" if gone else "generating"), name
    assert by_id[done.id].status == "complete"
    assert conversations.recover_interrupted(db, now) == 0
    # Once it ends, an answer names no writer.
    conversations.finish_answer(db, answers["this process"], "Whole.", "complete")
    ended = {m.id: m for m in stored(db, cid)}[answers["this process"]]
    assert (ended.status, ended.writer, ended.saved_at) == ("complete", None, None)


# --- a real server, killed mid-stream -----------------------------------------------------


def sse_deltas(lines):
    """The content deltas of an SSE chat stream, as they come."""
    for line in lines:
        if line.startswith("data: {"):
            event = json.loads(line.removeprefix("data: "))
            for choice in event.get("choices", []):
                if choice["delta"].get("content"):
                    yield choice["delta"]["content"]


@pytest.mark.slow
def test_a_server_killed_mid_stream_keeps_the_question_and_the_partial_answer(tmp_path):
    server = ServerProcess(tmp_path / "server.log", data_dir=tmp_path)
    received = ""
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            cid = http.post("/conversations", json={}).json()["id"]
            body = {
                "model": CHAT,
                "conversation_id": cid,
                "messages": [{"role": "user", "content": QUESTION}],
                "max_tokens": 1500,
                "stream": True,
                "temperature": 0,
                "ignore_eos": True,  # runs to max_tokens: it cannot end before the kill
            }
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                deltas = sse_deltas(response.iter_lines())
                # Read on until the server has saved a few words of the answer (the API shows
                # it as it is): more than the first delta, so a throttled save came too.
                deadline = time.monotonic() + 60
                while True:
                    received += next(deltas)
                    live = http.get(f"/conversations/{cid}/messages").json()["data"]
                    if len(live) == 2 and len(live[1]["content"]) >= 40:
                        break
                    assert time.monotonic() < deadline, "nothing of the answer was saved"
                assert live[1]["status"] == "generating"
                # A second server starting on the same database leaves the live answer alone:
                # its server is alive.
                with ServerProcess(tmp_path / "second.log", data_dir=tmp_path) as second:
                    url = f"{second.url}/conversations/{cid}/messages"
                    assert httpx.get(url).json()["data"][1]["status"] == "generating"
                for _ in range(5):
                    received += next(deltas)

                server.process.kill()  # SIGKILL: no shutdown, no finally blocks
                server.process.wait(30)
                try:  # what the dead server had sent already
                    for delta in deltas:
                        received += delta
                except httpx.HTTPError:
                    pass
    finally:
        server.stop()

    # On disk, as the dead server left it: both turns, the answer still "generating".
    with sqlite3.connect(tmp_path / "omnicoach.db") as connection:
        rows = connection.execute(
            "SELECT role, status, content FROM messages WHERE conversation_id = ? ORDER BY id",
            (cid,),
        ).fetchall()
    assert [(role, status) for role, status, _ in rows] == [
        ("user", "complete"),
        ("assistant", "generating"),
    ]
    left = rows[1][2]
    assert left and received.startswith(left)

    with (
        ServerProcess(tmp_path / "restarted.log", data_dir=tmp_path) as restarted,
        httpx.Client(base_url=restarted.url, timeout=60) as http,
    ):
        messages = http.get(f"/conversations/{cid}/messages").json()["data"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"] == QUESTION
        assert messages[1]["status"] == "incomplete" and messages[1]["content"] == left
        assert messages[1]["model"] == CHAT
        # Still usable: regenerate the cut answer (delete it, then ask with no new message).
        gone = http.delete(f"/conversations/{cid}/messages/{messages[1]['id']}")
        assert gone.json()["deleted"] == 1
        again = http.post(
            "/v1/chat/completions",
            json={"model": CHAT, "conversation_id": cid, "max_tokens": 8, "temperature": 0},
        )
        assert again.status_code == 200
        after = http.get(f"/conversations/{cid}/messages").json()["data"]
        assert [(m["role"], m["status"]) for m in after] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert after[1]["content"] == again.json()["choices"][0]["message"]["content"]
