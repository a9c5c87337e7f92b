"""The `omnicoach` command: chat in the terminal and inspect models.

Errors a user can fix (unknown model, missing or corrupt model file, bad settings) print one
line on stderr and exit with status 2; `--debug` adds the traceback.
"""

import logging
import sys
import traceback
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from omnicoach.config import Settings, load_settings
from omnicoach.errors import OmnicoachError
from omnicoach.models.registry import ModelRegistry, size_on_disk

app = typer.Typer(
    help="omnicoach: a private, self-hosted yoga and fitness assistant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
_debug = False


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    global _debug
    _debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s")


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
    model: Annotated[
        str | None, typer.Option(help="Chat model name (see `omnicoach models`).")
    ] = None,
    system: Annotated[str | None, typer.Option(help="System prompt for this chat.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens per answer.")] = None,
    temperature: Annotated[float, typer.Option(help="0 = greedy (deterministic).")] = 0.2,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 0.9,
    seed: Annotated[int | None, typer.Option(help="Fix the sampling seed.")] = None,
    repetition_penalty: Annotated[float, typer.Option(help="Above 1 discourages loops.")] = 1.1,
) -> None:
    """Stream an answer to QUESTION, or open a multi-turn terminal chat."""
    from omnicoach.models.llm import SamplingParams

    settings, registry = _registry()
    with err.status(f"Loading {model or settings.chat_model}…"):
        llm = registry.chat(model)
    params = SamplingParams(
        max_tokens=max_tokens or settings.default_max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        repetition_penalty=repetition_penalty,
    )
    system_turn = [{"role": "system", "content": system}] if system else []

    if question is not None:
        _answer(llm, [*system_turn, {"role": "user", "content": question}], params)
        return

    err.print(
        f"[bold]omnicoach[/] chat with {llm.name}. "
        "Commands: /reset (new chat), /exit. Ctrl-C stops an answer."
    )
    history = list(system_turn)
    while True:
        try:
            line = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return
        if line == "/reset":
            history = list(system_turn)
            err.print("(new chat)")
            continue
        history.append({"role": "user", "content": line})
        try:
            reply = _answer(llm, history, params, prefix="coach> ")
        except OmnicoachError as exc:  # e.g. one message too long: say so and keep the session
            history.pop()
            err.print(f"[red]error:[/] {exc}")
            continue
        history.append({"role": "assistant", "content": reply})


def _answer(llm, messages: list[dict], params, prefix: str = "") -> str:
    """Stream one answer to stdout; Ctrl-C stops it and keeps what was said so far."""
    generation = llm.stream(messages, params)
    if generation.prompt.dropped_messages:
        err.print(
            f"(context full: dropped the {generation.prompt.dropped_messages} oldest messages)"
        )
    print(prefix, end="", flush=True)
    parts = []
    try:
        for delta in generation:
            parts.append(delta)
            print(delta, end="", flush=True)
    except KeyboardInterrupt:
        generation.close()
        err.print("\n(stopped)")
    print()
    return "".join(parts)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Start the HTTP server (OpenAI-compatible API; docs at /docs)."""
    import uvicorn

    from omnicoach.server import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    err.print(f"omnicoach: [bold]http://{settings.host}:{settings.port}[/] (API docs at /docs)")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command("models")
def list_models() -> None:
    """List every model: name, role, source, size on disk, licence, loaded or not."""
    settings, registry = _registry()
    table = Table("name", "role", "source", "size", "licence", "loaded")
    for spec in registry.specs():
        try:
            size = _human_size(size_on_disk(spec.locate()))
        except (OmnicoachError, OSError) as exc:
            size = f"missing ({exc})"
        default = (
            " (default)" if spec.name in (settings.chat_model, settings.embedding_model) else ""
        )
        table.add_row(
            spec.name + default,
            spec.role,
            spec.source,
            size,
            spec.licence,
            "yes" if registry.is_loaded(spec.name) else "no",
        )
    Console().print(table)


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
