"""Naive compressors at a given token budget, to compare extraction against."""

from __future__ import annotations

import random
from collections.abc import Callable

from llmrouter import tokens
from llmrouter.compression.messages import TokenCounter
from llmrouter.compression.segment import count_unit_tokens, segment_units

__all__ = ["BASELINES", "Baseline", "head", "random_sentences", "tail"]

# (text, token budget, seed, counter) -> the kept text
Baseline = Callable[[str, int, int, TokenCounter], str]


def head(text: str, budget: int, seed: int, counter: TokenCounter) -> str:
    """The first ``budget`` tokens."""
    ids = counter.ids(text)
    return tokens.encoding_for_model(counter.model).decode(ids[: max(budget, 0)].tolist())


def tail(text: str, budget: int, seed: int, counter: TokenCounter) -> str:
    """The last ``budget`` tokens."""
    if budget <= 0:
        return ""
    ids = counter.ids(text)
    return tokens.encoding_for_model(counter.model).decode(ids[-budget:].tolist())


def random_sentences(text: str, budget: int, seed: int, counter: TokenCounter) -> str:
    """Randomly chosen sentences that fit in ``budget`` tokens, kept in order."""
    units = segment_units(text, preserve_code=False)
    count_unit_tokens(text, units, counter.ids, counter.model)
    order = list(range(len(units)))
    random.Random(seed).shuffle(order)
    kept: list[int] = []
    spent = 0
    for index in order:
        if spent + units[index].tokens <= budget:
            kept.append(index)
            spent += units[index].tokens
    return " ".join(units[i].text for i in sorted(kept))


BASELINES: dict[str, Baseline] = {"head": head, "tail": tail, "random": random_sentences}
