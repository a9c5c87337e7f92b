"""The `omnicoach` command: chat in the terminal and inspect models.

Errors a user can fix (unknown model, missing or corrupt model file, bad settings) print one
line on stderr and exit with status 2; `--debug` adds the traceback.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from omnicoach.config import Settings, load_settings
from omnicoach.errors import ConfigError, OmnicoachError
from omnicoach.models.registry import TUNED_CHAT_MODEL, ModelRegistry, size_on_disk

app = typer.Typer(
    help="omnicoach: a private, self-hosted yoga and fitness assistant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
_debug = False
WORKER_STOP_S = 10  # how long `serve --worker` waits for its worker to exit


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    global _debug
    _debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")
    # Ours, and huey's (a worker's "consumer started", "… executed in"), are for the user.
    for name in ("omnicoach", "huey"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        # The libraries' chatter — loading progress bars, "Loading SentenceTransformer model",
        # deprecation notices meant for the libraries' own users — is not for ours.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)


_EVAL_SECTIONS = "wer, router, sft, facts, vlm, imagegen, pretrain"  # report.SECTIONS


def _registry() -> tuple[Settings, ModelRegistry]:
    from omnicoach.threads import apply_threads

    settings = load_settings()
    apply_threads(settings.threads)
    return settings, ModelRegistry(settings)


@app.command()
def chat(
    question: Annotated[
        str | None, typer.Argument(help="Ask once and exit; omit for a session.")
    ] = None,
    image: Annotated[
        Path | None, typer.Option(help="A picture to ask about (with the question).")
    ] = None,
    audio: Annotated[
        Path | None, typer.Option(help="A spoken question (an audio file), answered as text.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Chat model name (see `omnicoach models`).")
    ] = None,
    system: Annotated[str | None, typer.Option(help="System prompt for this chat.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens per answer.")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="0 = greedy (deterministic); default 0.2.")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling mass; default 0.9.")] = None,
    seed: Annotated[int | None, typer.Option(help="Fix the sampling seed.")] = None,
    repetition_penalty: Annotated[
        float | None, typer.Option(help="Above 1 discourages loops; default 1.1.")
    ] = None,
    rag: Annotated[
        bool | None,
        typer.Option("--rag/--no-rag", help="Ground answers in the knowledge base and links."),
    ] = None,
    answer_mode: Annotated[
        str | None, typer.Option(help="grounded or generative (default: the setting).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer, sources and more as one JSON.")
    ] = False,
) -> None:
    """Answer QUESTION (with --image, --audio) or open a multi-turn terminal chat: the same
    assistant as the HTTP API, so the same answers and sources."""
    from omnicoach.assistant import Assistant
    from omnicoach.db.schema import LOCAL_USER_ID
    from omnicoach.files import FileStore
    from omnicoach.links import LinkReader
    from omnicoach.models.sampling import SamplingParams
    from omnicoach.terminal_chat import TerminalChat, attachments

    if answer_mode not in (None, "grounded", "generative"):
        raise ConfigError(f"--answer-mode must be grounded or generative, got {answer_mode!r}")
    settings, registry = _registry()
    chosen = {
        "max_tokens": max_tokens or settings.default_max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "seed": seed,
        "repetition_penalty": repetition_penalty,
    }
    params = SamplingParams(**{k: v for k, v in chosen.items() if v is not None})
    params.validate()  # a bad value is an error before any model loads
    assistant = Assistant(
        settings, registry, _database(settings), FileStore(settings), LinkReader(settings)
    )
    with err.status(f"Loading {model or settings.chat_model}…"):
        llm = registry.chat(model)
        if rag is not False and settings.rag:
            assistant.knowledge()
    defaults = {
        "user": LOCAL_USER_ID,
        "model": model,
        "params": params,
        "max_tokens": max_tokens,
        "grounding": rag,
        "answer_mode": answer_mode,
    }
    terminal = TerminalChat(assistant, defaults, system)
    parts = attachments(image, audio)
    if question is not None or audio is not None or as_json:  # one answer, then exit
        terminal.ask(question or "", parts, as_json=as_json)
        return
    err.print(
        f"[bold]omnicoach[/] chat with {llm.name}. Commands: /image FILE, /audio FILE, /reset, "
        "/exit. Ctrl-C stops an answer."
    )
    terminal.session(parts)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also run a job worker (child process).")
    ] = False,
) -> None:
    """Start the HTTP server (OpenAI-compatible API; docs at /docs)."""
    import uvicorn

    from omnicoach.server import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    err.print(f"omnicoach: [bold]http://{settings.host}:{settings.port}[/] (API docs at /docs)")
    with _child_worker(settings) if worker else contextlib.nullcontext():
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="info",
            timeout_keep_alive=settings.keep_alive_seconds,
        )


@contextlib.contextmanager
def _child_worker(settings: Settings):
    """`omnicoach worker` in a child process (same environment) while the server runs."""
    # Migrated before either process starts: two migrations of a new database at once would
    # both try to create the tables.
    _database(settings).close()
    child = subprocess.Popen(
        [sys.executable, "-m", "omnicoach.cli", *(["--debug"] if _debug else []), "worker"]
    )
    # uvicorn shuts down on SIGTERM, then raises the signal again to exit with it; as
    # SystemExit rather than the default (die on the spot) it reaches the finally below.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        child.terminate()  # SIGTERM: a running job is marked interrupted
        try:
            child.wait(WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@app.command()
def worker() -> None:
    """Run queued jobs until stopped: SIGTERM stops at once (the running job fails as
    interrupted), Ctrl-C lets the running job finish first (twice: at once)."""
    from omnicoach.jobs.worker import run_worker

    run_worker(load_settings())


@app.command("models")
def list_models() -> None:
    """List every model: name, role, source, size on disk, licence, loaded or not."""
    settings, registry = _registry()
    # Names and roles stay whole (they are typed back); the other columns wrap around them.
    specs = registry.specs()
    name = Column("name", min_width=max(len(spec.name) for spec in specs))
    role = Column("role", min_width=max(len(spec.role) for spec in specs))
    wrapped = [Column(header, overflow="fold") for header in ("source", "size", "licence")]
    table = Table(name, role, *wrapped, Column("loaded", min_width=3))
    for spec in specs:
        try:
            size = _human_size(size_on_disk(spec.locate()))
        except (OmnicoachError, OSError) as exc:
            size = f"missing ({exc})"
        defaults = (
            settings.chat_model,
            settings.embedding_model,
            settings.speech_to_text_model,
            settings.text_to_speech_model,
        )
        default = " (default)" if spec.name in defaults else ""
        table.add_row(
            spec.name + default,
            spec.role,
            spec.source,
            size,
            spec.licence,
            "yes" if registry.is_loaded(spec.name) else "no",
        )
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=140)  # piped: no screen to fit, so one line per model
    console.print(table)


train_app = typer.Typer(help="Train the product's models; each writes a trained artifact.")
app.add_typer(train_app, name="train")


@train_app.command("router")
def train_router_command(
    data: Annotated[
        Path,
        typer.Option(
            help="Training JSONL: {prompt, label} per line; validation.jsonl and test.jsonl "
            "beside it are used when present."
        ),
    ] = Path("data/router/train.jsonl"),
    out: Annotated[
        Path | None, typer.Option(help="Artifact directory; default: the configured router.")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 8,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps (quick tries).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    baselines: Annotated[
        bool, typer.Option(help="Also measure the zero-shot and logistic-regression baselines.")
    ] = True,
) -> None:
    """Fine-tune the prompt router (MiniLM + LoRA) and compare it with two baselines."""
    from omnicoach.models.bundled import minilm_dir
    from omnicoach.threads import apply_threads
    from omnicoach.training.router import RouterTraining, comparison_table, train_router

    settings = load_settings()
    apply_threads(os.cpu_count() or 1)  # training uses every core; serving's default is 1
    config = RouterTraining(
        data=data,
        out=out or settings.router_dir,
        base_encoder=minilm_dir(),
        epochs=epochs,
        max_steps=max_steps,
        seed=seed,
        baselines=baselines,
        command="omnicoach " + " ".join(sys.argv[1:]),
    )
    manifest = train_router(config, log=err.print)
    print(comparison_table(manifest))
    err.print(f"Wrote {config.out}")


@train_app.command("asr")
def train_asr_command(
    speech: Annotated[
        Path,
        typer.Option(
            help="Spoken clips: train.jsonl and validation.jsonl ({audio, text} per line) "
            "beside their audio (python -m omnicoach.data.speech_dataset makes the bundled set)."
        ),
    ] = Path("data/speech"),
    out: Annotated[Path, typer.Option(help="Artifact directory.")] = Path("artifacts/asr"),
    method: Annotated[
        str, typer.Option(help="decoder: train the decoder's layers; lora: a LoRA adapter.")
    ] = "decoder",
    epochs: Annotated[int, typer.Option(min=1)] = 4,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    learning_rate: Annotated[
        float | None, typer.Option(help="Default: 1e-4 (decoder) or 1e-3 (lora).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many steps (quick tries).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Fine-tune Whisper on spoken exercise names; serve it as whisper-tiny.en-yoga."""
    from tqdm import tqdm

    from omnicoach.models.bundled import whisper_tiny_en_dir
    from omnicoach.threads import apply_threads
    from omnicoach.training.asr import AsrTraining, train_asr

    if method not in ("decoder", "lora"):
        raise typer.BadParameter("must be decoder or lora", param_hint="--method")
    apply_threads(os.cpu_count() or 1)  # training uses every core; serving's default is 1
    config = AsrTraining(
        base=whisper_tiny_en_dir(),
        speech=speech,
        out=out,
        method=method,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_steps=max_steps,
        seed=seed,
        command="omnicoach " + " ".join(sys.argv[1:]),
    )
    manifest = train_asr(config, log=err.print, progress=lambda rows: tqdm(rows, unit="clip"))
    err.print(f"validation WER {manifest['metrics']['wer']:.1%}; wrote {config.out}")


