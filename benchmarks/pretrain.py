"""Pretraining from random weights: does the default recipe (`omnicoach train pretrain`) bring
the train loss down by one nat from its initial value within a 10-minute budget, and when?

    .venv/bin/python benchmarks/pretrain.py [--minutes 10] [--full-budget] [--out DIR]

It trains the default model on the default data (clean corpus + 1 SmolLM2 synthetic worker,
share 0.5, seed 0) in a fresh output directory, then prints the run's figures: wall time,
steps and tokens when the target was reached, tokens/s, the held-out loss against
SmolLM2-135M's, and the fitted estimate of tokens still needed. By default the run stops at the
target, as the command does; --full-budget trains the whole budget (a longer curve for the fit).
The last line is `reached initial-1: yes in X s (initial L0, final L1)` (or `no within …`).
Run it on a quiet machine: another busy process on 2 cores halves the speed.
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--full-budget", action="store_true", help="Do not stop at the target.")
    parser.add_argument("--out", type=Path, help="Output directory (default: a temporary one).")
    args = parser.parse_args()

    from omnicoach.config import load_settings
    from omnicoach.training.pretrain import PretrainConfig, train_pretrain

    out = args.out or Path(tempfile.mkdtemp(prefix="pretrain-bench-"))
    config = PretrainConfig(
        out=out,
        resume=False,  # a fresh run, never a resumed one
        max_minutes=args.minutes,
        stop_at_target=not args.full_budget,
        model_cache=load_settings().model_cache_dir,
    )
    started = time.time()
    summary = train_pretrain(config, log=lambda line: print(line, file=sys.stderr))
    wall = time.time() - started

    history = _history(out)
    speeds = [r["tokens_per_s"] for r in history[3:]] or [r["tokens_per_s"] for r in history]
    report = summary.get("report", {})
    fit = report.get("fit", {})
    print(f"machine: {os.cpu_count()} cores; threads and workers: see the first log line")
    print(
        f"model: {summary['parameters'] / 1e6:.1f} M parameters; block {config.block_size}, "
        f"batch {config.batch_size}, lr {config.learning_rate}"
    )
    print(
        f"run: {summary['steps']} steps, {summary['tokens']:,} tokens, {wall:.0f} s wall "
        f"(including setup and the report), stopped by {summary['stopped_by']}"
    )
    print(f"training speed: median {statistics.median(speeds):.0f} tokens/s")
    if report:
        print(
            f"held-out loss: {report['heldout_loss']:.3f} vs SmolLM2-135M "
            f"{report['reference_heldout_loss']:.3f} nats/token (gap {report['gap_nats']:.3f})"
        )
        needed = fit.get("tokens_needed")
        if fit.get("ok"):
            print(
                "tokens still needed (power-law fit): "
                + ("unbounded" if math.isinf(needed) else f"{needed:,.0f}")
            )
        else:
            print(f"tokens still needed: no fit ({fit.get('why')})")
    print(f"output: {out}")
    initial, final = summary["initial_loss"], summary["final_train_loss"]
    reached = summary["target_reached"]
    if reached:
        print(
            f"target at step {reached['step']}, {reached['tokens']:,} tokens, "
            f"{reached['wall_seconds']:.0f} s of the run ({reached['seconds']:.0f} s in steps)"
        )
        print(
            f"reached initial-1: yes in {reached['wall_seconds']:.0f} s "
            f"(initial {initial:.3f}, final {final:.3f})"
        )
    else:
        print(
            f"reached initial-1: no within {args.minutes:g} min "
            f"(initial {initial:.3f}, final {final:.3f})"
        )


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


if __name__ == "__main__":
    main()
