"""How a question is answered: what it is about, then who writes the answer.

With grounding on, the last question is read in this order:

1. safety (knowledge/safety.py): a warning sign gets "stop, see a professional" first, and
   nothing but the entry's cautions after it;
2. what it is about — the exercise it names (knowledge/names.py: names beat embeddings); if it
   names none, the conversation's: the exercise an earlier question named, or the user's own
   photo (a picture the assistant drew counts only when asked about in so many words);
3. several exercises fit ("the warrior pose"): ask which one; one the knowledge base does not
   have: say so, name checked ones that may be close, and give a general answer marked as
   unchecked (grounded: advice true of any exercise; generative: the chat model's, in English);
4. what it asks (knowledge/aspects.py), several aspects at once if need be.

Who writes the facts is the `answer_mode`: "grounded" (the default) takes them from the entry
(knowledge/answers.py), cited; "generative" gives the chat model the entry's passages as
numbered sources and lets it write — for a model large enough to keep to them. Either way,
safety advice, "which one?" and "no checked entry" are fixed text. A question about nothing in
the knowledge base is the chat model's, with the passages and links retrieval finds for it.

A picture's exercise is named by the vision model (knowledge/pictures.py) and answered from
the entry like a named one; a picture of no known exercise, or a question about it the
knowledge base does not answer ("what colour is my shirt?"), is the vision model's own.
"""

import re
from dataclasses import dataclass, field, replace

from omnicoach.assistant.pictures import ABOUT_A_PICTURE, newest_picture, visual_context
from omnicoach.assistant.replies import FixedReply, PrefixedReply
from omnicoach.assistant.sources import link_passages, sources_for
from omnicoach.errors import OmnicoachError
from omnicoach.knowledge import answers, safety
from omnicoach.knowledge.answers import PASSAGE_OF_ASPECT
from omnicoach.knowledge.grounding import grounded_messages, source_list
from omnicoach.knowledge.names import Resolution
from omnicoach.models.romanise import has_bengali

# A question that refers back to something said before: "it", "this one", "এটা".
REFERS_BACK = re.compile(
    r"\b(it|its|this|that|these|those|them|one)\b|এটা|এটি|এটার|এটির|এই|ওটা|সেটা|এর\b",
    re.IGNORECASE,
)


@dataclass
class Plan:
    """An answer ready to stream: REPLY yields its text; GENERATED ones hold a generation slot
    while they run."""

    reply: object
    model: str
    generated: bool
    sources: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # drawn for it: stored files' ids


@dataclass(frozen=True)
class Subject:
    """What the last question is about: a named exercise, several candidates, one the
    knowledge base lacks, or a picture (the index of its message, and the picture)."""

    resolution: Resolution = Resolution()
    picture: tuple | None = None


