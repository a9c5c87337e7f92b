"""Teach Whisper the knowledge base's exercise names from paired audio and text.

    omnicoach train asr [--speech data/speech] [--method decoder|lora] [--out artifacts/asr]

The data is data/speech_dataset.py's layout (or a user's own in the same layout): a folder with
train.jsonl and validation.jsonl, one {"audio", "text"} row per clip, the audio path relative
to the folder (WAV, or anything ffmpeg reads). The bundled Whisper tiny.en is read from its
CTranslate2 weights into transformers (models/whisper_weights.py) and trained with the
Seq2SeqTrainer; the shipped part goes to the artifact and serving converts it back to
CTranslate2 on first use.

Only the decoder learns. Misheard names are the decoder's doing — the audio of "Svanasana" is
encoded well enough, but the decoder's prior prefers English words ("that, though, … Sanna") —
and training the encoder too would cost ~2 s per clip per epoch here (30 s of padded audio
through it and back), against ~0.4 s to encode each clip once. So the encoder's outputs are
computed once and reused by every epoch. Two ways of training the decoder, compared in the
manifest: all of its layers (``decoder``) or a LoRA adapter on them (``lora``, peft); the
token embeddings, shared with the output layer, stay the base's in both, so the artifact stays
small and no word the base knows is moved. The epoch kept is the one with the lowest
validation word error rate.
"""

import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from omnicoach.audio.decode import decode_audio
from omnicoach.config import REPO
from omnicoach.errors import InvalidRequestError
from omnicoach.evaluation.speech import wer
from omnicoach.knowledge.base import load_entries
from omnicoach.knowledge.spoken_names import vocabulary
from omnicoach.models.whisper_weights import DECODER_WEIGHTS, LORA_ADAPTER, to_transformers

# <|startofprev|> prompt <|startoftranscript|><|notimestamps|> … <|endoftext|>, as English-only
# Whisper reads and writes it.
PREVIOUS, START, NO_TIMESTAMPS, END = 50360, 50257, 50362, 50256
MAX_LABEL_TOKENS = 120
PROMPT_RUN = 48  # the longest run of hotwords a training clip follows
# The share of training clips decoded after a prompt — another clip's words, or the knowledge
# base's names as hotwords — as serving may give one: without them the decoder forgets how to
# stop where the speech stops once a prompt comes first.
PROMPTED = 0.3


@dataclass
class AsrTraining:
    base: Path  # the CTranslate2 Whisper directory trained from
    speech: Path = REPO / "data" / "speech"
    out: Path = REPO / "artifacts" / "asr"
    method: Literal["decoder", "lora"] = "decoder"
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float | None = None  # default: 1e-4 for decoder, 1e-3 for lora
    lora_rank: int = 16
    seed: int = 0
    max_steps: int | None = None  # stop early (tiny test runs)
    command: str = ""  # how it was run, for the manifest
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-4 if self.method == "decoder" else 1e-3


# (step, total steps, training loss) after every logged optimiser step
StepCallback = Callable[[int, int, float], None]
# (epoch, validation loss, validation word error rate) after every epoch
EpochCallback = Callable[[int, float, float], None]


