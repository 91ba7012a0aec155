"""Streaming decode, newline normalisation and counting, across arbitrary chunk boundaries."""

from __future__ import annotations

import random

import pytest

from lambdas.dataset_prep.text import DocumentText, UndecodableTextError

SAMPLE = "Lord Reed:\r\n\r\n1. The appellant\u2019s claim — «fails».\rIt is dismissed.\n  Costs\tfollow  \r\n"


def feed_in_chunks(data: bytes, sizes: list[int]) -> tuple[bytes, DocumentText]:
    doc = DocumentText()
    out = bytearray()
    pos = 0
    for size in sizes:
        out += doc.feed(data[pos : pos + size])
        pos += size
    out += doc.feed(data[pos:])
    out += doc.finish()
    return bytes(out), doc


def expected(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@pytest.mark.parametrize("seed", range(40))
def test_any_chunking_gives_the_same_text_and_counts(seed: int) -> None:
    data = SAMPLE.encode("utf-8") * 3
    rng = random.Random(seed)
    sizes = [rng.randint(1, 7) for _ in range(rng.randint(0, 40))]
    out, doc = feed_in_chunks(data, sizes)
    want = expected(SAMPLE * 3)
    assert out.decode("utf-8") == want
    assert doc.counts.words == len(want.split())
    assert doc.counts.characters == len(want)
    assert doc.counts.non_space_characters == sum(len(w) for w in want.split())


def test_crlf_split_across_chunks_is_one_newline() -> None:
    out, _ = feed_in_chunks(b"a\r\nb\r", [2])
    assert out == b"a\nb\n"


def test_invalid_utf8_reports_the_byte_offset() -> None:
    data = "ok \u2019 then ".encode() + b"\xff rest"
    with pytest.raises(UndecodableTextError, match=f"byte {len(data) - 6}"):
        feed_in_chunks(data, [3, 3, 3])


def test_truncated_multibyte_sequence_at_end_is_an_error() -> None:
    with pytest.raises(UndecodableTextError):
        feed_in_chunks("\u2019".encode()[:2], [1])


def test_bom_and_non_ascii_kept() -> None:
    out, doc = feed_in_chunks("\ufeffCafé".encode(), [1, 1])
    assert out == "\ufeffCafé".encode()
    assert doc.counts.words == 1
