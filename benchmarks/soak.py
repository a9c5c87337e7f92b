"""Soak: many concurrent clients on loopback, every kind of request mixed, for a bounded time.

Starts a real `omnicoach serve` on a free 127.0.0.1 port with a fresh data dir (the bundled
models; the model cache of ./var is shared), or targets a running server (--url), and runs
--clients clients (default 100) for --seconds (default 120). Each client loops over a weighted
mix (MIX below): chat into stored conversations, streamed and not (short answers, so the CPU
does not only decode), the prompt router (/classify), transcription of a short spoken WAV,
small file uploads, and reads (messages, conversations, file metadata and bytes). A 503 from
the generation queue is back-pressure: counted apart from errors, and retried after its
Retry-After.

Every write the server acknowledged is recorded (a chat answer received in full, with the
question it answered; a conversation created; a file id returned) and checked afterwards,
through the API and directly in the SQLite file: `lost` must be 0. The server's log is scanned
for "database is locked", tracebacks and 5xx answers; its RSS is sampled every second.

    .venv/bin/python benchmarks/soak.py [--clients 100] [--seconds 120] [--out var/bench/soak.json]
    .venv/bin/python benchmarks/soak.py --url http://127.0.0.1:8000 [--db var/omnicoach.db]
        [--pid PID] [--log server.log]

Bounded: no operation starts after --seconds; those still running get --grace seconds (default
60) to finish and are then cancelled (counted as cancelled, never as acknowledged); a hard
deadline covers the whole run, and the server it started is stopped however the run ends
(Ctrl-C and SIGTERM included). Exit status 1 when anything was lost, locked or failed.
"""

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import wave
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from omnicoach.models.registry import TUNED_CHAT_MODEL  # noqa: E402 (the default chat model)

# Relative weights of what a client does next. Chat is the expensive part (it queues for the
# 16 generation slots); the rest is what a page and API clients do around it.
MIX = {
    "chat": 8,  # non-streamed, into the client's conversation
    "chat_stream": 12,  # streamed (SSE), into the client's conversation
    "classify": 15,  # POST /classify
    "transcribe": 8,  # POST /v1/audio/transcriptions, a ~3.5 s spoken WAV
    "upload": 15,  # POST /v1/files, a small text file; some share their bytes (one blob)
    "delete_file": 5,  # DELETE /v1/files/{id}, one of the client's own
    "read_messages": 12,  # GET /conversations/{id}/messages: the client's own writes are there
    "list_conversations": 8,  # GET /conversations?limit=20
    "read_file": 10,  # GET /v1/files/{id}
    "download_file": 7,  # GET /v1/files/{id}/content: the bytes hash to what was sent
}
# Operations besides the mix: a new conversation every TURNS_PER_CONVERSATION chats (so prompts
# stay short).
TURNS_PER_CONVERSATION = 4
MAX_TOKENS = (16, 24, 32)

QUESTIONS = [
    "How do I do downward dog safely?",
    "What muscles does a squat work?",
    "Give me a beginner plank progression.",
    "How should I breathe during sun salutations?",
    "Is it fine to stretch before running?",
    "What is a good warm-up for deadlifts?",
    "How long should I hold a side plank?",
    "Why do my knees hurt in a lunge?",
    "Name a hip opener for tight hips.",
    "How often should a beginner lift weights?",
]
CLASSIFY_PROMPTS = [
    "draw a cobra pose",
    "generate an image of a warrior II pose",
    "what does cobra look like?",
    "describe warrior II",
    "draw up a workout plan for me",
    "show me a picture of a deadlift",
    "don't draw it, just explain",
    "How many push-ups should I do a day?",
]
SPOKEN = "Breathe in slowly and raise both arms above your head."

LOCKED = re.compile(r"database is locked", re.IGNORECASE)
# uvicorn's access log: ... "POST /v1/files HTTP/1.1" 500 Internal Server Error
ACCESS_STATUS = re.compile(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3})')


