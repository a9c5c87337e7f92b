"""What a turn yields, in order: what the assistant decided and found (Routed, Notice,
Sources, Pictures), then Answering — everything before it may still fail as a whole — then the
answer's TextDelta events, Usage, and Done."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Routed:
    """The prompt router's label for the message ("image_generation", "conversation")."""

    label: str
    confidence: float


@dataclass(frozen=True)
class Notice:
    """Something the user should know that did not stop the answer: a doubtful transcript,
    a link that could not be read."""

    text: str


@dataclass(frozen=True)
class Sources:
    """What the answer's [1], [2]… refer to: {"index", "id", "title", "source"} each."""

    items: list[dict]


@dataclass(frozen=True)
class Pictures:
    """Pictures drawn for the answer, as stored files' ids."""

    file_ids: list[str]


@dataclass(frozen=True)
class Answering:
    """The answer starts: the question is stored, MODEL writes it."""

    model: str
    conversation_id: str | None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Done:
    """The answer ended: "stop", "length", or "cancelled"."""

    finish_reason: str


Event = Routed | Notice | Sources | Pictures | Answering | TextDelta | Usage | Done


@dataclass
class Answer:
    """A whole turn's events gathered: what a door that does not stream shows."""

    text: str = ""
    model: str = ""
    conversation_id: str | None = None
    route: Routed | None = None
    sources: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.text += event.text
        elif isinstance(event, Answering):
            self.model, self.conversation_id = event.model, event.conversation_id
        elif isinstance(event, Routed):
            self.route = event
        elif isinstance(event, Sources):
            self.sources = event.items
        elif isinstance(event, Notice):
            self.warnings.append(event.text)
        elif isinstance(event, Pictures):
            self.pictures = event.file_ids
        elif isinstance(event, Usage):
            self.prompt_tokens, self.completion_tokens = (
                event.prompt_tokens,
                event.completion_tokens,
            )
        elif isinstance(event, Done):
            self.finish_reason = event.finish_reason


def collect(events) -> Answer:
    answer = Answer()
    for event in events:
        answer.add(event)
    return answer
