"""Handing freed heap memory back to the operating system.

A long-running server allocates and frees tensors of every size (prompts of every length, a
batch of 1 to 16 sequences). glibc's malloc serves large blocks from the heap once its mmap
threshold has risen (it rises each time an mmapped block is freed), and the heap's free pages
between live blocks stay counted in the process's memory: in the soak benchmark the server's
RSS grew ~3 MB/s without end. Two remedies were measured (README, Soak): a fixed low mmap
threshold stopped the growth but cost a third of the chat throughput (every large tensor
mmapped and zeroed anew); malloc_trim, which returns free heap pages, run every few seconds,
keeps the speed. On other C libraries this does nothing.
"""

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc only: musl and macOS have none)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; True when some were (False: none, or no glibc)."""
    return bool(_LIBC is not None and _LIBC.malloc_trim(0))
