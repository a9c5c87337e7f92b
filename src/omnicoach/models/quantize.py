"""Weight-only quantisation of linear layers for CPU inference.

Decoding one token reads every weight once, so on a CPU its speed is set by bytes of weights
per token: fp32 reads 4 bytes a weight, int8 one, int4 half of one. The matrix products use
PyTorch's packed CPU kernels (the ones gpt-fast and torchao use), which take bfloat16
activations:

- ``int4``: groups of 32 weights along the input dimension, each with a scale and an offset
  (asymmetric, round to nearest). For the bundled GGUF, whose weights were Q4_1 (the same
  grouping and form), this re-encodes them almost exactly.
- ``int8``: one symmetric scale per output channel.
- ``fp32``: the plain weights, as a reference.

The packed kernels dequantise as they go, which makes them compute-bound once many rows
share the weights: a prompt of 181 tokens prefills in 0.36 s through them and in 0.20 s
through a bfloat16 matrix product (oneDNN, AVX-512 BF16). So a quantised layer also keeps a
bfloat16 copy for products of ``DENSE_FROM_ROWS`` rows or more (prompts, large batches);
decode steps of one or a few sequences read the small packed weights.

Quantise after any LoRA adapter is merged into the weights: adapters are trained in fp32.
"""

import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

Scheme = Literal["fp32", "int8", "int4"]
SCHEMES: tuple[str, ...] = ("fp32", "int8", "int4")
INT4_GROUP = 32
# Measured, one thread, per layer shape: on an Intel Xeon (Emerald Rapids) the packed kernels
# cost ~linearly in rows (SmolLM2's fused gate/up projection in int4: 2 rows 0.15 ms, 8 rows
# 0.45, 20 rows 1.1) where bfloat16 takes 0.28–0.50 ms for 2 to 32 rows, so they cross at
# 4–6 rows; on the AMD EPYC reference they were level up to 16. So the prompt after a cached
# prefix (~20 tokens a conversation turn) and batches of 6 or more sequences use bfloat16.
DENSE_FROM_ROWS = 6
# The output matrix (vocabulary × hidden: 28 M weights for SmolLM2) is a decode step's largest
# product. With its input quantised to 8 bits on the fly (one scale per call), FBGEMM's
# int8 × int8 kernel computes it in 1.5 ms where the bfloat16-activation kernel takes 2.4–4.5
# (one thread, Intel Xeon with AVX-512 VNNI); bfloat16 takes 8.4 for 1–16 rows. Quality: see
# the README (the quality guard runs through this path). Larger products (a whole prompt's
# logits, for scoring) use the bfloat16 copy: one activation scale over many rows is coarse.
QUANTISED_ACTIVATIONS_BELOW_ROWS = 32


class PackedLinear:
    """``y = x @ W.T`` with W stored in one of the SCHEMES (no bias: Llama has none)."""

    def __init__(self, weight: torch.Tensor, scheme: Scheme, quantise_activations: bool = False):
        """QUANTISE_ACTIVATIONS (int8 only): few-row products quantise their input to 8 bits
        too, for FBGEMM's integer kernel (the output matrix; QUANTISED_ACTIVATIONS_BELOW_ROWS),
        and return fp32."""
        weight = weight.detach().float()
        self.scheme = scheme
        self.out_features, self.in_features = weight.shape
        self.integer_product = None  # FBGEMM's packed weight, when activations are quantised
        if scheme == "fp32":
            self.weight = weight.contiguous()
            return
        if scheme == "int8":
            self.weight, self.scales, dequantised = _int8_per_channel(weight)
            if quantise_activations:
                self.integer_product = _fbgemm_int8(self.weight, self.scales)
        elif scheme == "int4":
            if self.in_features % INT4_GROUP:
                raise ValueError(f"int4 needs in_features divisible by {INT4_GROUP}")
            self.weight, self.scales_and_zeros, dequantised = _int4_grouped(weight)
        else:
            raise ValueError(f"unknown weight scheme {scheme!r}; choose from {SCHEMES}")
        # The same quantised weights, expanded: prompts see exactly the weights decoding does.
        self.dense = dequantised.to(torch.bfloat16)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if x.dim() != 2:
            x = x.reshape(-1, self.in_features)
        if self.scheme == "fp32":
            y = F.linear(x, self.weight)
        elif self.integer_product is not None and x.shape[0] < QUANTISED_ACTIVATIONS_BELOW_ROWS:
            y = torch.ops.quantized.linear_dynamic(x.float(), self.integer_product, False)
        elif x.shape[0] >= DENSE_FROM_ROWS:
            y = F.linear(x, self.dense)
        elif self.scheme == "int8":
            y = torch.ops.aten._weight_int8pack_mm(x, self.weight, self.scales)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(
                x, self.weight, INT4_GROUP, self.scales_and_zeros
            )
        return y if len(shape) == 2 else y.reshape(*shape[:-1], self.out_features)


def _int8_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(codes, scales, the weight they decode to)"""
    scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
    quantised = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
    scales = scales.to(torch.bfloat16)
    return quantised.contiguous(), scales, quantised.float() * scales.float()[:, None]


def _fbgemm_int8(codes: torch.Tensor, scales: torch.Tensor):
    """These int8 weights packed for FBGEMM's products with activations quantised on the fly;
    None where this PyTorch has no FBGEMM (not x86) or the CPU has no VNNI: the
    bfloat16-activation kernel serves."""
    if "fbgemm" not in torch.backends.quantized.supported_engines or not CPU_HAS_VNNI:
        return None
    zeros = torch.zeros(len(scales), dtype=torch.long)
    with warnings.catch_warnings():  # PyTorch deprecates quantised tensors (its issue 184982)
        warnings.simplefilter("ignore", UserWarning)
        weight = torch._make_per_channel_quantized_tensor(codes, scales.double(), zeros, 0)
    return torch.ops.quantized.linear_prepack(weight, None)


def _cpu_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


# Without VNNI, FBGEMM sums pairs of 8-bit products in 16 bits, which saturate unless the
# activations keep to 7 bits (PyTorch's reduce_range). Measured on an AMD EPYC without VNNI
# (nor AVX2): 7-bit activations in the output matrix alone took int4 decoding's perplexity to
# 1.032× fp32 and its greedy agreement to 94.9 %, past the quality guard (tests/
# test_fast_engine.py), for 67 instead of 53 tokens/s. Quality first: there, the
# bfloat16-activation kernel serves. VNNI sums in 32 bits, with full 8-bit activations.
CPU_HAS_VNNI = _cpu_has_vnni()


def _int4_grouped(weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(packed codes, scales and zeros, the weight they decode to)"""
    out_features, in_features = weight.shape
    groups = weight.reshape(out_features, in_features // INT4_GROUP, INT4_GROUP)
    low = groups.amin(dim=-1, keepdim=True)
    high = groups.amax(dim=-1, keepdim=True)
    scales = ((high - low) / 15).clamp(min=1e-12)
    codes = ((groups - low) / scales).round().clamp(0, 15).to(torch.int32)
    # The kernel computes (code - 8) * scale + zero, so zero is the group's middle value.
    zeros = low + 8 * scales
    scales_and_zeros = torch.cat([scales, zeros], dim=-1).transpose(0, 1).contiguous()
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        codes.reshape(out_features, in_features), 1
    )
    scales_and_zeros = scales_and_zeros.to(torch.bfloat16)
    scales, zeros = scales_and_zeros.float().transpose(0, 1).unbind(-1)
    dequantised = (codes - 8) * scales[..., None] + zeros[..., None]
    return packed, scales_and_zeros, dequantised.reshape(out_features, in_features)
