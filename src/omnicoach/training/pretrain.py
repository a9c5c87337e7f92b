"""Pretraining a small Llama from random weights: the capstone recipe.

    omnicoach train pretrain [--out var/train/pretrain] [--max-minutes 10] [--synthetic-workers 1]
    accelerate launch --multi_gpu --num_processes 2 -m omnicoach.training.pretrain --out …
    torchrun --nproc_per_node 2 -m omnicoach.training.pretrain --out …

(DDP: without CUDA, accelerate's --multi_gpu still starts the processes, through torchrun, and
they train on the CPU over gloo.)

The model is a `LlamaForCausalLM` with SmolLM2's tokenizer (vocabulary 49 152, tied input and
output embeddings) and a small body (default 6 layers, width 256, 4 query and 2 key-value heads:
17.3 M parameters, 12.6 M of them the embedding), randomly initialised from the seed. It learns
from random windows of BLOCK_SIZE tokens, a SYNTHETIC_SHARE of them from text that worker
processes generate while training runs, the rest from the project's own texts
(data/pretrain_corpus.py). Every process draws its own windows (the random generator is seeded
by seed, rank and step), so DDP processes see different data, and each process runs its own
synthetic workers.

AdamW with a linear warm-up, then a constant learning rate: the budget is in minutes, so the
number of steps is not known in advance, and a constant rate keeps the curve a clean power law
to extrapolate. Training stops at the first of: MAX_STEPS, MAX_MINUTES (of this run), or —
with STOP_AT_TARGET — the train loss (mean of the last 3 steps) reaching the initial loss (mean
of the first 3) minus TARGET_DROP. The held-out text is evaluated every EVAL_EVERY steps.

OUT holds log.jsonl (one line per step: loss, tokens, learning rate, tokens/s), loss.csv,
loss.png, synthetic.jsonl (the paragraphs process 0 was given), checkpoint/ (weights in fp16,
optimiser moments in bfloat16, replaced every CHECKPOINT_EVERY steps; a new run with the same
OUT resumes from it) and, at the end, report.md / report.json / manifest.json: held-out loss
against the reference model (SmolLM2-135M) on the same text, and a power-law fit of the
held-out curve that estimates the tokens still needed to close the gap.
"""

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from omnicoach.errors import InvalidRequestError
from omnicoach.models.llm_loader import load_tokenizer
from omnicoach.training.checkpoints import has_checkpoint, load_training_state, save_checkpoint

CHECKPOINT = "checkpoint"  # the latest resumable state, inside the output directory
INITIAL_STEPS = 3  # the initial loss is the mean over this many first steps
RECENT_STEPS = 3  # the target is checked on the mean of this many latest steps


@dataclass
class PretrainConfig:
    out: Path
    # Where the tokenizer comes from; it is also the default generator and reference model.
    # Default: the bundled SmolLM2-135M-Instruct GGUF.
    tokenizer: Path | None = None
    generator_model: Path | None = None  # the synthetic-text model; default: as tokenizer
    reference_model: Path | None = None  # what the report compares with; default: as tokenizer
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 768
    block_size: int = 128
    batch_size: int = 8  # per process
    learning_rate: float = 2e-3
    warmup_steps: int = 10
    weight_decay: float = 0.1
    max_steps: int | None = None
    max_minutes: float | None = 10.0
    target_drop: float = 1.0
    stop_at_target: bool = True
    eval_every: int = 10
    checkpoint_every: int = 50
    synthetic_workers: int = 1  # per process
    synthetic_share: float = 0.5
    synthetic_max_new_tokens: int = 96
    seed: int = 0
    resume: bool = True
    threads: int = 0  # torch threads per process; 0: the cores left over by the workers
    report: bool = True  # compare with the reference model and fit the curve at the end
    model_cache: Path = Path("var/models")


