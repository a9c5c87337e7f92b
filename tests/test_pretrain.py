"""Pretraining from random weights (training/pretrain.py, data/pretrain_corpus.py) on a tiny
Llama (2 layers, width 64) with SmolLM2's tokenizer: the loss falls on the clean corpus, a
stopped run resumes at the next step, generated text streams into training at the asked share,
the report carries the comparison and the fit, and two DDP processes under `accelerate launch`
(gloo on the CPU) keep identical weights."""

import json
import math
import queue
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from omnicoach.artifacts import read_manifest
from omnicoach.data.pretrain_corpus import (
    MixedBlocks,
    build_corpus,
    is_held_out,
    synthetic_topics,
    token_stream,
)
from omnicoach.errors import InvalidRequestError
from omnicoach.jobs.kinds import KINDS
from omnicoach.models.bundled import smollm2_gguf
from omnicoach.models.llm_loader import load_tokenizer
from omnicoach.training.pretrain import (
    PretrainConfig,
    check_config,
    fit_curve,
    power_law,
    train_pretrain,
)
from tests.conftest import REPO, subprocess_env

MODEL_CACHE = REPO / "var" / "models"
TINY = dict(
    hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
    block_size=64, batch_size=4, learning_rate=3e-3, warmup_steps=5, threads=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(smollm2_gguf(), MODEL_CACHE)


def config(tiny_model, out, **changes) -> PretrainConfig:
    settings = dict(
        out=out,
        tokenizer=tiny_model,
        generator_model=tiny_model,
        reference_model=tiny_model,
        synthetic_share=0.0,
        synthetic_workers=0,
        max_minutes=None,
        stop_at_target=False,
        eval_every=5,
        checkpoint_every=20,  # also redraws loss.png: ~1 s on a busy CPU
        report=False,
        model_cache=MODEL_CACHE,
        **TINY,
    )
    return PretrainConfig(**{**settings, **changes})


def test_the_held_out_exercises_are_never_in_the_training_text():
    corpus = build_corpus()
    assert 5 <= len(corpus.held_out_ids) <= 20
    assert all(is_held_out(i) for i in corpus.held_out_ids)
    for exercise_text in corpus.held_out:
        assert exercise_text not in corpus.train
        name = exercise_text.split(":")[0]
        assert not any(name in topic for topic in synthetic_topics())


def test_bad_settings_are_refused_with_a_reason(tiny_model, tmp_path):
    with pytest.raises(InvalidRequestError, match="synthetic_share must be between 0 and 1"):
        check_config(config(tiny_model, tmp_path, synthetic_share=1.5, synthetic_workers=1))
    with pytest.raises(InvalidRequestError, match="needs at least one synthetic worker"):
        check_config(config(tiny_model, tmp_path, synthetic_share=0.5))
    with pytest.raises(InvalidRequestError, match="give a budget"):
        check_config(config(tiny_model, tmp_path, max_steps=None))
    with pytest.raises(InvalidRequestError, match="does not exist"):
        check_config(config(tiny_model, tmp_path, tokenizer=tmp_path / "nowhere"))


def test_the_mix_takes_the_asked_share_of_generated_text(tokenizer):
    clean = torch.arange(10_000)
    texts = queue.Queue()
    for i in range(30):
        texts.put(f"Paragraph {i} about stretching the hamstrings slowly and breathing out.")
    data = MixedBlocks(clean, 32, 0.3, tokenizer, texts)
    rng = random.Random(0)
    batches = [data.batch(8, rng) for _ in range(100)]
    assert data.texts == 30 and texts.empty()  # drained into the pool
    assert data.synthetic_fraction() == pytest.approx(0.3, abs=0.05)
    synthetic = [row for b in batches for row in b if row.max() >= 10_000 or row[0] != row[1] - 1]
    assert len(synthetic) == data.rows["synthetic"]  # clean rows are runs of arange


@pytest.mark.slow
def test_loss_falls_and_the_report_compares_and_fits(tiny_model, tmp_path):
    out = tmp_path / "run"
    summary = train_pretrain(config(tiny_model, out, max_steps=40, report=True), log=print)
    assert summary["steps"] == 40 and summary["stopped_by"] == "max_steps"
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 41))
    first = sum(r["train_loss"] for r in records[:3]) / 3
    last = sum(r["train_loss"] for r in records[-3:]) / 3
    assert last < first - 1.0  # from ~ln(49152) = 10.8
    assert summary["target_reached"] is not None
    held = [r["heldout_loss"] for r in records if r["heldout_loss"] is not None]
    assert len(held) == 8 and held[-1] < held[0]
    assert all(r["tokens_per_s"] > 0 and r["learning_rate"] > 0 for r in records)
    assert records[-1]["tokens"] == 40 * 4 * 64

    report = json.loads((out / "report.json").read_text())
    assert report["fit"]["ok"] and report["fitted_on"].startswith("held-out")
    assert report["gap_nats"] == pytest.approx(
        report["heldout_loss"] - report["reference_heldout_loss"]
    )
    text = (out / "report.md").read_text()
    assert "held-out loss (nats/token)" in text and "Bootstrap" in text
    manifest = read_manifest(out)
    assert manifest["seed"] == 0 and manifest["config"]["hidden_size"] == 64
    assert (out / "loss.png").stat().st_size > 1000
    assert len((out / "loss.csv").read_text().splitlines()) == 41


