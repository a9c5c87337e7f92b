"""Incremental detokenisation with the real SmolLM2 tokenizer."""

from omnicoach.models.text_stream import TextStream


def stream_all(tokenizer, text, stop=()):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    stream = TextStream(tokenizer, stop)
    deltas = []
    for token_id in ids:
        deltas.append(stream.push(token_id))
        if stream.stopped:
            break
    deltas.append(stream.flush())
    return deltas, stream


def test_multibyte_characters_are_never_split(llm):
    text = "আসন অনুশীলন 🧘 ভালো — namaste!"  # Bengali and an emoji: multi-token characters
    deltas, _ = stream_all(llm.tokenizer, text)
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)


def test_stop_string_spanning_tokens_is_held_back_and_removed(llm):
    text = "Breathe in. Breathe out. END OF SET then rest."
    deltas, stream = stream_all(llm.tokenizer, text, stop=["END OF SET"])
    assert "".join(deltas) == "Breathe in. Breathe out. "
    assert stream.stopped
    assert not any("END" in d for d in deltas)


def test_text_that_only_looks_like_a_stop_string_is_released(llm):
    text = "Hold for ten breaths, then ENDURE a little longer."
    deltas, stream = stream_all(llm.tokenizer, text, stop=["END OF SET"])
    assert "".join(deltas) == text
    assert not stream.stopped
