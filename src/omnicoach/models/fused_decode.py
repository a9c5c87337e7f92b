"""The C++ decode step (csrc/decode_step.cpp), compiled on first use for this machine.

PyTorch's JIT extension builder compiles it with the machine's g++ and ninja (~25 s on the
2-core machine, once; `make setup` does it ahead) into the virtual environment
(`<venv>/torch_extensions/`), so each checkout keeps its own build and a changed source
rebuilds. `-march=native` lets the compiler use the CPU's vector instructions, so the build is
named after the CPU's feature flags: a virtual environment moved to another CPU builds anew.

Where it cannot be built (no compiler) or OMNICOACH_FUSED_DECODE=0, `load()` returns None and
the decoder keeps its Python loop, which computes the same step more slowly.
"""

import functools
import hashlib
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "decode_step.cpp"
FLAGS = ["-O3", "-march=native", "-fopenmp-simd"]


def enabled() -> bool:
    return os.environ.get("OMNICOACH_FUSED_DECODE", "1") != "0"


def load():
    """The compiled module, or None (the reason logged) where it is disabled or cannot build."""
    return _build() if enabled() else None


@functools.cache
def _build():
    from torch.utils import cpp_extension

    try:
        _put_ninja_on_path()
        name = f"omnicoach_decode_step_{_cpu_key()}"
        build = Path(sys.prefix) / "torch_extensions" / name
        build.mkdir(parents=True, exist_ok=True)
        return cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=FLAGS,
            build_directory=str(build),
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, a failed build: the Python loop serves
        log.warning("the C++ decode step is unavailable, decoding in Python: %s", error)
        return None


def _put_ninja_on_path() -> None:
    """PyTorch runs `ninja` from PATH; the ninja wheel's binary sits in the virtual
    environment, which the Makefile's commands use without activating it."""
    import ninja

    if ninja.BIN_DIR not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _cpu_key() -> str:
    try:
        flags = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        flags = "unknown"
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


if __name__ == "__main__":  # `make setup` builds it ahead, so no server start waits for it
    logging.basicConfig()
    raise SystemExit(0 if load() is not None else "the C++ decode step did not build")
