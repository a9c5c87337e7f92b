"""The knowledge base loaded for answering: its entries, their names, their passages embedded
for retrieval, and the reader of what a question asks. Built once per process (the assistant
keeps it); the embeddings are cached on disk (knowledge/retrieval.py)."""

from pathlib import Path

from omnicoach.knowledge.aspects import AspectReader
from omnicoach.knowledge.base import KB_DIR, Passage, all_passages, load_entries, load_vocabulary
from omnicoach.knowledge.names import NameIndex
from omnicoach.knowledge.retrieval import PassageIndex
from omnicoach.knowledge.spoken_names import SpokenNameResolver


class Knowledge:
    def __init__(self, embedder, cache_dir: Path | None = None, directory: Path = KB_DIR):
        entries = load_entries(directory)
        self.entries = {entry["id"]: entry for entry in entries}
        self.vocabulary = load_vocabulary(directory)
        self.names = NameIndex(entries)
        self.spoken_names = SpokenNameResolver(entries, index=self.names)
        self.index = PassageIndex(embedder, all_passages(entries, self.vocabulary), cache_dir)
        self.aspects = AspectReader(embedder)
        self._passages = {passage.id: passage for passage in self.index.passages}

    @property
    def passages(self) -> list[Passage]:
        return self.index.passages

    def asks(self, question: str) -> list[str]:
        """The aspects QUESTION asks about (knowledge/aspects.py), its exercise names masked."""
        return self.aspects.aspects(self.names.masked(question))

    def passage(self, exercise_id: str, lang: str, aspect: str) -> Passage:
        """The passage of EXERCISE_ID's ASPECT ("steps", "about"…) in LANG."""
        return self._passages[f"kb:{exercise_id}:{lang}:{aspect}"]

    def nearest(self, text: str, count: int = 3) -> list[dict]:
        """The entries whose passages lie closest to TEXT (an exercise the base lacks: what
        it may be close to), best first, each once."""
        found = []
        for hit in self.index.search(text, 4 * count, min_score=0.2, lang="en"):
            exercise_id = hit.passage.id.split(":")[1]
            if exercise_id not in found:
                found.append(exercise_id)
        return [self.entries[i] for i in found[:count]]