def check_config(config: PretrainConfig) -> None:
    """Refuse settings that cannot train, with a message that says which."""
    problems = []
    if not 0.0 <= config.synthetic_share <= 1.0:
        problems.append(f"synthetic_share must be between 0 and 1, got {config.synthetic_share}")
    if config.synthetic_workers < 0:
        problems.append("synthetic_workers cannot be negative")
    if config.synthetic_share > 0 and config.synthetic_workers == 0:
        problems.append("synthetic_share > 0 needs at least one synthetic worker")
    if config.hidden_size % config.num_heads:
        problems.append(f"hidden_size {config.hidden_size} is not a multiple of num_heads")
    if config.num_heads % config.num_kv_heads:
        problems.append(f"num_heads {config.num_heads} is not a multiple of num_kv_heads")
    for name in ("block_size", "batch_size", "eval_every", "checkpoint_every", "num_layers"):
        if getattr(config, name) < 1:
            problems.append(f"{name} must be at least 1")
    if config.max_steps is None and config.max_minutes is None:
        problems.append("give a budget: max_steps or max_minutes (or both)")
    for name in ("tokenizer", "generator_model", "reference_model"):
        path = getattr(config, name)
        if path is not None and not Path(path).exists():
            problems.append(f"{name} {path} does not exist")
    if problems:
        raise InvalidRequestError("; ".join(problems))


def model_sources(config: PretrainConfig) -> dict[str, Path]:
    from omnicoach.models.bundled import smollm2_gguf

    tokenizer = Path(config.tokenizer or smollm2_gguf())
    return {
        "tokenizer": tokenizer,
        "generator": Path(config.generator_model or tokenizer),
        "reference": Path(config.reference_model or tokenizer),
    }


def build_model(config: PretrainConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.block_size,
        # Tied: with a 49k vocabulary the embedding is most of a small model; one copy is enough.
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=False,
    )
    return LlamaForCausalLM(llama)  # initialised from torch's generator, seeded by the caller