# --- what the clients measure -------------------------------------------------------------


@dataclass
class OpStats:
    latencies: list[float] = field(default_factory=list)  # seconds, successful attempts
    errors: Counter = field(default_factory=Counter)  # "500", "timeout", "stale_read", ...
    busy: int = 0  # 503 + Retry-After answers (retried)
    cancelled: int = 0  # still running at the hard stop
    ttfts: list[float] = field(default_factory=list)  # streamed chat: first content delta
    # Transport failures as they came: the exception, its cause, where and when (at most 20).
    failures: list[dict] = field(default_factory=list)


@dataclass
class Run:
    http: httpx.AsyncClient
    started: float  # monotonic
    stop_at: float  # monotonic: no operation starts after this
    seed: int
    think: float
    model: str
    wav: bytes
    stats: dict[str, OpStats] = field(default_factory=lambda: defaultdict(OpStats))
    requests: int = 0  # HTTP answers received (any status), plus transport failures
    # Acknowledged writes, checked after the run.
    conversations: set[str] = field(default_factory=set)
    answers: list[dict] = field(default_factory=list)  # {conversation_id, question, answer}
    files: dict[str, dict] = field(default_factory=dict)  # id → {sha256, bytes}
    deleted: int = 0  # files deleted (acknowledged), no longer expected


class Failed(Exception):
    """An operation's failure, already counted."""


class Busy(Exception):
    def __init__(self, retry_after: float):
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.1, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


async def attempt(run: Run, op: str, call) -> object:
    """CALL() until it is not refused as busy (503 + Retry-After), waiting as hinted; its
    latency (the successful attempt only) and any failure are recorded under OP. Returns
    CALL's result, or None when it failed or the run ended while waiting."""
    stats = run.stats[op]
    while True:
        start = time.perf_counter()
        try:
            result = await call()
        except asyncio.CancelledError:
            stats.cancelled += 1  # the hard stop: neither acknowledged nor an error
            raise
        except Busy as busy:
            stats.busy += 1
            if time.monotonic() + busy.retry_after > run.stop_at:
                return None  # the run is over before the hinted time: not retried, not an error
            await asyncio.sleep(busy.retry_after)
            continue
        except Failed:
            return None
        except httpx.TimeoutException:
            run.requests += 1
            stats.errors["timeout"] += 1
            return None
        except httpx.HTTPError as exc:
            run.requests += 1
            stats.errors[type(exc).__name__] += 1
            if len(stats.failures) < 20:
                cause = exc.__cause__ or exc.__context__
                stats.failures.append(
                    {
                        "at_s": round(time.monotonic() - run.started, 2),
                        "after_s": round(time.perf_counter() - start, 2),
                        "error": f"{type(exc).__name__}: {exc}",
                        "cause": repr(cause) if cause is not None else None,
                        "where": " ".join(getattr(exc, "__notes__", [])) or "before the response",
                    }
                )
            return None
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # a body not as documented
            stats.errors[f"bad_body ({type(exc).__name__})"] += 1
            return None
        stats.latencies.append(time.perf_counter() - start)
        return result


def check(run: Run, op: str, response: httpx.Response, expected: int = 200) -> httpx.Response:
    run.requests += 1
    if response.status_code == 503 and "retry-after" in response.headers:
        raise Busy(_retry_after(response))
    if response.status_code != expected:
        run.stats[op].errors[str(response.status_code)] += 1
        raise Failed
    return response


def fail(run: Run, op: str, why: str):
    run.stats[op].errors[why] += 1
    raise Failed


@dataclass
class Client:
    number: int
    rng: random.Random
    conversation: str | None = None
    turns: int = 0  # chats into the current conversation
    asked: int = 0
    uploads: int = 0
    files: list[str] = field(default_factory=list)


async def new_conversation(run: Run, client: Client) -> str | None:
    async def call():
        r = check(run, "create_conversation", await run.http.post("/conversations", json={}), 201)
        return r.json()["id"]

    conversation_id = await attempt(run, "create_conversation", call)
    if conversation_id is not None:
        run.conversations.add(conversation_id)
        client.conversation, client.turns = conversation_id, 0
    return conversation_id


