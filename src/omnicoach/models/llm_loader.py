"""Load a causal LM and its tokenizer from a GGUF file or a local Hugging Face directory.

transformers dequantises a GGUF to a normal fp32 torch model, which takes ~15-30 s on a
2-core machine. The result is saved once as safetensors under the model cache directory, so
every later start loads in about a second. The cache is written to a temporary directory
and renamed into place, so an interrupted conversion never leaves a half-written cache.
"""

import contextlib
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from omnicoach.errors import ModelFileError

log = logging.getLogger(__name__)


def gguf_cache_dir(gguf_file: Path, cache_root: Path) -> Path:
    """A directory name that changes whenever the GGUF file is replaced."""
    stat = gguf_file.stat()
    key = f"{gguf_file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return cache_root / f"{gguf_file.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def load_tokenizer(source: Path, cache_root: Path) -> transformers.PreTrainedTokenizerBase:
    """The tokenizer of a local model (a GGUF file or a Hugging Face directory) without its
    weights: from the GGUF's converted cache when there is one, which loads in well under a
    second, else from the file itself."""
    source = Path(source)
    try:
        if source.is_file():
            cache = gguf_cache_dir(source, Path(cache_root))
            if (cache / "tokenizer_config.json").is_file():
                return AutoTokenizer.from_pretrained(cache)
            return AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        return AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # a corrupt file fails in many ways deep inside the parsers
        reason = _first_line(exc)
        raise ModelFileError(f"cannot load the tokenizer from {source}: {reason}") from exc


def load_causal_lm(
    source: Path, cache_root: Path
) -> tuple[transformers.PreTrainedTokenizerBase, PreTrainedModel]:
    """Return (tokenizer, model) in eval mode, fp32, on the CPU."""
    source = Path(source)
    if not source.exists():
        raise ModelFileError(f"model path {source} does not exist")
    if source.is_file():
        if source.suffix != ".gguf":
            raise ModelFileError(
                f"{source} is a file but not a .gguf; give a GGUF file or a Hugging Face directory"
            )
        return _load_gguf_cached(source, cache_root)
    if not (source / "config.json").is_file():
        raise ModelFileError(f"{source} is not a Hugging Face model directory (no config.json)")
    return _from_pretrained(source)


def _from_pretrained(directory: Path, **kwargs):
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, **kwargs)
    except Exception as exc:  # a corrupt file fails in many ways deep inside the parsers
        what = kwargs.get("gguf_file") or directory
        raise ModelFileError(f"cannot load model from {what}: {_first_line(exc)}") from exc
    model.eval()
    return tokenizer, model


def _load_gguf_cached(gguf_file: Path, cache_root: Path):
    cache = gguf_cache_dir(gguf_file, cache_root)
    if (cache / "config.json").is_file():
        try:
            with _quiet_progress():  # a ~1 s load needs no progress bar
                return _from_pretrained(cache)
        except ModelFileError as exc:
            # The cache is derived data: rebuild it rather than make the user delete it.
            log.warning(
                "model cache %s is unreadable (%s); rebuilding it from %s", cache, exc, gguf_file
            )
            shutil.rmtree(cache, ignore_errors=True)

    log.info("dequantising %s (first start only; cached in %s)", gguf_file.name, cache)
    tokenizer, model = _from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    # save_pretrained refuses a model that still carries its GGUF quantisation config.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=cache_root))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(cache)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # Serving still works from the in-memory model; only the next start is slower.
        log.warning("could not write the model cache %s: %s", cache, exc)
    return tokenizer, model


@contextlib.contextmanager
def _quiet_progress():
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
