"""Sliding-window perplexity on the real bundled SmolLM2-135M-Instruct."""

import math
import random

import pytest
import torch

from omnicoach.errors import InvalidRequestError
from omnicoach.evaluation.perplexity import perplexity, window_starts

ENGLISH = (
    "Downward dog is one of the most common poses in yoga. Start on your hands and knees, "
    "with your wrists under your shoulders and your knees under your hips. Tuck your toes, "
    "lift your knees off the floor and push your hips up and back, so that your body makes "
    "an upside-down V. Keep a slight bend in your knees if your hamstrings are tight, press "
    "the floor away with your hands and let your head hang between your arms. Breathe slowly "
    "for five breaths, then lower your knees and rest in child's pose."
)


def token_count(llm, text: str) -> int:
    return len(llm.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_windows_cover_the_text_and_end_at_its_end():
    assert window_starts(10, 64, 32) == [0]
    assert window_starts(100, 64, 32) == [0, 32, 64]
    starts = window_starts(1000, 64, 16)
    assert starts[-1] + 64 >= 1000 > starts[-2] + 64
    assert all(b - a == 16 for a, b in zip(starts, starts[1:], strict=False))


def test_english_scores_far_better_than_the_same_tokens_shuffled(llm):
    ids = llm.tokenizer(ENGLISH, add_special_tokens=False)["input_ids"]
    random.Random(0).shuffle(ids)
    shuffled = llm.tokenizer.decode(ids)

    english = perplexity(llm.model, llm.tokenizer, ENGLISH, window=64, stride=32)
    noise = perplexity(llm.model, llm.tokenizer, shuffled, window=64, stride=32)

    assert math.isfinite(english.perplexity) and 1 < english.perplexity < 60
    assert noise.perplexity > 10 * english.perplexity
    assert english.perplexity == pytest.approx(math.exp(english.mean_nll))


@pytest.mark.parametrize(("window", "stride"), [(64, 32), (48, 47), (32, 8)])
def test_every_token_but_the_first_is_scored_once(llm, window, stride):
    result = perplexity(llm.model, llm.tokenizer, ENGLISH, window=window, stride=stride)
    n = token_count(llm, ENGLISH)
    assert result.tokens_scored == n - 1
    assert result.windows == len(window_starts(n, window, stride))


def test_one_window_equals_the_model_loss_on_the_whole_text(llm):
    ids = llm.tokenizer(ENGLISH, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        loss = llm.model(input_ids=ids, labels=ids).loss.item()  # mean NLL of tokens 1..n-1
    result = perplexity(llm.model, llm.tokenizer, ENGLISH, window=512, stride=256)
    assert result.windows == 1
    assert result.mean_nll == pytest.approx(loss, abs=1e-4)


def test_more_context_per_token_does_not_hurt(llm):
    chunked = perplexity(llm.model, llm.tokenizer, ENGLISH, window=32, stride=31)
    overlapping = perplexity(llm.model, llm.tokenizer, ENGLISH, window=32, stride=8)
    assert overlapping.perplexity < chunked.perplexity


def test_progress_reports_every_window_and_can_stop_the_run(llm):
    reports = []
    result = perplexity(llm.model, llm.tokenizer, ENGLISH, 48, 24, on_progress=reports.append)
    assert [r.index for r in reports] == list(range(result.windows))
    assert {r.windows for r in reports} == {result.windows}
    assert reports[-1].tokens_scored == result.tokens_scored
    assert reports[-1].perplexity == pytest.approx(result.perplexity)

    class Stop(Exception):
        pass

    def stop(_):
        raise Stop

    with pytest.raises(Stop):
        perplexity(llm.model, llm.tokenizer, ENGLISH, 48, 24, on_progress=stop)


@pytest.mark.parametrize(
    ("text", "window", "stride", "problem"),
    [
        (ENGLISH, 64, 64, "stride"),
        (ENGLISH, 64, 0, "stride"),
        (ENGLISH, 1, 1, "window"),
        ("Hi", 64, 32, "too short"),
    ],
)
def test_invalid_arguments_are_refused(llm, text, window, stride, problem):
    with pytest.raises(InvalidRequestError, match=problem):
        perplexity(llm.model, llm.tokenizer, text, window, stride)
