"""The terminal chat (`omnicoach chat`): the assistant's turns printed as they stream.

The same pipeline as the HTTP API (omnicoach.assistant), so the same question gets the same
answer and sources here: routed, grounded, drawn when asked. The answer goes to stdout; what
the API sends beside it — sources, pictures drawn, warnings — goes to stderr, or with --json
all of it to stdout as one object. In a session, the conversation is kept in memory:
/image FILE and /audio FILE attach a picture or a spoken question to the next message
(/audio alone sends it), /reset starts again, /exit or Ctrl-D leaves, Ctrl-C stops an answer.
"""

import json
import shlex
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from omnicoach.assistant import (
    Answer,
    Assistant,
    Audio,
    Message,
    Picture,
    Text,
    TextDelta,
    TurnRequest,
)
from omnicoach.errors import InvalidRequestError, OmnicoachError

err = Console(stderr=True)


def attachments(image: Path | None, audio: Path | None) -> list:
    """The parts for --image / --audio (or /image, /audio): a missing file is an error."""
    parts = []
    for path, kind in ((image, Picture), (audio, Audio)):
        if path is None:
            continue
        try:
            data = Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from None
        where = "--image" if kind is Picture else "--audio"
        parts.append(Picture.from_bytes(data, where) if kind is Picture else Audio(data, where))
    return parts


class TerminalChat:
    def __init__(self, assistant: Assistant, request_defaults: dict, system: str | None):
        self.assistant, self.defaults = assistant, request_defaults
        self.system = [Message.text("system", system)] if system else []
        self.history: list[Message] = list(self.system)

    def ask(self, question: str, parts: list, as_json: bool = False, prefix: str = "") -> str:
        """One turn: QUESTION with its attached PARTS, printed as it streams (or, AS_JSON, as
        one object at the end). The user's message (spoken parts become their transcript) and
        the answer join the session's history."""
        message = Message("user", [*parts, *([Text(question)] if question else [])])
        request = TurnRequest([*self.history, message], **self.defaults)
        answer = Answer()
        turn = self.assistant.turn(request)
        started = False
        try:
            for event in turn:
                answer.add(event)
                if isinstance(event, TextDelta) and not as_json:
                    if not started:
                        print(prefix, end="", flush=True)
                        started = True
                    print(event.text, end="", flush=True)
        except KeyboardInterrupt:
            turn.cancel()
            err.print("\n(stopped)")
        if as_json:
            print(json.dumps(self._as_json(answer), ensure_ascii=False, indent=2))
        else:
            print()
            self._print_extras(answer)
        self.history += [message, Message.text("assistant", answer.text)]
        return answer.text

    def heard(self) -> str | None:
        """The transcript of the last spoken question, once its turn ran."""
        texts = [p.text for p in self.history[-2].parts if isinstance(p, Text)]
        return " ".join(texts) if texts else None

    def reset(self) -> None:
        self.history = list(self.system)

    def _print_extras(self, answer: Answer) -> None:
        for warning in answer.warnings:
            err.print(f"[yellow]warning:[/] {warning}")
        for source in answer.sources:
            err.print(f"[dim][{source['index']}] {source['title']} ({source['source']})[/]")
        for path in self._picture_paths(answer.pictures):
            err.print(f"picture: {path}")

    def _picture_paths(self, file_ids: list[str]) -> list[str]:
        files, db = self.assistant.files, self.assistant.db
        return [str(files.path(files.get(db, self.defaults["user"], i))) for i in file_ids]

    def _as_json(self, answer: Answer) -> dict:
        found = asdict(answer)
        found["route"] = asdict(answer.route) if answer.route else None
        found["pictures"] = self._picture_paths(answer.pictures)
        return found

    def session(self, parts: list) -> None:
        """Read questions until /exit or Ctrl-D; PARTS go with the first one."""
        while True:
            try:
                line = input("\nyou> ").strip()
            except (EOFError, KeyboardInterrupt):
                print()
                return
            command, _, argument = line.partition(" ")
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return
            if line == "/reset":
                self.reset()
                err.print("(new chat)")
                continue
            try:
                if command in ("/image", "/audio"):
                    path = Path(shlex.split(argument)[0]) if argument.strip() else None
                    if path is None:
                        raise InvalidRequestError(f"{command} needs a file: {command} FILE")
                    parts += attachments(*((path, None) if command == "/image" else (None, path)))
                    if command == "/image":
                        err.print(f"(picture {path.name} goes with your next message)")
                        continue
                    line = ""  # a spoken question is sent at once
                self.ask(line, parts, prefix="coach> ")
                if not line and (heard := self.heard()):
                    err.print(f"[dim](heard: {heard})[/]")
            except OmnicoachError as exc:  # e.g. a message too long: say so, keep the session
                err.print(f"[red]error:[/] {exc}")
            parts = []
