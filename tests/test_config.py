from pathlib import Path

import pytest

from omnicoach.config import DEFAULT_SYSTEM_PROMPT, load_settings
from omnicoach.errors import ConfigError


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no omnicoach.toml here
    s = load_settings()
    assert s.data_dir == Path("var")
    assert s.model_cache_dir == Path("var/models")
    assert s.chat_model == "smollm2-135m-yoga"  # the fine-tune
    assert s.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert s.models == []


def test_environment_overrides_toml(monkeypatch, tmp_path):
    config = tmp_path / "my.toml"
    config.write_text(
        'data_dir = "/srv/omnicoach"\nthreads = 1\n'
        '[[models]]\nname = "phi-2"\nrole = "chat"\npath = "/models/phi-2"\nlicence = "MIT"\n'
    )
    monkeypatch.setenv("OMNICOACH_CONFIG", str(config))
    monkeypatch.setenv("OMNICOACH_THREADS", "2")
    s = load_settings()
    assert s.data_dir == Path("/srv/omnicoach")
    assert s.threads == 2  # the environment wins over the file
    assert s.models[0].name == "phi-2" and s.models[0].licence == "MIT"


def test_toml_in_working_directory(monkeypatch, tmp_path):
    (tmp_path / "omnicoach.toml").write_text('chat_model = "phi-2"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings().chat_model == "phi-2"


def test_models_as_json_in_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNICOACH_MODELS", '[{"name": "mine", "role": "embedding", "path": "/m"}]')
    assert load_settings().models[0].role == "embedding"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMNICOACH_THREADS": "-1"}, "threads"),
        ({"OMNICOACH_THREADS": "many"}, "threads"),
        ({"OMNICOACH_MODELS": '[{"name": "x", "role": "painter", "path": "/m"}]'}, "role"),
        (
            {
                "OMNICOACH_MODELS": '[{"name": "x", "role": "chat", "path": "/a"},'
                '{"name": "x", "role": "chat", "path": "/b"}]'
            },
            "repeated: x",
        ),
    ],
)
def test_invalid_settings_are_one_clear_error(monkeypatch, tmp_path, env, message):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_missing_named_config_file(monkeypatch, tmp_path):
    monkeypatch.setenv("OMNICOACH_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_broken_toml(monkeypatch, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("threads = = 2\n")
    monkeypatch.setenv("OMNICOACH_CONFIG", str(config))
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings()