def chat_body(run: Run, client: Client, stream: bool) -> tuple[dict, str]:
    client.asked += 1
    # Tagged, so each question is unique in the database and can be found again.
    question = f"{client.rng.choice(QUESTIONS)} (soak c{client.number} q{client.asked})"
    body = {
        "messages": [{"role": "user", "content": question}],
        "max_tokens": client.rng.choice(MAX_TOKENS),
        "conversation_id": client.conversation,
        "stream": stream,
        "model": run.model,
    }
    return body, question


async def chat(run: Run, client: Client, stream: bool) -> None:
    fresh = client.conversation is None or client.turns >= TURNS_PER_CONVERSATION
    if fresh and await new_conversation(run, client) is None:
        return
    op = "chat_stream" if stream else "chat"
    body, question = chat_body(run, client, stream)

    async def plain():
        r = check(run, op, await run.http.post("/v1/chat/completions", json=body))
        return r.json()["choices"][0]["message"]["content"]

    async def streamed():
        start = time.perf_counter()
        parts, done, first = [], False, None
        async with run.http.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                check(run, op, r)
            run.requests += 1
            try:
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line == "data: [DONE]":
                        done = True
                        break
                    chunk = json.loads(line[6:])
                    if "error" in chunk:
                        fail(run, op, "stream_error")
                    delta = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else ""
                    if delta:
                        first = first or time.perf_counter()
                        parts.append(delta)
            except httpx.HTTPError as exc:  # say where the stream broke (the report shows it)
                exc.add_note(f"mid-stream, after {len(parts)} content deltas")
                raise
        if not done:
            fail(run, op, "stream_cut")
        if first is not None:
            run.stats[op].ttfts.append(first - start)
        return "".join(parts)

    answer = await attempt(run, op, streamed if stream else plain)
    client.turns += 1  # also after a failure: the next chat may go to a new conversation
    if answer is not None:
        run.answers.append(
            {"conversation_id": client.conversation, "question": question, "answer": answer}
        )


async def classify(run: Run, client: Client) -> None:
    prompt = client.rng.choice(CLASSIFY_PROMPTS)

    async def call():
        r = check(run, "classify", await run.http.post("/classify", json={"prompt": prompt}))
        if r.json().get("label") not in {"image_generation", "conversation"}:
            fail(run, "classify", "bad_body")

    await attempt(run, "classify", call)


async def transcribe(run: Run, client: Client) -> None:
    async def call():
        files = {"file": ("question.wav", run.wav, "audio/wav")}
        r = await run.http.post(
            "/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}
        )
        if not check(run, "transcribe", r).json().get("text", "").strip():
            fail(run, "transcribe", "empty_text")

    await attempt(run, "transcribe", call)


async def upload(run: Run, client: Client) -> None:
    client.uploads += 1
    draw = client.rng.random()
    if draw < 0.15:
        # The same bytes from many clients at once: one blob on disk, one row per upload.
        content, name = run.wav, "question.wav"
    elif draw < 0.4:
        # Bytes every client uploads during the same 3 s (and deletes some of): the blob's last
        # row is deleted while another upload of it is under way.
        window = int((time.monotonic() - run.started) / 3)
        content, name = f"soak shared note, window {window}\n".encode(), "shared.txt"
    else:
        line = f"soak upload c{client.number} u{client.uploads} {client.rng.getrandbits(64):x}\n"
        content, name = (line * client.rng.randint(1, 60)).encode(), "notes.txt"
    digest = hashlib.sha256(content).hexdigest()

    async def call():
        files = {"file": (name, content, "application/octet-stream")}
        r = await run.http.post("/v1/files", files=files, data={"purpose": "user_data"})
        stored = check(run, "upload", r).json()
        if stored.get("sha256") != digest or stored.get("bytes") != len(content):
            fail(run, "upload", "bad_body")
        return stored["id"]

    file_id = await attempt(run, "upload", call)
    if file_id is not None:
        run.files[file_id] = {"sha256": digest, "bytes": len(content)}
        client.files.append(file_id)