def load_clips(folder: Path, split: str) -> list[dict]:
    """The rows of FOLDER/SPLIT.jsonl, each checked to have text and an existing audio file."""
    path = Path(folder) / f"{split}.jsonl"
    if not path.is_file():
        raise InvalidRequestError(
            f"no {split} clips: {path} is missing (a speech folder holds train.jsonl and "
            "validation.jsonl; make the bundled one with `python -m omnicoach.data.speech_dataset`)"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, audio = row["text"].strip(), Path(folder) / row["audio"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidRequestError(
                f"{path}:{number}: each line must be a JSON object with text and audio"
            ) from None
        if not text or not audio.is_file():
            raise InvalidRequestError(f"{path}:{number}: empty text or no file {audio}")
        rows.append(row)
    if not rows:
        raise InvalidRequestError(f"{path} holds no clips")
    return rows


def encode_clips(model, tokenizer, folder: Path, rows: list[dict], progress) -> list[dict]:
    """Each clip's encoder output (float16, computed once) and its label tokens."""
    from faster_whisper.feature_extractor import FeatureExtractor

    # faster-whisper's own features, so training hears exactly what serving will.
    features = FeatureExtractor(feature_size=model.config.num_mel_bins)
    frames = 2 * model.config.max_source_positions
    examples = []
    with torch.inference_mode():
        for row in progress(rows):
            audio = decode_audio((Path(folder) / row["audio"]).read_bytes(), 60)
            mel = features(audio, padding=features.n_samples)[:, :frames]
            hidden = model.model.encoder(torch.from_numpy(mel)[None]).last_hidden_state[0]
            text = tokenizer.encode(" " + row["text"], add_special_tokens=False)
            examples.append(
                {
                    "encoder_hidden": hidden.to(torch.float16),
                    "labels": [NO_TIMESTAMPS, *text[:MAX_LABEL_TOKENS], END],
                    "text": row["text"],
                }
            )
    return examples


def add_prompts(examples: list[dict], hotwords: list[int], seed: int) -> None:
    """Give a seeded PROMPTED share of EXAMPLES a prompt to follow: half of them a run of
    HOTWORDS (the names' tokens; a run of up to PROMPT_RUN tokens keeps the batches short),
    half another example's words."""
    rng = random.Random(seed)
    for example in examples:
        if rng.random() < PROMPTED:
            if rng.random() < 0.5:
                start = rng.randrange(max(1, len(hotwords) - PROMPT_RUN))
                example["prompt"] = hotwords[start : start + rng.randint(8, PROMPT_RUN)]
            else:  # another clip's words, without the markers
                example["prompt"] = rng.choice(examples)["labels"][1:-1]


def collate(batch: list[dict]) -> dict:
    """A batch for Whisper with precomputed encoder outputs. Without prompts the decoder's
    input is the labels shifted right behind <|startoftranscript|> (the model does it); with
    one, it is <|startofprev|> prompt <|startoftranscript|> labels, and only the labels are
    learnt. Padding is ignored."""
    from transformers.modeling_outputs import BaseModelOutput

    rows = []  # (decoder input, labels) per example
    for example in batch:
        labels = example["labels"]
        prompt = [PREVIOUS, *example["prompt"]] if example.get("prompt") else []
        rows.append(([*prompt, START, *labels[:-1]], [-100] * len(prompt) + labels))
    longest = max(len(labels) for _, labels in rows)
    labels = torch.full((len(batch), longest), -100, dtype=torch.long)
    inputs = torch.full((len(batch), longest), END, dtype=torch.long)
    for i, (ids, targets) in enumerate(rows):
        inputs[i, : len(ids)], labels[i, : len(targets)] = torch.tensor(ids), torch.tensor(targets)
    hidden = torch.stack([e["encoder_hidden"] for e in batch]).float()
    features = {"encoder_outputs": BaseModelOutput(last_hidden_state=hidden), "labels": labels}
    if any(example.get("prompt") for example in batch):
        features["decoder_input_ids"] = inputs
    return features


def train_asr(
    config: AsrTraining,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
    log: Callable[[str], None] = print,
    progress=lambda rows: rows,
) -> dict:
    """Train, keep the best epoch, write the artifact; returns its manifest."""
    from transformers import WhisperTokenizer

    started = time.time()
    torch.manual_seed(config.seed)
    train_rows = load_clips(config.speech, "train")
    validation_rows = load_clips(config.speech, "validation")
    log(f"speech data: {len(train_rows)} train clips, {len(validation_rows)} validation clips")
    model = to_transformers(config.base)
    tokenizer = WhisperTokenizer(tokenizer_file=str(Path(config.base) / "tokenizer.json"))
    log("encoding the audio once (the encoder is not trained)")
    train = encode_clips(model, tokenizer, config.speech, train_rows, progress)
    validation = encode_clips(model, tokenizer, config.speech, validation_rows, progress)
    tokens = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    hotwords = vocabulary(load_entries(), lambda text: len(tokens(text)))
    add_prompts(train, tokens(" " + hotwords), config.seed)

    model, trainable = _trainable(model, config)
    history = _fit(model, tokenizer, train, validation, config, on_step, on_epoch, log)
    best = min(history, key=lambda h: h["wer"])
    log(f"kept epoch {best['epoch']}: validation WER {best['wer']:.3f}")

    from omnicoach import artifacts

    with artifacts.writing(config.out) as staging:
        _save(model, trainable, config, staging)
        manifest = artifacts.write_manifest(
            staging,
            name="asr",
            command=config.command or "omnicoach train asr",
            seed=config.seed,
            started=started,
            base_model=f"whisper-tiny.en ({Path(config.base).name}, CTranslate2 float16)",
            data={"train": len(train_rows), "validation": len(validation_rows)},
            hyperparameters={
                "method": config.method,
                "trained": trainable,
                "epochs": config.epochs,
                "batch_size": config.batch_size,
                "learning_rate": config.rate,
                "lora_rank": config.lora_rank if config.method == "lora" else None,
            },
            evaluated_on="validation",
            metrics={"wer": best["wer"], "loss": best["loss"], "epoch": best["epoch"]},
            validation_history=history,
            **config.extra,
        )
    return manifest


def _trainable(model, config: AsrTraining):
    """MODEL with only its decoder layers trainable (or a LoRA adapter on them), and what
    that is, in words."""
    for parameter in model.parameters():
        parameter.requires_grad = False
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=2 * config.lora_rank,
            # Every linear layer of the decoder's blocks, none of the encoder's.
            target_modules=r".*decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q|k|v|out)_proj"
            r"|.*decoder\.layers\.\d+\.fc[12]",
            lora_dropout=0.05,
        )
        return get_peft_model(model, lora), f"LoRA rank {config.lora_rank} on the decoder's layers"
    for parameter in model.model.decoder.layers.parameters():
        parameter.requires_grad = True
    model.model.decoder.layer_norm.requires_grad_(True)
    return model, "the decoder's layers (not the token embeddings)"


def _fit(model, tokenizer, train, validation, config, on_step, on_epoch, log) -> list[dict]:
    from transformers import (
        PrinterCallback,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        TrainerCallback,
    )

    class Report(TrainerCallback):
        """The loss of every step to ON_STEP, every tenth to the log, and each epoch's
        validation figures to both."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                step, total, loss = state.global_step, state.max_steps, float(logs["loss"])
                if on_step:
                    on_step(step, total, loss)
                if step % 10 == 0 or step == total:
                    log(f"step {step}/{total}: loss {loss:.3f}")
            if "eval_wer" in logs:
                epoch, loss, rate = round(state.epoch), logs["eval_loss"], logs["eval_wer"]
                log(f"epoch {epoch}: validation loss {loss:.3f}, WER {rate:.3f}")
                if on_epoch:
                    on_epoch(epoch, loss, rate)

    def metrics(prediction) -> dict:
        tokens = np.where(prediction.predictions < 0, END, prediction.predictions)
        heard = tokenizer.batch_decode(tokens, skip_special_tokens=True)
        errors = [wer(e["text"], h) for e, h in zip(validation, heard, strict=True)]
        return {"wer": sum(errors) / len(errors)}

    model.generation_config = _generation_config(model)
    with tempfile.TemporaryDirectory(prefix="asr-train-") as scratch:
        args = Seq2SeqTrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=32,
            learning_rate=config.rate,
            num_train_epochs=config.epochs,
            max_steps=config.max_steps or -1,
            warmup_steps=10,
            weight_decay=0.01,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=1,
            load_best_model_at_end=True,
            metric_for_best_model="wer",
            greater_is_better=False,
            predict_with_generate=True,
            generation_max_length=MAX_LABEL_TOKENS,
            logging_steps=1,
            report_to=[],
            seed=config.seed,
            use_cpu=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            disable_tqdm=True,
        )
        trainer = Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=validation,
            data_collator=collate,
            compute_metrics=metrics,
            callbacks=[Report()],
        )
        trainer.remove_callback(PrinterCallback)  # Report says what matters, in our words
        trainer.train()
    return [
        {"epoch": round(entry["epoch"]), "loss": entry["eval_loss"], "wer": entry["eval_wer"]}
        for entry in trainer.state.log_history
        if "eval_wer" in entry
    ]


def _generation_config(model):
    """Greedy English-only decoding without timestamps, as faster-whisper's default."""
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=START,
        eos_token_id=END,
        pad_token_id=END,
        forced_decoder_ids=None,
        no_timestamps_token_id=NO_TIMESTAMPS,
        is_multilingual=False,
        max_length=model.config.max_target_positions,
        begin_suppress_tokens=[220, END],
    )


def _save(model, trainable: str, config: AsrTraining, staging: Path) -> None:
    if config.method == "lora":
        model.save_pretrained(staging / LORA_ADAPTER)
        (staging / LORA_ADAPTER / "README.md").unlink(missing_ok=True)  # peft's empty card
        return
    from safetensors.torch import save_file

    weights = {
        name: tensor.detach().to(torch.float16).contiguous()
        for name, tensor in model.state_dict().items()
        if name.startswith(("model.decoder.layers.", "model.decoder.layer_norm."))
    }
    save_file(weights, staging / DECODER_WEIGHTS)
