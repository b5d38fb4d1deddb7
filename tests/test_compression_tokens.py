"""The fast paths of compression give exactly what the plain computations give.

Token reuse after an edit, byte offsets, one-pass word extraction, segmentation and digit
runs are each checked against the straightforward computation on adversarial text.
"""

from __future__ import annotations

import random
import re

import pytest

from llmrouter import tokens
from llmrouter.compression import compress
from llmrouter.compression.dedupe import _numbers
from llmrouter.compression.messages import TokenCounter
from llmrouter.compression.normalize import normalize_text
from llmrouter.compression.segment import count_unit_tokens, segment_units
from llmrouter.compression.text import span_words, split_sentences, words
from llmrouter.compression.token_reuse import byte_offsets, encoder, reencode

# Pieces that stress pre-tokenisers: contractions, digit runs, marks, CJK, emoji, odd spaces,
# line breaks, slashes after line breaks and many ". " cuts.
PIECES = [
    "a", "B", "3", "12345", ".", ". ", ". ", ". ", " ", "  ", "\n", "\r\n", "\t", "'s", "'",
    "/", "é", "\u0301", "中文", "٣", "\u00a0", "!", "?", ",", "the", " The", "Mr", ". .",
    ".. ", "😀", "$", "-", "_", "A'LL", "\u2003", "word. Next", "\n/", "<|endoftext|>",
]  # fmt: skip


def random_text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(size))


def edited(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(chars))
        if rng.random() < 0.5 and chars:
            del chars[min(at, len(chars) - 1)]
        else:
            chars.insert(at, rng.choice(PIECES))
    return "".join(chars)


@pytest.mark.parametrize("model", [None, "gpt-4"])  # o200k_base and cl100k_base
def test_reencoding_an_edited_text_gives_the_ids_of_a_fresh_encoding(model: str | None) -> None:
    encode = encoder(model)
    reference = tokens.encoding_for_model(model)
    rng = random.Random(7)
    reused = 0
    for _ in range(400):
        old = random_text(rng, rng.randint(10, 60))
        new = edited(rng, old)
        ids = reencode(old, encode(old), new, encode, model)
        if ids is not None:
            reused += 1
            assert ids.tolist() == reference.encode_ordinary(new), (old, new)
    assert reused > 200


def test_the_counter_reencodes_a_derived_text_exactly() -> None:
    counter = TokenCounter()
    old = " ".join(f"Sentence {i} says 'it's {i * 7}%'. " for i in range(200))
    new = old.replace("Sentence 50 ", "Sentence fifty ").replace("says 'it's 9", "said 9")
    counter.ids(old)
    counter.derive(new, old)
    assert counter.ids(new).tolist() == tokens.encode(new)


def test_text_with_lone_surrogates_is_encoded_whole() -> None:
    old = "First. Second \ud800 part. Third. Fourth."
    new = old.replace("Third", "3rd")
    encode = encoder()
    assert reencode(old, encode(old), new, encode) is None
    counter = TokenCounter()
    counter.ids(old)
    counter.derive(new, old)
    assert counter.ids(new).tolist() == tokens.encode(new)


def test_byte_offsets_are_utf8_offsets() -> None:
    rng = random.Random(3)
    for _ in range(200):
        text = random_text(rng, rng.randint(0, 40))
        positions = sorted(rng.randint(0, len(text)) for _ in range(5))
        expected = [len(text[:p].encode()) for p in positions]
        assert byte_offsets(text, positions).tolist() == expected


def test_span_words_equals_the_word_regex_on_every_span() -> None:
    rng = random.Random(11)
    alphabet = "aZ9_ .,'’—–\u00a0\u2003\n\téÉßİıſKΣσς中٣²½\u0301-()"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        cuts = [sorted((rng.randint(0, len(text)), rng.randint(0, len(text)))) for _ in range(6)]
        spans = [(a, b) for a, b in cuts]
        assert span_words(text, spans) == [words(text[a:b]) for a, b in spans]


def test_units_are_sentences_and_lines_with_long_sentences_cut_at_commas() -> None:
    long_sentence = ", ".join(f"clause number {i} has words" for i in range(8)) + "."
    text = f"Short one. Another here!\nA line ending with a comma,\n{long_sentence} End."
    units = segment_units(text, preserve_code=True)
    pieces = [text[u.start : u.end] for u in units]
    assert pieces[:3] == ["Short one.", "Another here!", "A line ending with a comma,"]
    assert pieces[3] == "clause number 0 has words,"
    assert pieces[-1] == "End."
    # every prose unit lies inside one sentence of split_sentences
    sentences = split_sentences(text)
    for unit in units:
        assert any(s <= unit.start and unit.end <= e for s, e in sentences)
    assert all(u.text == text[u.start : u.end] for u in units)


def test_unit_token_counts_add_up_to_the_text() -> None:
    text = "Intro line. Second sentence here.\n\nCafé prices rose 12% — 😀 fine. \ud800 odd. Last."
    units = segment_units(text, preserve_code=True)
    counter = TokenCounter()
    count_unit_tokens(text, units, counter.ids)
    assert all(u.tokens >= 1 for u in units)
    assert sum(u.tokens for u in units) <= len(counter.ids(text))


def test_digit_runs_match_the_regex() -> None:
    rng = random.Random(5)
    for _ in range(300):
        text = "".join(rng.choice("ab 12 3.4,5\n٣٤ x9") for _ in range(rng.randint(0, 30)))
        assert _numbers(text) == tuple(re.findall(r"\d+", text))


def test_stage_counts_match_a_fresh_count_after_normalising() -> None:
    body = " ".join(f"Line {i} has a fact number {i * 3}.   " for i in range(300))
    document = body.replace(".   ", ". \n", 50)  # trailing blanks that normalisation removes
    content = f"{document}\n\nWhich fact has number 42?"
    result = compress([{"role": "user", "content": content}], ratio=3.0)
    normalised = [{"role": "user", "content": normalize_text(content)}]
    assert result.stage_tokens["normalize"] == tokens.count_message_tokens(normalised)
    assert result.tokens_after == tokens.count_message_tokens(result.messages)
