"""Finding the question inside a user message that also carries a long document.

Applications paste a document and ask about it in the same message, before or after it,
with or without a blank line. Extraction must know the question (to rank sentences
against it) and must keep it whole, so its place is located once, here, as character
ranges of the message text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from llmrouter.compression.text import split_blocks

__all__ = ["QUESTION_TOKENS", "looks_like_request", "question_ranges"]

# A question longer than this is part of the document.
QUESTION_TOKENS = 300
# An opening line this short that ends in ":" or "?" introduces what follows.
_INSTRUCTION_TOKENS = 100
_REQUEST_START = re.compile(
    r"^\W*(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|does|do|did|can|"
    r"could|would|should|will|please|summari[sz]e|explain|describe|list|give|write|answer|"
    r"tell|find|compare|identify|name|according|based|question|q:|task|instruction)\b",
    re.IGNORECASE,
)


def looks_like_request(text: str) -> bool:
    """Ends like a question or an instruction, or starts like one."""
    stripped = text.strip()
    return stripped.endswith(("?", ":")) or bool(_REQUEST_START.match(stripped))


def question_ranges(text: str, count_tokens: Callable[[str], int]) -> list[tuple[int, int]]:
    """(start, end) ranges of ``text`` that hold the question and its introduction.

    In order of preference: a short last paragraph that looks like a request; a last line
    that does (no blank line before the question); a short first paragraph that does
    (question first); else the last paragraph, or the last line, if short. A short opening
    paragraph ending in ":" or "?" ("Answer from the report below:") is kept too.
    """
    blocks = split_blocks(text)
    if not blocks:
        return []
    first, last = blocks[0], blocks[-1]
    line_start = last.start + last.text.rfind("\n") + 1
    line = text[line_start : last.end]

    def short(piece: str, limit: int = QUESTION_TOKENS) -> bool:
        # no prose averages 16 characters a token: skip tokenising what is clearly long
        return len(piece) <= 16 * limit and count_tokens(piece) <= limit

    several = first is not last
    if several and looks_like_request(last.text) and short(last.text):
        question = (last.start, last.end)
    elif line_start > last.start and looks_like_request(line) and short(line):
        question = (line_start, last.end)
    elif several and looks_like_request(first.text) and short(first.text):
        return [(first.start, first.end)]
    elif several and short(last.text):
        question = (last.start, last.end)
    elif line_start > last.start and short(line, _INSTRUCTION_TOKENS):
        question = (line_start, last.end)
    else:
        return []
    opening = first.text.rstrip()
    if several and opening.endswith((":", "?")) and short(opening, _INSTRUCTION_TOKENS):
        return [(first.start, first.end), question]
    return [question]
