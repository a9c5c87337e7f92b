"""Fuzzing the HTTP API with schemathesis: requests generated from the app's own OpenAPI schema
and sent to a real server on 127.0.0.1 with the bundled models, so they reach the real handlers.

Every answer is checked: no 5xx; the status code, content type and JSON body are ones the
schema declares for that status; and every 4xx carries OpenAI's error body
{"error": {"message", "type", "param", "code"}}.

Bounded for CI: MAX_EXAMPLES generated requests per operation, plus schemathesis's coverage
cases (each field's boundary and wrong-type values); derandomized, so every run sends the same
requests; each request has a deadline (REQUEST_TIMEOUT_S). Numbers that set how long a
generation runs (max_tokens, sampler steps) are capped, everything else is sent as generated.
Nothing is excluded: jobs created here stay queued (no worker runs), streams end on their own.
"""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from omnicoach.config import load_settings
from omnicoach.server.app import create_app
from tests.server_process import ServerProcess

MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 30  # the deadline of one request; a generation here takes seconds
# Generated values above these would make one request run for minutes (every token and every
# sampler step costs CPU time); smaller ones are sent as generated.
CAPS = {"max_tokens": 8, "max_completion_tokens": 8, "steps": 2}
# What a real client sends: half of the generated bodies get these fields in place of their
# random values, so that they reach the models instead of stopping at 404 model_not_found or
# at validation (random chat messages are almost never a valid conversation); the other half
# test those answers.
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=200)}
)
QUESTION = st.fixed_dictionaries({"role": st.just("user"), "content": st.text(min_size=1)})
REAL_VALUES = {
    "POST /v1/chat/completions": {
        "model": st.just("smollm2-135m-yoga"),
        "messages": st.tuples(st.lists(MESSAGE, max_size=2), QUESTION).map(
            lambda pair: [*pair[0], pair[1]]
        ),
    },
    "POST /v1/embeddings": {"model": st.just("all-minilm-l6-v2")},
    "POST /v1/audio/speech": {
        "model": st.sampled_from(["tts-1", "piper-joe-medium"]),
        "voice": st.just("alloy"),
        "input": st.text(min_size=1, max_size=200),
    },
}

# The app's schema, built without starting it (no models): one test per operation. The test
# below checks that the running server serves this same schema.
SCHEMA = create_app(load_settings()).openapi()
schema = schemathesis.openapi.from_dict(SCHEMA)


@schema.hook
def flatmap_body(context, body):
    real = REAL_VALUES.get(context.operation.label)
    if not real or not isinstance(body, dict):
        return st.just(body)
    return st.one_of(st.just(body), st.fixed_dictionaries(real).map(lambda values: body | values))


def openai_error_body(ctx, response, case) -> None:
    """A custom check: every 4xx has OpenAI's error body."""
    if not 400 <= response.status_code < 500:
        return
    try:
        error = response.json()["error"]
    except Exception as exc:
        raise AssertionError(f"a {response.status_code} without OpenAI's error body") from exc
    missing = {"message", "type", "param", "code"} - set(error)
    assert not missing, f"the error body lacks {sorted(missing)}: {error}"
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str), error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    openai_error_body,
]


def capped(body):
    """BODY with the numbers of CAPS no larger than their caps (a copy; others as they were)."""
    if not isinstance(body, dict):
        return body
    too_large = {
        field: cap
        for field, cap in CAPS.items()
        if type(body.get(field)) in (int, float) and body[field] > cap
    }
    return {**body, **too_large}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz")
    # A short default answer (a request without max_tokens) and few sampler steps by default.
    with ServerProcess(
        data / "server.log", data_dir=data, default_max_tokens=8, image_steps=2
    ) as server:
        yield server


def test_the_schema_is_valid_openapi():
    schema.validate()  # against OpenAPI 3.1's own JSON schema: raises on an invalid document


@pytest.mark.slow
def test_the_server_serves_the_fuzzed_schema(server):
    assert httpx.get(f"{server.url}/openapi.json", timeout=30).json() == SCHEMA


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # a request's own deadline is REQUEST_TIMEOUT_S
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzed_requests_get_no_server_error_and_match_the_schema(case, server):
    case.body = capped(case.body)
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)


# --- what fuzzing found: each reproduction, kept as a plain test ---------------------------


def chat(server, **fields) -> httpx.Response:
    body = {"model": "smollm2-135m-yoga", "messages": [{"role": "user", "content": "Hi"}]}
    body |= {"max_tokens": 4} | fields
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT_S)


@pytest.mark.slow
def test_a_tiny_temperature_or_top_p_decodes_greedily(server):
    # Were: no answer at all (the request hung and its place in the runner was never given
    # back): 5e-324 made the float32 logits inf (temperature) or the nucleus empty (top_p).
    greedy = chat(server, temperature=0).json()["choices"][0]["message"]["content"]
    for tiny in ({"temperature": 5e-324}, {"top_p": 5e-324}):
        answer = chat(server, **tiny)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == greedy


@pytest.mark.slow
@pytest.mark.parametrize(
    "fields",
    [{"seed": 2**64}, {"seed": -(2**63) - 1}, {"repetition_penalty": 5e-324}],
)
def test_sampling_values_the_engine_cannot_use_are_422_naming_the_field(server, fields):
    answer = chat(server, **fields)  # were 500s (torch: seed overflow; inf logits)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == next(iter(fields))


@pytest.mark.slow
def test_a_drawing_seed_beyond_64_bits_is_422_naming_it(server):
    body = {"prompt": "a person doing tree pose", "steps": 1, "seed": 2**64 - 1, "n": 2}
    answer = httpx.post(f"{server.url}/generate", json=body, timeout=REQUEST_TIMEOUT_S)
    assert answer.status_code == 422, answer.text  # was a 500: seed + 1 overflowed torch's
    assert answer.json()["error"]["param"] == "seed"
