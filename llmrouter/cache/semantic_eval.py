"""Perturbations of real prompts for measuring the semantic cache.

Two families: edits that change the answer (one number changed, a negation added or
removed), where any hit is a false hit; and edits that keep the meaning (whitespace,
casing, punctuation, clause order, a polite preamble), where a hit is the point of the
cache. Math spans ($...$) and code are left alone by the meaning-preserving edits, since
changing case or symbols inside them may change the meaning.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from llmrouter.cache.semantic import SemanticCache

__all__ = [
    "ANSWER_CHANGING",
    "MEANING_PRESERVING",
    "CacheEvalReport",
    "evaluate_cache",
]

Perturb = Callable[[str, random.Random], "str | None"]

_PROTECTED = re.compile(r"\$\$.*?\$\$|\$[^$]+\$|```.*?```|`[^`]+`|\\\[.*?\\\]", re.DOTALL)
_INTEGER = re.compile(r"(?<![\d.])\d+(?![\d.])")
_AUXILIARY = re.compile(
    r"\b(is|are|was|were|can|will|does|do|did|has|have|should|must|could|would)\b"
)
_NOT = re.compile(r"\b(not|never|no)\s+")
_CONTRACTED = re.compile(r"\b(is|are|was|were|does|do|did|has|have|could|would|should)n't\b")
_SPECIAL_CONTRACTIONS = {"can't": "can", "won't": "will", "cannot": "can"}
_SENTENCE = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")
_PREAMBLES = (
    "Please help me with this: ",
    "Hi! Could you answer the following question? ",
    "Hello, I would like to know the answer to this. ",
    "Can you please help me? ",
    "Quick question: ",
)


def _outside_protected(text: str, edit: Callable[[str], str]) -> str:
    """Apply ``edit`` to the prose between math and code spans only."""
    out: list[str] = []
    cursor = 0
    for match in _PROTECTED.finditer(text):
        out.append(edit(text[cursor : match.start()]))
        out.append(match.group(0))
        cursor = match.end()
    out.append(edit(text[cursor:]))
    return "".join(out)


# --- edits that change the answer -------------------------------------------------------


def change_number(text: str, rng: random.Random) -> str | None:
    """One integer (in prose or math) replaced by a different one."""
    matches = list(_INTEGER.finditer(text))
    if not matches:
        return None
    match = rng.choice(matches)
    value = int(match.group(0))
    new = value + rng.choice((1, 2, 3, 5, 10)) if value < 10**12 else value - 1
    return text[: match.start()] + str(new) + text[match.end() :]


def toggle_negation(text: str, rng: random.Random) -> str | None:
    """Remove a negation if there is one, else add "not" after an auxiliary verb."""
    protected = [m.span() for m in _PROTECTED.finditer(text)]

    def free(position: int) -> bool:
        return not any(start <= position < end for start, end in protected)

    for word, plain in _SPECIAL_CONTRACTIONS.items():
        index = text.find(word)
        if index >= 0 and free(index):
            return text[:index] + plain + text[index + len(word) :]
    for pattern, replacement in ((_CONTRACTED, r"\1"), (_NOT, "")):
        for match in pattern.finditer(text):
            if free(match.start()):
                return text[: match.start()] + match.expand(replacement) + text[match.end() :]
    candidates = [m for m in _AUXILIARY.finditer(text) if free(m.start())]
    if not candidates:
        return None
    match = rng.choice(candidates)
    return text[: match.end()] + " not" + text[match.end() :]


# --- edits that keep the meaning --------------------------------------------------------


def whitespace(text: str, rng: random.Random) -> str | None:
    spaced = re.sub(r" ", lambda _: "  " if rng.random() < 0.3 else " ", text)
    return "\n " + spaced + " \n"


def casing(text: str, rng: random.Random) -> str | None:
    if rng.random() < 0.5:
        return _outside_protected(text, str.lower)
    return _outside_protected(text, str.upper)


def punctuation(text: str, rng: random.Random) -> str | None:
    def edit(prose: str) -> str:
        prose = re.sub(r",(?=\s)", "", prose)
        return re.sub(r"[?.]\s*$", "", prose)

    edited = _outside_protected(text.rstrip(), edit)
    return edited + rng.choice(("", "!!", " ?", "..."))


def reorder_clauses(text: str, rng: random.Random) -> str | None:
    """The last sentence (usually the question) moved to the front."""
    spans = [m.span() for m in _PROTECTED.finditer(text)]
    cuts = [m for m in _SENTENCE.finditer(text) if not any(s <= m.start() < e for s, e in spans)]
    if not cuts:
        return None
    last = cuts[-1]
    return text[last.end() :].strip() + " " + text[: last.start()].strip()


def polite_preamble(text: str, rng: random.Random) -> str | None:
    return rng.choice(_PREAMBLES) + text


ANSWER_CHANGING: dict[str, Perturb] = {"number": change_number, "negation": toggle_negation}
MEANING_PRESERVING: dict[str, Perturb] = {
    "whitespace": whitespace,
    "casing": casing,
    "punctuation": punctuation,
    "reorder": reorder_clauses,
    "preamble": polite_preamble,
}


@dataclass
class CacheEvalReport:
    """Hit counts per perturbation kind."""

    entries: int = 0
    trials: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)
    false_hit_examples: list[tuple[str, str]] = field(default_factory=list)

    def rate(self, kinds: Iterable[str]) -> float:
        trials = sum(self.trials.get(k, 0) for k in kinds)
        return sum(self.hits.get(k, 0) for k in kinds) / trials if trials else 0.0


def evaluate_cache(
    prompts: Sequence[str], cache: SemanticCache, *, seed: int = 0
) -> CacheEvalReport:
    """Fill ``cache`` with ``prompts``, then look up every perturbation of each."""
    rng = random.Random(seed)
    report = CacheEvalReport()
    unique = list(dict.fromkeys(prompts))
    for index, prompt in enumerate(unique):
        cache.put([{"role": "user", "content": prompt}], index)
    report.entries = len(cache)
    originals = set(unique)
    for prompt in unique:
        for kind, perturb in {**ANSWER_CHANGING, **MEANING_PRESERVING}.items():
            variant = perturb(prompt, rng)
            if variant is None or variant == prompt or variant in originals:
                continue
            report.trials[kind] = report.trials.get(kind, 0) + 1
            result = cache.lookup([{"role": "user", "content": variant}])
            for reason in result.refused_by:
                report.refusals[reason] = report.refusals.get(reason, 0) + 1
            if result.hit:
                report.hits[kind] = report.hits.get(kind, 0) + 1
                if kind in ANSWER_CHANGING:
                    report.false_hit_examples.append((prompt, variant))
    return report
