"""The prompt router: does this chat message ask for a picture to be made, or for words?

A MiniLM sentence encoder (the bundled all-MiniLM-L6-v2), mean-pooled as sentence-transformers
pools it, with a linear head over the two labels. Training (training/router.py) fine-tunes it
end to end with a LoRA adapter, so the shipped artifact (artifacts/router/) is the small
adapter and the head, applied over the bundled encoder at load and merged into it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from omnicoach.errors import ModelFileError
from omnicoach.models.romanise import romanise_bengali

LABELS = ("conversation", "image_generation")
IMAGE = "image_generation"
ROUTER_CONFIG = "router.json"
HEAD_FILE = "head.safetensors"
# all-MiniLM-L6-v2 was trained on 128-token inputs; longer prompts are cut (the request is
# nearly always at the start or the end, so the cut keeps both: see _truncate).
MAX_TOKENS = 128


class RouterModel(nn.Module):
    """encoder → mean over real tokens → linear head → logits [batch, len(labels)]."""

    def __init__(self, encoder: nn.Module, labels: tuple[str, ...] = LABELS):
        super().__init__()
        self.encoder = encoder
        self.labels = labels
        self.head = nn.Linear(encoder.config.hidden_size, len(labels))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask[..., None].to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled)


def prepare(prompt: str) -> str:
    """What the encoder reads: Bengali script in Latin letters (see models/romanise.py)."""
    return romanise_bengali(prompt)


def encode(tokenizer, prompts: list[str]) -> dict[str, torch.Tensor]:
    """Token ids for a batch, each prompt cut to MAX_TOKENS keeping its start and its end."""
    rows = [prepare(p) for p in prompts]
    rows = [_truncate(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in rows]
    rows = [[tokenizer.cls_token_id, *r, tokenizer.sep_token_id] for r in rows]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _truncate(ids: list[int]) -> list[int]:
    keep = MAX_TOKENS - 2  # room for [CLS] and [SEP]
    if len(ids) <= keep:
        return ids
    # A long message often tells a story first and asks at the end ("…so, draw it for me").
    return ids[: keep // 2] + ids[-(keep - keep // 2) :]


@dataclass(frozen=True)
class Route:
    label: str
    confidence: float  # the probability of the chosen label
    scores: dict[str, float]  # every label's probability


class PromptRouter:
    """The trained router over its base encoder, ready to classify."""

    def __init__(self, artifact: Path, base_encoder: Path, threshold: float = 0.5):
        from peft import PeftModel
        from transformers import AutoModel, AutoTokenizer

        from omnicoach.artifacts import read_manifest

        artifact = Path(artifact)
        self.manifest = read_manifest(artifact)
        config = json.loads((artifact / ROUTER_CONFIG).read_text())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(base_encoder)
            encoder = AutoModel.from_pretrained(base_encoder, dtype=torch.float32)
            encoder = PeftModel.from_pretrained(encoder, artifact).merge_and_unload()
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot load the router from {artifact}: {exc}") from exc
        self.model = RouterModel(encoder, tuple(config["labels"]))
        from safetensors.torch import load_file

        self.model.head.load_state_dict(load_file(artifact / HEAD_FILE))
        self.model.eval()
        self.threshold = threshold
        self.name = config.get("name", artifact.name)

    @torch.inference_mode()
    def probabilities(self, prompts: list[str]) -> torch.Tensor:
        return self.model(**encode(self.tokenizer, prompts)).softmax(-1)

    def classify(self, prompt: str) -> Route:
        return self.classify_many([prompt])[0]

    def classify_many(self, prompts: list[str]) -> list[Route]:
        routes = []
        for row in self.probabilities(prompts).tolist():
            scores = dict(zip(self.model.labels, row, strict=True))
            # A picture is made only when the router is sure enough (the threshold); anything
            # less is answered in words, which is the cheap and harmless mistake.
            label = IMAGE if scores.get(IMAGE, 0.0) >= self.threshold else "conversation"
            routes.append(Route(label, scores[label], scores))
        return routes
