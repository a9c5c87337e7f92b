import pytest

from omnicoach.config import load_settings
from omnicoach.errors import ModelFileError, UnknownModelError
from omnicoach.models import ModelRegistry
from omnicoach.models.registry import size_on_disk


def make_registry(tmp_path, models=()):
    return ModelRegistry(load_settings(data_dir=tmp_path / "var", models=list(models)))


def test_bundled_models_are_listed_with_licence_and_size(tmp_path):
    registry = make_registry(tmp_path)
    specs = {s.name: s for s in registry.specs()}
    assert specs["smollm2-135m-instruct"].role == "chat"
    assert specs["all-minilm-l6-v2"].role == "embedding"
    assert specs["whisper-tiny.en"].role == "speech-to-text"
    assert specs["piper-joe-medium"].role == "text-to-speech"
    licences = {name: spec.licence for name, spec in specs.items()}
    assert licences["smollm2-135m-instruct"] == licences["all-minilm-l6-v2"] == "Apache-2.0"
    assert licences["whisper-tiny.en"] == "MIT"
    assert "GPL-3.0+" in licences["piper-joe-medium"]  # the engine's, said up front
    for spec in specs.values():
        assert size_on_disk(spec.locate()) > 10_000_000  # real weights, not pointers
        assert not registry.is_loaded(spec.name)


def test_unknown_model_names_the_known_ones(tmp_path):
    registry = make_registry(tmp_path)
    with pytest.raises(UnknownModelError, match="'gpt-9'.*smollm2-135m-instruct"):
        registry.chat("gpt-9")
    # A real model asked for in the wrong role is unknown in that role.
    with pytest.raises(UnknownModelError, match="unknown chat model 'all-minilm-l6-v2'"):
        registry.chat("all-minilm-l6-v2")


def test_override_with_missing_path(tmp_path):
    registry = make_registry(
        tmp_path, [{"name": "mine", "role": "chat", "path": tmp_path / "nope.gguf"}]
    )
    assert "local GGUF file" in registry.spec("mine").source
    with pytest.raises(ModelFileError, match="does not exist"):
        registry.chat("mine")
    assert not registry.is_loaded("mine")


def test_corrupt_gguf_is_a_model_file_error_and_leaves_no_cache(tmp_path):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 64)  # right magic, garbage after it
    registry = make_registry(tmp_path, [{"name": "mine", "role": "chat", "path": corrupt}])
    with pytest.raises(ModelFileError, match="cannot load model from corrupt.gguf"):
        registry.chat("mine")
    cache = tmp_path / "var" / "models"
    assert not cache.exists() or not any(cache.iterdir())


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    registry = make_registry(
        tmp_path,
        [
            {"name": "chatdir", "role": "chat", "path": tmp_path / "empty"},
            {"name": "embdir", "role": "embedding", "path": tmp_path / "empty"},
        ],
    )
    with pytest.raises(ModelFileError, match="no config.json"):
        registry.chat("chatdir")
    with pytest.raises(ModelFileError, match="not a Hugging Face"):
        registry.embedder("embdir")


def test_non_gguf_file(tmp_path):
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\0" * 16)
    registry = make_registry(tmp_path, [{"name": "mine", "role": "chat", "path": weights}])
    with pytest.raises(ModelFileError, match="not a .gguf"):
        registry.chat("mine")


def test_loaded_state_and_single_instance(registry, llm):
    assert registry.is_loaded("smollm2-135m-instruct")
    assert registry.chat("smollm2-135m-instruct") is llm
