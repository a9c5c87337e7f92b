"""The "chat" job: answer many conversations in the background through the assistant — the
same pipeline as the API and the terminal chat (omnicoach.assistant), so the same question
gets the same answer and sources here.

The input is an uploaded JSONL file, one conversation per line in OpenAI's messages format
(`{"messages": [{"role": "user", "content": "..."}]}`; text content only), or `questions`, a
list of single questions. The answers land in `answers.jsonl`, one per line in the input's
order, with their sources, warnings and usage; progress is the share answered.
"""

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from omnicoach.assistant import Assistant, Message, TurnRequest, collect
from omnicoach.errors import InvalidRequestError
from omnicoach.files import FileStore
from omnicoach.jobs.context import JobContext, Submission
from omnicoach.jobs.uploads import checked_upload
from omnicoach.links import LinkReader
from omnicoach.models.sampling import SamplingParams

ARTIFACT = "answers.jsonl"
MAX_CONVERSATIONS = 5000
ROLES = ("system", "user", "assistant")


class ChatParams(BaseModel):
    model_config = {"extra": "forbid"}

    file_id: str | None = Field(
        default=None,
        description='An uploaded JSONL file of the caller: one {"messages": [...]} per line.',
    )
    questions: list[str] | None = Field(
        default=None, max_length=MAX_CONVERSATIONS, description="Single questions to answer."
    )
    model: str | None = Field(default=None, description="A chat model; default: the server's.")
    answer_mode: Literal["grounded", "generative"] | None = Field(
        default=None, description="Who writes the facts; default: the server's answer_mode."
    )
    rag: bool | None = Field(default=None, description="Use the knowledge base and links.")
    temperature: float = Field(default=SamplingParams.temperature, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, description="Per answer.")
    seed: int | None = None

    @model_validator(mode="after")
    def _one_input(self) -> "ChatParams":
        if (self.file_id is None) == (self.questions is None):
            raise ValueError("give either file_id (a JSONL of conversations) or questions")
        if self.questions is not None and not all(q.strip() for q in self.questions):
            raise ValueError("questions must not be empty strings")
        return self


def read_conversations(path: Path) -> list[list[dict]]:
    """The conversations of a JSONL file; InvalidRequestError naming the first bad line."""
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
            if not messages or not all(
                m["role"] in ROLES and isinstance(m["content"], str) for m in messages
            ):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise InvalidRequestError(
                f'{path}:{number}: expected {{"messages": [{{"role": '
                '"user", "content": "..."}, ...]} with text content'
            ) from None
        conversations.append(messages)
    if not conversations:
        raise InvalidRequestError(f"{path} holds no conversations")
    if len(conversations) > MAX_CONVERSATIONS:
        raise InvalidRequestError(f"{path} holds over {MAX_CONVERSATIONS} conversations")
    return conversations


def prepare(params: ChatParams, caller: Submission) -> ChatParams:
    if params.file_id is not None:
        checked_upload(caller, params.file_id, read_conversations)
    return params.model_copy(update={"model": caller.chat_model(params.model)})


def run(ctx: JobContext, params: ChatParams) -> dict:
    files = FileStore(ctx.settings)
    if params.file_id is not None:
        conversations = read_conversations(
            files.path(files.get(ctx.db, ctx.user_id, params.file_id))
        )
    else:
        conversations = [[{"role": "user", "content": q}] for q in params.questions]
    registry = ctx.serving_registry  # the server's engine: the server's answers
    assistant = Assistant(ctx.settings, registry, ctx.db, files, LinkReader(ctx.settings))
    sampling = SamplingParams(
        max_tokens=params.max_tokens or ctx.settings.default_max_tokens,
        temperature=params.temperature,
        seed=params.seed,
    )
    ctx.log(f"answering {len(conversations)} conversations with {params.model}")
    out = ctx.add_artifact(ARTIFACT)
    with out.open("w", encoding="utf-8") as answers:
        for index, messages in enumerate(conversations):
            ctx.check_cancelled()
            request = TurnRequest(
                [Message.text(m["role"], m["content"]) for m in messages],
                user=ctx.user_id,
                model=params.model,
                params=sampling,
                max_tokens=params.max_tokens,
                grounding=params.rag,
                answer_mode=params.answer_mode,
            )
            answer = collect(assistant.turn(request))
            row = {
                "index": index,
                "question": messages[-1]["content"],
                "answer": answer.text,
                "model": answer.model,
                "sources": answer.sources,
                "warnings": answer.warnings,
                "finish_reason": answer.finish_reason,
                "usage": {
                    "prompt_tokens": answer.prompt_tokens,
                    "completion_tokens": answer.completion_tokens,
                },
            }
            answers.write(json.dumps(row, ensure_ascii=False) + "\n")
            ctx.progress((index + 1) / len(conversations))
    ctx.log(f"wrote {len(conversations)} answers to {ARTIFACT}")
    return {"answers": len(conversations), "model": params.model, "file": ARTIFACT}
