"""Naive compressors at a given token budget, to compare extraction against."""

from __future__ import annotations

import random

from llmrouter import tokens
from llmrouter.compression.extract import segment_units

__all__ = ["BASELINES", "head", "random_sentences", "tail"]


def head(text: str, budget: int, seed: int = 0) -> str:
    """The first ``budget`` tokens."""
    ids = tokens.encode(text)
    return tokens.encoding_for_model().decode(ids[: max(budget, 0)])


def tail(text: str, budget: int, seed: int = 0) -> str:
    """The last ``budget`` tokens."""
    ids = tokens.encode(text)
    return tokens.encoding_for_model().decode(ids[len(ids) - max(budget, 0) :]) if budget else ""


def random_sentences(text: str, budget: int, seed: int = 0) -> str:
    """Randomly chosen sentences that fit in ``budget`` tokens, kept in order."""
    units = segment_units(text, preserve_code=False)
    order = list(range(len(units)))
    random.Random(seed).shuffle(order)
    kept: list[int] = []
    spent = 0
    for index in order:
        cost = tokens.count_text_tokens(units[index].text)
        if spent + cost <= budget:
            kept.append(index)
            spent += cost
    return "\n".join(units[i].text for i in sorted(kept))


BASELINES = {"head": head, "tail": tail, "random": random_sentences}
