"""LoRA fine-tuning (training/sft.py) on a tiny Llama (2 layers, width 64) with SmolLM2's
tokenizer: the loss falls, only answers are learned, checkpoints resume, and two DDP processes
under `accelerate launch` (gloo on the CPU) keep identical weights."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from omnicoach.artifacts import read_manifest
from omnicoach.errors import InvalidRequestError
from omnicoach.training.sft import (
    IGNORE,
    SFTConfig,
    load_conversations,
    ship_adapter,
    tokenize,
    train_sft,
)
from tests.conftest import REPO, subprocess_env

QUESTIONS = ["What does a squat work?", "How long to hold a plank?", "Is yoga good for backs?"]
ANSWERS = ["Quads and glutes.", "Start with 20 seconds.", "Gentle yoga often helps."]


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sft-data")
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for _ in range(8)
        for q, a in zip(QUESTIONS, ANSWERS, strict=True)
    ]
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    return directory


def config(tiny_model, chat_data, out, **changes) -> SFTConfig:
    settings = dict(
        train=chat_data / "train.jsonl",
        validation=chat_data / "validation.jsonl",
        out=out,
        base_model=tiny_model,
        epochs=3,
        batch_size=4,
        learning_rate=3e-3,
        lora_rank=8,
        max_length=128,
        eval_every=4,
        checkpoint_every=4,
    )
    return SFTConfig(**{**settings, **changes})


def test_only_the_answers_carry_loss(llm):
    messages = [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": ANSWERS[0]},
    ]
    row = tokenize(llm.tokenizer, messages, 512)
    learned = [
        t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE
    ]
    text = llm.tokenizer.decode(learned)
    assert ANSWERS[0] in text and QUESTIONS[0] not in text


def test_bad_lines_name_their_file_and_line(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(InvalidRequestError, match="chat.jsonl:1"):
        load_conversations(path)


def test_loss_falls_and_the_run_leaves_adapter_curve_and_checkpoint(
    tiny_model, chat_data, tmp_path
):
    records = []
    summary = train_sft(
        config(tiny_model, chat_data, tmp_path / "run", max_steps=12),
        on_step=lambda record, total: records.append(record),
    )
    assert summary["method"] == "LoRA on the fp32 base" and summary["steps"] == 12
    losses = [r["validation_loss"] for r in records if r["validation_loss"] is not None]
    assert len(losses) == 3 and losses[-1] < losses[0]
    out = tmp_path / "run"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "loss.png").stat().st_size > 1000
    assert len((out / "loss.csv").read_text().splitlines()) == 13  # header + 12 steps
    checkpoint = out / "checkpoint"
    assert json.loads((checkpoint / "progress.json").read_text())["step"] == 12
    saved = load_file(checkpoint / "trainable.safetensors")  # LoRA only, fp16, no base weights
    assert saved and all(".lora_" in name and t.dtype == torch.float16 for name, t in saved.items())


def test_a_run_can_start_from_a_trained_adapter_and_ship_it(tiny_model, chat_data, tmp_path):
    first = train_sft(config(tiny_model, chat_data, tmp_path / "first", max_steps=8))
    records = []
    summary = train_sft(
        config(
            tiny_model, chat_data, tmp_path / "more", max_steps=4, init_adapter=first["adapter"]
        ),
        on_step=lambda record, total: records.append(record),
    )
    assert "from the adapter in" in summary["method"]
    # It goes on from where the first run got to, not from a new (zero-effect) adapter.
    assert records[0]["train_loss"] < first["best_validation_loss"] * 1.5
    saved = load_file(tmp_path / "more" / "adapter" / "adapter_model.safetensors")
    assert all(t.dtype == torch.float16 for t in saved.values())  # shipped at half the size
    manifest = ship_adapter(summary, tmp_path / "more", tmp_path / "shipped", "cmd", 0.0, x=1)
    assert manifest["command"] == "cmd" and manifest["steps"] == 4 and manifest["x"] == 1
    assert set(manifest["files"]) == {
        "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "loss.csv", "loss.png"
    }  # fmt: skip
    assert read_manifest(tmp_path / "shipped")["best_validation_loss"] == pytest.approx(
        summary["best_validation_loss"]
    )


def test_a_stopped_run_resumes_from_its_checkpoint(tiny_model, chat_data, tmp_path):
    out = tmp_path / "run"
    train_sft(config(tiny_model, chat_data, out, max_steps=4))
    records = []
    summary = train_sft(
        config(tiny_model, chat_data, out, max_steps=8),
        on_step=lambda record, total: records.append(record),
    )
    assert [r["step"] for r in records] == [5, 6, 7, 8]  # steps 1–4 were not redone
    assert summary["steps"] == 8


def test_two_ddp_processes_under_accelerate_launch_train_identical_weights(
    tiny_model, chat_data, tmp_path
):
    out = tmp_path / "ddp"
    command = [
        str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "omnicoach.training.sft",
        "--train", str(chat_data / "train.jsonl"),
        "--validation", str(chat_data / "validation.jsonl"),
        "--out", str(out), "--base-model", str(tiny_model),
        "--batch-size", "4", "--max-steps", "3", "--eval-every", "3", "--checkpoint-every", "3",
        "--learning-rate", "0.003", "--max-length", "128",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["steps"] == 3
    first, second = summary["weight_fingerprints"]
    assert first == second  # bit for bit the same trained weights in both processes
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
