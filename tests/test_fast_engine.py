"""The fast engine (packed low-bit weights, batched decoding, prefix cache) against the fp32
transformers forward, on the real bundled SmolLM2-135M-Instruct."""

import threading

import pytest
import torch
import torch.nn.functional as F

from omnicoach.models import fused_decode
from omnicoach.models.batch_engine import BatchEngine
from omnicoach.models.llama_decoder import LlamaDecoder
from omnicoach.models.llm import ChatLLM, SamplingParams

# Held out: written for this test, so in no training set of the model.
HELD_OUT = (
    "A good warm-up raises your heart rate slowly and moves each joint through its range. "
    "Start with five minutes of brisk walking or easy cycling, then add leg swings, arm "
    "circles and a few slow bodyweight squats. Before a run, finish with skips and short "
    "strides; before lifting, do one or two light sets of the first exercise. Stretch long "
    "holds after the session rather than before it, when the muscles are warm. If a joint "
    "hurts rather than feels tight, stop and rest it, and see a physiotherapist if the pain "
    "lasts more than a few days. Breathe out as you push or pull and in as you return."
)
PROMPTS = [
    "How do I do downward dog safely?",
    "What muscles does a squat work?",
    "Give me a five minute morning stretch routine.",
    "Is it fine to do planks every day?",
    "How should I breathe during a push-up?",
    "What is the difference between yoga and pilates?",
    "How long should I hold a plank as a beginner?",
    "What does warrior two look like?",
]
GREEDY = SamplingParams(temperature=0.0, max_tokens=32)


@pytest.fixture(scope="module")
def fp32_llm(llm):
    """The same weights through transformers' own fp32 forward: the reference."""
    return ChatLLM(llm.tokenizer, llm.model, llm.name, llm.context_length)


@pytest.fixture(scope="module")
def int4(llm):
    return LlamaDecoder(llm.model, "int4", slots=1, max_len=1024)


def mean_nll(logits: torch.Tensor, ids: list[int]) -> float:
    return F.cross_entropy(logits[:-1], torch.tensor(ids[1:])).item()


def decoded_logits(decoder: LlamaDecoder, ids: list[int], prompt_length: int) -> torch.Tensor:
    """Teacher-forced through the path answers take: IDS[:PROMPT_LENGTH] prefilled, then one
    decode step per later token; the logits after each position from PROMPT_LENGTH - 1 on."""
    rows = [decoder.prefill(0, ids[:prompt_length], 0)]
    for position in range(prompt_length, len(ids)):
        rows.append(decoder.decode([0], [ids[position]], [position])[0])
    return torch.stack(rows)


