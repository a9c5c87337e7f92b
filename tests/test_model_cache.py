"""The GGUF is dequantised once and cached as safetensors; the cache reloads to the same model."""

import logging

import pytest
import torch

from omnicoach.config import load_settings
from omnicoach.models import ModelRegistry
from omnicoach.models.registry import BASE_CHAT_MODEL

pytestmark = pytest.mark.slow


def first_logits(llm):
    ids = torch.tensor(
        [llm.build_prompt([{"role": "user", "content": "Plank or push-up?"}], 8).token_ids]
    )
    with torch.inference_mode():
        return llm.model(input_ids=ids).logits[0, -1]


def load_fresh(data_dir):
    return ModelRegistry(load_settings(data_dir=data_dir)).chat(BASE_CHAT_MODEL)


def test_cache_is_built_once_reused_and_rebuilt_when_corrupt(tmp_path, caplog, llm):
    caplog.set_level(logging.INFO, logger="omnicoach")
    built = load_fresh(tmp_path)
    assert "dequantising" in caplog.text
    [cache] = list((tmp_path / "models").iterdir())  # one directory, no leftover temp dirs
    assert (cache / "model.safetensors").is_file() and (cache / "tokenizer.json").is_file()

    caplog.clear()
    reloaded = load_fresh(tmp_path)
    assert "dequantising" not in caplog.text
    assert torch.equal(first_logits(built), first_logits(reloaded))
    assert torch.equal(first_logits(reloaded), first_logits(llm))

    # A truncated cache file (say, a disk that filled up) is rebuilt, not fatal.
    weights = cache / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    caplog.clear()
    rebuilt = load_fresh(tmp_path)
    assert "rebuilding" in caplog.text
    assert torch.equal(first_logits(rebuilt), first_logits(llm))