class Answering:
    """One turn's answer: ASSISTANT (its knowledge, models, pictures and gates), the
    REQUEST, the chat model LLM, whether to ground it, and who writes the facts (MODE)."""

    def __init__(self, assistant, request, llm, grounding: bool, mode: str):
        self.assistant, self.request, self.llm = assistant, request, llm
        self.settings = assistant.settings
        self.grounding, self.mode = grounding, mode
        self.params = request.params

    # --- the plan ------------------------------------------------------------------------

    def plan(self, messages: list[dict]) -> Plan:
        question = messages[-1]["content"] if messages[-1]["role"] == "user" else ""
        if not self.grounding:
            return self._ungrounded(messages)
        knowledge = self.assistant.knowledge()
        lang = "bn" if has_bengali(question) else "en"
        check = safety.check(question)
        subject = self._subject(messages, knowledge)
        if subject.picture is not None:
            planned = self._about_picture(messages, subject.picture, check, lang)
            if planned is not None:
                return planned
            return self._vision_own(messages, subject.picture)
        found = subject.resolution
        if found.exercise:
            aspects = knowledge.asks(question) or ["what"]
            return self._about_exercise(messages, found.exercise, aspects, check, lang)
        if found.candidates:
            entries = [knowledge.entries[i] for i in found.candidates]
            return self._fixed(
                messages, _with_advice(check, lang, answers.which_one(entries, lang))
            )
        if found.unknown:
            return self._unknown(messages, found.unknown, check, lang)
        if check.stops_exercise:
            return self._fixed(messages, check.advice(lang))
        return self._open(messages, prefix=check.advice(lang))

    def _subject(self, messages: list[dict], knowledge) -> Subject:
        """What the last question is about: itself, else the conversation (see the module)."""
        last = messages[-1]
        if last.get("pictures") or last.get("image_files"):
            return Subject(picture=self._picture(messages))
        question = last["content"]
        named = knowledge.names.resolve(question)
        if named.named:
            return Subject(named)
        store, user = self.assistant.pictures, self.request.user
        if ABOUT_A_PICTURE.search(question):  # "what pose is in the picture you drew?"
            found = newest_picture(messages, store, user, drawings=True)
            if found is not None:
                return Subject(picture=found)
        if not knowledge.asks(question) and not REFERS_BACK.search(question):
            return Subject()  # a new, open question: "how often should I train?"
        for index in range(len(messages) - 2, -1, -1):
            message = messages[index]
            if message["role"] != "user":
                continue
            if message.get("pictures") or message.get("image_files"):
                picture = newest_picture(messages[: index + 1], store, user)
                if picture is not None:
                    return Subject(picture=picture)
            earlier = knowledge.names.resolve(message["content"])
            if earlier.exercise or earlier.unknown:
                return Subject(earlier)
        return Subject()

    def _picture(self, messages: list[dict]):
        return newest_picture(messages, self.assistant.pictures, self.request.user)

    # --- answers from the knowledge base -------------------------------------------------

    def _about_exercise(
        self, messages, exercise_id, aspects, check, lang, this_is=False, picture=False
    ) -> Plan:
        """The answer about EXERCISE_ID's ASPECTS. A picture's exercise is always answered from
        the entry: the vision model is the bundled one, whatever the chat model."""
        knowledge = self.assistant.knowledge()
        entry = knowledge.entries[exercise_id]
        if check.stops_exercise:  # no advice on doing it, only what to be careful of
            aspects = ["cautions"]
        cautions = check.level is not None or safety.is_risky(entry)
        if self.mode == "generative" and not picture:
            asked = [*aspects, *(["cautions"] if cautions else [])]
            kinds = list(dict.fromkeys(PASSAGE_OF_ASPECT[a] for a in asked))
            chosen = [knowledge.passage(exercise_id, lang, kind) for kind in kinds]
            return self._generated(messages, chosen, prefix=check.advice(lang))
        written = answers.facts_answer(
            entry,
            aspects,
            lang,
            knowledge.vocabulary,
            advice=check.advice(lang),
            cautions=cautions,
            this_is=this_is,
        )
        passages = [knowledge.passage(exercise_id, lang, kind) for kind in written.passages]
        # About a picture, the vision model named the exercise: the answer says it answered.
        model = self.assistant.registry.vision().name if picture else None
        return self._fixed(messages, written.text, source_list(passages), model)

    def _about_picture(self, messages, picture, check, lang: str) -> Plan | None:
        """The knowledge base's answer about the exercise in PICTURE, or None when the vision
        model has to answer on its own. Naming the exercise is a short generation, so it takes
        a generation slot like any other."""
        index, image = picture
        question = messages[-1]["content"]
        aspects = self.assistant.knowledge().asks(question) if question.strip() else ["what"]
        if not aspects and check.level is None:
            return None  # "can I do this on a boat?": nothing the knowledge base holds
        with self.assistant.gates.generation():
            exercise_id, _ = self.assistant.picture_namer().identify(image)
        if exercise_id is None:
            return None
        # The picture's own turn names it; a follow-up about it does not again.
        this_is = index == len(messages) - 1 or "what" in aspects
        asked = aspects or ["cautions"]
        return self._about_exercise(messages, exercise_id, asked, check, lang, this_is, True)

    def _unknown(self, messages, name: str, check, lang: str) -> Plan:
        """No entry for NAME: say so, name checked exercises that may be close, and mark what
        follows as general: advice true of any exercise (grounded), or the chat model's own
        answer (generative, and only in English: the bundled model's Bengali is not usable)."""
        knowledge = self.assistant.knowledge()
        text = _with_advice(check, lang, answers.no_entry(name, lang, knowledge.nearest(name)))
        if check.stops_exercise:
            return self._fixed(messages, text)
        general = answers.GENERAL_ANSWER[lang]
        if self.mode == "grounded" or lang != "en":
            return self._fixed(messages, f"{text}\n\n{general} {answers.GENERAL_ADVICE[lang]}")
        return self._generated(messages, [], prefix=f"{text}\n\n{general}\n")

    # --- answers the models write --------------------------------------------------------

    def _open(self, messages, prefix: str | None = None) -> Plan:
        """A question about nothing in the knowledge base: the chat model answers, with the
        passages retrieval finds and the question's links as sources."""
        question = messages[-1]["content"]
        links, warnings = link_passages(
            question, self.assistant.link_reader, self.assistant.registry.embedder()
        )
        plan = self._generated(messages, None, prefix=prefix, links=links)
        plan.warnings += warnings
        return plan

    def _generated(self, messages, chosen, prefix: str | None = None, links=()) -> Plan:
        """The chat model's answer with sources: CHOSEN passages (None: retrieved, [] none)
        and LINKS, after a fixed PREFIX when given."""
        knowledge = self.assistant.knowledge()
        passages = sources_for(
            messages, knowledge, self.settings, self.llm.count_tokens, chosen, list(links)
        )
        prompt = grounded_messages(messages, passages)
        reply = self._stream(prompt, prefix)
        return Plan(reply, self.llm.name, True, source_list(passages))

    def _ungrounded(self, messages) -> Plan:
        picture = self._picture(messages)
        if picture is not None:
            return self._vision_own(messages, picture)
        return Plan(self._stream(messages), self.llm.name, True)

    def _vision_own(self, messages, picture) -> Plan:
        index, image = picture
        vision = self.assistant.registry.vision()
        context = visual_context(messages, index)
        return Plan(_checked(vision.stream, context, image, self.params), vision.name, True)

    def _stream(self, messages, prefix: str | None = None):
        """The chat model's generation for MESSAGES; with PREFIX, that text first (the model
        then has max_tokens less the prefix's tokens)."""
        if prefix is None:
            return _checked(self.llm.stream, messages, self.params)
        tokenizer, stop = self.llm.tokenizer, self.params.stop
        fixed = FixedReply(prefix, tokenizer, self.params.max_tokens, stop=stop)  # counts in it
        left = self.params.max_tokens - fixed.completion_tokens
        if left < 1:
            return fixed
        params = replace(self.params, max_tokens=left)
        return PrefixedReply(fixed, _checked(self.llm.stream, messages, params))

    def _fixed(self, messages, text: str, sources=None, model: str | None = None) -> Plan:
        """TEXT as the answer. Its usage counts the conversation as the chat model would
        have read it (its template and system prompt included), so that usage means the same
        whoever wrote the answer."""
        read = _for_template(messages, self.llm.default_system_prompt)
        prompt_tokens = self.llm.count_tokens(self.llm.render(read))
        limit, stop = self.request.max_tokens, self.params.stop
        reply = FixedReply(text, self.llm.tokenizer, limit, prompt_tokens, stop)
        return Plan(reply, model or self.llm.name, False, sources or [])


def _for_template(messages: list[dict], system_prompt: str) -> list[dict]:
    """MESSAGES as a chat template takes them, with SYSTEM_PROMPT first when none is."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system_prompt and not any(m["role"] == "system" for m in plain):
        plain.insert(0, {"role": "system", "content": system_prompt})
    return plain


def _with_advice(check, lang: str, text: str) -> str:
    advice = check.advice(lang)
    return f"{advice}\n\n{text}" if advice else text


def _checked(stream, *args):
    """STREAM(*ARGS), its domain errors naming `messages` (a too-long prompt is a 400 there)."""
    try:
        return stream(*args)
    except OmnicoachError as exc:
        exc.param = getattr(exc, "param", None) or "messages"
        raise