def test_int4_perplexity_is_within_two_percent_of_fp32(llm, int4):
    """Both paths: a whole prompt at once (bfloat16 products) and decode steps (packed int4
    weights, the output matrix with 8-bit activations)."""
    ids = llm.tokenizer(HELD_OUT, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        reference = mean_nll(llm.model(torch.tensor([ids])).logits[0], ids)
    prompt = mean_nll(int4.prefill(0, ids, 0, every_position=True), ids)
    decoded = mean_nll(decoded_logits(int4, ids, 1), ids)
    for path, nll in (("prompt", prompt), ("decode", decoded)):
        ratio = torch.tensor(nll - reference).exp().item()  # perplexity ratio
        assert 0.98 <= ratio <= 1.02, f"int4 perplexity ({path} path) is {ratio:.4f}× fp32"


def test_int4_agrees_with_fp32_greedy_tokens(llm, fp32_llm, int4):
    """Teacher-forced: along fp32's greedy answers, int4 decode steps pick the same next token
    ≥ 95 % of the time."""
    agree = total = 0
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        answer = list(fp32_llm.stream(messages, GREEDY))
        prompt_ids = fp32_llm.build_prompt(messages, GREEDY.max_tokens).token_ids
        answer_ids = llm.tokenizer("".join(answer), add_special_tokens=False)["input_ids"]
        ids = prompt_ids + answer_ids
        with torch.inference_mode():
            reference = llm.model(torch.tensor([ids])).logits[0].argmax(-1)
        quantised = decoded_logits(int4, ids[:-1], len(prompt_ids)).argmax(-1)
        agree += int((reference[len(prompt_ids) - 1 : -1] == quantised).sum())
        total += len(answer_ids)
    assert agree / total >= 0.95, f"greedy agreement {agree / total:.3f}"


def test_the_cpp_decode_step_is_built_and_in_use(int4):
    """The quality guards above ran through it: where it does not build, the engine falls back
    to the Python loop, but the test machine has a compiler, so a failed build is a failure."""
    assert fused_decode.load() is not None
    assert int4.fused is not None


@pytest.mark.parametrize("threads", [1, 2])
def test_the_cpp_decode_step_matches_the_python_loop(llm, threads):
    """The same step in C++ (its thread pool splits each product by output rows) and in Python:
    teacher-forced along held-out text, single sequences and a batch of three at different
    lengths. Up to bfloat16 rounding (the C++ loop sums in another order and keeps attention in
    fp32): measured logits 1.19 apart at most, the same next token at 96.7 % of positions (the
    others near-ties), identical for 1 and 2 threads."""
    decoder = LlamaDecoder(llm.model, "int4", slots=3, max_len=512, threads=threads)
    fused = decoder.fused
    ids = llm.tokenizer(HELD_OUT, add_special_tokens=False)["input_ids"]

    def teacher_forced(step) -> torch.Tensor:
        decoder.fused = step
        return decoded_logits(decoder, ids, 10)

    in_python, in_cpp = teacher_forced(None), teacher_forced(fused)
    assert (in_python - in_cpp).abs().max() < 2.0
    assert (in_python.argmax(-1) == in_cpp.argmax(-1)).float().mean() >= 0.93

    lengths = [20, 35, 50]

    def batch_of_three(step) -> torch.Tensor:
        decoder.fused = step
        for slot, n in enumerate(lengths):
            decoder.prefill(slot, ids[:n], 0)
        return decoder.decode([0, 1, 2], [ids[n] for n in lengths], lengths)

    batched_python, batched_cpp = batch_of_three(None), batch_of_three(fused)
    assert torch.equal(batched_python.argmax(-1), batched_cpp.argmax(-1))
    assert (batched_python - batched_cpp).abs().max() < 2.0


def test_the_cpp_decode_step_rejects_positions_tokens_and_slots_out_of_range(llm):
    decoder = LlamaDecoder(llm.model, "int4", slots=2, max_len=64, threads=2)
    for slots, tokens, positions in (([0], [5], [64]), ([0], [10**6], [3]), ([2], [5], [3])):
        with pytest.raises(RuntimeError, match="outside the cache|outside the vocabulary|no KV"):
            decoder.fused.decode(slots, tokens, positions)
    assert decoder.decode([0], [5], [3]).shape[0] == 1  # and it goes on working


def test_decoding_falls_back_to_python_when_the_cpp_step_is_off(llm, monkeypatch):
    monkeypatch.setenv("OMNICOACH_FUSED_DECODE", "0")
    decoder = LlamaDecoder(llm.model, "int4", slots=1, max_len=128)
    assert decoder.fused is None
    ids = llm.tokenizer(HELD_OUT, add_special_tokens=False)["input_ids"][:12]
    decoder.prefill(0, ids[:-1], 0)
    assert decoder.decode([0], [ids[-1]], [len(ids) - 1]).shape == (1, llm.model.config.vocab_size)


def test_fp32_scheme_matches_transformers(llm):
    decoder = LlamaDecoder(llm.model, "fp32", slots=1, max_len=256)
    ids = llm.tokenizer(HELD_OUT, add_special_tokens=False)["input_ids"][:100]
    with torch.inference_mode():
        reference = llm.model(torch.tensor([ids])).logits[0]
    assert torch.allclose(decoder.prefill(0, ids, 0, every_position=True), reference, atol=1e-3)


@pytest.fixture
def engine_llm(llm):
    """A private engine (2 running, 2 cached slots) over the shared weights."""
    decoder = LlamaDecoder(llm.model, "int4", slots=4, max_len=1024)
    engine = BatchEngine(
        decoder, llm.end_token_ids, max_batch=2, control_token_ids=llm.control_token_ids
    )
    yield ChatLLM(llm.tokenizer, llm.model, llm.name, 1024, llm.default_system_prompt, engine)
    engine.close()


@pytest.mark.parametrize("batch", [2, 8])
def test_a_batched_step_matches_decoding_each_sequence_alone(llm, batch):
    """Rows of a batch are masked to their own lengths; up to rounding, each row is what
    decoding that sequence alone gives: the same next token, logits within 2.5 (bfloat16
    arithmetic, and the output matrix's 8-bit activations quantised with the batch's range
    instead of the row's: measured up to 2.0 apart, 1.1 for both in bfloat16). 8 rows take
    the bfloat16 products (quantize.py's DENSE_FROM_ROWS), 2 the packed ones."""
    decoder = LlamaDecoder(llm.model, "int4", slots=batch, max_len=512)
    texts = [HELD_OUT, *PROMPTS][:batch]
    prompts = [llm.tokenizer(text, add_special_tokens=False)["input_ids"][:60] for text in texts]
    for slot, ids in enumerate(prompts):
        decoder.prefill(slot, ids, 0)
    slots, tokens = list(range(batch)), [11 * (slot + 1) for slot in range(batch)]
    lengths = [len(ids) for ids in prompts]
    alone = [decoder.decode([s], [tokens[s]], [lengths[s]])[0] for s in slots]
    batched = decoder.decode(slots, tokens, lengths)
    for row, single in zip(batched, alone, strict=True):
        assert row.argmax() == single.argmax()
        assert (row - single).abs().max() < 2.5


def test_concurrent_requests_share_decode_steps(engine_llm):
    questions = [[{"role": "user", "content": p}] for p in PROMPTS[:2]]
    params = SamplingParams(temperature=0.0, max_tokens=32, ignore_eos=True)
    answers = [None, None]

    def ask(i):
        answers[i] = engine_llm.complete(questions[i], params)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [a.completion_tokens for a in answers] == [32, 32]
    # 64 tokens in far fewer than 64 steps: the two advanced together.
    assert engine_llm.engine.steps < 48


def test_prefix_reuse_matches_a_full_prefill(llm):
    """Reusing cached keys/values for a shared beginning gives the logits of a cold prefill
    (up to bfloat16 rounding: the products are split differently, and the output matrix's
    8-bit activations can turn that into a step of their own: measured 0.59 apart, 0.44 with
    the output matrix in bfloat16)."""
    decoder = LlamaDecoder(llm.model, "int4", slots=2, max_len=512)
    ids = llm.tokenizer(HELD_OUT, add_special_tokens=False)["input_ids"][:80]
    cold = decoder.prefill(0, ids, 0)
    decoder.prefill(1, ids[:50], 0)
    warm = decoder.prefill(1, ids[50:], 50)
    assert warm.argmax() == cold.argmax()
    assert (warm - cold).abs().max() < 0.75


def test_a_conversation_reuses_its_prefix_and_an_edit_only_what_is_shared(engine_llm):
    engine = engine_llm.engine
    turn1 = [{"role": "user", "content": "Name a hip opener."}]
    answer = engine_llm.complete(turn1, GREEDY).text
    turn2 = [
        *turn1,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "How long should I hold it?"},
    ]
    before = engine.stats()
    second = engine_llm.stream(turn2, GREEDY)
    assert "".join(second)
    reused = engine.stats()["reused_tokens"] - before["reused_tokens"]
    prefilled = engine.stats()["prefilled_tokens"] - before["prefilled_tokens"]
    # Everything up to the end of the first answer came from the cache.
    first_prompt = engine_llm.build_prompt(turn1, GREEDY.max_tokens).token_ids
    assert reused > len(first_prompt) and prefilled < second.prompt_tokens - len(first_prompt)

    # An edited history shares only its beginning; exactly that much is reused.
    edited = [*turn1, {"role": "assistant", "content": "Try pigeon pose."}, turn2[-1]]
    edited_ids = engine_llm.build_prompt(edited, GREEDY.max_tokens).token_ids
    cached = [slot.tokens for slot in engine._slots]
    shared = max(_shared(tokens, edited_ids) for tokens in cached)
    before = engine.stats()["reused_tokens"]
    assert engine_llm.complete(edited, GREEDY).text
    assert engine.stats()["reused_tokens"] - before == shared < len(edited_ids)