async def delete_file(run: Run, client: Client) -> None:
    if not client.files:
        return await upload(run, client)
    file_id = client.rng.choice(client.files)

    async def call():
        check(run, "delete_file", await run.http.delete(f"/v1/files/{file_id}"))

    # Forgotten first: whatever the answer, the file is no longer an acknowledged write.
    client.files.remove(file_id)
    run.files.pop(file_id, None)
    await attempt(run, "delete_file", call)
    run.deleted += 1


async def read_messages(run: Run, client: Client) -> None:
    conversation = client.conversation
    if conversation is None:
        return await list_conversations(run, client)
    mine = [a for a in run.answers if a["conversation_id"] == conversation]

    async def call():
        r = check(
            run, "read_messages", await run.http.get(f"/conversations/{conversation}/messages")
        )
        stored = [m for m in r.json()["data"]]
        if missing(mine, stored):  # read your writes: every acknowledged turn is there
            fail(run, "read_messages", "stale_read")

    await attempt(run, "read_messages", call)


async def list_conversations(run: Run, client: Client) -> None:
    async def call():
        r = check(run, "list_conversations", await run.http.get("/conversations?limit=20"))
        if r.json().get("object") != "list":
            fail(run, "list_conversations", "bad_body")

    await attempt(run, "list_conversations", call)


async def read_file(run: Run, client: Client, content: bool) -> None:
    if not client.files:
        return await upload(run, client)
    file_id = client.rng.choice(client.files)
    expected = run.files[file_id]
    op = "download_file" if content else "read_file"

    async def call():
        if content:
            r = check(run, op, await run.http.get(f"/v1/files/{file_id}/content"))
            if hashlib.sha256(r.content).hexdigest() != expected["sha256"]:
                fail(run, op, "wrong_bytes")
        else:
            r = check(run, op, await run.http.get(f"/v1/files/{file_id}"))
            if r.json().get("sha256") != expected["sha256"]:
                fail(run, op, "wrong_metadata")

    await attempt(run, op, call)


async def client_loop(run: Run, number: int) -> None:
    client = Client(number, random.Random(run.seed * 100_003 + number))
    names, weights = list(MIX), list(MIX.values())
    # Spread the starts over the first second, as clients arrive in practice.
    await asyncio.sleep(client.rng.uniform(0, 1))
    while time.monotonic() < run.stop_at:
        op = client.rng.choices(names, weights)[0]
        if op in ("chat", "chat_stream"):
            await chat(run, client, stream=op == "chat_stream")
        elif op == "classify":
            await classify(run, client)
        elif op == "transcribe":
            await transcribe(run, client)
        elif op == "upload":
            await upload(run, client)
        elif op == "delete_file":
            await delete_file(run, client)
        elif op == "read_messages":
            await read_messages(run, client)
        elif op == "list_conversations":
            await list_conversations(run, client)
        else:
            await read_file(run, client, content=op == "download_file")
        await asyncio.sleep(client.rng.uniform(0, run.think))


# --- checking the acknowledged writes -----------------------------------------------------


def missing(answers: list[dict], messages: list[dict]) -> list[dict]:
    """The acknowledged ANSWERS (of one conversation) not found in MESSAGES (its stored
    messages in order, dicts with role, content, status): the question as a user message, and
    after it, before the next user message, the answer with the same text, complete."""
    lost = []
    for acked in answers:
        found = False
        for i, message in enumerate(messages):
            if message["role"] != "user" or message["content"] != acked["question"]:
                continue
            for later in messages[i + 1 :]:
                if later["role"] == "user":
                    break
                if later["content"] == acked["answer"] and later["status"] == "complete":
                    found = True
                    break
            break
        if not found:
            lost.append(acked)
    return lost


