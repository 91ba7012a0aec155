"""Streaming text normalisation and counting for one document.

The original notebook read each file with ``open(path, "r")`` (UTF-8 locale, universal newlines) and wrote
the text back as UTF-8, so CRLF and CR became LF. This module does the same, chunk by chunk, with a strict
UTF-8 decoder: bytes that are not UTF-8 are an error naming the file and byte offset, never replaced.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_COUNT_SLICE = 64 * 1024


class UndecodableTextError(ValueError):
    def __init__(self, offset: int, detail: str) -> None:
        super().__init__(f"not valid UTF-8 at byte {offset}: {detail}")
        self.offset = offset


@dataclass
class TextCounts:
    words: int = 0
    characters: int = 0
    non_space_characters: int = 0

    def add(self, other: TextCounts) -> None:
        self.words += other.words
        self.characters += other.characters
        self.non_space_characters += other.non_space_characters


class DocumentText:
    """Feed raw bytes with :meth:`feed`, then :meth:`finish`; both return normalised UTF-8 bytes to write.

    ``counts`` holds words (runs of non-whitespace, as ``str.split()``), characters (code points after newline
    normalisation) and non-whitespace characters.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._consumed = 0
        self._pending_cr = False
        self._in_word = False
        self.counts = TextCounts()

    def feed(self, data: bytes) -> bytes:
        return self._process(data, final=False)

    def finish(self) -> bytes:
        return self._process(b"", final=True)

    def _process(self, data: bytes, *, final: bool) -> bytes:
        buffered = len(self._decoder.getstate()[0])
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as err:
            offset = self._consumed - buffered + err.start
            raise UndecodableTextError(offset, err.reason) from None
        self._consumed += len(data)
        if self._pending_cr:
            text = "\r" + text
            self._pending_cr = False
        if text.endswith("\r") and not final:
            self._pending_cr = True
            text = text[:-1]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        self._count(text)
        return text.encode("utf-8")

    def _count(self, text: str) -> None:
        # In slices, so that the list of words ``split`` builds stays small (a few hundred KB, not ~10 MB).
        for start in range(0, len(text), _COUNT_SLICE):
            self._count_slice(text[start : start + _COUNT_SLICE])

    def _count_slice(self, text: str) -> None:
        if not text:
            return
        words = text.split()
        counts = self.counts
        counts.characters += len(text)
        if words:
            counts.words += len(words)
            if self._in_word and not text[0].isspace():
                counts.words -= 1  # a word split across two slices
            counts.non_space_characters += sum(map(len, words))
        self._in_word = not text[-1].isspace()
