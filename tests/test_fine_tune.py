"""The fine-tuned chat model (artifacts/sft-lora merged into SmolLM2) and its evaluation:
it is the default, it is verified, it lowers held-out perplexity, the served engine keeps what
it learned, and the evaluation scores, samples and reports as documented."""

import json
import shutil

import pytest

from omnicoach.errors import ModelFileError
from omnicoach.evaluation.answer_scores import bleu, semantic_similarity, step_recall
from omnicoach.evaluation.fine_tune import (
    CONFIGS,
    FineTuneEvaluation,
    answer_nll,
    load_items,
    markdown_report,
    sample,
    side_by_side,
    with_system_prompt,
)
from omnicoach.models.adapters import merge_lora
from omnicoach.models.registry import BASE_CHAT_MODEL, TUNED_CHAT_MODEL
from omnicoach.models.sampling import SamplingParams
from tests.conftest import REPO

SFT_DATA = REPO / "data" / "sft"


def test_the_fine_tune_is_listed_first_and_is_the_default(registry, settings):
    chat = registry.specs("chat")
    assert [s.name for s in chat][:2] == [TUNED_CHAT_MODEL, BASE_CHAT_MODEL]
    assert settings.chat_model == TUNED_CHAT_MODEL
    assert chat[0].base == BASE_CHAT_MODEL and (chat[0].adapter() / "manifest.json").is_file()
    # A new fine-tune of the fine-tuned model trains on its base: adapters are not stacked.
    assert registry.base_spec(TUNED_CHAT_MODEL).name == BASE_CHAT_MODEL
    assert registry.base_spec(BASE_CHAT_MODEL).name == BASE_CHAT_MODEL


def test_an_edited_adapter_is_refused_before_it_touches_the_model(tmp_path):
    artifact = tmp_path / "sft-lora"
    shutil.copytree(REPO / "artifacts" / "sft-lora", artifact)
    weights = artifact / "adapter" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match its manifest.*omnicoach train sft"):
        merge_lora(object(), artifact)  # not a model: the manifest check comes first


@pytest.fixture(scope="module")
def held_out():
    """Six conversations of each language about exercises never trained on."""
    items = load_items(SFT_DATA, "test_unseen")
    return sample(items, 6, seed=1)


def test_the_fine_tune_lowers_perplexity_on_held_out_exercises(llm, tuned_llm, held_out, settings):
    def perplexity(model):
        total = count = 0
        for item in held_out:
            messages = with_system_prompt(item.messages, settings.system_prompt)
            nll, tokens = answer_nll(model, messages, item.reference)
            total, count = total + nll, count + tokens
        return total / count

    base, tuned = perplexity(llm), perplexity(tuned_llm)
    # Held-out exercises: the answer's facts are new, only the style was learned. The README
    # table has the full figures (omnicoach eval sft).
    assert tuned < base - 0.5  # nats per answer token


def test_the_served_engine_keeps_what_the_fine_tune_learned(tuned_llm):
    """Greedy answers through the fast engine (the weights as served) keep the trained answer
    form. With int4 weights this fails: int4 snaps the merged weights back onto the base's
    4-bit grid (registry._weights)."""
    assert tuned_llm.engine is not None
    params = SamplingParams(max_tokens=12, temperature=0)
    asked = ("Plank Pose", "Warrior II", "Bodyweight Squat")
    answers = [
        tuned_llm.complete([{"role": "user", "content": f"What muscles does {name} work?"}], params)
        for name in asked
    ]
    assert sum("mainly works" in a.text for a in answers) >= 2, [a.text for a in answers]


def test_similarity_and_bleu_score_identical_answers_highest(embedder):
    reference = ["Plank Pose mainly works the rectus abdominis.", "বক্স জাম্প পায়ের শক্তি বাড়ায়।"]
    same = semantic_similarity(embedder, reference, reference)
    other = semantic_similarity(embedder, ["I like trains.", "আজ বৃষ্টি হবে।"], reference)
    assert same == pytest.approx([1.0, 1.0], abs=1e-4)
    assert all(o < s - 0.3 for o, s in zip(other, same, strict=True))
    assert bleu(reference, reference) == pytest.approx(100.0)
    assert bleu(["I like trains.", "আজ বৃষ্টি হবে।"], reference) < 10


def test_step_recall_counts_steps_given_in_their_words_not_the_same_vocabulary():
    steps = ["Sit with your knees bent and your feet flat on the floor.", "Lean back slightly."]
    answer = "This is Boat Pose.\n1. Sit with knees bent and your feet flat on the floor.\n"
    assert step_recall(answer, steps) == 0.5  # one word left out still counts
    assert step_recall(answer + "- Lean back slightly.", steps) == 1.0
    shuffled = "1. Your feet flat on the floor, bent knees, sit with your floor."
    assert step_recall(shuffled, steps) == 0.0


def test_items_are_last_answers_sampled_the_same_for_every_configuration():
    items = load_items(SFT_DATA, "test_known")
    assert all(i.messages[-1]["role"] == "user" for i in items)
    first, again = sample(items, 5, seed=3), sample(items, 5, seed=3)
    assert [i.reference for i in first] == [i.reference for i in again]
    assert sorted({(i.split, i.lang) for i in first}) == [
        ("test_known", "bn"),
        ("test_known", "en"),
    ]
    assert len(first) == 10


def test_side_by_side_spreads_over_splits_and_languages():
    items = [
        {"split": s, "lang": lang, "n": n}
        for s in ("test_known", "test_unseen")
        for lang in ("bn", "en")
        for n in range(3)
    ]
    chosen = side_by_side(items, 5)
    assert len(chosen) == 5 and len({(i["split"], i["lang"]) for i in chosen}) == 4


@pytest.mark.slow
def test_the_evaluation_runs_every_configuration_and_writes_its_report(
    registry, settings, tmp_path
):
    data = tmp_path / "sft"
    data.mkdir()
    for split in ("test_known", "test_unseen"):
        rows = (SFT_DATA / f"{split}.jsonl").read_text().splitlines()
        english = next(r for r in rows if json.loads(r)["lang"] == "en")
        bengali = next(r for r in rows if json.loads(r)["lang"] == "bn")
        (data / f"{split}.jsonl").write_text(english + "\n" + bengali + "\n")
    evaluation = FineTuneEvaluation(registry, settings, data, log=lambda *_: None, max_new_tokens=8)
    report = evaluation.run(per_cell=1, perplexity_per_cell=1)
    assert list(report["results"]) == [label for label, _, _ in CONFIGS]
    for cells in report["results"].values():
        assert set(cells) == {"test_known/en", "test_known/bn", "test_unseen/en", "test_unseen/bn"}
        for cell in cells.values():
            assert cell["answers"] == 1 and cell["perplexity"] > 1
            assert -1 <= cell["similarity"] <= 1 and 0 <= cell["bleu"] <= 100
    assert all(set(i["answers"]) == {c[0] for c in CONFIGS} for i in report["items"])
    text = markdown_report(report)
    assert "| LoRA+RAG |" in text and "## Side by side" in text
