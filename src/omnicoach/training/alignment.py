"""Training the LiT-style alignment heads (models/alignment.py) on the rendered figures.

    omnicoach train alignment [--images data/exercise-images] --ship artifacts/alignment

Images are the training renders at 64×64, the generator's size, scaled back up for the encoder
exactly as a generated image is, so that a score compares like with like. Texts are prompts
naming the exercise in the generator's training wordings (data/drawing_dataset.py). Each batch
holds one (image, prompt) pair per exercise, so that no other pair in the batch is a
"negative" of the same exercise. Frozen encoder features are computed once; the heads train
in seconds. Held-out measures, on the test renders (seeds never trained on) with prompts in
the held-out wordings: zero-shot accuracy over every exercise, and the CLIP score of the
right prompt against a wrong one.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from omnicoach.config import REPO
from omnicoach.data.drawing_dataset import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, load_pixels, prompts
from omnicoach.knowledge.base import load_entries
from omnicoach.models.alignment import HEADS, Alignment, AlignmentHeads

MAX_LOGIT_SCALE = 4.6052  # ln(100), CLIP's cap on 1/τ


@dataclass
class AlignmentConfig:
    images: Path = REPO / "data" / "exercise-images"
    per_exercise: int = 40  # training renders per exercise
    steps: int = 1500
    learning_rate: float = 1e-3
    seed: int = 0


def train_alignment(config: AlignmentConfig, image_encoder, embedder, log=print):
    """(Alignment, summary) after training the heads; the summary holds the held-out figures."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    started = time.time()
    entries = {e["id"]: e for e in load_entries()}
    train_pixels, train_ids = load_pixels(Path(config.images) / "train")
    chosen = _per_exercise(train_ids, config.per_exercise)
    log(f"encoding {len(chosen)} training renders at 64×64 …")
    features = image_encoder.pooled(train_pixels[chosen])
    ids = [train_ids[i] for i in chosen]
    exercises = sorted(set(ids))
    rows_of = {e: [i for i, x in enumerate(ids) if x == e] for e in exercises}
    texts = {e: prompts(entries[e], TRAIN_TEMPLATES) for e in exercises}
    text_vectors = {
        e: torch.from_numpy(embedder.embed(texts[e])).float() for e in exercises
    }  # frozen MiniLM sentence embeddings

    heads = AlignmentHeads()
    optimizer = torch.optim.AdamW(heads.parameters(), lr=config.learning_rate, weight_decay=0.1)
    target = torch.arange(len(exercises))
    history = []
    for step in tqdm(range(1, config.steps + 1), desc="alignment heads"):
        images = torch.stack([features[_pick(rows_of[e])] for e in exercises])
        words = torch.stack([text_vectors[e][_pick(range(len(texts[e])))] for e in exercises])
        scale = heads.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        logits = scale * heads.image_vectors(images) @ heads.text_vectors(words).T
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 100 == 0 or step == config.steps:
            history.append({"step": step, "loss": round(loss.item(), 4)})
    alignment = Alignment(heads, image_encoder, embedder)
    summary = {
        "steps": config.steps,
        "training_images": len(chosen),
        "exercises": len(exercises),
        "seconds": round(time.time() - started, 1),
        "loss": history,
        **held_out_figures(alignment, config.images, entries, exercises),
    }
    log(
        f"held-out zero-shot accuracy {summary['zero_shot_accuracy']:.1%} over "
        f"{len(exercises)} exercises; CLIP score right {summary['clip_score_right']:.1f}, "
        f"wrong {summary['clip_score_wrong']:.1f}"
    )
    return alignment, summary


def held_out_figures(alignment, images: Path, entries: dict, exercises: list[str]) -> dict:
    """Zero-shot accuracy and CLIP scores on the test renders at 64×64, held-out wordings."""
    pixels, ids = load_pixels(Path(images) / "test")
    keep = [i for i, e in enumerate(ids) if e in exercises]
    pixels, ids = pixels[keep], [ids[i] for i in keep]
    wording = HELD_OUT_TEMPLATES[0]
    labels = [prompts(entries[e], [wording])[0] for e in exercises]
    predicted = alignment.classify(pixels, labels)
    truth = torch.tensor([exercises.index(e) for e in ids])
    right = alignment.clip_score(pixels, [labels[exercises.index(e)] for e in ids])
    # A wrong prompt: the next exercise's, for a baseline on the same images.
    wrong = alignment.clip_score(
        pixels, [labels[(exercises.index(e) + 1) % len(exercises)] for e in ids]
    )
    return {
        "held_out_images": len(ids),
        "zero_shot_accuracy": round((predicted == truth).float().mean().item(), 4),
        "clip_score_right": round(right.mean().item(), 2),
        "clip_score_wrong": round(wrong.mean().item(), 2),
        "held_out_wording": wording,
    }


def ship(
    alignment: Alignment, summary: dict, artifact: Path, command: str, started: float, seed: int
):
    from safetensors.torch import save_file

    from omnicoach.artifacts import write_manifest, writing

    with writing(artifact) as staging:
        weights = {k: v.detach().contiguous() for k, v in alignment.heads.state_dict().items()}
        save_file(weights, staging / HEADS)
        return write_manifest(
            staging,
            name=Path(artifact).name,
            command=command,
            seed=seed,
            started=started,
            image_encoder="efficientnet-lite0 (pooled, frozen)",
            text_encoder="all-MiniLM-L6-v2 (sentence embedding, frozen)",
            **summary,
        )


def _per_exercise(ids: list[str], count: int) -> list[int]:
    seen: dict[str, int] = {}
    chosen = []
    for i, exercise in enumerate(ids):
        if seen.get(exercise, 0) < count:
            seen[exercise] = seen.get(exercise, 0) + 1
            chosen.append(i)
    return chosen


def _pick(rows) -> int:
    rows = list(rows)
    return rows[int(torch.randint(len(rows), ()))]
