"""Guards that veto a semantic-cache hit when two similar prompts ask different things.

Similar embeddings are not the same question: "What is 37 × 12?" and "What is 37 × 13?"
differ in one token. Every prompt is reduced to the facts a paraphrase must keep
(numbers, negations, named entities, units, operators and comparison words, code and
math) and a hit is refused unless both prompts carry the same facts. Guards compare
facts only; they never make a hit, so their errors cost hits, not wrong answers.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["PromptFacts", "conflicts", "extract_facts"]

_CODE = re.compile(r"```.*?```|~~~.*?~~~|`[^`\n]+`", re.DOTALL)
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]+\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
# digits glued to names count too: x_1 and x_11, d2 and d5 are different things
_NUMBER = re.compile(r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|[$€£¥%°]")
_CAPITALISED = re.compile(r"(?<![.!?:\n]\s)(?<!^)\b([A-Z][a-zA-Z]+|[A-Z]{2,})\b", re.MULTILINE)
_SPACE = re.compile(r"\s+")
# hyphens and slashes inside words ("well-known", "and/or") are not operators
_OPERATOR_SYMBOLS = re.compile(r"[+*×÷^=<>≤≥≠√]|(?<![A-Za-z])[-/](?![A-Za-z])")

_SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(_SMALL_NUMBERS.split())}
_NUMBER_WORDS.update(
    {
        "thirty": "30",
        "forty": "40",
        "fifty": "50",
        "sixty": "60",
        "seventy": "70",
        "eighty": "80",
        "ninety": "90",
        "hundred": "100",
        "thousand": "1000",
        "million": "1000000",
        "billion": "1000000000",
        "dozen": "12",
        "half": "1/2",
        "quarter": "1/4",
        "twice": "x2",
        "double": "x2",
        "triple": "x3",
        "thrice": "x3",
        "first": "1st",
        "second": "2nd",
        "third": "3rd",
        "fourth": "4th",
        "fifth": "5th",
        "once": "x1",
        "single": "1",
        "pair": "2",
        "couple": "2",
    }
)
_NEGATIONS = frozenset(
    """
    not no never none nobody nothing neither nor nowhere cannot without except hardly barely
    """.split()  # noqa: SIM905
)
_UNITS = {
    unit: canonical
    for canonical, spellings in {
        "km": "km kilometer kilometers kilometre kilometres",
        "m": "meter meters metre metres",
        "cm": "cm centimeter centimeters centimetre centimetres",
        "mm": "mm millimeter millimeters",
        "mi": "mile miles mph",
        "ft": "ft foot feet",
        "in": "inch inches",
        "yd": "yard yards",
        "kg": "kg kilogram kilograms kilo kilos",
        "g": "gram grams",
        "lb": "lb lbs pound pounds",
        "oz": "oz ounce ounces",
        "l": "liter liters litre litres",
        "ml": "ml milliliter milliliters",
        "gal": "gallon gallons",
        "s": "sec secs second seconds",
        "min": "minute minutes",
        "h": "hr hrs hour hours",
        "day": "day days",
        "week": "week weeks",
        "month": "month months",
        "year": "year years",
        "$": "$ dollar dollars usd",
        "cent": "cent cents",
        "€": "€ euro euros eur",
        "£": "£",
        "%": "% percent percentage",
        "°": "° degree degrees",
        "sq": "square",
        "cu": "cubic",
    }.items()
    for unit in spellings.split()
}
# Words whose swap reverses a question while its embedding barely moves.
_CONTRASTS = frozenset(
    """
    most least largest smallest greatest fewest biggest highest lowest maximum minimum max
    min more less fewer greater larger smaller higher lower increase decrease increased
    decreased before after above below first last positive negative even odd true false
    always only all any some every each both either sum difference product quotient plus
    minus times divided multiplied add subtract multiply divide remainder average mean
    median mode prime composite integer real rational irrational perimeter area volume
    radius diameter
    """.split()  # noqa: SIM905
)


@dataclass(frozen=True)
class PromptFacts:
    """What a paraphrase of a prompt must keep, in comparable form."""

    numbers: tuple[str, ...]
    negations: int
    units: tuple[str, ...]
    contrasts: tuple[str, ...]
    operators: tuple[str, ...]
    code: tuple[str, ...]
    entities: frozenset[str]
    words: frozenset[str]


def _number(token: str) -> str:
    token = token.replace(",", "")
    if "." in token and "/" not in token:
        token = token.rstrip("0").rstrip(".") or "0"
    return token


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def extract_facts(text: str) -> PromptFacts:
    """The guarded facts of one prompt."""
    code = [_SPACE.sub("", span) for span in _CODE.findall(text)]
    prose = _CODE.sub(" ", text)
    code += [_SPACE.sub("", span) for span in _MATH.findall(prose)]
    plain = _MATH.sub(" ", prose)
    numbers = [_number(n) for n in _NUMBER.findall(prose)]
    tokens = [t.lower() for t in _WORD.findall(plain)]
    negations = 0
    units: list[str] = []
    contrasts: list[str] = []
    for token in tokens:
        if token in _NEGATIONS or token.endswith("n't"):
            negations += 1
        if token in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[token])
        if token in _UNITS:
            units.append(_UNITS[token])
        if token in _CONTRASTS:
            contrasts.append(_singular(token))
    operators = _OPERATOR_SYMBOLS.findall(_NUMBER.sub(" ", plain.replace("−", "-")))
    entities = frozenset(match.lower() for match in _CAPITALISED.findall(plain))
    return PromptFacts(
        numbers=tuple(sorted(numbers)),
        negations=negations,
        units=tuple(sorted(units)),
        contrasts=tuple(sorted(contrasts)),
        operators=tuple(sorted(operators)),
        code=tuple(sorted(code)),
        entities=entities,
        words=frozenset(tokens),
    )


def conflicts(a: PromptFacts, b: PromptFacts) -> list[str]:
    """Names of the guards that refuse to treat ``a`` and ``b`` as the same question."""
    reasons: list[str] = []
    if a.numbers != b.numbers:
        reasons.append("numbers")
    if a.negations != b.negations:
        reasons.append("negation")
    if a.units != b.units:
        reasons.append("units")
    if a.contrasts != b.contrasts:
        reasons.append("contrast")
    if Counter(a.operators) != Counter(b.operators):
        reasons.append("operators")
    if a.code != b.code:
        reasons.append("code")
    # an entity of one prompt must at least appear (in any case) in the other
    if not (a.entities <= b.words and b.entities <= a.words):
        reasons.append("entities")
    return reasons
