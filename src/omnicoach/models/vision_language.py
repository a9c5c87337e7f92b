"""The LLaVA recipe on our models: image features → projector → the chat LLM's embedding space.

A user message carries the image as the text marker IMAGE_MARKER; its tokens are replaced by
`tokens` positions whose input embeddings are the projected image features (LLaVA's
`mlp2x_gelu` projector: Linear → GELU → Linear). Everything else is the chat model unchanged,
so the same weights answer text-only questions as before.
"""

import torch
from torch import nn

IMAGE_MARKER = "<image>"
IGNORE = -100  # label of positions without loss (prompt, image, padding)


class Projector(nn.Module):
    """LLaVA-1.5's `mlp2x_gelu`: features [.., feature_dim] → embeddings [.., hidden]."""

    def __init__(self, feature_dim: int, hidden: int):
        super().__init__()
        self.feature_dim, self.hidden = feature_dim, hidden
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


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


class VisionLanguageModel(nn.Module):
    """The chat LLM and the projector as one module, so one optimiser, one checkpoint and one
    forward serve training: a batch holds token ids, labels, image features and where each
    row's image starts (-1: no image)."""

    def __init__(self, llm, projector: Projector):
        super().__init__()
        self.llm, self.projector = llm, projector

    def forward(self, input_ids, attention_mask, labels, features, image_start):
        starts = [None if s < 0 else int(s) for s in image_start.tolist()]
        embeds = embed_with_image(self.llm, self.projector, input_ids, features, starts)
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)
