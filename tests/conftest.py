"""Shared fixtures: the real bundled models, each loaded once per test session."""

import os
import sys
from pathlib import Path

import psutil
import pytest
import torch

from omnicoach.config import load_settings
from omnicoach.models import ModelRegistry
from omnicoach.models.registry import BASE_CHAT_MODEL
from omnicoach.process_owner import this_host
from omnicoach.threads import apply_threads

REPO = Path(__file__).resolve().parents[1]


def subprocess_env(**settings) -> dict[str, str]:
    """The environment for an omnicoach child process: none of the developer's OMNICOACH_*
    variables, the data dir ./var unless `data_dir` is given, the model cache of ./var
    (built once per machine) always, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICOACH_")}
    env["OMNICOACH_DATA_DIR"] = str(REPO / "var")
    env["OMNICOACH_MODEL_CACHE"] = str(REPO / "var" / "models")
    env.update({f"OMNICOACH_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def dead_process() -> str:
    """An owner (process_owner.this_process's form) that was a process of this host and has
    exited and been reaped."""
    child = psutil.Popen([sys.executable, "-c", "pass"])
    started = child.create_time()
    child.wait()
    return f"{this_host()}:{child.pid}:{started:.2f}"


@pytest.fixture(scope="session")
def settings():
    # The repository's ./var is shared with `make run`, so the dequantised model cache is
    # built once per machine; tests that need a fresh data dir make their own.
    s = load_settings(data_dir=REPO / "var")
    apply_threads(s.threads)
    return s


@pytest.fixture(scope="session")
def registry(settings):
    return ModelRegistry(settings)


@pytest.fixture(scope="session")
def llm(registry):
    """The base chat model (the default chat model is its fine-tune: see tuned_llm)."""
    return registry.chat(BASE_CHAT_MODEL)


@pytest.fixture(scope="session")
def tuned_llm(registry):
    return registry.chat()


@pytest.fixture(scope="session")
def embedder(registry):
    return registry.embedder()


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch):
    """Tests build their own settings; a developer's OMNICOACH_* variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("OMNICOACH_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def speech_to_text(registry):
    return registry.speech_to_text()


@pytest.fixture(scope="session")
def text_to_speech(registry):
    return registry.text_to_speech()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory):
    """Where the session's generated speech (espeak-ng, Piper) is written."""
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def tiny_model(llm, tmp_path_factory):
    """A randomly initialised 2-layer, width-64 Llama with SmolLM2's tokenizer, saved as a
    Hugging Face directory: a fast stand-in for the chat model in training tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(
        vocab_size=len(llm.tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    llm.tokenizer.save_pretrained(directory)
    return directory


# --- other engines: a real Redis and PostgreSQL (tests/engines.py) ------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from tests.engines import RedisServer

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_cluster():
    from tests.engines import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A new empty database on each engine: a SQLite file, or a database of the session's
    PostgreSQL cluster (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'omnicoach.db'}"
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield url