def train_pretrain(
    config: PretrainConfig, on_step: Callable | None = None, log=print, command: str = ""
) -> dict:
    """Train; returns a summary (steps, tokens, losses, the report's numbers)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from omnicoach.data.pretrain_corpus import (
        MixedBlocks,
        SyntheticText,
        build_corpus,
        synthetic_topics,
        token_stream,
    )

    check_config(config)
    started = time.time()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    say = log if main else (lambda *_: None)
    rank, processes = accelerator.process_index, accelerator.num_processes
    workers = config.synthetic_workers if config.synthetic_share > 0 else 0
    threads = config.threads or max(1, (os.cpu_count() or 1) // processes - workers)
    torch.set_num_threads(threads)

    sources = model_sources(config)
    with accelerator.main_process_first():  # one process builds the model cache, if needed
        tokenizer = load_tokenizer(sources["tokenizer"], config.model_cache)
    corpus = build_corpus()
    clean = token_stream(tokenizer, corpus.train)
    held_out = token_stream(tokenizer, corpus.held_out)
    set_seed(config.seed)  # the same initial weights in every process
    model = build_model(config, tokenizer)
    parameters = sum(p.numel() for p in model.parameters())
    say(
        f"Llama {config.num_layers}×{config.hidden_size}: {parameters / 1e6:.1f} M parameters; "
        f"{processes} process{'es (DDP)' if processes > 1 else ''}, {threads} thread(s) and "
        f"{workers} synthetic worker(s) each; clean corpus {len(clean):,} tokens, held-out "
        f"{len(held_out):,} tokens ({len(corpus.held_out_ids)} exercises)"
    )

    # No weight decay on norms (1-D), as in nanoGPT: it would only pull their gains to zero.
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": matrices, "weight_decay": config.weight_decay},
            {"params": vectors, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
        betas=(0.9, 0.95),
    )
    # Not passed to accelerator.prepare: a prepared scheduler steps once per process per step
    # (it assumes a sharded data loader), which would shorten the warm-up under DDP.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, config.warmup_steps))
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT
    state = {
        "step": 0, "tokens": 0, "seconds": 0.0, "initial_loss": None, "target_reached": None,
        "history": [],
    }  # fmt: skip
    if config.resume and has_checkpoint(checkpoint):
        state = _load_checkpoint(accelerator, model, optimizer, schedule, checkpoint)
        say(f"resumed from step {state['step']} ({state['tokens']:,} tokens)")
    if main:  # the log holds exactly the steps the state knows; later ones are redone
        with open(out / "log.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in state["history"])

    held_out_blocks = _blocks(held_out, config.block_size)
    synthetic_log = open(out / "synthetic.jsonl", "a") if main else None  # noqa: SIM115

    def keep_text(text: str) -> None:
        if synthetic_log:
            synthetic_log.write(json.dumps({"step": state["step"], "text": text}) + "\n")
            synthetic_log.flush()

    generation = SyntheticText(
        sources["generator"], config.model_cache, synthetic_topics(), workers,
        seed=config.seed * 1000 + rank * 100, max_new_tokens=config.synthetic_max_new_tokens,
    )  # fmt: skip
    bar = tqdm(total=config.max_steps, initial=state["step"], desc="pretrain", disable=not main)
    tokens_per_step = config.batch_size * config.block_size * processes
    run_started = time.time()
    reported_failure = False
    with generation:
        data = MixedBlocks(
            clean, config.block_size, config.synthetic_share, tokenizer,
            generation.queue if workers else None, keep_text,
        )  # fmt: skip
        model.train()
        stopped_by = _finished_before(state, config)  # a resumed run that has nothing left
        while stopped_by is None:
            step_started = time.time()
            # Seeded by seed, rank and step: every process its own windows, and a resumed run
            # draws the same clean windows the stopped one would have.
            rng = random.Random(f"{config.seed}:{rank}:{state['step']}")
            synthetic_before = data.rows["synthetic"]
            batch = data.batch(config.batch_size, rng).to(accelerator.device)
            loss = model(input_ids=batch, labels=batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            learning_rate = schedule.get_last_lr()[0]
            schedule.step()
            optimizer.zero_grad()
            state["step"] += 1
            state["tokens"] += tokens_per_step
            step = state["step"]
            train_loss = accelerator.reduce(loss.detach(), "mean").item()
            elapsed = time.time() - step_started
            state["seconds"] += elapsed
            record = {
                "step": step,
                "tokens": state["tokens"],
                "train_loss": train_loss,
                "heldout_loss": None,
                "learning_rate": learning_rate,
                "tokens_per_s": round(tokens_per_step / elapsed, 1),
                "seconds": round(state["seconds"], 2),
                "wall_seconds": round(time.time() - run_started, 2),  # this run, all included
                "synthetic_rows": data.rows["synthetic"] - synthetic_before,
                "synthetic_texts": data.texts,
            }
            state["history"].append(record)
            _check_target(state, config)

            over_time = config.max_minutes is not None and (
                time.time() - run_started >= config.max_minutes * 60
            )
            # Any process over its time stops them all: DDP processes must agree on the last step.
            flag = torch.tensor([float(over_time)], device=accelerator.device)
            over_time = accelerator.reduce(flag, "sum").item() > 0
            at_target = config.stop_at_target and state["target_reached"] is not None
            last = over_time or at_target or step >= (config.max_steps or math.inf)
            if step % config.eval_every == 0 or last:
                record["heldout_loss"] = _held_out_loss(model, held_out_blocks, accelerator)
                held = record["heldout_loss"]
                say(f"step {step}: train loss {train_loss:.3f}, held-out {held:.3f}")
                if generation.failed() and not reported_failure:
                    say(f"a synthetic worker died (exit {generation.failed()}); clean text only")
                    reported_failure = True
            if main:
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                if on_step:
                    on_step(record, state)
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.3f}")
            if step % config.checkpoint_every == 0 or last:
                _save_checkpoint(accelerator, model, optimizer, schedule, checkpoint, state)
                if main:
                    write_curve(out, state["history"], target=_target(state, config))
            if last:
                stopped_by = "target" if at_target else "time" if over_time else "max_steps"
    bar.close()
    if synthetic_log:
        synthetic_log.close()
    rows = torch.tensor([data.rows["clean"], data.rows["synthetic"]], dtype=torch.float64)
    rows = accelerator.reduce(rows.to(accelerator.device), "sum").tolist()
    say(
        f"stopped by {stopped_by} at step {state['step']}; rows this run: {int(rows[0])} clean, "
        f"{int(rows[1])} synthetic ({data.texts} paragraphs generated on process 0)"
    )

    # DDP keeps every process's weights identical; this shows it (one number per process):
    # each tensor's sum and sum of squares, weighted by position (no copy of the whole model).
    sums = torch.stack(
        [
            torch.stack(
                [p.detach().sum(dtype=torch.float64), p.detach().square().sum(dtype=torch.float64)]
            )
            for p in model.parameters()
        ]
    ).flatten()
    fingerprint = (sums * torch.arange(1, 1 + len(sums), device=sums.device)).sum()
    fingerprints = accelerator.gather(fingerprint[None]).tolist()
    summary = {
        "processes": processes,
        "weight_fingerprints": fingerprints,
        "parameters": parameters,
        "steps": state["step"],
        "tokens": state["tokens"],
        "stopped_by": stopped_by,
        "initial_loss": state["initial_loss"],
        "target_loss": _target(state, config),
        "target_reached": state["target_reached"],
        "final_train_loss": state["history"][-1]["train_loss"],
        "final_heldout_loss": state["history"][-1]["heldout_loss"],
        "synthetic_fraction_this_run": rows[1] / max(1.0, rows[0] + rows[1]),
        "training_seconds": round(state["seconds"], 1),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
    }
    if config.report and main:
        say(f"measuring the reference model {sources['reference'].name} on the held-out text")
        summary["report"] = compare_and_report(
            out, summary, state["history"], held_out_blocks, sources["reference"],
            config.model_cache, corpus, command or " ".join(sys.argv), started,
        )  # fmt: skip
    accelerator.wait_for_everyone()
    return summary


def _finished_before(state: dict, config: PretrainConfig) -> str | None:
    """Why a resumed run has no step left to take (None: it has)."""
    if config.max_steps is not None and state["step"] >= config.max_steps:
        return "max_steps"
    if config.stop_at_target and state["target_reached"] is not None:
        return "target"
    return None


def _target(state: dict, config: PretrainConfig) -> float | None:
    initial = state["initial_loss"]
    return None if initial is None else initial - config.target_drop


def _check_target(state: dict, config: PretrainConfig) -> None:
    """Set the initial loss after the first steps, then note when the target is first met."""
    history = state["history"]
    if state["initial_loss"] is None and len(history) >= INITIAL_STEPS:
        state["initial_loss"] = (
            sum(r["train_loss"] for r in history[:INITIAL_STEPS]) / INITIAL_STEPS
        )
    target = _target(state, config)
    if target is None or state["target_reached"] is not None:
        return
    recent = sum(r["train_loss"] for r in history[-RECENT_STEPS:]) / RECENT_STEPS
    if recent <= target:
        last = history[-1]
        state["target_reached"] = {
            "step": last["step"], "tokens": last["tokens"], "seconds": last["seconds"],
            "wall_seconds": last["wall_seconds"], "train_loss": recent,
        }  # fmt: skip


def _blocks(stream: torch.Tensor, block_size: int) -> torch.Tensor:
    """Consecutive, non-overlapping blocks of the held-out text (the tail is dropped)."""
    count = len(stream) // block_size
    if count == 0:
        raise InvalidRequestError(f"the held-out text is shorter than one block ({block_size})")
    return stream[: count * block_size].view(count, block_size)


@torch.no_grad()
def held_out_sums(model, blocks: torch.Tensor, device, rank: int = 0, processes: int = 1,
                  batch_size: int = 8) -> torch.Tensor:  # fmt: skip
    """(sum of losses in nats, number of predicted tokens) over this process's share of the
    blocks; every block predicts its tokens 2…n from the ones before, for any model alike."""
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    mine = blocks[rank::processes]
    for start in range(0, len(mine), batch_size):
        batch = mine[start : start + batch_size].to(device)
        loss = model(input_ids=batch, labels=batch).loss.double()
        predicted = batch.shape[0] * (batch.shape[1] - 1)
        totals += torch.stack([loss * predicted, torch.tensor(predicted, device=device)])
    return totals


def _held_out_loss(model, blocks, accelerator) -> float:
    was_training = model.training
    model.eval()
    totals = held_out_sums(
        model, blocks, accelerator.device, accelerator.process_index, accelerator.num_processes
    )
    totals = accelerator.reduce(totals, "sum")
    model.train(was_training)
    return (totals[0] / totals[1]).item()


def _save_checkpoint(accelerator, model, optimizer, schedule, checkpoint: Path, state: dict):
    """The weights in fp16 with the model's config.json (a Hugging Face directory:
    from_pretrained loads it) and the training state (training/checkpoints.py)."""

    def write_weights(directory: Path) -> None:
        from safetensors.torch import save_file

        unwrapped = accelerator.unwrap_model(model)
        # named_parameters lists the tied embedding once (lm_head shares it).
        weights = {n: p.detach().half().contiguous() for n, p in unwrapped.named_parameters()}
        save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
        unwrapped.config.save_pretrained(directory)

    save_checkpoint(accelerator, optimizer, schedule, checkpoint, state, write_weights)


def _load_checkpoint(accelerator, model, optimizer, schedule, checkpoint: Path) -> dict:
    """Every process loads the same state (the optimiser casts its moments back to fp32)."""
    from safetensors.torch import load_file

    weights = load_file(checkpoint / "model.safetensors")
    unwrapped = accelerator.unwrap_model(model)
    try:
        result = unwrapped.load_state_dict(
            {name: value.float() for name, value in weights.items()}, strict=False
        )
    except RuntimeError as exc:  # a tensor of another shape
        raise InvalidRequestError(
            f"the checkpoint in {checkpoint} is for another model size; start a new run "
            "(another --out) or use --no-resume"
        ) from exc
    if result.unexpected_keys or set(result.missing_keys) - {"lm_head.weight"}:
        raise InvalidRequestError(
            f"the checkpoint in {checkpoint} is for another model; start a new run "
            "(another --out) or use --no-resume"
        )
    unwrapped.tie_weights()
    return load_training_state(optimizer, schedule, checkpoint)


def write_curve(out: Path, history: list[dict], target: float | None = None,
                fit=None, reference_loss: float | None = None) -> None:  # fmt: skip
    """OUT/loss.csv and OUT/loss.png: loss against tokens seen."""
    import csv

    columns = ["step", "tokens", "train_loss", "heldout_loss", "learning_rate", "tokens_per_s"]
    with open(out / "loss.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([h["tokens"] for h in history], [h["train_loss"] for h in history], label="train")
    points = [h for h in history if h["heldout_loss"] is not None]
    ax.plot(
        [h["tokens"] for h in points], [h["heldout_loss"] for h in points], "o-", label="held-out"
    )
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label="initial − target drop")
    if reference_loss is not None:
        ax.axhline(reference_loss, color="green", linestyle="--", label="reference (held-out)")
    if fit is not None:
        tokens = torch.linspace(points[0]["tokens"], history[-1]["tokens"], 100).tolist()
        ax.plot(tokens, [fit(t) for t in tokens], "--", color="black", label="power-law fit")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("loss (nats per token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)


# --- the comparison report -------------------------------------------------------------------


def power_law(tokens, a, b, c):
    """L(t) = a + b·t^(-c), t in millions of tokens (the scale keeps the fit well conditioned):
    the form of the Kaplan/Chinchilla curves, with a the loss an endless run would approach."""
    import numpy as np

    return a + b * np.power(tokens, -c)


def tokens_to_reach(loss: float, a: float, b: float, c: float) -> float:
    """Tokens (total, not more) at which the fitted curve reaches LOSS; inf if it never does."""
    if loss <= a:
        return math.inf
    return 1e6 * (b / (loss - a)) ** (1 / c)


def fit_curve(points: list[tuple[int, float]], reference_loss: float, bootstraps: int = 200,
              seed: int = 0) -> dict:  # fmt: skip
    """Fit L(t) = a + b·t^(-c) to (tokens, loss) POINTS with scipy's curve_fit and estimate
    the tokens still needed to reach REFERENCE_LOSS. The uncertainty is a bootstrap: the fit
    repeated on resampled points; its 10th–90th percentiles are reported, with the share of
    resamples whose asymptote a lies above the reference (those never close the gap)."""
    import warnings

    import numpy as np
    from scipy.optimize import OptimizeWarning, curve_fit

    tokens = np.array([t for t, _ in points], dtype=float) / 1e6
    losses = np.array([loss for _, loss in points], dtype=float)
    if len(points) < 4:
        return {"ok": False, "why": f"{len(points)} points; the fit needs at least 4"}

    def fit(t, y):
        start = (max(0.0, y.min() - 1.0), max(1e-3, (y.max() - y.min())), 0.5)
        bounds = ([0.0, 0.0, 1e-3], [y.min(), np.inf, 3.0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            return curve_fit(power_law, t, y, p0=start, bounds=bounds, maxfev=20000)

    try:
        (a, b, c), covariance = fit(tokens, losses)
    except (RuntimeError, ValueError) as exc:
        return {"ok": False, "why": f"the fit did not converge: {exc}"}
    seen = float(tokens.max() * 1e6)
    needed = max(0.0, tokens_to_reach(reference_loss, a, b, c) - seen)
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(bootstraps):
        pick = rng.integers(0, len(points), len(points))
        if len(set(pick.tolist())) < 4:
            continue
        try:
            (ra, rb, rc), _ = fit(tokens[pick], losses[pick])
        except (RuntimeError, ValueError):
            continue
        estimates.append(max(0.0, tokens_to_reach(reference_loss, ra, rb, rc) - seen))
    finite = np.array([e for e in estimates if math.isfinite(e)])
    errors = np.sqrt(np.clip(np.diag(covariance), 0, None))
    return {
        "ok": True,
        "form": "L(t) = a + b * (t / 1e6)^(-c), t = tokens seen",
        "a": float(a), "b": float(b), "c": float(c),
        "a_std": float(errors[0]), "b_std": float(errors[1]), "c_std": float(errors[2]),
        "points": len(points),
        "tokens_seen": seen,
        "tokens_needed": needed,  # inf: the fitted asymptote is above the reference
        "bootstrap_fits": len(estimates),
        "bootstrap_unbounded_share": 1 - len(finite) / max(1, len(estimates)),
        "bootstrap_p10": float(np.percentile(finite, 10)) if len(finite) else None,
        "bootstrap_p90": float(np.percentile(finite, 90)) if len(finite) else None,
    }  # fmt: skip


def compare_and_report(out: Path, summary: dict, history: list[dict], held_out_blocks,
                       reference: Path, model_cache: Path, corpus, command: str,
                       started: float) -> dict:  # fmt: skip
    """Held-out loss of the reference model on the same blocks, the fit, and OUT/report.md,
    report.json and manifest.json. Returns report.json's content."""
    from omnicoach.artifacts import write_manifest
    from omnicoach.models.llm_loader import load_causal_lm

    _, reference_model = load_causal_lm(reference, model_cache)
    sums = held_out_sums(reference_model, held_out_blocks, torch.device("cpu"))
    reference_loss = (sums[0] / sums[1]).item()
    del reference_model
    # The warm-up steps are left out: a power law describes the loss after it, not the plateau
    # at ln(vocabulary) while the learning rate is still rising.
    after_warmup = [h for h in history if h["step"] > summary["config"]["warmup_steps"]]
    evaluated = [(h["tokens"], h["heldout_loss"]) for h in after_warmup if h["heldout_loss"]]
    fitted_on = "held-out evaluations after the warm-up"
    if len(evaluated) < 4:  # a short run: the per-step train loss is the only curve there is
        evaluated = [(h["tokens"], h["train_loss"]) for h in after_warmup]
        fitted_on = "train loss per step after the warm-up (fewer than 4 held-out evaluations)"
    fit = fit_curve(evaluated, reference_loss, seed=summary["config"]["seed"])
    ours = summary["final_heldout_loss"]
    report = {
        "heldout_loss": ours,
        "reference_model": str(reference),
        "reference_heldout_loss": reference_loss,
        "gap_nats": ours - reference_loss,
        "heldout_tokens": int(held_out_blocks.numel()),
        "heldout_exercises": corpus.held_out_ids,
        "corpus_documents": corpus.sources,
        "fitted_on": fitted_on,
        "fit": fit,
        **{k: summary[k] for k in ("parameters", "steps", "tokens", "processes", "stopped_by")},
        **{k: summary[k] for k in ("initial_loss", "target_loss", "target_reached")},
        "synthetic_fraction_this_run": summary["synthetic_fraction_this_run"],
        "training_seconds": summary["training_seconds"],
    }
    curve = None
    if fit["ok"]:
        a, b, c = fit["a"], fit["b"], fit["c"]
        curve = lambda t: float(power_law(max(t, 1.0) / 1e6, a, b, c))  # noqa: E731
    write_curve(out, history, summary["target_loss"], curve, reference_loss)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(report_markdown(report, summary["config"]))
    write_manifest(
        out, name="pretrain", command=command, seed=summary["config"]["seed"], started=started,
        config=summary["config"], steps=summary["steps"], tokens=summary["tokens"],
        heldout_loss=ours, reference_heldout_loss=reference_loss,
    )  # fmt: skip
    return report