def test_an_answer_run_past_its_end_is_plain_text_the_next_turn_reuses(engine_llm):
    """ignore_eos never picks a control token (end of turn, turn markers), so the answer is
    text that the next turn's prompt holds token for token: all of it comes from the cache."""
    engine = engine_llm.engine
    turn1 = [{"role": "user", "content": "Say one word."}]  # it ends at once if let
    long = SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True)
    first = engine_llm.stream(turn1, long)
    answer = "".join(first)
    assert first.completion_tokens == 64
    held = max(engine._slots, key=lambda slot: slot.last_used).tokens
    assert not set(held) & engine_llm.control_token_ids - set(held[: first.prompt_tokens])
    turn2 = [*turn1, {"role": "assistant", "content": answer}, {"role": "user", "content": "Why?"}]
    before = engine.stats()["reused_tokens"]
    assert "".join(engine_llm.stream(turn2, GREEDY))
    assert engine.stats()["reused_tokens"] - before == len(held)


def _shared(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_cancelling_frees_the_batch_place(engine_llm):
    long = SamplingParams(temperature=0.0, max_tokens=500, ignore_eos=True)
    generation = engine_llm.stream([{"role": "user", "content": PROMPTS[0]}], long)
    next(iter(generation))
    generation.cancel()
    rest = list(generation)
    assert generation.finish_reason == "cancelled" and len(rest) < 400
    assert engine_llm.engine.stats()["busy_slots"] == 0


def test_a_request_failing_as_it_is_admitted_ends_with_its_error_and_frees_its_place(
    engine_llm,
):
    # Its first token cannot be drawn (probabilities of inf / nan); the API clamps such
    # settings, the engine must still never leave a request waiting forever.
    broken = SamplingParams(temperature=5e-324, max_tokens=4)
    generation = engine_llm.stream([{"role": "user", "content": PROMPTS[1]}], broken)
    with pytest.raises(RuntimeError):
        list(generation)
    assert engine_llm.engine.stats()["busy_slots"] == 0
    still = engine_llm.stream([{"role": "user", "content": PROMPTS[1]}], GREEDY)
    assert "".join(still) and still.finish_reason in ("stop", "length")
