"""Thread settings for torch, chosen deliberately rather than left to OpenMP.

OMP_WAIT_POLICY=PASSIVE is set in omnicoach/__init__.py because it must precede torch's import.
"""

import os

import torch

# Chosen by measurement (benchmarks/llm_decode.py on the 2-core reference machine, README):
# the fast int4 engine decodes 82.6 tok/s at 1 thread vs 40.2 at 2 (transformers fp32: 24.8
# vs 22.2). Decoding dominates an answer's time, and one thread leaves the second core to the
# server (HTTP, tokenising, streaming) and other models. On the Intel Xeon VM of 2026-12-01,
# with the C++ decode step (its own threads): in-process 99.7 tok/s at 1 thread and 147.6 at 2,
# but through the server (benchmarks/server_load.py, the fine-tune) one client streamed 41.7
# against 43.9 tok/s and sixteen 138.9 against 131.8: the server's own threads need the second
# core. Override with OMNICOACH_THREADS.
DEFAULT_THREADS = 1


def resolve_threads(requested: int) -> int:
    """An explicit request is honoured; 0 means the measured default, capped at the cores
    this process may use."""
    if requested:
        return requested
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(DEFAULT_THREADS, available or 1))


def apply_threads(requested: int) -> int:
    """Set torch's intra-op thread count; returns the number in force."""
    n = resolve_threads(requested)
    torch.set_num_threads(n)
    return n