async def list_all(http: httpx.AsyncClient, path: str) -> list[dict]:
    """Every item of a cursor list, page by page."""
    items, after = [], None
    while True:
        params = {"limit": 1000, **({"after": after} if after else {})}
        page = (await http.get(path, params=params)).raise_for_status().json()
        items += page["data"]
        if not page["has_more"] or not page["data"]:
            return items
        after = page["last_id"]


async def verify_api(url: str, run: Run) -> list[dict]:
    lost = []
    by_conversation = defaultdict(list)
    for acked in run.answers:
        by_conversation[acked["conversation_id"]].append(acked)
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        listed = {c["id"] for c in await list_all(http, "/conversations")}
        lost += [
            {"kind": "conversation", "id": c, "where": "api"} for c in run.conversations - listed
        ]
        for conversation_id, answers in by_conversation.items():
            r = await http.get(f"/conversations/{conversation_id}/messages")
            stored = r.json()["data"] if r.status_code == 200 else []
            lost += [{"kind": "message", **a, "where": "api"} for a in missing(answers, stored)]
        stored_files = {f["id"]: f["sha256"] for f in await list_all(http, "/v1/files")}
        for file_id, expected in run.files.items():
            if stored_files.get(file_id) != expected["sha256"]:
                lost.append({"kind": "file", "id": file_id, "where": "api"})
    return lost


def verify_database(path: Path, run: Run, files_dir: Path | None) -> list[dict]:
    """The same, read straight from the SQLite file (and the blobs on disk, when known)."""
    lost = []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        conversations = {row[0] for row in db.execute("SELECT id FROM conversations")}
        messages = defaultdict(list)
        rows = db.execute("SELECT conversation_id, role, content, status FROM messages ORDER BY id")
        for conversation_id, role, content, status in rows:
            messages[conversation_id].append({"role": role, "content": content, "status": status})
        files = dict(db.execute("SELECT id, sha256 FROM files"))
    lost += [
        {"kind": "conversation", "id": c, "where": "db"} for c in run.conversations - conversations
    ]
    by_conversation = defaultdict(list)
    for acked in run.answers:
        by_conversation[acked["conversation_id"]].append(acked)
    for conversation_id, answers in by_conversation.items():
        lost += [
            {"kind": "message", **a, "where": "db"}
            for a in missing(answers, messages[conversation_id])
        ]
    for file_id, expected in run.files.items():
        blob = files_dir / expected["sha256"][:2] / expected["sha256"] if files_dir else None
        if files.get(file_id) != expected["sha256"]:
            lost.append({"kind": "file", "id": file_id, "where": "db"})
        elif blob is not None and (not blob.exists() or blob.stat().st_size != expected["bytes"]):
            lost.append({"kind": "file", "id": file_id, "where": "disk"})
    return lost


def scan_log(path: Path) -> dict:
    """What the server's log says: lines with "database is locked", tracebacks, and the
    status of every answer (5xx other than the queue's 503 are failures)."""
    text = path.read_text(errors="replace")
    statuses = Counter(int(m.group(2)) for m in ACCESS_STATUS.finditer(text))
    failures = Counter()
    for m in ACCESS_STATUS.finditer(text):
        if int(m.group(2)) >= 500 and int(m.group(2)) != 503:
            failures[f"{m.group(2)} {m.group(1)}"] += 1
    return {
        "database_locked": len(LOCKED.findall(text)),
        "tracebacks": text.count("Traceback (most recent call last)"),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "server_5xx": sum(failures.values()),  # 503 with Retry-After is back-pressure
        "server_5xx_by_route": dict(failures),
        "server_503": statuses.get(503, 0),
    }


# --- memory ------------------------------------------------------------------------------


