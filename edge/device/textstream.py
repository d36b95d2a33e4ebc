"""Token ids in, text pieces out, as a language model generates them.

The ids are decoded whole each time (so characters made of several tokens and the spaces a
tokenizer attaches to the next word come out right), and a piece is released only once it can
no longer change: an incomplete UTF-8 character at the end waits for its next token, and text
that could be the start of a stop string waits until it is clear that it is not.

    >>> stream = TextStream(lambda ids: "".join(map(chr, ids)), stop=["\\n\\n"])
    >>> [stream.push(t) for t in map(ord, "Hi\\n\\nBye")], stream.stopped
    (['H', 'i', '', '', '', '', ''], True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

INCOMPLETE = "\ufffd"  # what a byte-level tokenizer decodes half a character to


class TextStream:
    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.text = ""  # everything released so far
        self.stopped = False  # a stop string was found: the caller ends generation

    def push(self, token: int) -> str:
        """Add one generated id; returns the text that became final (often '')."""
        if self.stopped:
            return ""
        self.ids.append(token)
        return self._release(self._decode(self.ids).rstrip(INCOMPLETE), final=False)

    def flush(self) -> str:
        """The text still held back, at the end of generation."""
        if self.stopped:
            return ""
        return self._release(self._decode(self.ids), final=True)

    def _release(self, text: str, final: bool) -> str:
        end = len(text)
        for stop in self._stop:
            found = text.find(stop, max(0, len(self.text) - len(stop)))
            if found != -1 and found < end:
                end, self.stopped = found, True
        if not self.stopped and not final:
            end -= self._held(text)
        piece = text[len(self.text):end] if end > len(self.text) else ""
        self.text += piece
        return piece

    def _held(self, text: str) -> int:
        """How many trailing characters could still become a stop string."""
        longest = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:n]):
                    longest = max(longest, n)
                    break
        return longest
