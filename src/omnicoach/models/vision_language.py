"""The LLaVA recipe on our models: image features → projector → the chat LLM's embedding space.

A user message carries the image as the text marker IMAGE_MARKER; its tokens are replaced by
`tokens` positions whose input embeddings are the projected image features (LLaVA's
`mlp2x_gelu` projector: Linear → GELU → Linear). Everything else is the chat model unchanged,
so the same weights answer text-only questions as before.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

IMAGE_MARKER = "<image>"
IGNORE = -100  # label of positions without loss (prompt, image, padding)
PROJECTOR = "projector.safetensors"  # a trained projector's weights (fp16) ...
VISION_CONFIG = "vision.json"  # ... and what it expects and feeds (training/vlm.py writes both)


class Projector(nn.Module):
    """LLaVA-1.5's `mlp2x_gelu`: features [.., n, feature_dim] → embeddings [.., n·k, hidden],
    with two changes that CPU-sized training needs (README, Seeing):

    - the features are layer-normalised first: EfficientNet's pooled features are unnormalised
      and their projection started ~30× longer than any word embedding (3.2), far from
      anything the LLM has read;
    - each feature token becomes k = `tokens_per_feature` embeddings, so one pooled image
      feature reads as a short phrase rather than a single word (stage 1 aligns them with the
      caption's first words).
    """

    def __init__(self, feature_dim: int, hidden: int, tokens_per_feature: int = 1):
        super().__init__()
        self.feature_dim, self.hidden = feature_dim, hidden
        self.tokens_per_feature = tokens_per_feature
        self.norm = nn.LayerNorm(feature_dim, elementwise_affine=False)
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden * tokens_per_feature),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.net(self.norm(features))
        *lead, n, _ = features.shape
        return out.reshape(*lead, n * self.tokens_per_feature, self.hidden)


def read_projector(directory: Path) -> tuple[dict, Projector]:
    """vision.json and the projector (fp32) saved in DIRECTORY by training/vlm.py."""
    from safetensors.torch import load_file

    vision = json.loads((Path(directory) / VISION_CONFIG).read_text())
    projector = Projector(vision["feature_dim"], vision["hidden"], vision["tokens_per_feature"])
    weights = load_file(Path(directory) / PROJECTOR)
    projector.load_state_dict({k: v.float() for k, v in weights.items()})
    return vision, projector


def assistant_spans(tokenizer, messages: list[dict]) -> list[tuple[int, int]]:
    """Character spans of the assistant replies (with their end of turn) in the rendered
    conversation: found by rendering up to each reply and through it, so any template works."""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            before = tokenizer.apply_chat_template(
                messages[:i], tokenize=False, add_generation_prompt=True
            )
            through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
            spans.append((len(before), len(through)))
    return spans


def tokenize_with_image(
    tokenizer, messages: list[dict], image_tokens: int, max_length: int | None = None,
    generation_prompt: bool = False,
) -> dict:  # fmt: skip
    """Token ids of the conversation with the one IMAGE_MARKER replaced by IMAGE_TOKENS
    placeholder positions (id: the pad/end token; their embeddings are overwritten), the labels
    (the ids on assistant replies, IGNORE elsewhere) and `image_start`, the first image
    position (None when no message has the marker)."""
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    spans = [] if generation_prompt else assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    marker = text.find(IMAGE_MARKER)
    marker_end = marker + len(IMAGE_MARKER)
    placeholder = tokenizer.pad_token_id or tokenizer.eos_token_id
    ids, labels, image_start = [], [], None
    for token, (start, _) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
        if marker >= 0 and marker <= start < marker_end:
            if image_start is None:  # the marker's first token: the whole image goes here
                image_start = len(ids)
                ids += [placeholder] * image_tokens
                labels += [IGNORE] * image_tokens
            continue
        ids.append(token)
        labels.append(token if any(a <= start < b for a, b in spans) else IGNORE)
    if max_length is not None:
        if image_start is not None and image_start + image_tokens > max_length:
            raise ValueError(f"the image does not fit in the first {max_length} tokens")
        ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels, "image_start": image_start}


def embed_with_image(
    model, projector: Projector, input_ids: torch.Tensor, features: torch.Tensor | None,
    image_start: list[int | None],
) -> torch.Tensor:  # fmt: skip
    """Input embeddings [batch, length, hidden] of INPUT_IDS with each row's image positions
    (from IMAGE_START[row]) holding the projected FEATURES[row] ([batch, tokens, dim])."""
    embeds = model.get_input_embeddings()(input_ids)
    if features is None:
        return embeds
    projected = projector(features.to(embeds.dtype))
    rows = []
    for row, start in enumerate(image_start):
        if start is None:
            rows.append(embeds[row])
            continue
        end = start + projected.shape[1]
        rows.append(torch.cat([embeds[row, :start], projected[row], embeds[row, end:]]))
    return torch.stack(rows)


def language_loss(llm, embeds: torch.Tensor, attention_mask, labels) -> torch.Tensor:
    """The causal LM loss of Hugging Face's models (mean over answer tokens), with the LM head
    run only where an answer token is predicted: its 49k-word projection of every position
    is ~10 % of a stage-2 step (benchmarks/vlm_step.py), spent mostly on prompt positions."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm  # peft: LoRA inside
    hidden = base.model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
    targets = labels[:, 1:]
    chosen = targets != IGNORE
    logits = base.lm_head(hidden[:, :-1][chosen]).float()
    return F.cross_entropy(logits, targets[chosen])


def alignment_loss(projected: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor):
    """Stage 1's loss: squared distance of each image token to the word embedding it should
    read as, relative to the words' own mean square norm (1.0: as far as a zero vector)."""
    error = (projected.float() - targets).pow(2).sum(-1)
    return error[mask].mean() / targets.pow(2).sum(-1)[mask].mean()


def read_as_words(projected: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """The vocabulary id nearest (cosine) to each image token: what the LLM 'sees'."""
    return (F.normalize(projected.float(), dim=-1) @ F.normalize(embedding, dim=-1).T).argmax(-1)


class VisionLanguageModel(nn.Module):
    """The chat LLM and the projector as one module, so one optimiser, one checkpoint and one
    forward serve training. Stage 1 batches hold image features and the caption's first
    words (`caption_ids`, IGNORE-padded); stage 2 batches hold token ids, labels, image
    features and where each row's image starts (-1: no image). With BF16 the forward runs
    under bf16 autocast (here rather than through accelerate's mixed precision, which is
    process-wide and cannot change once another trainer in the process has set it)."""

    def __init__(self, llm, projector: Projector, bf16: bool = False):
        super().__init__()
        self.llm, self.projector, self.bf16 = llm, projector, bf16

    def forward(self, features, **batch):
        with torch.autocast(features.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self._forward(features, **batch)

    def _forward(
        self, features, caption_ids=None, input_ids=None, attention_mask=None, labels=None,
        image_start=None,
    ):  # fmt: skip
        if caption_ids is not None:
            projected = self.projector(features)[:, : caption_ids.shape[1]]
            mask = caption_ids != IGNORE
            with torch.no_grad():
                targets = self.llm.get_input_embeddings()(caption_ids.clamp(min=0)).float()
            return SimpleNamespace(
                loss=alignment_loss(projected, targets, mask), projected=projected, mask=mask
            )
        starts = [None if s < 0 else int(s) for s in image_start.tolist()]
        embeds = embed_with_image(self.llm, self.projector, input_ids, features, starts)
        return SimpleNamespace(loss=language_loss(self.llm, embeds, attention_mask, labels))