class RssSampler:
    """The RSS of a process (and its children) once a second, on a thread of its own, so the
    samples keep their pace however busy the event loop is."""

    def __init__(self, pid: int, interval: float = 1.0):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (monotonic, bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self) -> int:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.monotonic(), self._rss()))
            self._stop.wait(self.interval)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self, load_start: float, load_end: float) -> dict:
        mb = [(t, rss / 2**20) for t, rss in self.samples]
        if not mb:
            return {}
        during = [v for t, v in mb if load_start <= t <= load_end] or [v for _, v in mb]
        # Bounded: the load's last third adds at most 5 % (or 25 MB) to its middle third's peak
        # (the first third is the ramp: generations, KV caches and threads filling up).
        third = max(len(during) // 3, 1)
        middle = max(during[third : 2 * third] or during)
        last = max(during[2 * third :] or during)
        return {
            "start_mb": round(during[0], 1),
            "peak_mb": round(max(v for _, v in mb), 1),
            "end_mb": round(mb[-1][1], 1),
            "middle_third_peak_mb": round(middle, 1),
            "last_third_peak_mb": round(last, 1),
            "plateaued": last - middle <= max(25.0, 0.05 * middle),
            # Every sample, seconds from the start of the load: the curve, for a look.
            "series_mb": [[round(t - load_start, 1), round(v)] for t, v in mb],
        }


# --- the run ------------------------------------------------------------------------------


def spoken_wav(directory: Path, url: str) -> bytes:
    """A short spoken question: espeak-ng when installed, else the server's own voice."""
    try:
        from omnicoach.data.voices import espeak

        return espeak(directory / "question.wav", SPOKEN, pad=0.3).read_bytes()
    except (ImportError, RuntimeError, OSError):
        body = {"model": "tts-1", "voice": "alloy", "input": SPOKEN, "response_format": "wav"}
        response = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=120)
        return response.raise_for_status().content


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as audio:
        return audio.getnframes() / audio.getframerate()


async def warm_up(url: str, wav: bytes, model: str) -> None:
    """One request of each expensive kind, not counted: lazy parts load now."""
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        (await http.post("/v1/chat/completions", json=body)).raise_for_status()
        (await http.post("/classify", json={"prompt": "hello"})).raise_for_status()
        files = {"file": ("warm.wav", wav, "audio/wav")}
        data = {"model": "whisper-1"}
        (await http.post("/v1/audio/transcriptions", files=files, data=data)).raise_for_status()


