"""The `omnicoach` command as a user runs it: a real process, the real bundled model."""

import subprocess
import sys

import pytest

from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def omnicoach(*args, stdin=None, env=None):
    environment = {**subprocess_env(), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "omnicoach.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=300,
    )


def test_one_question_streams_the_models_own_answer_without_grounding(tuned_llm):
    result = omnicoach(
        "chat",
        "How do I do downward dog safely?",
        "--no-rag",
        "--temperature",
        "0",
        "--max-tokens",
        "20",
    )
    assert result.returncode == 0, result.stderr
    # Same words as the default (fine-tuned) model's own greedy answer with the same settings.
    from omnicoach.models.llm import SamplingParams

    expected = tuned_llm.complete(
        [{"role": "user", "content": "How do I do downward dog safely?"}],
        SamplingParams(temperature=0, max_tokens=20),
    ).text
    assert result.stdout.strip() == expected.strip()


def test_interactive_session_keeps_history_and_resets():
    script = "My name is Priya.\nWhat is my name?\n/reset\nHello\n/exit\n"
    result = omnicoach("chat", "--temperature", "0", "--max-tokens", "12", stdin=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("coach> ") == 3  # three questions, three answers; /exit ends it
    assert "(new chat)" in result.stderr


def test_models_lists_every_model():
    result = omnicoach("models")
    assert result.returncode == 0, result.stderr
    for expected in ("smollm2-135m", "all-minilm-l6", "Apache-2.0", "chat", "embedding", "MB"):
        assert expected in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["chat", "hi", "--model", "gpt-9"], {}, "error: unknown chat model 'gpt-9'"),
        (
            ["chat", "hi", "--model", "mine"],
            {"OMNICOACH_MODELS": '[{"name": "mine", "role": "chat", "path": "/nowhere/m.gguf"}]'},
            "error: model path /nowhere/m.gguf does not exist",
        ),
        (["models"], {"OMNICOACH_THREADS": "lots"}, "error: invalid settings: threads"),
        (["chat", "hi", "--temperature", "5"], {}, "error: temperature must be between 0 and 2"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(args, env, message):
    result = omnicoach(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback():
    result = omnicoach("--debug", "chat", "hi", "--model", "gpt-9")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "UnknownModelError" in result.stderr


def test_corrupt_model_file(tmp_path):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"not a gguf at all")
    env = {"OMNICOACH_MODELS": f'[{{"name": "mine", "role": "chat", "path": "{corrupt}"}}]'}
    result = omnicoach("chat", "hi", "--model", "mine", env=env)
    assert result.returncode == 2
    assert "error: cannot load model from corrupt.gguf" in result.stderr