@pytest.mark.slow
def test_a_stopped_run_resumes_at_the_next_step(tiny_model, tmp_path):
    out = tmp_path / "run"
    train_pretrain(config(tiny_model, out, max_steps=5))
    saved = json.loads((out / "checkpoint" / "progress.json").read_text())
    assert saved["step"] == 5
    records = []
    summary = train_pretrain(
        config(tiny_model, out, max_steps=8), on_step=lambda r, _: records.append(r)
    )
    assert [r["step"] for r in records] == [6, 7, 8]
    assert summary["tokens"] == 8 * 4 * 64
    # It went on from the trained weights, not from new random ones (~10.8).
    assert records[0]["train_loss"] < saved["history"][0]["train_loss"] - 0.2
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 9))
    again = train_pretrain(config(tiny_model, out, max_steps=8))  # nothing left to do
    assert again["steps"] == 8 and again["stopped_by"] == "max_steps"


@pytest.mark.slow
def test_generated_text_streams_into_training(tiny_model, tmp_path):
    out = tmp_path / "run"
    waited = []

    def until_text_arrives(record, state):
        # The worker needs seconds to start (spawn, imports) and to write the pool's first
        # paragraphs, while a tiny step takes a tenth of a second: slow the steps down until
        # the pool is full, so that most of the run comes after it (a slow CI machine needed
        # more than 20 steps to get there when only the first text was waited for).
        if record["synthetic_texts"] < 12 and len(waited) < 90:
            waited.append(1)
            time.sleep(1)

    summary = train_pretrain(
        config(
            tiny_model,
            out,
            max_steps=60,
            eval_every=20,
            synthetic_share=0.5,
            synthetic_workers=1,
            synthetic_max_new_tokens=48,
        ),
        on_step=until_text_arrives,
    )
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert records[0]["synthetic_rows"] == 0  # training started before any text existed
    arrived = [r for r in records if r["synthetic_texts"] > 0]
    assert arrived, "no generated text reached training"
    later = [r for r in records if r["synthetic_texts"] >= 12]  # the pool holds 4 blocks
    assert len(later) >= 20
    share = sum(r["synthetic_rows"] for r in later) / (4 * len(later))
    assert share == pytest.approx(0.5, abs=0.2)
    texts = [
        json.loads(line)["text"] for line in (out / "synthetic.jsonl").read_text().splitlines()
    ]
    assert len(texts) == records[-1]["synthetic_texts"] and all(texts)
    assert 0 < summary["synthetic_fraction_this_run"] < 0.6


def test_the_fit_finds_a_known_curve_and_says_when_it_never_closes():
    tokens = np.linspace(2e5, 5e6, 20)
    points = [(t, float(power_law(t / 1e6, 2.0, 3.0, 0.5))) for t in tokens]
    fit = fit_curve(points, reference_loss=3.0)
    assert fit["ok"] and fit["a"] == pytest.approx(2.0, abs=0.05)
    # 2 + 3 t^-0.5 = 3 at t = 9 M tokens: 4 M more than the 5 M seen.
    assert fit["tokens_needed"] == pytest.approx(4e6, rel=0.1)
    assert fit["bootstrap_p10"] <= fit["tokens_needed"] <= fit["bootstrap_p90"] * 1.01
    never = fit_curve(points, reference_loss=1.5)
    assert math.isinf(never["tokens_needed"]) and never["bootstrap_unbounded_share"] > 0.9
    assert not fit_curve(points[:3], reference_loss=3.0)["ok"]


def test_the_pretrain_job_kind_checks_its_params():
    kind = KINDS["pretrain"]
    assert kind.params().synthetic_share == 0.5 and kind.params().max_minutes == 10
    with pytest.raises(ValidationError, match="needs at least one synthetic worker"):
        kind.params(synthetic_workers=0)
    with pytest.raises(ValidationError):
        kind.params(synthetic_share=2)
    assert kind.params(synthetic_workers=0, synthetic_share=0).synthetic_workers == 0


def test_clean_text_is_one_stream_of_documents(tokenizer):
    stream = token_stream(tokenizer, ["Mountain pose.", "Child's pose."])
    assert (stream == tokenizer.eos_token_id).sum() == 2 and stream[-1] == tokenizer.eos_token_id


@pytest.mark.slow
def test_two_ddp_processes_under_accelerate_launch_train_identical_weights(tiny_model, tmp_path):
    out = tmp_path / "ddp"
    command = [
        str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "omnicoach.training.pretrain",
        "--out", str(out), "--tokenizer", str(tiny_model), "--model-cache", str(MODEL_CACHE),
        "--hidden-size", "64", "--num-layers", "2", "--num-heads", "4", "--num-kv-heads", "2",
        "--intermediate-size", "128", "--block-size", "64", "--batch-size", "4",
        "--max-steps", "4", "--eval-every", "2", "--checkpoint-every", "2", "--threads", "1",
        "--synthetic-share", "0", "--synthetic-workers", "0", "--no-report",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["steps"] == 4
    assert summary["tokens"] == 4 * 2 * 4 * 64  # both processes' rows count
    first, second = summary["weight_fingerprints"]
    assert first == second  # bit for bit the same trained weights in both processes
    assert (out / "checkpoint" / "model.safetensors").is_file()
