"""A lean inference forward for Llama-architecture models over a pool of KV-cache slots.

transformers' forward is general (hooks, cache classes, masks for every case); decoding one
token through it costs ~600 small ops of Python overhead on top of reading the weights. This
forward does only what decoding needs, reads packed low-bit weights (models/quantize.py) and
keeps keys and values in preallocated slots, so that:

- several sequences decode in one batched step (continuous batching, models/batch_engine.py);
- a slot keeps its sequence's keys and values after the sequence ends, so a later prompt with
  the same beginning (the next turn of a conversation) only computes the new part.

Decode steps run in C++ where that builds (csrc/decode_step.cpp, models/fused_decode.py): the
same step without Python between its ops, over the same weights and cache.

It is built from the weights of a loaded transformers model (after any LoRA merge) and uses the
model's own rotary embedding, so RoPE variants come for free. Numerics: bfloat16 activations
with low-bit weights (the kernels need them), fp32 throughout for the fp32 scheme; RMSNorm is
computed in fp32 either way; attention over cached keys runs in fp32 over short caches and in
bfloat16 over long ones (whichever is faster, FP32_ATTENTION_UP_TO). A sequence decoded in a
batch (masked to its own length) is therefore not bit-identical to the same sequence decoded
alone (logits up to ~0.9 apart, the same next token in our checks), as in other batching
servers.
"""

import math
import mmap

import torch
import torch.nn.functional as F

from omnicoach.models import fused_decode
from omnicoach.models.quantize import DENSE_FROM_ROWS, INT4_GROUP, PackedLinear, Scheme

SUPPORTED_MODEL_TYPES = ("llama",)
# Attention of a few new queries (decode steps, the new part of a prompt after a cached
# prefix) over at most this many cached tokens runs in fp32: casting that much of the cache is
# cheaper than bfloat16's small-matrix overhead; beyond, in bfloat16. Measured per layer, one
# query: 90 tokens 29 µs in fp32 / 54 µs in bfloat16; 400: 58 / 92 µs; 1,400: 341 / 235 µs.
# SDPA took 70 / 296 / 1,028 µs.
FP32_ATTENTION_UP_TO = 512


def supports(model) -> bool:
    config = model.config
    return config.model_type in SUPPORTED_MODEL_TYPES and not getattr(
        config, "attention_bias", False
    )


class _Layer:
    def __init__(self, layer, scheme: Scheme, dtype: torch.dtype):
        attention, mlp = layer.self_attn, layer.mlp
        self.qkv = PackedLinear(
            torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]),
            scheme,
        )
        self.out = PackedLinear(attention.o_proj.weight, scheme)
        self.gate_up = PackedLinear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), scheme)
        self.down = PackedLinear(mlp.down_proj.weight, scheme)
        self.attention_norm = layer.input_layernorm.weight.detach().to(dtype)
        self.mlp_norm = layer.post_attention_layernorm.weight.detach().to(dtype)


