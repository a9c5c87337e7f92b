"""Whisper between its two homes: CTranslate2 (what faster-whisper serves) and transformers'
``WhisperForConditionalGeneration`` (what can be trained).

The bundled tiny.en ships only as a CTranslate2 ``model.bin`` (float16). ``to_transformers``
reads it into a transformers model: the file is a flat list of named arrays, and the names are
those CTranslate2's own converter gives transformers' modules, so the mapping is that
converter's (``ctranslate2/converters/transformers.py``, ``WhisperLoader``) run backwards —
including splitting the fused query/key/value projections it writes. ``to_ctranslate2`` goes the
other way with that converter itself.

``fine_tuned_dir`` is how a fine-tuned recogniser is loaded: the base with the trained decoder
weights of an artifact, converted once and cached in the model cache directory, as the chat
model's GGUF is.
"""

import hashlib
import logging
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

from omnicoach.errors import ModelFileError

log = logging.getLogger(__name__)

# CTranslate2's DataType enum, in order (include/ctranslate2/types.h).
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
# The files faster-whisper reads beside model.bin, copied from the base model unchanged: a
# fine-tune changes weights, not the tokenizer or the decoding options (suppressed tokens,
# alignment heads).
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")
# What a speech artifact holds (training/asr.py): the decoder's trained layers, or a LoRA
# adapter on them.
DECODER_WEIGHTS = "decoder.safetensors"
LORA_ADAPTER = "adapter"


def read_model_bin(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of a CTranslate2 model.bin (aliases resolved to their target)."""
    try:
        with open(path, "rb") as f:

            def number(fmt: str) -> int:
                return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

            def string() -> str:
                return f.read(number("H"))[:-1].decode()

            number("I")  # binary version
            string()  # spec name
            number("I")  # spec revision
            arrays = {}
            for _ in range(number("I")):
                name = string()
                shape = [number("I") for _ in range(number("B"))]
                dtype = _DTYPES[number("B")]
                data = f.read(number("I"))
                if dtype == "bfloat16":
                    array = torch.frombuffer(bytearray(data), dtype=torch.bfloat16).float().numpy()
                else:
                    array = np.frombuffer(data, dtype=dtype).copy()
                arrays[name] = array.reshape(shape)
            for _ in range(number("I")):
                alias, target = string(), string()
                arrays[alias] = arrays[target]
    except (OSError, struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"cannot read the CTranslate2 model {path}: {exc}") from exc
    return arrays


def to_transformers(ct2_dir: Path):
    """A transformers ``WhisperForConditionalGeneration`` (float32) with the weights of the
    CTranslate2 Whisper in CT2_DIR."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    arrays = read_model_bin(Path(ct2_dir) / "model.bin")
    layers = {
        side: sum(
            1 for name in arrays if name.startswith(f"{side}/layer_") and "ffn/linear_0/w" in name
        )
        for side in ("encoder", "decoder")
    }
    vocab, width = arrays["decoder/embeddings/weight"].shape
    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=arrays["encoder/conv1/weight"].shape[1],
        d_model=width,
        encoder_layers=layers["encoder"],
        decoder_layers=layers["decoder"],
        encoder_attention_heads=int(arrays["encoder/num_heads"]),
        decoder_attention_heads=int(arrays["decoder/num_heads"]),
        encoder_ffn_dim=arrays["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=arrays["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=arrays["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=arrays["decoder/position_encodings/encodings"].shape[0],
        # The English-only models: <|endoftext|> ends and pads, <|startoftranscript|> starts.
        pad_token_id=50256,
        bos_token_id=50256,
        eos_token_id=50256,
        decoder_start_token_id=50257,
    )
    model = WhisperForConditionalGeneration(config)
    state = _state_dict(arrays, layers)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()},
        strict=False,
    )
    # Whisper's attention keys have no bias; transformers has none either.
    if unexpected or [k for k in missing if k != "proj_out.weight"]:
        raise ModelFileError(
            f"{ct2_dir} is not a Whisper model this reader knows: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.tie_weights()  # the output projection is the token embedding (an alias in model.bin)
    return model.eval()


def _state_dict(arrays: dict[str, np.ndarray], layers: dict[str, int]) -> dict[str, np.ndarray]:
    state = {
        "model.encoder.conv1.weight": arrays["encoder/conv1/weight"],
        "model.encoder.conv1.bias": arrays["encoder/conv1/bias"],
        "model.encoder.conv2.weight": arrays["encoder/conv2/weight"],
        "model.encoder.conv2.bias": arrays["encoder/conv2/bias"],
        "model.decoder.embed_tokens.weight": arrays["decoder/embeddings/weight"],
    }
    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        state[f"{hf}.embed_positions.weight"] = arrays[f"{side}/position_encodings/encodings"]
        state.update(_norm(arrays, f"{side}/layer_norm", f"{hf}.layer_norm"))
        for i in range(layers[side]):
            ct2, module = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            state.update(_self_attention(arrays, f"{ct2}/self_attention", f"{module}.self_attn"))
            state.update(
                _norm(arrays, f"{ct2}/self_attention/layer_norm", f"{module}.self_attn_layer_norm")
            )
            if side == "decoder":
                state.update(_cross_attention(arrays, f"{ct2}/attention", f"{module}.encoder_attn"))
                state.update(
                    _norm(
                        arrays, f"{ct2}/attention/layer_norm", f"{module}.encoder_attn_layer_norm"
                    )
                )
            state.update(_linear(arrays, f"{ct2}/ffn/linear_0", f"{module}.fc1"))
            state.update(_linear(arrays, f"{ct2}/ffn/linear_1", f"{module}.fc2"))
            state.update(_norm(arrays, f"{ct2}/ffn/layer_norm", f"{module}.final_layer_norm"))
    return state


def _norm(arrays, ct2: str, hf: str) -> dict:
    return {f"{hf}.weight": arrays[f"{ct2}/gamma"], f"{hf}.bias": arrays[f"{ct2}/beta"]}


def _linear(arrays, ct2: str, hf: str) -> dict:
    return {f"{hf}.weight": arrays[f"{ct2}/weight"], f"{hf}.bias": arrays[f"{ct2}/bias"]}


def _self_attention(arrays, ct2: str, hf: str) -> dict:
    # linear_0 is query, key and value stacked; the key's bias is the zeros the converter wrote.
    q, k, v = np.split(arrays[f"{ct2}/linear_0/weight"], 3)
    qb, _, vb = np.split(arrays[f"{ct2}/linear_0/bias"], 3)
    return {
        f"{hf}.q_proj.weight": q,
        f"{hf}.q_proj.bias": qb,
        f"{hf}.k_proj.weight": k,
        f"{hf}.v_proj.weight": v,
        f"{hf}.v_proj.bias": vb,
        **_linear(arrays, f"{ct2}/linear_1", f"{hf}.out_proj"),
    }


def _cross_attention(arrays, ct2: str, hf: str) -> dict:
    # linear_0 is the query (from the decoder), linear_1 key and value (from the audio).
    k, v = np.split(arrays[f"{ct2}/linear_1/weight"], 2)
    _, vb = np.split(arrays[f"{ct2}/linear_1/bias"], 2)
    return {
        **_linear(arrays, f"{ct2}/linear_0", f"{hf}.q_proj"),
        f"{hf}.k_proj.weight": k,
        f"{hf}.v_proj.weight": v,
        f"{hf}.v_proj.bias": vb,
        **_linear(arrays, f"{ct2}/linear_2", f"{hf}.out_proj"),
    }


def to_ctranslate2(model, base_dir: Path, out_dir: Path) -> None:
    """Write MODEL (a transformers Whisper) as a float16 CTranslate2 model in OUT_DIR with
    CTranslate2's own converter; BASE_DIR's tokenizer and decoding options are kept."""
    import ctranslate2
    from transformers import WhisperTokenizer

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="whisper-hf-") as hf_dir:
        model.save_pretrained(hf_dir)
        WhisperTokenizer(tokenizer_file=str(base_dir / "tokenizer.json")).save_pretrained(hf_dir)
        converter = ctranslate2.converters.TransformersConverter(hf_dir)
        converter.convert(str(out_dir), quantization="float16", force=True)
    for name in _SIDE_FILES:
        if (base_dir / name).is_file():
            shutil.copyfile(base_dir / name, out_dir / name)


