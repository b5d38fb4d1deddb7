"""Token offsets, and re-encoding an edited text by reusing its source's token ids.

Stages rewrite long texts a little (normalisation trims a few line ends, de-duplication
drops a block) and the prompt must be counted again; encoding 10,000 tokens costs about
2 ms, most of a stage's budget. The o200k and cl100k pre-tokenisers never let a token
continue across a space that follows a non-space character (a space only ever starts a
token or sits inside a run of whitespace), so a text cut before the space of each ". "
encodes to the same ids piece by piece. Pieces of the new text found in the source reuse
the source's ids; only the changed runs are encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from llmrouter import tokens

if TYPE_CHECKING:
    import tiktoken

__all__ = ["PIECEWISE_ENCODINGS", "byte_offsets", "encoder", "reencode", "token_starts"]

# Encodings whose pre-tokeniser has the property above (tests/test_compression_tokens.py
# checks it on adversarial text); others are always encoded whole.
PIECEWISE_ENCODINGS = frozenset({"o200k_base", "cl100k_base"})
_CUT = ". "


def _token_lengths(model: str | None) -> np.ndarray:
    """Byte length of every token id of the model's encoding (built once per encoding, not
    per model name: every model routed to shares its encoding's table)."""
    return _lengths_of(tokens.encoding_for_model(model))


@lru_cache(maxsize=4)
def _lengths_of(encoding: tiktoken.Encoding) -> np.ndarray:
    lengths = np.zeros(encoding.n_vocab, dtype=np.int64)
    for token_id in range(encoding.n_vocab):
        try:
            lengths[token_id] = len(encoding.decode_single_token_bytes(token_id))
        except KeyError:  # holes in the vocabulary (reserved ids)
            continue
    return lengths


def encoder(model: str | None = None) -> Callable[[str], np.ndarray]:
    """``encode_ordinary`` for ``model``, returning a uint32 array (no Python list to build)."""
    encoding = tokens.encoding_for_model(model)

    def ordinary(text: str) -> np.ndarray:
        return np.asarray(encoding.encode_ordinary(text), dtype=np.uint32)

    if not hasattr(encoding, "encode_to_numpy"):  # tiktoken < 0.8
        return ordinary
    to_numpy = encoding.encode_to_numpy

    def encode(text: str) -> np.ndarray:
        try:
            # no special tokens allowed or refused: the same ids as encode_ordinary
            return np.asarray(to_numpy(text, disallowed_special=()), dtype=np.uint32)
        except UnicodeEncodeError:
            # lone surrogates, which encode_ordinary replaces by U+FFFD first
            return ordinary(text)

    return encode


def token_starts(ids: np.ndarray, model: str | None = None) -> np.ndarray:
    """UTF-8 byte offset at which each token of ``ids`` starts."""
    lengths = _token_lengths(model)[ids]
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def byte_offsets(text: str, positions: Sequence[int] | np.ndarray) -> np.ndarray:
    """UTF-8 byte offsets of character ``positions`` in ``text``."""
    offsets = np.asarray(positions, dtype=np.int64)
    if text.isascii():
        return offsets
    # each non-ASCII character adds 1-3 bytes to every offset after it (a lone surrogate 2,
    # as the U+FFFD it becomes); documents have few, so only they are summed
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    wide = np.flatnonzero(codes >= 0x80)
    wide_codes = codes[wide]
    extra = (wide_codes >= 0x800).astype(np.int64) + (wide_codes >= 0x10000) + 1
    extra_before = np.zeros(len(wide) + 1, dtype=np.int64)
    np.cumsum(extra, out=extra_before[1:])
    return offsets + extra_before[np.searchsorted(wide, offsets)]


def _utf8(text: str) -> bool:
    """No surrogates: the encoder sees exactly these characters, so byte offsets hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reencode(
    old_text: str,
    old_ids: np.ndarray,
    new_text: str,
    encode: Callable[[str], np.ndarray],
    model: str | None = None,
) -> np.ndarray | None:
    """Token ids of ``new_text``, reusing ``old_ids`` (of ``old_text``) where sentences match.

    None when ``old_text`` has too few sentences to be worth it. Pieces are: the first
    sentence with its ".", then " sentence." for each following one, the last without ".".
    """
    old_parts = old_text.split(_CUT)
    new_parts = new_text.split(_CUT)
    if len(old_parts) < 3 or len(new_parts) < 2 or not _utf8(old_text):
        return None
    # the space of every ". ": char offsets, then byte offsets, then token indices
    lengths = np.fromiter(map(len, old_parts), dtype=np.int64, count=len(old_parts))
    cuts = np.cumsum(lengths[:-1] + len(_CUT)) - 1
    starts = token_starts(old_ids, model)
    byte_cuts = byte_offsets(old_text, cuts)
    index = np.searchsorted(starts, byte_cuts)
    if index[-1] >= len(starts) or not np.array_equal(starts[index], byte_cuts):
        return None  # not token boundaries: an encoding without the property
    bounds = [0, *index.tolist(), len(old_ids)]
    # token span of each middle piece, keyed by its sentence (the same text, the same ids)
    spans = dict(zip(old_parts[1:-1], pairwise(bounds[1:-1]), strict=True))
    last = len(new_parts) - 1
    chunks: list[np.ndarray] = []
    reused = (0, 0)  # a run of old ids being copied, extended while pieces stay contiguous
    pending = -1  # start of a run of changed pieces, encoded together
    start = 0
    for k, part in enumerate(new_parts):
        if k == 0:
            span = (0, bounds[1]) if part == old_parts[0] else None
            end = len(part) + 1
        elif k == last:
            span = (bounds[-2], bounds[-1]) if part == old_parts[-1] else None
            end = len(new_text)
        else:
            span = spans.get(part)
            end = start + len(part) + len(_CUT)
        if span is None:
            if pending < 0:
                chunks.append(old_ids[reused[0] : reused[1]])
                reused = (0, 0)
                pending = start
        elif pending >= 0:
            chunks.append(encode(new_text[pending:start]))
            pending = -1
            reused = span
        elif span[0] == reused[1]:
            reused = (reused[0], span[1])
        else:
            chunks.append(old_ids[reused[0] : reused[1]])
            reused = span
        start = end
    chunks.append(encode(new_text[pending:]) if pending >= 0 else old_ids[reused[0] : reused[1]])
    return np.concatenate(chunks)