def _tokens(n: float | None) -> str:
    if n is None:
        return "–"
    if not math.isfinite(n):
        return "unbounded"
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,.0f}"


def _target_line(report: dict) -> str:
    if report["initial_loss"] is None:
        return "Too few steps for an initial loss (the mean of the first 3)."
    reached = report["target_reached"]
    line = f"Initial loss {report['initial_loss']:.3f}; target {report['target_loss']:.3f} — "
    if not reached:
        return line + "not reached."
    return line + (
        f"reached at step {reached['step']} ({reached['tokens']:,} tokens, "
        f"{reached['seconds']:.0f} s of training)."
    )


def report_markdown(report: dict, config: dict) -> str:
    fit = report["fit"]
    lines = [
        "# Pretraining from random weights: comparison",
        "",
        f"Model: Llama, {config['num_layers']} layers × {config['hidden_size']}, "
        f"{config['num_heads']}/{config['num_kv_heads']} heads, "
        f"{report['parameters'] / 1e6:.1f} M parameters, seed {config['seed']}. "
        f"{report['steps']} steps, {report['tokens']:,} tokens, "
        f"{report['training_seconds']:.0f} s of training on {report['processes']} process(es); "
        f"stopped by {report['stopped_by']}. Synthetic share of rows this run: "
        f"{report['synthetic_fraction_this_run']:.2f} (asked: {config['synthetic_share']}).",
        "",
        _target_line(report),
        "",
        f"Held-out text: {report['heldout_tokens']:,} tokens, the knowledge-base entries of "
        f"{len(report['heldout_exercises'])} exercises never trained on.",
        "",
        "| model | held-out loss (nats/token) |",
        "|---|---|",
        f"| this run | {report['heldout_loss']:.3f} |",
        f"| {Path(report['reference_model']).name} | {report['reference_heldout_loss']:.3f} |",
        f"| gap | {report['gap_nats']:.3f} |",
        "",
        f"## Tokens still needed (fitted on the {report['fitted_on']})",
        "",
    ]
    if not fit["ok"]:
        lines.append(f"No estimate: {fit['why']}.")
    else:
        lines += [
            f"Fit: {fit['form']}: a = {fit['a']:.3f} ± {fit['a_std']:.3f}, "
            f"b = {fit['b']:.3f} ± {fit['b_std']:.3f}, c = {fit['c']:.3f} ± {fit['c_std']:.3f} "
            f"(± one standard error from the fit's covariance; {fit['points']} points).",
            "",
        ]
        if math.isinf(fit["tokens_needed"]):
            lines.append(
                f"The fitted asymptote a = {fit['a']:.3f} is above the reference's "
                f"{report['reference_heldout_loss']:.3f}: on this curve the gap never closes "
                "(unbounded) — more data, a bigger model or a new learning-rate phase would "
                "change the curve, not just continue it."
            )
        else:
            lines.append(
                f"Estimate: {_tokens(fit['tokens_needed'])} more tokens "
                f"(after {_tokens(fit['tokens_seen'])} seen)."
            )
        lines += [
            "",
            f"Bootstrap ({fit['bootstrap_fits']} refits on resampled points): "
            f"{fit['bootstrap_unbounded_share']:.0%} unbounded; finite estimates from "
            f"{_tokens(fit['bootstrap_p10'])} to {_tokens(fit['bootstrap_p90'])} "
            "(10th–90th percentile). An extrapolation far past the measured tokens is a "
            "rough guide, not a forecast.",
        ]
    lines += [
        "",
        "Curve: loss.png (data: loss.csv, log.jsonl). Config and seed: manifest.json.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """`python -m omnicoach.training.pretrain` / `accelerate launch` / `torchrun`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, field in PretrainConfig.__dataclass_fields__.items():
        flag = "--" + name.replace("_", "-")
        kind = str(field.type)
        if field.type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif name == "out":
            parser.add_argument(flag, type=Path, required=True)
        else:
            convert = Path if "Path" in kind else int if "int" in kind else float
            parser.add_argument(flag, type=convert, default=field.default)
    config = PretrainConfig(**vars(parser.parse_args()))
    try:
        summary = train_pretrain(
            config, command=" ".join(["python -m omnicoach.training.pretrain", *sys.argv[1:]])
        )
    except InvalidRequestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if int(os.environ.get("RANK", "0")) == 0:  # one summary, not one per process
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
