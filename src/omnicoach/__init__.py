"""omnicoach: a private, self-hosted multimodal assistant for yoga and fitness."""

import os

# Both must be set before torch (and its OpenMP runtime) is first imported, hence here.
# Spinning OpenMP threads fight each other on a 2-core machine: with the default ACTIVE wait
# policy two threads were measured 8-15x slower than one under load (DESIGN.md §1).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# No model hub is reachable: fail fast instead of waiting on network time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"
