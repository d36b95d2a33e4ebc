"""Generated ids become text pieces: whole characters only, stop strings cut, nothing lost."""

from __future__ import annotations

from edge.device.textstream import TextStream


def _bytes(ids: list[int]) -> str:  # a byte-level tokenizer: one id per UTF-8 byte
    return bytes(ids).decode("utf-8", errors="replace")


def test_a_character_of_several_tokens_waits_for_its_last_one():
    stream = TextStream(_bytes)
    pieces = [stream.push(b) for b in "né!".encode()]
    assert pieces == ["n", "", "é", "!"] and stream.flush() == "" and stream.text == "né!"


def test_a_stop_string_across_tokens_ends_the_text_before_it():
    stream = TextStream(_bytes, stop=["</s>", "\n\n"])
    pieces = [stream.push(b) for b in b"ok</s>more"]
    assert "".join(pieces) == "ok" and stream.stopped and stream.text == "ok"
    assert stream.push(ord("x")) == "" and stream.flush() == ""


def test_text_that_only_looks_like_a_stop_string_is_released():
    stream = TextStream(_bytes, stop=["\n\n"])
    assert [stream.push(b) for b in b"a\nb"] == ["a", "", "\nb"] and not stream.stopped
    stream.push(ord("\n"))
    assert stream.flush() == "\n" and stream.text == "a\nb\n"


def test_tokens_that_change_earlier_text_are_decoded_whole():
    # a tokenizer that writes a space before every word but the first: decoding ids one by one would lose it
    words = {1: "Hello", 2: "world", 3: "again"}
    stream = TextStream(lambda ids: " ".join(words[i] for i in ids))
    assert "".join(stream.push(i) for i in (1, 2, 3)) + stream.flush() == "Hello world again"
