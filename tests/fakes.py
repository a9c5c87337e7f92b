"""Small stand-ins for the models, so the assistant's logic is tested in milliseconds: a
word tokenizer, a chat model that answers from a script and remembers what it was asked, an
embedder of hashed words, a keyword router. The real models are tested everywhere else."""

import hashlib
import threading

import numpy as np

from omnicoach.errors import ModelFileError
from omnicoach.models.prompt_router import IMAGE, Route


class WordTokenizer:
    """One token per whitespace-separated word."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        words = text.split(" ")
        return {"input_ids": list(range(len(words))), "words": words}

    def decode(self, ids: list[int], text_of=None) -> str:
        return f"<{len(ids)} words>"


class FixedTokenizer(WordTokenizer):
    def __init__(self):
        self.last = ""

    def __call__(self, text, add_special_tokens=False):
        self.last = text
        return super().__call__(text)

    def decode(self, ids, text_of=None):
        return " ".join(self.last.split(" ")[: len(ids)])


class ScriptedGeneration:
    """A generation that yields REPLY word by word, honouring cancel() between words."""

    def __init__(self, reply: str, prompt_tokens: int):
        self.reply, self.prompt_tokens = reply, prompt_tokens
        self.completion_tokens = 0
        self.finish_reason = None
        self.cancelled = threading.Event()
        self.closed = False

    def __iter__(self):
        for i, word in enumerate(self.reply.split(" ")):
            if self.cancelled.is_set():
                self.finish_reason = "cancelled"
                return
            self.completion_tokens += 1
            yield word if i == 0 else f" {word}"
        self.finish_reason = "stop"

    def cancel(self):
        self.cancelled.set()

    def close(self):
        self.closed = True


class ScriptedLLM:
    """A chat model whose every answer is REPLY; `asked` keeps each prompt it was given."""

    def __init__(self, name: str = "scripted", reply: str = "A general answer from the model."):
        self.name, self.reply = name, reply
        self.tokenizer = FixedTokenizer()
        self.default_system_prompt = "Be a coach."
        self.asked: list[list[dict]] = []
        self.params: list = []
        self.generations: list[ScriptedGeneration] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def render(self, messages) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def stream(self, messages, params=None, image=None):
        self.asked.append([dict(m) for m in messages])
        self.params.append(params)
        prompt_tokens = sum(self.count_tokens(m["content"]) for m in messages)
        generation = ScriptedGeneration(self.reply, prompt_tokens)
        self.generations.append(generation)
        return generation


class HashedWordsEmbedder:
    """Bag of hashed words in 64 dimensions: texts sharing words are close."""

    name, dimension = "hashed-words", 64

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.sha1(word.strip("?.,!").encode()).digest()
                vectors[row, digest[0] % self.dimension] += 1.0
        vectors[:, 0] += 1e-3  # no zero vector
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class KeywordRouter:
    """ "draw" asks for a picture; anything else is conversation."""

    def classify(self, prompt: str) -> Route:
        label = IMAGE if "draw" in prompt.lower() else "conversation"
        return Route(label, 0.99, {label: 0.99})


class FakeRegistry:
    def __init__(self, llm: ScriptedLLM | None = None):
        self.llm = llm or ScriptedLLM()
        self._embedder = HashedWordsEmbedder()

    def chat(self, name=None):
        return self.llm

    def embedder(self, name=None):
        return self._embedder

    def router(self):
        return KeywordRouter()

    def image_generator(self):
        raise ModelFileError("image generation is not installed")

    def speech_to_text(self, name=None):
        raise ModelFileError("no speech model in these tests")
