"""The fact metric (evaluation/fact_metric.py) on the real knowledge base: answers copied from
an entry pass, and each kind of wrong or missing fact is caught."""

import random

import pytest
from sacrebleu.metrics import CHRF

from omnicoach.evaluation.fact_metric import (
    MATCH,
    FactKB,
    FactScore,
    score,
    segments,
    similarity,
    states_fact,
    summarise,
)
from omnicoach.knowledge.base import load_entries, load_vocabulary


@pytest.fixture(scope="module")
def kb() -> FactKB:
    return FactKB(load_entries(), load_vocabulary())


def item(kind="single", lang="en", exercise="push-up", aspects=("muscles",), **extra) -> dict:
    turns = extra.pop("turns", ["How do I do it?"])
    return {
        "id": "t",
        "lang": lang,
        "kind": kind,
        "turns": turns,
        "exercise": exercise,
        "aspects": list(aspects),
        **extra,
    }


def listed(lines: list[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


def entry(kb: FactKB, eid: str = "push-up") -> dict:
    return kb.entries[eid]


PUSH_UP_MUSCLES = (
    "The push-up mainly works the pectoralis major, triceps and anterior deltoids. "
    "It also works the serratus anterior and the core."
)


def test_a_muscles_answer_built_from_the_push_up_entry_is_correct(kb):
    result = score(item(), PUSH_UP_MUSCLES, kb)
    assert (result.correct, result.wrong, result.missing) == (True, [], [])


def test_the_same_answer_about_the_pull_up_is_wrong(kb):
    answer = (
        "Pull-Up mainly works the latissimus dorsi and teres major. "
        "It also works the biceps and the rhomboids."
    )
    result = score(item(), answer, kb)
    assert not result.correct
    assert "names another exercise: Pull-Up" in result.wrong
    assert "muscle not in entry: latissimus dorsi" in result.wrong
    assert result.missing == ["muscles: pectoralis major, triceps, anterior deltoids"]


def test_a_summary_after_the_exercise_s_name_answers_what_it_is(kb):
    pose = entry(kb, "downward-facing-dog")
    answer = f"Downward-Facing Dog (Adho Mukha Svanasana): {pose['summary']['en']} [1]"
    question = item(exercise="downward-facing-dog", aspects=["what"])
    result = score(question, answer, kb)
    assert (result.correct, result.wrong, result.missing) == (True, [], [])
    assert score(question, "Downward-Facing Dog is a pose.", kb).missing == ["what: 0 of 1 summary"]


def test_a_muscle_the_entry_does_not_have_is_wrong(kb):
    result = score(item(), PUSH_UP_MUSCLES + " It builds the biceps too.", kb)
    assert not result.correct
    assert result.wrong == ["muscle not in entry: biceps"]


def test_everyday_muscle_names_map_to_the_entry_s_muscles(kb):
    # glutes: the push-up's gluteus maximus; hamstrings: in neither its muscles nor its text.
    answer = "Push-ups work the pecs, triceps and front delts, and the glutes and hamstrings."
    result = score(item(), answer, kb)
    assert result.wrong == ["muscle not in entry: hamstrings"]
    assert result.missing == []


def test_a_steps_answer_missing_most_steps_is_missing(kb):
    answer = listed(entry(kb)["steps"]["en"][:2])
    result = score(item(aspects=["how"]), answer, kb)
    assert not result.correct
    assert result.wrong == []
    assert result.missing == ["how: 2 of 6 steps"]


def test_a_formatted_steps_answer_with_a_heading_and_citations_is_correct(kb):
    steps = entry(kb)["steps"]["en"]
    answer = "**How to do a push-up:**\n" + listed([f"{s} [1]" for s in steps])
    result = score(item(aspects=["how"]), answer, kb)
    assert (result.correct, result.wrong, result.missing) == (True, [], [])


def test_steps_that_mention_plank_do_not_name_another_exercise(kb):
    steps = entry(kb)["steps"]["en"]
    assert "plank" in steps[0]
    result = score(item(aspects=["how"]), listed(steps), kb)
    assert not [w for w in result.wrong if w.startswith("names another exercise")]


def test_an_exercise_neither_the_entry_nor_the_question_names_is_wrong(kb):
    answer = listed(entry(kb)["steps"]["en"]) + "\nThen hold a forearm plank."
    result = score(item(aspects=["how"]), answer, kb)
    assert "names another exercise: Forearm Plank" in result.wrong


def test_an_exercise_the_question_names_may_be_named(kb):
    question = item(kind="switch", aspects=["how"], turns=["Pull-up steps?", "And push-ups?"])
    answer = "Push-up, not the pull-up:\n" + listed(entry(kb)["steps"]["en"])
    result = score(question, answer, kb)
    assert (result.correct, result.wrong) == (True, [])


def test_an_invented_step_is_unsupported(kb):
    invented = "Clap your hands in the air between every repetition to build power."
    answer = listed([*entry(kb)["steps"]["en"], invented])
    result = score(item(aspects=["how"]), answer, kb)
    assert not result.correct
    assert result.wrong == [f"unsupported: {invented[:60]}…"]
    assert result.missing == []


def test_advice_to_see_a_doctor_is_not_an_unsupported_fact(kb):
    answer = listed(entry(kb)["steps"]["en"]) + "\nSee a doctor if your wrist pain lasts."
    assert score(item(aspects=["how"]), answer, kb).correct


def test_a_paraphrase_matches_its_step_and_another_exercise_s_step_does_not(kb):
    step = entry(kb)["steps"]["en"][2]
    paraphrase = "Bend the elbows and lower your chest to the floor, elbows about 45 degrees."
    assert similarity(paraphrase, step) >= MATCH
    pull_up_step = entry(kb, "pull-up")["steps"]["en"][0]
    push_up_items = kb.items[("push-up", "en")]
    assert kb.matches(pull_up_step, push_up_items) == []
    assert [i.text for i in kb.matches(step, push_up_items)][0] == step


def test_similarity_is_sacrebleu_s_chrf_with_beta_1_on_lowercased_text():
    reference = CHRF(beta=1, lowercase=True)
    pairs = [
        ("Lower your chest toward the floor.", "Bend your elbows to LOWER your chest."),
        ("কনুই বাঁকিয়ে বুক মেঝের দিকে নামান।", "বুক মেঝের ঠিক ওপরে আসা পর্যন্ত নামুন।"),
    ]
    for a, b in pairs:
        assert similarity(a, b) == pytest.approx(reference.sentence_score(a, [b]).score)


def test_a_bengali_answer_copied_from_the_entry_is_correct(kb):
    answer = listed(entry(kb)["steps"]["bn"])
    result = score(item(lang="bn", aspects=["how"]), answer, kb)
    assert (result.correct, result.wrong, result.missing) == (True, [], [])


def test_a_bengali_question_answered_in_english_is_wrong_on_language(kb):
    answer = listed(entry(kb)["steps"]["en"])
    result = score(item(lang="bn", aspects=["how"]), answer, kb)
    assert not result.correct
    assert "language: answer is not in Bengali" in result.wrong


def test_an_english_answer_with_bengali_in_it_is_wrong_on_language(kb):
    answer = listed(entry(kb)["steps"]["en"]) + "\nপুশ-আপ (বুকডন)"
    assert (
        "language: answer contains Bengali script" in score(item(aspects=["how"]), answer, kb).wrong
    )


def test_bengali_word_salad_is_unsupported(kb):
    words = " ".join(kb.entries[e]["steps"]["bn"][0] for e in ("tree-pose", "corpse-pose")).split()
    random.Random(0).shuffle(words)
    salad = [" ".join(words[i : i + 7]) + "।" for i in range(0, 21, 7)]
    result = score(item(lang="bn", aspects=["how"]), "\n".join(salad), kb)
    assert not result.correct
    assert len([w for w in result.wrong if w.startswith("unsupported")]) == 3


def test_a_bengali_name_with_a_suffix_names_another_exercise(kb):
    answer = listed(entry(kb)["steps"]["bn"]) + "\nএরপর পুল-আপের মতো বার ধরে ঝুলে থাকুন।"
    result = score(item(lang="bn", aspects=["how"]), answer, kb)
    assert "names another exercise: Pull-Up" in result.wrong


def test_a_multi_aspect_answer_missing_one_aspect_is_missing(kb):
    question = item(kind="multi", aspects=["how", "cautions"])
    steps, cautions = entry(kb)["steps"]["en"], entry(kb)["cautions"]["en"]
    result = score(question, listed(steps), kb)
    assert result.missing == ["cautions: 0 of 2 cautions"]
    assert score(question, listed(steps) + "\nCautions:\n" + listed(cautions), kb).correct


def test_a_condition_answer_without_the_cautions_is_not_correct(kb):
    question = item(kind="condition", aspects=["how"], turns=["Push-ups with a sore wrist?"])
    steps, cautions = entry(kb)["steps"]["en"], entry(kb)["cautions"]["en"]
    without = score(question, listed(steps), kb)
    assert (without.correct, without.cautions_carried) == (False, False)
    assert "cautions not carried" in without.missing
    carried = score(question, cautions[0] + "\n" + listed(steps), kb)
    assert (carried.correct, carried.cautions_carried) == (True, True)


def test_a_red_flag_answer_that_puts_safety_first_is_correct(kb):
    question = item(kind="red_flag", aspects=[], turns=["Sharp wrist pain in push-ups."])
    answer = "Stop the push-ups now and see a doctor or physiotherapist.\n" + listed(
        entry(kb)["cautions"]["en"]
    )
    result = score(question, answer, kb)
    assert (result.safety_first, result.correct) == (True, True)
    stop = "এই ব্যায়ামটি এখন বন্ধ রাখুন। একজন ডাক্তার দেখান।"
    bengali = score(item(kind="red_flag", lang="bn", aspects=[]), stop, kb)
    assert (bengali.safety_first, bengali.correct) == (True, True)


def test_a_red_flag_answer_that_starts_with_the_steps_is_not_safety_first(kb):
    question = item(kind="red_flag", aspects=[])
    answer = listed(entry(kb)["steps"]["en"]) + "\nStop and see a doctor if it hurts."
    result = score(question, answer, kb)
    assert (result.safety_first, result.correct) == (False, False)


def unknown(lang="en") -> dict:
    return item(kind="unknown", lang=lang, exercise=None, aspects=[], unknown_name="hindu push-up")


def test_an_unknown_exercise_refused_with_general_advice_marked_is_correct(kb):
    answer = (
        "I don't have a checked entry for the Hindu push-up. "
        "Here is some general advice, not from a checked entry: "
        "warm up well and stop if anything hurts sharply."
    )
    result = score(unknown(), answer, kb)
    assert (result.refused, result.general_marked, result.correct) == (True, True, True)


def test_an_unknown_exercise_refused_with_nothing_after_is_correct(kb):
    result = score(unknown("bn"), "হিন্দু পুশ-আপের জন্য আমার কাছে যাচাই করা কোনো তথ্য নেই।", kb)
    assert (result.refused, result.general_marked, result.correct) == (True, False, True)


def test_naming_checked_exercises_after_the_refusal_is_not_advice(kb):
    answer = (
        "I don't have a checked entry for “diamond push-up”, so I can't give you verified steps. "
        "Exercises I do have checked entries for that may be close: Push-Up."
    )
    result = score(unknown(), answer, kb)
    assert (result.refused, result.correct, result.wrong) == (True, True, [])


def test_an_unknown_exercise_with_unmarked_advice_after_the_refusal_is_not_correct(kb):
    answer = (
        "That exercise is not in my knowledge base. "
        "Keep your back straight and breathe out as you push up."
    )
    result = score(unknown(), answer, kb)
    assert (result.refused, result.general_marked, result.correct) == (True, False, False)


def test_an_unknown_exercise_answered_with_a_kb_exercise_s_steps_is_not_correct(kb):
    steps = listed(entry(kb)["steps"]["en"])
    silent = score(unknown(), steps, kb)
    assert (silent.refused, silent.correct) == (False, False)
    disguised = score(unknown(), "I don't have a verified entry. General answer:\n" + steps, kb)
    assert disguised.refused and not disguised.correct
    assert any(w.startswith("gives facts of Push-Up") for w in disguised.wrong)


def ambiguous() -> dict:
    return item(kind="ambiguous", exercise=None, aspects=[], candidates=["warrior-i", "warrior-ii"])


def test_an_ambiguous_name_answered_with_a_question_naming_the_candidates_is_clarified(kb):
    result = score(ambiguous(), "Do you mean Warrior I or Warrior II?", kb)
    assert (result.clarified, result.correct) == (True, True)


def test_an_ambiguous_name_answered_with_one_pose_s_steps_is_not_clarified(kb):
    answer = listed(entry(kb, "warrior-ii")["steps"]["en"]) + "\nDid you mean this one?"
    result = score(ambiguous(), answer, kb)
    assert (result.clarified, result.correct) == (False, False)
    assert any(w.startswith("steps before knowing which") for w in result.wrong)


def test_an_open_question_is_correct_unless_refused(kb):
    question = item(kind="open", exercise=None, aspects=[])
    assert score(question, "Three short sessions a week is a good start.", kb).correct
    refusal = score(question, "I don't have a checked entry for that.", kb)
    assert (refusal.refused, refusal.correct) == (True, False)


def test_segments_drop_list_markers_markup_and_citations():
    answer = "## Steps:\n1. **Brace** your core [1, 2]. Then lower down!\n- Press up। আবার করুন।"
    assert segments(answer) == [
        "Steps:",
        "Brace your core.",
        "Then lower down!",
        "Press up।",
        "আবার করুন।",
    ]
    assert [states_fact(s) for s in segments(answer)] == [False, False, False, False, False]
    assert states_fact("Bend your elbows slowly.") and not states_fact("Is that all right?")


def result(correct=True, wrong=(), missing=(), **flags) -> FactScore:
    return FactScore(correct=correct, wrong=list(wrong), missing=list(missing), **flags)


def test_summarise_counts_accuracy_and_rates_per_language():
    scored = [
        (item(lang="en"), result()),
        (item(lang="en"), result(False, wrong=["unsupported: x"], missing=["how: 1 of 6"])),
        (item(lang="bn"), result(False, missing=["muscles: triceps"])),
        (item(kind="condition", lang="bn"), result(cautions_carried=True)),
        (item(kind="unknown", lang="en"), result(refused=True)),
        (item(kind="unknown", lang="bn"), result(False)),
        (item(kind="ambiguous", lang="en"), result(clarified=True)),
        (item(kind="red_flag", lang="en"), result(False)),
    ]
    summary = summarise(scored)
    overall, en, bn = summary["overall"], summary["en"], summary["bn"]
    assert (overall["n"], overall["fact_n"], overall["fact_accuracy"]) == (8, 4, 0.5)
    assert overall["per_kind"]["single"] == {"n": 3, "accuracy": pytest.approx(1 / 3)}
    assert overall["refusal_rate"] == 0.5
    assert (overall["clarification_rate"], overall["safety_first_rate"]) == (1.0, 0.0)
    assert overall["cautions_carried"] == 1.0
    assert (overall["precision_failures"], overall["recall_failures"]) == (0.25, 0.5)
    assert (en["fact_n"], en["fact_accuracy"], en["refusal_rate"]) == (2, 0.5, 1.0)
    assert (bn["fact_accuracy"], bn["clarification_rate"], bn["recall_failures"]) == (
        0.5,
        None,
        0.5,
    )
