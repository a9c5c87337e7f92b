"""Answers about an exercise picture: the vision model names the exercise, the knowledge base
gives the facts.

The vision-language model names held-out pictures well (94 %, README, Seeing), but the steps
it then writes come from a 135M model's memory and are often wrong for the exercise it named
(bench press: "stand with your feet about 200–300 meters…"); given the entry's steps as
sources, the chat model still drifts after the first step. So a question about a picture is
answered in three moves:

1. identify: the vision model is asked "What exercise is this?" (greedy); the first
   knowledge-base name in its answer is the exercise. Cached per picture, so a follow-up
   ("what muscles does it work?") costs nothing.
2. aspect: what the question asks — what it is, the steps, muscles, mistakes, cautions, a
   beginner version, benefits — is the aspect of its nearest phrasing (MiniLM cosine, Bengali
   romanised) among the questions the models were fine-tuned on.
3. the answer: "This is {name}." on the picture's own turn, then the entry's answer for that
   aspect (the text both models were trained to give), citing the entry's passage as [1].

When the vision model's answer names no exercise of the knowledge base, or the question is
like none of the phrasings ("what colour is my shirt?"), there is no grounded answer and the
vision model answers on its own (the server's fallback).
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from omnicoach.data.sft_dataset import FOLLOW_UPS, QUESTIONS
from omnicoach.data.sft_dataset import answer as kb_answer
from omnicoach.data.vlm_dataset import IDENTIFY, IDENTIFY_AND_HOW, THIS_IS, full_name
from omnicoach.knowledge.base import Passage
from omnicoach.knowledge.names import name_patterns, named_exercise
from omnicoach.models.romanise import has_bengali, romanise_bengali
from omnicoach.models.sampling import SamplingParams
from omnicoach.models.vision_chat import image_digest
from omnicoach.models.vision_language import IMAGE_MARKER

IDENTIFY_QUESTION = IDENTIFY["en"][0]  # "What exercise is this?"
IDENTIFY_TOKENS = 32  # "This is Boat Pose (Paripurna Navasana)." fits
# Below this cosine to every known phrasing a question is not one the knowledge base answers.
# Measured (tests/test_picture_answers.py has them): new wordings of known questions score
# 0.51–0.95 ("Is it safe for my knees?" 0.51, "which muscles does this target" 0.78); others
# at most 0.36 ("What colour is the shirt?" 0.35, "Is my form right?" 0.30, "I have back pain,
# can I do this?" 0.24, "write me a poem" 0.27).
MIN_ASPECT_SCORE = 0.5
# The passage (knowledge/base.passages) each aspect's answer is taken from, for its source.
PASSAGE_OF_ASPECT = {
    "what": "about",
    "muscles": "about",
    "benefits": "about",
    "how": "steps",
    "mistakes": "mistakes",
    "cautions": "cautions",
    "beginner": "beginner",
}
CACHED_PICTURES = 64


@dataclass(frozen=True)
class PictureAnswer:
    text: str
    sources: list[Passage]
    exercise_id: str
    aspect: str
    identified_as: str  # what the vision model said when asked to name the exercise


def aspect_phrasings() -> list[tuple[str, str]]:
    """(aspect, question) for every phrasing the models were trained on, with "it" for the
    exercise's name: the sft questions and the vision model's own ("What is this exercise and
    how do I do it?" asks for the steps; the answer names the exercise anyway)."""
    it = {"en": "it", "bn": "এটা"}
    phrasings = [
        (aspect, question.format(name=it[lang]))
        for lang, aspects in QUESTIONS.items()
        for aspect, questions in aspects.items()
        for question in questions
    ]
    phrasings += [(aspect, q) for lang in FOLLOW_UPS for aspect, q in FOLLOW_UPS[lang].items()]
    phrasings += [("what", q) for lang in IDENTIFY for q in IDENTIFY[lang]]
    phrasings += [("how", q) for lang in IDENTIFY_AND_HOW for q in IDENTIFY_AND_HOW[lang]]
    return phrasings


class PictureAnswers:
    def __init__(self, vision, embedder, entries: list[dict], passages: list[Passage], vocabulary):
        self.vision, self.embedder, self.vocabulary = vision, embedder, vocabulary
        self.entries = {entry["id"]: entry for entry in entries}
        self.patterns = name_patterns(entries)
        self.passages = {passage.id: passage for passage in passages}
        self.phrasings = aspect_phrasings()
        self.phrasing_vectors = self._embed([q for _, q in self.phrasings])
        self._identified: OrderedDict[str, tuple[str | None, str]] = OrderedDict()
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.embedder.embed([romanise_bengali(t) for t in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def identify(self, image: Image.Image) -> tuple[str | None, str]:
        """(exercise id or None, the vision model's answer) for IMAGE, cached per picture."""
        key = image_digest(image)
        with self._lock:
            if key in self._identified:
                self._identified.move_to_end(key)
                return self._identified[key]
        messages = [{"role": "user", "content": f"{IMAGE_MARKER}\n{IDENTIFY_QUESTION}"}]
        greedy = SamplingParams(temperature=0.0, max_tokens=IDENTIFY_TOKENS, stop=("\n",))
        said = "".join(self.vision.stream(messages, image, greedy)).strip()
        found = (named_exercise(said, self.patterns), said)
        with self._lock:
            self._identified[key] = found
            while len(self._identified) > CACHED_PICTURES:
                self._identified.popitem(last=False)
        return found

    def aspect(self, question: str) -> tuple[str, float]:
        """The aspect QUESTION asks about and the cosine of its nearest phrasing."""
        scores = self.phrasing_vectors @ self._embed([question])[0]
        best = int(np.argmax(scores))
        return self.phrasings[best][0], float(scores[best])

    def answer(self, messages: list[dict], image: Image.Image) -> PictureAnswer | None:
        """The grounded answer to the last user message of MESSAGES (the visual context: the
        picture's message holds IMAGE_MARKER) about IMAGE, or None (see the module's doc)."""
        users = [m for m in messages if m["role"] == "user"]
        question = users[-1]["content"].replace(IMAGE_MARKER, "").strip()
        exercise_id, said = self.identify(image)
        aspect, score = self.aspect(question) if question else ("what", 1.0)
        if exercise_id is None or score < MIN_ASPECT_SCORE:
            return None
        entry = self.entries[exercise_id]
        lang = "bn" if has_bengali(question) else "en"
        source = self.passages[f"kb:{exercise_id}:{lang}:{PASSAGE_OF_ASPECT[aspect]}"]
        if aspect == "what":  # the name line says what the name is; the summary follows
            body = entry["summary"][lang]
        else:
            body = kb_answer(entry, aspect, lang, self.vocabulary)
        separator = " " if aspect == "what" else "\n"
        text = f"{body} [1]"
        if len(users) == 1 or aspect == "what":  # the picture's own turn names it
            text = THIS_IS[lang].format(name=full_name(entry, lang)) + separator + text
        return PictureAnswer(text, [source], exercise_id, aspect, said)