def fine_tuned_dir(base_dir: Path, artifact: Path, cache_root: Path) -> Path:
    """The CTranslate2 directory of BASE_DIR's Whisper with ARTIFACT's trained weights (see
    training/asr.py), converted on first use and cached under CACHE_ROOT."""
    artifact = Path(artifact)
    trained = [artifact / DECODER_WEIGHTS, artifact / LORA_ADAPTER / "adapter_model.safetensors"]
    weights = next((path for path in trained if path.is_file()), None)
    if weights is None:
        raise ModelFileError(
            f"{artifact} holds no trained speech weights ({DECODER_WEIGHTS} or {LORA_ADAPTER}/); "
            "rebuild them with `omnicoach train asr`"
        )
    key = hashlib.sha256(weights.read_bytes() + str(Path(base_dir).resolve()).encode())
    cache = Path(cache_root) / f"whisper-{artifact.name}-{key.hexdigest()[:12]}"
    if (cache / "model.bin").is_file():
        return cache
    log.info("building the fine-tuned speech model (first use only; cached in %s)", cache)
    model = _with_trained_weights(to_transformers(base_dir), weights)
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=cache_root))
    try:
        to_ctranslate2(model, base_dir, tmp)
        tmp.rename(cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cache


def _with_trained_weights(model, weights: Path):
    if weights.name == DECODER_WEIGHTS:
        from safetensors.torch import load_file

        trained = {name: tensor.float() for name, tensor in load_file(weights).items()}
        unknown = sorted(set(trained) - set(model.state_dict()))
        if unknown:
            raise ModelFileError(f"{weights} has weights this Whisper lacks: {unknown[:3]}")
        model.load_state_dict(trained, strict=False)
        return model
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, weights.parent).merge_and_unload()
    except Exception as exc:  # peft raises many kinds for a mismatched adapter
        raise ModelFileError(f"cannot apply the adapter {weights.parent}: {exc}") from exc
