"""Chat delegated to another OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, another
omnicoach), named by the operator's ``llm_url`` setting.

RemoteChatLLM offers what the server uses of ChatLLM (name, render, count_tokens, build_prompt,
stream, complete, engine) without local weights: only a tokenizer, to budget prompts. The
prompt is built here as for a local model — validation, the default system prompt, the
context-length rule (``context_length`` counts the remote's window) — and the resulting
messages go to the remote's /chat/completions, always streamed (a non-streamed answer is the
joined stream, as locally).

Token counts: prompt budgets (the context-length rule, the RAG sources' budget) are counted
with the tokenizer of the local ``chat_model`` (SmolLM2's by default): exact when the remote
runs a model with that tokenizer, an approximation otherwise (set ``context_length`` with some
margin then). The usage reported for an answer is the remote's own count when it sends one
(``stream_options.include_usage``), else the local count of the prompt and of the answer text.

Errors: an unreachable remote is RemoteLLMError with status 503, a broken or failing one 502,
a request the remote refuses keeps the remote's 4xx and message (400, 413, 422, 429), except
refusals that mean omnicoach's configuration is wrong (401, 403, 404: the key or the model
name), which are 502. The connection goes only to the configured URL, never to one from a
request, so the link rules for user-supplied addresses (omnicoach.links) do not apply.
"""

import json
import logging
from collections.abc import Iterator, Sequence

import httpx

from omnicoach.errors import InvalidRequestError, ModelFileError, OmnicoachError
from omnicoach.models.llm import ChatLLM, Generation, ImageInput, Prompt
from omnicoach.models.sampling import SamplingParams

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
# Longest wait for the next chunk of a stream: a busy remote may take long over a long prompt.
READ_TIMEOUT_S = 300
# Refusals that are the request's own fault, passed through with the remote's status.
PASSED_THROUGH = {400, 413, 422, 429}