class LlamaDecoder:
    def __init__(self, model, scheme: Scheme, slots: int, max_len: int, threads: int | None = None):
        """THREADS: of the C++ decode step (default: torch's intra-op thread count)."""
        config = model.config
        self.scheme = scheme
        self.slots, self.max_len = slots, max_len
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.dtype = torch.float32 if scheme == "fp32" else torch.bfloat16

        with torch.no_grad():
            self.layers = [_Layer(layer, scheme, self.dtype) for layer in model.model.layers]
            self.embed = model.model.embed_tokens.weight.detach()
            self.final_norm = model.model.norm.weight.detach().to(self.dtype)
            # The output matrix is large (vocabulary × hidden) and, in the bundled GGUF, 8-bit;
            # int8 per channel keeps it close where int4 would cost accuracy. Its input is
            # quantised too in decode steps, for the integer kernel (models/quantize.py).
            head = model.lm_head.weight
            if scheme == "fp32":
                self.head = PackedLinear(head, "fp32")
            else:
                self.head = PackedLinear(head, "int8", quantise_activations=True)
            positions = torch.arange(max_len)[None]
            cos, sin = model.model.rotary_emb(self.embed[:1][None], positions)
            self.cos, self.sin = cos[0].to(self.dtype), sin[0].to(self.dtype)

        shape = (slots, self.kv_heads, max_len, self.head_dim)
        self.keys = [_lazy_zeros(shape, self.dtype) for _ in self.layers]
        self.values = [_lazy_zeros(shape, self.dtype) for _ in self.layers]
        # Decode steps in C++ where it builds (models/fused_decode.py); not for the fp32
        # reference scheme, which keeps the plain Python forward.
        self.fused = self.extension = None
        if scheme != "fp32" and (extension := fused_decode.load()) is not None:
            self.extension = extension
            self.fused = _fused_decoder(extension, self, threads or torch.get_num_threads())

    def warm_up(self) -> None:
        """One long and one short prefill and a decode step, so the kernels' first-call setup
        (oneDNN primitives, ~0.25 s) is paid at load, not by the first user."""
        self.prefill(0, [0] * 40, 0)
        self.prefill(0, [0] * 2, 40)
        self.decode([0], [0], [42])

    def kv_bytes_per_token(self) -> int:
        element = torch.finfo(self.dtype).bits // 8
        return 2 * len(self.layers) * self.kv_heads * self.head_dim * element

    @torch.inference_mode()
    def prefill(
        self,
        slot: int,
        tokens: list[int],
        start: int,
        every_position: bool = False,
        embeddings: dict[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run TOKENS at positions start.. in SLOT (earlier positions are already cached);
        returns the fp32 logits after the last one ([vocab]), or after each ([len, vocab]).
        A negative token is an image position: its input is EMBEDDINGS[token]."""
        length, end = len(tokens), start + len(tokens)
        if end > self.max_len:
            raise ValueError(f"{end} tokens exceed the cache of {self.max_len}")
        ids = torch.tensor(tokens)
        x = self.embed[ids.clamp(min=0)].to(self.dtype)  # [length, hidden]
        if embeddings:
            for position in (ids < 0).nonzero().flatten().tolist():
                x[position] = embeddings[tokens[position]].to(self.dtype)
        cos, sin = self.cos[start:end], self.sin[start:end]  # [length, head_dim]
        # Each new token sees the cached prefix and the new tokens up to itself.
        visible = None if start == 0 else torch.ones(length, end, dtype=torch.bool).tril(start)
        for index, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.attention_norm, self.eps)
            # Heads in the fused output: queries, then keys, then values.
            heads = layer.qkv(h).view(length, -1, self.head_dim).transpose(0, 1)
            rotated = heads[: self.heads + self.kv_heads]  # one rotation for q and k
            rotated = rotated * cos + _rotate_half(rotated) * sin
            q, k = rotated.split([self.heads, self.kv_heads])
            keys, values = self.keys[index][slot], self.values[index][slot]
            keys[:, start:end] = k
            values[:, start:end] = heads[self.heads + self.kv_heads :]
            keys, values = keys[None, :, :end], values[None, :, :end]
            # SDPA's flash kernel; after a cached prefix (the next turn of a conversation) it
            # reads the cache in place, where products over it copied it (20 new tokens
            # after 1,363 cached: 70 ms against 78 ms, a 35-token prompt from 0 taking 60).
            o = F.scaled_dot_product_attention(
                q[None], keys, values, attn_mask=visible, is_causal=start == 0, enable_gqa=True
            )
            x = x + layer.out(o[0].transpose(0, 1).reshape(length, -1))
            h = _rms_norm(x, layer.mlp_norm, self.eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        x = _rms_norm(x if every_position else x[-1], self.final_norm, self.eps)
        return self.head(x).float()

    @torch.inference_mode()
    def decode(self, slots: list[int], tokens: list[int], positions: list[int]) -> torch.Tensor:
        """One new token for each of several sequences: [batch] → fp32 logits [batch, vocab].

        The hot loop of generation, so it is a forward of its own with one row per sequence
        (no length dimension, no causal mask, a single sequence writes into its slot in
        place): ~30 % fewer small ops per token than the general forward. Where the C++ step
        built (models/fused_decode.py), it runs this loop instead; the Python loop below is
        the fallback and the reference the tests hold it to."""
        if self.fused is not None:
            hidden = self.fused.decode(slots, tokens, positions)
            # The output matrix on this thread alone: right after the step's own threads,
            # PyTorch's OpenMP threads took it 4.5 ms longer at 2 threads (0.6 ms on its own).
            previous = self.extension.set_openmp_threads(1)
            try:
                return self.head(hidden).float()
            finally:
                self.extension.set_openmp_threads(previous)
        batch, dim = len(tokens), self.head_dim
        index_of = torch.tensor(positions)
        x = self.embed[torch.tensor(tokens)].to(self.dtype)  # [batch, hidden]
        cos = self.cos[index_of][:, None]  # [batch, 1, head_dim]
        sin = self.sin[index_of][:, None]
        end = max(positions) + 1
        blocked = None  # a single sequence sees its whole cache
        if batch > 1:  # each sequence sees its own cache only
            blocked = (torch.arange(end)[None] > index_of[:, None])[:, None, None]
            slot_ids = torch.tensor(slots)
        for index, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.attention_norm, self.eps)
            heads = layer.qkv(h).view(batch, -1, dim)
            rotated = heads[:, : self.heads + self.kv_heads]
            rotated = rotated * cos + _rotate_half(rotated) * sin
            q, k = rotated.split([self.heads, self.kv_heads], dim=1)
            v = heads[:, self.heads + self.kv_heads :]
            if batch == 1:
                slot_keys, slot_values = self.keys[index][slots[0]], self.values[index][slots[0]]
                slot_keys[:, positions[0]] = k[0]
                slot_values[:, positions[0]] = v[0]
                keys, values = slot_keys[None, :, :end], slot_values[None, :, :end]
            else:
                self.keys[index][slot_ids, :, index_of] = k
                self.values[index][slot_ids, :, index_of] = v
                keys = self.keys[index][slot_ids, :, :end]
                values = self.values[index][slot_ids, :, :end]
            o = _decode_attention(q, keys, values, blocked)
            x = x + layer.out(o)
            h = _rms_norm(x, layer.mlp_norm, self.eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        return self.head(_rms_norm(x, self.final_norm, self.eps)).float()


def _fused_decoder(extension, decoder: LlamaDecoder, threads: int):
    """The C++ decode step over the same weights and KV cache as DECODER's Python loop."""

    def product(linear: PackedLinear):
        scales = linear.scales if linear.scheme == "int8" else linear.scales_and_zeros
        return extension.Product(linear.scheme, linear.weight, scales, linear.dense, INT4_GROUP)

    layers = [
        extension.Layer(
            product(layer.qkv),
            product(layer.out),
            product(layer.gate_up),
            product(layer.down),
            layer.attention_norm,
            layer.mlp_norm,
            keys,
            values,
        )
        for layer, keys, values in zip(decoder.layers, decoder.keys, decoder.values, strict=True)
    ]
    return extension.Decoder(
        layers,
        decoder.embed,
        decoder.final_norm,
        decoder.cos,
        decoder.sin,
        decoder.heads,
        decoder.kv_heads,
        decoder.eps,
        DENSE_FROM_ROWS,
        threads,
    )


def _lazy_zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Zeros whose memory is only touched when written: an anonymous mapping, whose pages the
    OS maps (as zeros) on first write, where torch.zeros writes every byte. So the cache costs
    memory as slots fill up, not all at start. Zeros, not garbage, because a batched step reads
    (masked) positions past a shorter sequence's end, and masking cannot undo a NaN that
    happened to be in memory.

    Small pages on purpose: numpy's zeros (used before) ask for 2 MB huge pages, so a fresh
    slot's first prompt touched ~60 of them (120 MB zeroed for 35 tokens' keys and values),
    which took 0.25–0.33 s of kernel time on the VM of 2026-12-01, at random."""
    size = math.prod(shape) * torch.finfo(dtype).bits // 8
    memory = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # Linux; the tensor keeps the mapping alive
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    return torch.frombuffer(memory, dtype=dtype).view(shape)


def _decode_attention(q, keys, values, blocked) -> torch.Tensor:
    """One query per sequence over its cached keys, with grouped query heads.

    SDPA with enable_gqa is slow on the CPU for a single query over a long cache (see
    FP32_ATTENTION_UP_TO): here each key head is multiplied by its group of query heads.
    q: [batch, heads, dim]; keys/values: [batch, kv_heads, n, dim]; blocked: [batch, 1, 1, n],
    the keys past each sequence's own length (a batch's sequences differ), or None.
    """
    batch, heads, dim = q.shape
    kv_heads = keys.shape[1]
    dtype = torch.float32 if keys.shape[2] <= FP32_ATTENTION_UP_TO else q.dtype
    # A key head's whole group of query heads are the rows of one product, so keys are read
    # once per key head and never copied for broadcasting.
    grouped = q.reshape(batch, kv_heads, heads // kv_heads, dim).to(dtype) * dim**-0.5
    scores = torch.matmul(grouped, keys.to(dtype).transpose(-1, -2))  # [batch, kv, group, n]
    if blocked is not None:
        scores.masked_fill_(blocked, float("-inf"))
    # bfloat16 scores are softmaxed in fp32 inside the kernel either way.
    weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(weights, values.to(dtype))
    return out.reshape(batch, heads * dim).to(q.dtype)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return normed.to(weight.dtype) * weight


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)