async def load(url: str, args, wav: bytes) -> tuple[Run, dict]:
    limits = httpx.Limits(
        max_connections=args.clients + 8, max_keepalive_connections=args.clients + 8
    )
    # Generous: a chat may wait its turn in the generation queue; the run's own deadline
    # (--seconds + --grace) is what bounds it.
    timeout = httpx.Timeout(args.seconds + args.grace, connect=30)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        started = time.monotonic()
        run = Run(
            http=http,
            started=started,
            stop_at=started + args.seconds,
            seed=args.seed,
            think=args.think,
            model=args.model,
            wav=wav,
        )
        tasks = [asyncio.create_task(client_loop(run, i)) for i in range(args.clients)]
        try:
            await asyncio.wait(tasks, timeout=args.seconds)
            # No operation starts now; those under way get the grace period.
            _done, pending = await asyncio.wait(tasks, timeout=args.grace)
        finally:
            pending = [t for t in tasks if not t.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        ended = time.monotonic()
    # A client that died of something unexpected is a bug in this script: counted, not hidden.
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            run.stats["client"].errors[type(task.exception()).__name__] += 1
    timing = {
        "load_start": started,
        "load_end": min(ended, started + args.seconds),
        "wall_s": round(ended - started, 1),
        "cancelled_clients": len(pending),
    }
    return run, timing


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def op_rows(run: Run) -> list[dict]:
    rows = []
    for op in [*MIX, "create_conversation", "client"]:
        if op not in run.stats:
            continue
        s = run.stats[op]
        row = {
            "operation": op,
            "count": len(s.latencies),
            "busy_503": s.busy,
            "p50_s": round(statistics.median(s.latencies), 3) if s.latencies else None,
            "p95_s": round(percentile(s.latencies, 0.95), 3) if s.latencies else None,
            "max_s": round(max(s.latencies), 3) if s.latencies else None,
            "errors": sum(s.errors.values()),
            "errors_by_status": dict(s.errors),
            "cancelled": s.cancelled,
        }
        if s.failures:
            row["failures"] = s.failures
        if s.ttfts:
            row["ttft_p50_s"] = round(statistics.median(s.ttfts), 3)
            row["ttft_p95_s"] = round(percentile(s.ttfts, 0.95), 3)
        rows.append(row)
    return rows


def print_report(result: dict) -> None:
    print(
        f"{result['clients']} clients, {result['seconds']} s, "
        f"{'server started here' if result['started_server'] else result['url']}"
    )
    print("| operation | ok | busy (503) | p50 | p95 | max | errors | cancelled |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["operations"]:

        def s(v):
            return "–" if v is None else f"{v:.3f} s"

        errors = ", ".join(f"{k}×{v}" for k, v in r["errors_by_status"].items()) or "0"
        cells = [r["operation"], r["count"], r["busy_503"], s(r["p50_s"]), s(r["p95_s"])]
        cells += [s(r["max_s"]), errors, r["cancelled"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r in result["operations"]:
        if "ttft_p50_s" in r:
            print(f"{r['operation']}: first token p50 {r['ttft_p50_s']} s, p95 {r['ttft_p95_s']} s")
    w = result["writes"]
    print(
        f"acknowledged writes: {w['conversations']} conversations, {w['answers']} answers "
        f"(with their questions), {w['files']} files ({w['files_deleted']} more deleted); "
        f"lost: {len(result['lost'])} "
        f"(checked through the API{' and in the SQLite file' if result['db_checked'] else ''})"
    )
    for r in result["operations"]:
        for failure in r.get("failures", []):
            print(f"  {r['operation']} failed: {json.dumps(failure)}")
    for item in result["lost"][:20]:
        print(f"  lost: {json.dumps(item)[:200]}")
    log = result.get("log")
    if log:
        print(
            f"server log: {log['database_locked']} 'database is locked', "
            f"{log['tracebacks']} tracebacks, {log['server_5xx']} 5xx other than 503 "
            f"{log['server_5xx_by_route'] or ''}, {log['server_503']} 503 (back-pressure); "
            f"statuses {log['status_counts']}"
        )
    else:
        print("server log: not scanned (no --log)")
    rss = result.get("rss")
    if rss:
        print(
            f"server RSS: start {rss['start_mb']:.0f} MB, peak {rss['peak_mb']:.0f} MB, end "
            f"{rss['end_mb']:.0f} MB; peak of the load's middle third "
            f"{rss['middle_third_peak_mb']:.0f} MB, last third {rss['last_third_peak_mb']:.0f} MB: "
            f"{'plateaued' if rss['plateaued'] else 'STILL GROWING'}"
        )
    before, after = result["loadavg_1_5_15min"].values()
    print(f"machine load average (1 min) before {before[0]:.2f}, after {after[0]:.2f}")
    print(
        f"throughput: {result['requests']} requests in {result['wall_s']} s "
        f"({result['requests'] / max(result['wall_s'], 1e-9):.1f}/s); "
        f"{result['cancelled_clients']} clients cancelled at the hard stop"
    )
    peak = f"{rss['peak_mb']:.0f} MB" if rss else "not sampled"
    print(
        f"soak: {result['requests']} requests, {result['errors']} errors, {result['busy']} busy "
        f"(503, retried), {len(result['lost'])} lost, peak RSS {peak}"
    )


def find_listener(url: str) -> int | None:
    """The pid listening on URL's port on this machine, when it can be seen."""
    port = httpx.URL(url).port
    with contextlib.suppress(psutil.Error, PermissionError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    return None


async def soak(url: str, args, data_dir: Path | None, pid: int | None, log_path, scratch):
    wav = spoken_wav(scratch, url)
    await warm_up(url, wav, args.model)
    sampler = RssSampler(pid).start() if pid else None
    # The machine's load around the run: other work on it slows the server down.
    loadavg = [os.getloadavg()]
    try:
        run, timing = await load(url, args, wav)
        loadavg.append(os.getloadavg())
        lost = await verify_api(url, run)
        db_path = args.db or (data_dir / "omnicoach.db" if data_dir else None)
        if db_path is not None:
            lost += verify_database(Path(db_path), run, data_dir / "files" if data_dir else None)
    finally:
        if sampler:
            sampler.stop()
    operations = op_rows(run)
    errors = sum(r["errors"] for r in operations)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "command": " ".join(["benchmarks/soak.py", *args.argv]),
        "url": url,
        "started_server": args.url is None,
        "clients": args.clients,
        "seconds": args.seconds,
        "mix": MIX,
        "wav_seconds": round(wav_seconds(wav), 2),
        "wall_s": timing["wall_s"],
        "loadavg_1_5_15min": {"before": loadavg[0], "after": loadavg[-1]},
        "cancelled_clients": timing["cancelled_clients"],
        "requests": run.requests,
        "errors": errors,
        "busy": sum(r["busy_503"] for r in operations),
        "operations": operations,
        "writes": {
            "conversations": len(run.conversations),
            "answers": len(run.answers),
            "files": len(run.files),
            "files_deleted": run.deleted,
        },
        "db_checked": db_path is not None,
        "lost": lost,
        "rss": sampler.summary(timing["load_start"], timing["load_end"]) if sampler else None,
        "log": scan_log(Path(log_path)) if log_path else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument(
        "--grace", type=float, default=60, help="seconds for operations under way at the end"
    )
    parser.add_argument(
        "--think", type=float, default=0.5, help="most seconds between a client's requests"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=TUNED_CHAT_MODEL, help="chat model")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "soak.json")
    parser.add_argument("--url", default=None, help="a running server (default: start one)")
    parser.add_argument("--db", type=Path, default=None, help="its SQLite file, to check directly")
    parser.add_argument("--pid", type=int, default=None, help="its process, for RSS")
    parser.add_argument("--log", type=Path, default=None, help="its log, to scan")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.clients < 1 or args.seconds <= 0 or args.grace < 0:
        parser.error("--clients must be ≥ 1, --seconds > 0, --grace ≥ 0")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the soak; print the report, write it to --out as JSON and return it."""
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # A hard deadline for the whole asyncio part: load, grace, then the checks.
    hard = args.seconds + args.grace + 300

    def stop_on_sigterm(*_):
        raise KeyboardInterrupt  # the same path as Ctrl-C: clients cancelled, server stopped

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="omnicoach-soak-") as scratch:
            scratch = Path(scratch)
            if args.url is not None:
                pid = args.pid or find_listener(args.url)
                coroutine = soak(args.url, args, None, pid, args.log, scratch)
                result = asyncio.run(asyncio.wait_for(coroutine, hard))
            else:
                from tests.server_process import ServerProcess

                data_dir = scratch / "data"
                log_path = args.out.with_name(args.out.stem + "-server.log")
                with ServerProcess(log_path, data_dir=data_dir) as server:
                    coroutine = soak(
                        server.url, args, data_dir, server.process.pid, log_path, scratch
                    )
                    result = asyncio.run(asyncio.wait_for(coroutine, hard))
                # Scanned again once stopped: the shutdown's lines count too.
                result["log"] = scan_log(log_path)
                result["server_log"] = str(log_path)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_report(result)
    print(f"(written to {args.out})")
    return result


def failed(result: dict) -> bool:
    log = result.get("log") or {}
    return bool(
        result["errors"]
        or result["lost"]
        or log.get("database_locked")
        or log.get("server_5xx")
        or log.get("tracebacks")
    )


if __name__ == "__main__":
    sys.exit(1 if failed(main()) else 0)