class RemoteLLMError(OmnicoachError):
    """The remote LLM is unreachable, failed, or refused a request; STATUS is the HTTP status
    the API answers with (server/errors.py)."""

    def __init__(
        self,
        message: str,
        status: int,
        code: str = "remote_llm_error",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers
        self.type = "invalid_request_error" if status < 500 else "server_error"


class RemoteChatLLM(ChatLLM):
    """A chat model served by the OpenAI-compatible server at URL (e.g.
    http://127.0.0.1:8080/v1). No weights here: ``engine`` is None and ``model`` refuses."""

    def __init__(
        self,
        url: str,
        tokenizer,
        model_name: str = "",
        api_key: str = "",
        context_length: int = 2048,
        default_system_prompt: str = "",
    ):
        # ChatLLM's __init__ reads the weights' config; a remote model has only its tokenizer,
        # which is all the inherited prompt methods (render, build_prompt) use.
        self.url = url.rstrip("/")
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.default_system_prompt = default_system_prompt
        self.engine = None
        if not getattr(tokenizer, "chat_template", None):
            raise ModelFileError("the tokenizer used to count prompt tokens has no chat template")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            # Generations run on many threads at once (server/turn_runner.py).
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        try:
            self.name = model_name or self._first_remote_model()
        except BaseException:
            self.client.close()
            raise

    @property
    def model(self):
        raise ModelFileError(
            f"chat model {self.name} is served by the remote LLM at {self.url}: its weights are "
            "not here (perplexity and fine-tuning need a local chat model)"
        )

    def close(self) -> None:
        self.client.close()

    def _first_remote_model(self) -> str:
        """The remote's first chat model in /models (its first model where roles are not
        listed, as vLLM, llama.cpp and Ollama do not list them)."""
        try:
            response = self.client.get(f"{self.url}/models", timeout=CONNECT_TIMEOUT_S)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        if response.status_code != 200:
            raise refused(self.url, response)
        try:
            models = response.json()["data"]
            chat = [m for m in models if m.get("role", "chat") == "chat"]
            return str(chat[0]["id"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise RemoteLLMError(
                f"the remote LLM at {self.url} lists no model in /models; set llm_model",
                502,
            ) from None

    # --- generation ---------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[dict],
        params: SamplingParams | None = None,
        image: ImageInput | None = None,
    ) -> "RemoteGeneration":
        """Validate and build the prompt here (errors are 400s before anything is sent);
        the remote is contacted by RemoteGeneration.connect, or on the first read."""
        if image is not None:  # the server sends pictures to the local vision model instead
            raise InvalidRequestError(
                f"chat model {self.name} runs on a remote server and takes no images"
            )
        params = params or SamplingParams()
        params.validate()
        prompt = self.build_prompt(messages, params.max_tokens)
        return RemoteGeneration(self, prompt, self._request_body(prompt, params))

    def _request_body(self, prompt: Prompt, params: SamplingParams) -> dict:
        """The OpenAI request for PROMPT. Standard fields always; the extensions (vLLM's names,
        also read by omnicoach; llama.cpp and Ollama ignore them) only when they change
        something, so the remote's defaults otherwise apply."""
        body = {
            "model": self.name,
            "messages": prompt.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if params.repetition_penalty != 1:
            body["repetition_penalty"] = params.repetition_penalty
        if params.ignore_eos:
            body["ignore_eos"] = True
        return body


class RemoteGeneration(Generation):
    """An answer streamed from the remote: text deltas as its chunks arrive. Closing it (or
    cancel, at the next chunk) closes the connection, which stops the remote's generation."""

    def __init__(self, llm: RemoteChatLLM, prompt: Prompt, body: dict):
        self.llm, self.body = llm, body
        self.response: httpx.Response | None = None
        self.usage: dict | None = None  # the remote's own counts, when it sends them
        super().__init__(prompt, lambda generation: generation._read())

    @property
    def prompt_tokens(self) -> int:
        if self.usage and isinstance(self.usage.get("prompt_tokens"), int):
            return self.usage["prompt_tokens"]
        return len(self.prompt.token_ids)  # the local count (module docstring)

    def connect(self) -> None:
        """Send the request and wait for the remote's answer to start; RemoteLLMError when it
        is unreachable or refuses. The server calls this before it answers its own client, so
        such failures get a proper status instead of an error inside a started stream."""
        if self.response is not None:
            return
        url = f"{self.llm.url}/chat/completions"
        try:
            request = self.llm.client.build_request("POST", url, json=self.body)
            response = self.llm.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise unreachable(self.llm.url, exc) from exc
        if response.status_code != 200:
            try:
                response.read()
            except httpx.TransportError:
                pass
            finally:
                response.close()
            raise refused(self.llm.url, response)
        kind = response.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):  # e.g. a proxy's page, or no streaming
            response.close()
            raise RemoteLLMError(
                f"the remote LLM at {self.llm.url} answered a streamed request with {kind!r}, "
                "not an event stream",
                502,
            )
        self.response = response

    def close(self) -> None:
        super().close()
        self._disconnect()  # also when the deltas were never read

    def _disconnect(self) -> None:
        if self.response is not None:
            self.response.close()

    def _read(self) -> Iterator[str]:
        self.connect()
        parts: list[str] = []
        try:
            for data in _sse_data(self.response.iter_lines()):
                if self.cancel_requested.is_set():
                    self.finish_reason = "cancelled"
                    return
                chunk = self._parse(data)
                if chunk.get("usage"):
                    self.usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        self.completion_tokens += 1  # until the remote's usage says better
                        parts.append(delta)
                        yield delta  # a consumer that stops reading closes us right here
                    if choice.get("finish_reason"):
                        self.finish_reason = choice["finish_reason"]
        except httpx.TimeoutException as exc:
            raise RemoteLLMError(
                f"the remote LLM at {self.llm.url} sent nothing for {READ_TIMEOUT_S} s "
                f"mid-answer ({type(exc).__name__})",
                502,
                code="remote_llm_timeout",
            ) from exc
        except httpx.TransportError as exc:
            raise RemoteLLMError(
                f"the remote LLM at {self.llm.url} broke off its answer: {_reason(exc)}",
                502,
                code="remote_llm_unavailable",
            ) from exc
        finally:
            self._disconnect()
        self.finish_reason = self.finish_reason or "stop"
        if self.usage and isinstance(self.usage.get("completion_tokens"), int):
            self.completion_tokens = self.usage["completion_tokens"]
        else:  # the remote sent no usage: count the answer as the prompt is counted
            self.completion_tokens = self.llm.count_tokens("".join(parts))

    def _parse(self, data: str) -> dict:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise RemoteLLMError(
                f"the remote LLM at {self.llm.url} sent a chunk that is not JSON: {data[:200]!r}",
                502,
            ) from None
        if not isinstance(chunk, dict):
            raise RemoteLLMError(f"the remote LLM at {self.llm.url} sent {data[:200]!r}", 502)
        if "error" in chunk:  # an error inside the stream, as OpenAI, vLLM and omnicoach send
            raise RemoteLLMError(
                f"the remote LLM at {self.llm.url} failed mid-answer: {_message(chunk)}", 502
            )
        return chunk


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event, up to [DONE]."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield data


def unreachable(url: str, exc: Exception) -> RemoteLLMError:
    return RemoteLLMError(
        f"the remote LLM at {url} is unreachable ({_reason(exc)}); check that it is running "
        "and that llm_url is right",
        503,
        code="remote_llm_unavailable",
    )


def refused(url: str, response: httpx.Response) -> RemoteLLMError:
    """The remote's error answer as ours: its message, and its status where the request was at
    fault; 502 where omnicoach's configuration or the remote itself is."""
    status, message = response.status_code, _message(_json(response))
    said = f"the remote LLM at {url} answered {status}: {message}"
    if status in PASSED_THROUGH:
        retry = response.headers.get("Retry-After")
        return RemoteLLMError(
            said,
            status,
            code="remote_llm_refused",
            headers={"Retry-After": retry} if retry else None,
        )
    if status in (401, 403):
        said += " (check llm_api_key)"
    elif status == 404:
        said += " (check llm_url, which should end in /v1, and llm_model)"
    return RemoteLLMError(said, 502)


def _json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase


def _message(body) -> str:
    """The message of an error body: OpenAI's {"error": {"message"}}, Ollama's {"error": str},
    or the text."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or json.dumps(error)[:300]
    return str(error)


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
