"""Freed heap memory goes back to the operating system (omnicoach/memory.py)."""

import subprocess
import sys

import pytest

from omnicoach.memory import _LIBC

# In a fresh process: 200 MB in 100 kB blocks (under malloc's mmap threshold, so on the heap),
# every tenth kept alive so the heap cannot simply shrink from its top, the rest freed.
FRAGMENT_THEN_RELEASE = """
import psutil
from omnicoach.memory import release_free_memory

def rss_mb():
    return psutil.Process().memory_info().rss / 2**20

blocks = [bytearray(100_000) for _ in range(2_000)]
kept = blocks[::10]
del blocks
before = rss_mb()
released = release_free_memory()
print(released, before, rss_mb())
"""


@pytest.mark.skipif(_LIBC is None, reason="not glibc: malloc_trim does not exist")
def test_the_free_pages_between_live_blocks_are_returned():
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENT_THEN_RELEASE], capture_output=True, text=True, check=True
    ).stdout.split()
    released, before, after = out[0] == "True", float(out[1]), float(out[2])
    assert released
    assert before - after > 100, (before, after)  # ~180 MB of free pages between live blocks
