"""The chat engine on the real bundled SmolLM2-135M-Instruct."""

import threading

import pytest

from omnicoach.errors import ContextLengthError, InvalidRequestError
from omnicoach.models.llm import ChatLLM, SamplingParams

QUESTION = [{"role": "user", "content": "How do I do downward dog safely?"}]
GREEDY = dict(temperature=0.0, max_tokens=24)


def small_context(llm: ChatLLM, context_length: int) -> ChatLLM:
    """The same weights behind a smaller window, to exercise the trimming rule cheaply."""
    return ChatLLM(llm.tokenizer, llm.model, llm.name, context_length, llm.default_system_prompt)


def test_greedy_output_is_reproducible_and_ignores_the_seed(llm):
    first = llm.complete(QUESTION, SamplingParams(**GREEDY, seed=1))
    second = llm.complete(QUESTION, SamplingParams(**GREEDY, seed=2))
    assert first.text.strip()
    assert first.text == second.text
    assert first.completion_tokens == second.completion_tokens > 0


def test_sampling_is_reproducible_for_a_fixed_seed(llm):
    def sample(seed):
        return llm.complete(
            QUESTION, SamplingParams(temperature=1.0, top_p=0.95, max_tokens=24, seed=seed)
        ).text

    assert sample(7) == sample(7)
    assert len({sample(7), sample(8), sample(9)}) > 1


def test_streamed_text_equals_non_streamed_text(llm):
    params = SamplingParams(temperature=0.0, max_tokens=40)
    generation = llm.stream(QUESTION, params)
    deltas = list(generation)
    assert len(deltas) > 5  # really streamed, not one chunk at the end
    completion = llm.complete(QUESTION, params)
    assert "".join(deltas) == completion.text
    assert generation.finish_reason == completion.finish_reason
    assert generation.prompt_tokens == completion.prompt_tokens


def test_finish_reason_length_counts_tokens(llm):
    completion = llm.complete(QUESTION, SamplingParams(temperature=0.0, max_tokens=5))
    assert completion.finish_reason == "length"
    assert completion.completion_tokens == 5