@train_app.command("sft")
def train_sft_command(
    train: Annotated[Path, typer.Option(help='Chat JSONL: {"messages": [...]} per line.')],
    out: Annotated[Path, typer.Option(help="Output: adapter/, checkpoint/, loss.csv/png.")],
    validation: Annotated[
        Path | None, typer.Option(help="Validation JSONL; default: a seeded tenth of train.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Chat model to fine-tune (a fine-tuned one: its base; default: chat_model)."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    learning_rate: Annotated[float, typer.Option(min=0)] = 2e-4,
    lora_rank: Annotated[int, typer.Option(min=1)] = 16,
    max_length: Annotated[int, typer.Option(min=16)] = 512,
    max_steps: Annotated[int | None, typer.Option(min=1)] = None,
    eval_every: Annotated[int, typer.Option(min=1, help="Validation loss every N steps.")] = 50,
    gradient_checkpointing: Annotated[
        bool, typer.Option(help="Recompute activations: less memory, ~30 % slower.")
    ] = True,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if present.")] = True,
    init_adapter: Annotated[
        Path | None, typer.Option(help="Start from this trained adapter instead of a new one.")
    ] = None,
    ship: Annotated[
        Path | None,
        typer.Option(
            help="Also write the best adapter as a shipped artifact, with manifest "
            "(e.g. artifacts/sft-lora)."
        ),
    ] = None,
) -> None:
    """LoRA fine-tune of the chat model (QLoRA when CUDA and bitsandbytes are present). For
    DDP: accelerate launch --multi_gpu --num_processes 2 -m omnicoach.training.sft --train …
    --out … (on a CPU too: gloo)."""
    from omnicoach.threads import apply_threads
    from omnicoach.training.sft import SFTConfig, ship_adapter, train_sft, training_device

    settings, registry = _registry()
    apply_threads(os.cpu_count() or 1)  # training uses every core; serving's default is 1
    config = SFTConfig(
        train=train,
        out=out,
        base_model=registry.base_spec(model or settings.chat_model).locate(),
        validation=validation,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lora_rank=lora_rank,
        max_length=max_length,
        max_steps=max_steps,
        eval_every=eval_every,
        gradient_checkpointing=gradient_checkpointing,
        resume=resume,
        init_adapter=init_adapter,
        model_cache=settings.model_cache_dir,
    )
    started = time.time()
    summary = train_sft(config, log=err.print)
    err.print(
        f"{summary['method']}: {summary['steps']} steps, best validation loss "
        f"{summary['best_validation_loss']:.4f}; adapter in {summary['adapter']}"
    )
    if ship:
        command = "omnicoach " + " ".join(sys.argv[1:])
        ship_adapter(summary, out, ship, command, started, device=training_device())
        err.print(f"Wrote {ship} (the {TUNED_CHAT_MODEL} chat model loads it)")


@train_app.command("vlm")
def train_vlm_command(
    stage: Annotated[int, typer.Option(min=1, max=2, help="1: projector only; 2: + LoRA.")],
    train: Annotated[Path, typer.Option(help="LLaVA JSON (data/vlm_dataset.py).")],
    out: Annotated[Path, typer.Option(help="Output: projector, adapter/, checkpoint/, loss.")],
    images: Annotated[
        Path | None, typer.Option(help="Image folder; default: the JSON's folder.")
    ] = None,
    validation: Annotated[
        Path | None, typer.Option(help="Validation LLaVA JSON; default: a tenth of train.")
    ] = None,
    projector: Annotated[
        Path | None, typer.Option(help="Stage 2: the stage-1 output to start from.")
    ] = None,
    model: Annotated[str, typer.Option(help="Chat model (name or directory).")] = TUNED_CHAT_MODEL,
    encoder: Annotated[
        str, typer.Option(help='"efficientnet-lite0" or a local CLIP/SigLIP directory.')
    ] = "efficientnet-lite0",
    grid: Annotated[int, typer.Option(min=1, max=7, help="Feature tokens: GRID×GRID.")] = 1,
    tokens_per_feature: Annotated[
        int, typer.Option(min=1, help="Stage 1: image tokens per feature token.")
    ] = 10,
    precision: Annotated[
        str | None, typer.Option(help='"bf16" or "no"; default: bf16 where the CPU has it.')
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 1,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    learning_rate: Annotated[
        float | None, typer.Option(min=0, help="Default 1e-3 (stage 1), 2e-4 (stage 2).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use N conversations only.")] = None,
    max_length: Annotated[
        int, typer.Option(min=16, help="Tokens per conversation; longer ones are cut.")
    ] = 384,
    max_steps: Annotated[int | None, typer.Option(min=1)] = None,
    eval_every: Annotated[int, typer.Option(min=1, help="Validation loss every N steps.")] = 50,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if present.")] = True,
    ship: Annotated[
        Path | None,
        typer.Option(help="Also write the result as a shipped artifact (e.g. artifacts/vlm)."),
    ] = None,
) -> None:
    """Train the vision-language model, LLaVA's way: stage 1 aligns the image projector on
    captions, stage 2 tunes projector and LoRA on visual conversations."""
    from omnicoach.threads import apply_threads
    from omnicoach.training.sft import training_device
    from omnicoach.training.vlm import VLMConfig, train_vlm
    from omnicoach.training.vlm import ship as ship_vlm

    settings, _ = _registry()
    apply_threads(os.cpu_count() or 1)
    config = VLMConfig(
        stage=stage,
        train=train,
        out=out,
        chat_model=model,
        images=images,
        validation=validation,
        projector=projector,
        encoder=encoder,
        grid=grid,
        tokens_per_feature=tokens_per_feature,
        precision=precision,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        limit=limit,
        max_length=max_length,
        max_steps=max_steps,
        eval_every=eval_every,
        checkpoint_every=eval_every,
        resume=resume,
        model_cache=settings.model_cache_dir,
    )
    started = time.time()
    summary = train_vlm(config, log=err.print)
    err.print(
        f"stage {stage}: {summary['steps']} steps, best validation loss "
        f"{summary['best_validation_loss']:.4f}; output in {out}"
    )
    if ship:
        command = "omnicoach " + " ".join(sys.argv[1:])
        ship_vlm(summary, out, ship, command, started, device=training_device())
        err.print(f"Wrote {ship}")


@train_app.command("imagegen")
def train_imagegen_command(
    stage: Annotated[
        str,
        typer.Option(help='"autoencoder", then "unet"; "decoder" sharpens the decoder alone.'),
    ],
    out: Annotated[Path, typer.Option(help="Output: the model, checkpoint/, samples/, loss.")],
    images: Annotated[
        Path,
        typer.Option(help="Rendered illustrations (data/exercise_images: train/ and test/)."),
    ] = Path("data/drawing-images"),
    autoencoder: Annotated[
        Path | None,
        typer.Option(help="Stages unet, decoder: the trained autoencoder (OUT/autoencoder)."),
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Go on from a shipped artifact's model of the stage.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[
        float | None, typer.Option(min=0, help="Default 5e-4 (autoencoder, decoder), 2e-4 (UNet).")
    ] = None,
    max_steps: Annotated[
        int,
        typer.Option(min=0, help="Stop at this step (all runs); a run past it only saves."),
    ] = 1000,
    max_minutes: Annotated[
        float | None, typer.Option(min=0, help="Stop cleanly after this long; resume later.")
    ] = None,
    eval_every: Annotated[int, typer.Option(min=1)] = 250,
    sample_every: Annotated[int, typer.Option(min=1)] = 500,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 100,
    precision: Annotated[
        str | None, typer.Option(help='"bf16" or "no"; default: bf16 where the CPU has it.')
    ] = None,
    ema_decay: Annotated[
        float, typer.Option(min=0, max=1, help="Stage unet: weight averaging; 0 turns it off.")
    ] = 0.999,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if present.")] = True,
    ship: Annotated[
        Path | None, typer.Option(help="Stage unet: also write artifacts/imagegen.")
    ] = None,
) -> None:
    """Train the image generator from scratch: the autoencoder, then the latent UNet."""
    from omnicoach.threads import apply_threads
    from omnicoach.training.imagegen import ImageGenConfig, train_imagegen
    from omnicoach.training.imagegen import ship as ship_imagegen
    from omnicoach.training.sft import training_device

    apply_threads(os.cpu_count() or 1)
    config = ImageGenConfig(
        stage=stage,
        out=out,
        images=images,
        autoencoder=autoencoder,
        init=init,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_steps=max_steps,
        max_minutes=max_minutes,
        eval_every=eval_every,
        sample_every=sample_every,
        checkpoint_every=checkpoint_every,
        precision=precision,
        ema_decay=ema_decay,
        resume=resume,
    )
    started = time.time()
    summary = train_imagegen(config, log=err.print)
    err.print(
        f"{stage}: step {summary['steps']} of {max_steps}, validation loss "
        f"{summary['last_validation_loss']:.4f}; output in {out}"
    )
    if ship:
        if stage != "unet":
            raise typer.BadParameter("--ship is for stage unet (it ships both models)")
        command = "omnicoach " + " ".join(sys.argv[1:])
        ship_imagegen(out, ship, command, started, device=training_device())
        err.print(f"Wrote {ship}")


@train_app.command("alignment")
def train_alignment_command(
    images: Annotated[
        Path, typer.Option(help="Rendered images (data/exercise_images: train/ and test/).")
    ] = Path("data/exercise-images"),
    per_exercise: Annotated[int, typer.Option(min=1, help="Training renders per exercise.")] = 40,
    steps: Annotated[int, typer.Option(min=1)] = 1500,
    seed: int = 0,
    ship: Annotated[Path, typer.Option(help="Where the artifact goes.")] = Path(
        "artifacts/alignment"
    ),
) -> None:
    """Train the LiT-style image–text alignment heads (this project's CLIP, for CLIP score)."""
    from omnicoach.models.image_encoder import ImageEncoder
    from omnicoach.threads import apply_threads
    from omnicoach.training.alignment import AlignmentConfig, train_alignment
    from omnicoach.training.alignment import ship as ship_alignment

    _, registry = _registry()
    apply_threads(os.cpu_count() or 1)
    started = time.time()
    config = AlignmentConfig(images=images, per_exercise=per_exercise, steps=steps, seed=seed)
    encoder = ImageEncoder(grid=1)
    alignment, summary = train_alignment(config, encoder, registry.embedder(), log=err.print)
    command = "omnicoach " + " ".join(sys.argv[1:])
    ship_alignment(alignment, summary, ship, command, started, seed)
    err.print(f"Wrote {ship}")


@train_app.command("pretrain")
def train_pretrain_command(
    out: Annotated[
        Path, typer.Option(help="Output: log.jsonl, loss.csv/png, checkpoint/, report.md.")
    ] = Path("var/train/pretrain"),
    max_minutes: Annotated[
        float, typer.Option(min=0.1, help="Training-time budget of this run.")
    ] = 10.0,
    max_steps: Annotated[int | None, typer.Option(min=1)] = None,
    synthetic_workers: Annotated[
        int, typer.Option(min=0, help="Processes generating text with the chat model.")
    ] = 1,
    synthetic_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of training rows from generated text.")
    ] = 0.5,
    seed: Annotated[int, typer.Option()] = 0,
    hidden_size: Annotated[int, typer.Option(min=8)] = 256,
    num_layers: Annotated[int, typer.Option(min=1)] = 6,
    block_size: Annotated[int, typer.Option(min=8)] = 128,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    learning_rate: Annotated[float, typer.Option(min=0)] = 2e-3,
    target_drop: Annotated[
        float, typer.Option(min=0, help="Target: the initial loss minus this many nats.")
    ] = 1.0,
    stop_at_target: Annotated[
        bool, typer.Option(help="Stop when the target is reached (else: train the budget).")
    ] = True,
    eval_every: Annotated[int, typer.Option(min=1, help="Held-out loss every N steps.")] = 10,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint if present.")] = True,
    report: Annotated[
        bool, typer.Option(help="At the end, compare with SmolLM2-135M and fit the curve.")
    ] = True,
) -> None:
    """Pretrain a small Llama from random weights on the project's texts plus text that
    SmolLM2 generates meanwhile, and compare it with SmolLM2-135M. For DDP: accelerate launch
    --multi_gpu --num_processes 2 -m omnicoach.training.pretrain --out … (on a CPU too: gloo)."""
    from omnicoach.training.pretrain import PretrainConfig, train_pretrain

    settings = load_settings()
    config = PretrainConfig(
        out=out,
        max_minutes=max_minutes,
        max_steps=max_steps,
        synthetic_workers=synthetic_workers,
        synthetic_share=synthetic_share,
        seed=seed,
        hidden_size=hidden_size,
        num_layers=num_layers,
        block_size=block_size,
        batch_size=batch_size,
        learning_rate=learning_rate,
        target_drop=target_drop,
        stop_at_target=stop_at_target,
        eval_every=eval_every,
        resume=resume,
        report=report,
        model_cache=settings.model_cache_dir,
    )
    command = "omnicoach " + " ".join(sys.argv[1:])
    summary = train_pretrain(config, log=err.print, command=command)
    reached = summary["target_reached"]
    err.print(
        f"{summary['steps']} steps, {summary['tokens']:,} tokens; stopped by "
        f"{summary['stopped_by']}; held-out loss {summary['final_heldout_loss']:.3f}; target "
        + (f"reached at step {reached['step']}" if reached else "not reached")
    )
    if "report" in summary:
        print((out / "report.md").read_text())


eval_app = typer.Typer(
    help="Evaluate the product's models on held-out data; each writes a report. With no "
    "command: `eval all` (every evaluation, one report in reports/latest)."
)
app.add_typer(eval_app, name="eval")


@eval_app.callback(invoke_without_command=True)
def _eval_default(ctx: typer.Context) -> None:
    """With no command: `eval all` with its defaults."""
    if ctx.invoked_subcommand is None:
        eval_all_command()


@eval_app.command("all")
def eval_all_command(
    only: Annotated[
        str | None,
        typer.Option(help="Run only these, e.g. router,wer. Sections: " + _EVAL_SECTIONS + "."),
    ] = None,
    skip: Annotated[str | None, typer.Option(help="Leave these out, e.g. sft.")] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Small subsets: a smoke run, labelled QUICK throughout (default --out "
            "var/eval-quick, never reports/latest).",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Report directory (default reports/latest).")
    ] = None,
    reuse: Annotated[
        str,
        typer.Option(help="Read these from their existing report in reports/ instead of rerun."),
    ] = "pretrain",
    rerun: Annotated[
        str | None,
        typer.Option(help="Rerun these although --reuse names them (pretrain: 10 min training)."),
    ] = None,
    threads: Annotated[int, typer.Option(min=0, help="Torch threads; 0: every core.")] = 0,
) -> None:
    """Every evaluation in turn (word error rate, router, fine-tune, vision, image generator,
    pretraining) into one markdown report with PNG plots: OUT/README.md. A failing section is
    reported and the others still run; the exit status is then 1."""
    from omnicoach.evaluation.report import choose, run_report
    from omnicoach.threads import apply_threads

    try:
        names, reused = choose(only, skip, reuse, rerun)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    out = out or Path("var/eval-quick" if quick else "reports/latest")

    def models():
        settings, registry = _registry()
        apply_threads(threads or os.cpu_count() or 1)  # one long batch job: every core
        return settings, registry

    command = "omnicoach eval all" + "".join(
        f" --{flag} {value}"
        for flag, value in (("only", only), ("skip", skip), ("out", out), ("rerun", rerun))
        if value
    )
    if quick:
        command += " --quick"
    if reuse != "pretrain":
        command += f" --reuse '{reuse}'"
    try:
        results = run_report(
            names, out, quick=quick, reuse=reused, registry_factory=models, log=err.print,
            command=command,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    failed = [r.name for r in results if r.status == "failed"]
    err.print(f"Wrote {out}/README.md" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        raise typer.Exit(1)


@eval_app.command("sft")
def eval_sft_command(
    out: Annotated[Path, typer.Option(help="Report directory.")] = Path("reports/sft"),
    data: Annotated[Path, typer.Option(help="Held-out splits.")] = Path("data/sft"),
    per_cell: Annotated[
        int, typer.Option(min=1, help="Generated answers per split and language.")
    ] = 24,
    perplexity_per_cell: Annotated[
        int, typer.Option(min=1, help="Reference answers scored per split and language.")
    ] = 60,
    seed: int = 0,
) -> None:
    """Base vs fine-tuned (LoRA), each with and without retrieval: perplexity, semantic
    similarity and BLEU on held-out phrasings and held-out exercises, English and Bengali."""
    from tqdm import tqdm

    from omnicoach.evaluation.fine_tune import FineTuneEvaluation, markdown_report, write_report
    from omnicoach.threads import apply_threads

    settings, registry = _registry()
    apply_threads(os.cpu_count() or 1)  # one long batch job: every core
    evaluation = FineTuneEvaluation(registry, settings, data, log=err.print, progress=tqdm)
    report = evaluation.run(per_cell, perplexity_per_cell, seed)
    write_report(report, out)
    print(markdown_report(report))
    err.print(f"Wrote {out}/README.md and results.json")


@eval_app.command("facts")
def eval_facts_command(
    out: Annotated[Path, typer.Option(help="Report directory.")] = Path("reports/facts"),
    questions: Annotated[Path, typer.Option(help="A question set (JSONL).")] = Path(
        "data/fact-questions/test.jsonl"
    ),
    configs: Annotated[
        str | None,
        typer.Option(
            help="answer_mode:model pairs, e.g. grounded:smollm2-135m-yoga; default: grounded "
            "and generative, each with the fine-tune and its base."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    generative_every: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Generative answers for every Nth question only (they take ~20 s each in "
            "Bengali on 2 cores); the report also compares every configuration on those. "
            "Default: 3 (evaluation/facts.GENERATIVE_EVERY).",
        ),
    ] = None,
) -> None:
    """Fact accuracy on held-out questions about the knowledge base's exercises (English and
    Bengali), answered through the assistant: grounded vs generative, base vs fine-tune."""
    from tqdm import tqdm

    from omnicoach.assistant import Assistant
    from omnicoach.evaluation.facts import (
        GENERATIVE_EVERY,
        FactEvaluation,
        load_questions,
        markdown_report,
        parse_configs,
        write_report,
    )

    try:
        chosen = parse_configs(configs)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    settings, registry = _registry()
    items = load_questions(questions)[:limit]
    evaluation = FactEvaluation(Assistant(settings, registry), items, err.print, tqdm)
    report = evaluation.run(
        chosen,
        generative_every or GENERATIVE_EVERY,
        done=lambda so_far: write_report(so_far, out, str(questions)),
    )
    print("\n".join(markdown_report(report, str(questions))))
    err.print(f"Wrote {out}/README.md and results.json")


@eval_app.command("imagegen")
def eval_imagegen_command(
    out: Annotated[Path, typer.Option(help="Report directory.")] = Path("reports/imagegen"),
    images: Annotated[
        Path, typer.Option(help="The real renders to compare with (train/ and test/ splits).")
    ] = Path("data/drawing-images"),
    alignment: Annotated[
        Path, typer.Option(help="The alignment model (omnicoach train alignment).")
    ] = Path("artifacts/alignment"),
    seed: int = 0,
    guidance: Annotated[float | None, typer.Option(min=0, help="Default: the server's.")] = None,
    sweep_guidance: Annotated[
        str | None,
        typer.Option(help='Only compare guidance scales, e.g. "2,4,6,8" (a training wording).'),
    ] = None,
) -> None:
    """The image generator on held-out prompt wordings: exercise recognised, CLIP score (the
    alignment model's), FID on EfficientNet-Lite0 features; DDIM 50 steps against DPM-Solver++
    with fewer."""
    from omnicoach.evaluation.image_generation import (
        ImageGenEvaluation,
        markdown_report,
        write_report,
    )
    from omnicoach.models.alignment import load_alignment
    from omnicoach.models.image_encoder import ImageEncoder
    from omnicoach.threads import apply_threads

    settings, registry = _registry()
    apply_threads(os.cpu_count() or 1)
    generator = registry.image_generator()
    aligner = load_alignment(alignment, ImageEncoder(grid=1), registry.embedder())
    evaluation = ImageGenEvaluation(generator.pipeline, aligner, images)
    if sweep_guidance:
        scales = [float(scale) for scale in sweep_guidance.split(",")]
        for row in evaluation.sweep_guidance(scales):
            print(f"guidance {row['guidance_scale']:g}: recognised {row['recognised']:.1%}, "
                  f"CLIP score {row['clip_score']:.1f}")  # fmt: skip
        return
    if guidance is not None:
        evaluation.guidance = guidance
    report = evaluation.run(seed=seed)
    report["model"] = generator.name
    write_report(report, out)
    print(markdown_report(report))
    err.print(f"Wrote {out}/README.md and results.json")


@eval_app.command("spoken-names")
def eval_spoken_names_command(
    out: Annotated[Path, typer.Option(help="Report directory.")] = Path("reports/spoken-names"),
    speech: Annotated[
        Path, typer.Option(help="Spoken questions (python -m omnicoach.data.speech_dataset).")
    ] = Path("data/speech"),
) -> None:
    """Exercise names heard by speech to text, on held-out spoken questions (speakers and
    templates no training clip has): the bundled Whisper and the fine-tuned one, each alone,
    told the knowledge base's names, and with the name resolver after decoding."""
    from tqdm import tqdm

    from omnicoach.evaluation.spoken_names import evaluate, markdown_report, write_report

    if not (speech / "test.jsonl").is_file():
        raise ConfigError(
            f"no spoken questions in {speech}: make them with "
            f"`python -m omnicoach.data.speech_dataset --out {speech}` (~5 minutes)"
        )
    _, registry = _registry()
    from omnicoach.models.registry import BASE_SPEECH_MODEL, TUNED_SPEECH_MODEL

    recognizers = {
        "Whisper tiny.en": registry.speech_to_text(BASE_SPEECH_MODEL),
        "fine-tuned": registry.speech_to_text(TUNED_SPEECH_MODEL),
    }
    piper = registry.text_to_speech()
    report = evaluate(recognizers, speech, piper, lambda rows: tqdm(rows, unit="clip"))
    write_report(report, out)
    print("\n".join(markdown_report(report)))
    err.print(f"Wrote {out}/README.md and results.json")


@eval_app.command("vlm")
def eval_vlm_command(
    out: Annotated[Path, typer.Option(help="Report directory.")] = Path("reports/vlm"),
    images: Annotated[Path, typer.Option(help="Rendered images (train/ and test/ splits).")] = Path(
        "data/exercise-images"
    ),
    per_exercise: Annotated[int, typer.Option(min=1, help="Test images per exercise.")] = 10,
    how_per_exercise: Annotated[
        int, typer.Option(min=0, help='"…and how do I do it?" answers per exercise.')
    ] = 2,
    seed: int = 0,
) -> None:
    """The vision-language model on held-out rendered images: exercise-name accuracy (English,
    Bengali) against no-image and nearest-neighbour baselines, answer similarity and the share
    of the steps given; alone and as served (the knowledge base's facts)."""
    from omnicoach.evaluation.vision import VisionEvaluation, markdown_report, write_report
    from omnicoach.threads import apply_threads

    settings, registry = _registry()
    apply_threads(os.cpu_count() or 1)
    from omnicoach.assistant import Assistant

    evaluation = VisionEvaluation(Assistant(settings, registry), images)
    report = evaluation.run(per_exercise, how_per_exercise, seed)
    write_report(report, images, out)
    print(markdown_report(report))
    err.print(f"Wrote {out}/README.md and results.json")


keys_app = typer.Typer(help="API keys: each key is a user with its own conversations, files, jobs.")
app.add_typer(keys_app, name="keys")


def _database(settings: Settings | None = None):
    """The database, migrated to the newest schema."""
    from omnicoach.db import Database

    db = Database((settings or load_settings()).database)
    db.migrate()
    return db


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="A name for the key's user.")]) -> None:
    """Create a user with a new key; turns auth on. The key is shown only this once."""
    from omnicoach.users import create_key

    key = create_key(_database(), name)
    err.print(f"Created user [bold]{name}[/]. Its key (shown only now; it is stored hashed):")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List the users that have keys (configured keys show as key-<hash prefix>)."""
    from omnicoach.users import list_users

    table = Table("name", "created")
    for user in list_users(_database()):
        table.add_row(user.name, time.strftime("%Y-%m-%d %H:%M", time.localtime(user.created_at)))
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The user to remove.")]) -> None:
    """Delete a user, its key and everything it owns."""
    from omnicoach.users import revoke

    revoke(_database(), name)
    err.print(f"Revoked {name}.")


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def main() -> None:
    try:
        app()
    except OmnicoachError as exc:
        if _debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