def test_template_carries_every_turn_in_order(llm):
    messages = [
        {"role": "system", "content": "You are a terse coach."},
        {"role": "user", "content": "Name a hip opener."},
        {"role": "assistant", "content": "Pigeon pose."},
        {"role": "user", "content": "And a hamstring stretch?"},
    ]
    prompt = llm.build_prompt(messages, max_tokens=16)
    text = llm.tokenizer.decode(prompt.token_ids)
    positions = [text.index(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>") for m in messages]
    assert positions == sorted(positions)
    assert text.endswith("<|im_start|>assistant\n")  # the model's turn is opened
    assert prompt.dropped_messages == 0
    assert llm.default_system_prompt not in text  # the conversation brought its own


def test_default_system_prompt_is_added_when_missing(llm):
    prompt = llm.build_prompt(QUESTION, max_tokens=16)
    assert prompt.messages[0] == {"role": "system", "content": llm.default_system_prompt}
    assert llm.default_system_prompt in llm.tokenizer.decode(prompt.token_ids)


def test_trimming_drops_oldest_turns_keeps_system_and_last_message(llm):
    system = {"role": "system", "content": "You are a coach."}
    history = [system]
    for i in range(12):
        history.append({"role": "user", "content": f"Question {i}: tell me about pose number {i}."})
        history.append(
            {"role": "assistant", "content": f"Answer {i}: pose {i} stretches the back. " * 3}
        )
    history.append({"role": "user", "content": "Which pose was the last one?"})

    llm_small = small_context(llm, 300)
    prompt = llm_small.build_prompt(history, max_tokens=60)

    assert len(prompt.token_ids) <= 300 - 60
    assert prompt.dropped_messages > 0 and prompt.dropped_messages % 2 == 0  # whole turns
    assert prompt.messages[0] == system
    assert prompt.messages[-1] == history[-1]
    assert prompt.messages[1]["role"] == "user"  # history restarts on a user turn
    # What is kept is the most recent part of the conversation, unchanged.
    assert prompt.messages[1:] == history[len(history) - len(prompt.messages) + 1 :]
    # Adding back the newest dropped turn would not have fitted.
    longer = [system, *history[len(history) - len(prompt.messages) - 1 :]]
    assert len(llm_small.build_prompt(longer, max_tokens=60).token_ids) <= 240
    assert llm_small.build_prompt(longer, max_tokens=60).dropped_messages > 0


def test_context_errors(llm):
    llm_small = small_context(llm, 128)
    with pytest.raises(ContextLengthError, match="shorten the message or lower max_tokens"):
        llm_small.build_prompt([{"role": "user", "content": "stretch " * 200}], max_tokens=16)
    with pytest.raises(ContextLengthError, match="leaves no room"):
        llm_small.build_prompt(QUESTION, max_tokens=128)


@pytest.mark.parametrize(
    ("messages", "params", "message"),
    [
        ([], SamplingParams(), "at least one message"),
        ([{"role": "robot", "content": "hi"}], SamplingParams(), "role must be one of"),
        ([{"role": "user", "content": None}], SamplingParams(), "content must be a string"),
        (QUESTION, SamplingParams(max_tokens=0), "max_tokens"),
        (QUESTION, SamplingParams(temperature=3), "temperature"),
        (QUESTION, SamplingParams(top_p=0), "top_p"),
        (QUESTION, SamplingParams(stop=["a", "b", "c", "d", "e"]), "stop strings"),
        (QUESTION, SamplingParams(frequency_penalty=3), "frequency_penalty"),
        (QUESTION, SamplingParams(presence_penalty=-3), "presence_penalty"),
        (QUESTION, SamplingParams(repetition_penalty=0), "repetition_penalty"),
    ],
)
def test_invalid_requests(llm, messages, params, message):
    with pytest.raises(InvalidRequestError, match=message):
        llm.stream(messages, params)


def test_stop_string_ends_the_answer_before_it(llm):
    full = llm.complete(QUESTION, SamplingParams(temperature=0.0, max_tokens=40)).text
    stop = full[len(full) // 3 : len(full) // 3 + 8]  # from the middle of the greedy answer
    stopped = llm.complete(QUESTION, SamplingParams(temperature=0.0, max_tokens=40, stop=[stop]))
    assert stopped.text == full[: full.index(stop)]
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text


def test_consumer_that_stops_reading_stops_generation(llm):
    generation = llm.stream(QUESTION, SamplingParams(temperature=0.0, max_tokens=200))
    iterator = iter(generation)
    next(iterator), next(iterator)
    generation.close()
    assert generation.completion_tokens <= 4  # not 200: nothing ran after the close
    with pytest.raises(StopIteration):
        next(iterator)


def test_cancel_from_another_thread(llm):
    generation = llm.stream(QUESTION, SamplingParams(temperature=0.0, max_tokens=200))
    first_delta = threading.Event()
    received = []

    def consume():
        for delta in generation:
            received.append(delta)
            first_delta.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert first_delta.wait(30)
    generation.cancel()
    worker.join(30)
    assert not worker.is_alive()
    assert generation.finish_reason == "cancelled"
    assert generation.completion_tokens < 200


def test_repetition_penalties_reduce_repeated_tokens(llm):
    def distinct_ratio(**penalties):
        params = SamplingParams(temperature=0.0, max_tokens=80, ignore_eos=True, **penalties)
        generation = llm.stream(QUESTION, params)
        ids = llm.tokenizer("".join(generation), add_special_tokens=False)["input_ids"]
        return len(set(ids)) / len(ids)

    plain = distinct_ratio(repetition_penalty=1.0)
    assert distinct_ratio(repetition_penalty=1.3) > plain
    assert distinct_ratio(repetition_penalty=1.0, frequency_penalty=1.0) > plain
